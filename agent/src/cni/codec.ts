// CNI results per spec version, as pure encode/decode functions. The internal form is 1.1.0 (types.ts); output
// is converted to the netconf's cniVersion, and a `prevResult` of any version is decoded into the internal form.
//   1.1.0, 1.0.0   interfaces{name,mac,mtu,sandbox,socketPath,pciID}, ips{address,gateway,interface},
//                  routes{dst,gw,mtu,advmss,priority,table,scope}, dns only when not empty. The interface and route
//                  fields are 1.1 additions to the spec, but libcni (v1.3, which upstream's executable prints with)
//                  has one set of types for both versions and prints them under 1.0.0 too; so do we, so that the
//                  stdout matches upstream's (integration/upstream/differential.test.ts)
//   0.3.0..0.4.0   as 1.0.0 plus a required `version: "4"|"6"` on every ips entry
//   0.1.0, 0.2.0   ip4{ip,gateway,routes}, ip6{...}, dns: the first address of each family, routes split by family
import { familyOf, parseCidr as parseCidrText } from '../net/ip.ts';
import { agentError, type AgentError } from '../errors.ts';
import {
  LATEST_VERSION, SUPPORTED_VERSIONS, type CniDns, type CniInterface, type CniIpConfig, type CniResult, type CniRoute,
  type SpecVersion,
} from './types.ts';

export function isSupportedVersion(v: unknown): v is SpecVersion {
  return typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Negative when a < b; both must be supported versions. */
export function compareVersions(a: SpecVersion, b: SpecVersion): number {
  return SUPPORTED_VERSIONS.indexOf(a) - SUPPORTED_VERSIONS.indexOf(b);
}

export const atLeast = (v: SpecVersion, min: SpecVersion): boolean => compareVersions(v, min) >= 0;

/** The VERSION answer (the C shim prints the very same bytes; a test keeps them equal). */
export const VERSION_INFO = { cniVersion: LATEST_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
export const VERSION_INFO_JSON = JSON.stringify(VERSION_INFO);

export interface Cidr { ip: string; prefix: number; family: 4 | 6 }

/** Parses "addr/prefix" strictly (net/ip.ts); null when invalid. The address is kept as written. */
export function parseCidr(s: unknown): Cidr | null {
  if (typeof s !== 'string' || s.indexOf('/') !== s.lastIndexOf('/')) return null;
  const c = parseCidrText(s);
  return c ? { ip: s.slice(0, s.indexOf('/')), prefix: c.prefixLen, family: c.family } : null;
}

// ---------------------------------------------------------------------------------------------- encode

function encodeInterface(i: CniInterface, v1: boolean): Record<string, unknown> {
  const o: Record<string, unknown> = { name: i.name };
  if (i.mac) o.mac = i.mac;
  if (v1 && i.mtu) o.mtu = i.mtu;
  if (i.sandbox) o.sandbox = i.sandbox;
  if (v1 && i.socketPath) o.socketPath = i.socketPath;
  if (v1 && i.pciID) o.pciID = i.pciID;
  return o;
}

function encodeRoute(r: CniRoute, v1: boolean): Record<string, unknown> {
  const o: Record<string, unknown> = { dst: r.dst };
  if (r.gw) o.gw = r.gw;
  if (v1) {
    for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) if (r[k] !== undefined) o[k] = r[k];
  }
  return o;
}

function encodeDns(d: CniDns | undefined): Record<string, unknown> | undefined {
  if (!d) return undefined;
  const o: Record<string, unknown> = {};
  if (d.nameservers?.length) o.nameservers = d.nameservers;
  if (d.domain) o.domain = d.domain;
  if (d.search?.length) o.search = d.search;
  if (d.options?.length) o.options = d.options;
  return Object.keys(o).length ? o : undefined;
}

function encodeIp(ip: CniIpConfig, withVersion: boolean): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (withVersion) o.version = String(parseCidr(ip.address)?.family ?? familyOf(ip.address.split('/')[0]));
  o.address = ip.address;
  if (ip.gateway) o.gateway = ip.gateway;
  if (ip.interface !== undefined) o.interface = ip.interface;
  return o;
}

function encodeLegacy(r: CniResult, version: SpecVersion): Record<string, unknown> {
  const out: Record<string, unknown> = { cniVersion: version };
  for (const fam of [4, 6] as const) {
    const ip = r.ips?.find((x) => parseCidr(x.address)?.family === fam);
    if (!ip) continue;
    const o: Record<string, unknown> = { ip: ip.address };
    if (ip.gateway) o.gateway = ip.gateway;
    const routes = (r.routes ?? []).filter((rt) => parseCidr(rt.dst)?.family === fam).map((rt) => encodeRoute(rt, false));
    if (routes.length) o.routes = routes;
    out[`ip${fam}`] = o;
  }
  const dns = encodeDns(r.dns);
  if (dns) out.dns = dns;
  return out;
}

/** The result as the spec version `version` prints it. */
export function encodeResult(r: CniResult, version: SpecVersion): Record<string, unknown> {
  if (!atLeast(version, '0.3.0')) return encodeLegacy(r, version);
  const v1 = atLeast(version, '1.0.0');
  const out: Record<string, unknown> = { cniVersion: version };
  if (r.interfaces?.length) out.interfaces = r.interfaces.map((i) => encodeInterface(i, v1));
  if (r.ips?.length) out.ips = r.ips.map((ip) => encodeIp(ip, !v1));
  if (r.routes?.length) out.routes = r.routes.map((rt) => encodeRoute(rt, v1));
  const dns = encodeDns(r.dns);
  // libcni leaves an empty dns out from 1.0.0 on, and prints it (as {}) for 0.3.0 and 0.4.0
  if (dns || !v1) out.dns = dns ?? {};
  return out;
}

// ---------------------------------------------------------------------------------------------- decode

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);

function bad(what: string): AgentError {
  return agentError('KOA_BAD_NETCONF', what);
}

function optString(o: Obj, k: string, where: string): string | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw bad(`${where}.${k} must be a string`);
  return v;
}

function optUint(o: Obj, k: string, where: string): number | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw bad(`${where}.${k} must be a non-negative integer`);
  return v;
}

function optArray(o: Obj, k: string, where: string): unknown[] | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw bad(`${where}.${k} must be an array`);
  return v;
}

function decodeIpAddr(s: string | undefined, where: string): string | undefined {
  if (s === undefined || s === '') return undefined;
  if (!familyOf(s)) throw bad(`${where} "${s}" is not an IP address`);
  return s;
}

export function decodeDns(x: unknown, where = 'dns'): CniDns | undefined {
  if (x === undefined || x === null) return undefined;
  if (!isObj(x)) throw bad(`${where} must be an object`);
  const strs = (k: string): string[] | undefined => {
    const a = optArray(x, k, where);
    if (!a) return undefined;
    if (!a.every((s) => typeof s === 'string')) throw bad(`${where}.${k} must be an array of strings`);
    return a as string[];
  };
  const d: CniDns = {};
  const ns = strs('nameservers'); if (ns) d.nameservers = ns;
  const domain = optString(x, 'domain', where); if (domain) d.domain = domain;
  const search = strs('search'); if (search) d.search = search;
  const options = strs('options'); if (options) d.options = options;
  return d;
}

function decodeRoute(x: unknown, where: string): CniRoute {
  if (!isObj(x)) throw bad(`${where} must be an object`);
  const dst = optString(x, 'dst', where);
  if (!parseCidr(dst)) throw bad(`${where}.dst "${String(dst)}" is not a CIDR`);
  const r: CniRoute = { dst: dst! };
  const gw = decodeIpAddr(optString(x, 'gw', where), `${where}.gw`); if (gw) r.gw = gw;
  for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
    const n = optUint(x, k, where); if (n !== undefined) r[k] = n;
  }
  return r;
}

function decodeLegacy(o: Obj, root: string): CniResult {
  const r: CniResult = { ips: [], routes: [] };
  for (const fam of [4, 6] as const) {
    const x = o[`ip${fam}`];
    const w = `${root}.ip${fam}`;
    if (x === undefined || x === null) continue;
    if (!isObj(x)) throw bad(`${w} must be an object`);
    const c = parseCidr(x.ip);
    if (!c || c.family !== fam) throw bad(`${w}.ip "${String(x.ip)}" is not an IPv${fam} CIDR`);
    const ip: CniIpConfig = { address: x.ip as string };
    const gw = decodeIpAddr(optString(x, 'gateway', w), `${w}.gateway`); if (gw) ip.gateway = gw;
    r.ips!.push(ip);
    for (const [i, rt] of (optArray(x, 'routes', w) ?? []).entries()) r.routes!.push(decodeRoute(rt, `${w}.routes[${i}]`));
  }
  const dns = decodeDns(o.dns, `${root}.dns`); if (dns) r.dns = dns;
  return r;
}

/** Decodes a result printed in spec version `version` (e.g. a prevResult) into the internal form. */
export function decodeResult(x: unknown, version: SpecVersion, root = 'prevResult'): CniResult {
  if (!isObj(x)) throw bad(`${root} must be an object`);
  if (!atLeast(version, '0.3.0')) return decodeLegacy(x, root);
  const r: CniResult = {};
  const ifs = optArray(x, 'interfaces', root);
  if (ifs) {
    r.interfaces = ifs.map((i, n) => {
      const w = `${root}.interfaces[${n}]`;
      if (!isObj(i)) throw bad(`${w} must be an object`);
      const name = optString(i, 'name', w);
      if (!name) throw bad(`${w}.name is required`);
      const out: CniInterface = { name };
      const mac = optString(i, 'mac', w); if (mac) out.mac = mac;
      const mtu = optUint(i, 'mtu', w); if (mtu !== undefined) out.mtu = mtu;
      const sb = optString(i, 'sandbox', w); if (sb) out.sandbox = sb;
      const sp = optString(i, 'socketPath', w); if (sp) out.socketPath = sp;
      const pci = optString(i, 'pciID', w); if (pci) out.pciID = pci;
      return out;
    });
  }
  const ips = optArray(x, 'ips', root);
  if (ips) {
    r.ips = ips.map((i, n) => {
      const w = `${root}.ips[${n}]`;
      if (!isObj(i)) throw bad(`${w} must be an object`);
      const c = parseCidr(i.address);
      if (!c) throw bad(`${w}.address "${String(i.address)}" is not a CIDR`);
      const ver = i.version;
      if (!atLeast(version, '1.0.0') && ver !== undefined && ver !== String(c.family)) {
        throw bad(`${w}.version "${String(ver)}" does not match address ${String(i.address)}`);
      }
      const out: CniIpConfig = { address: i.address as string };
      const gw = decodeIpAddr(optString(i, 'gateway', w), `${w}.gateway`); if (gw) out.gateway = gw;
      const idx = optUint(i, 'interface', w);
      if (idx !== undefined) {
        if (idx >= (r.interfaces?.length ?? 0)) throw bad(`${w}.interface ${idx} is out of range`);
        out.interface = idx;
      }
      return out;
    });
  }
  const routes = optArray(x, 'routes', root);
  if (routes) r.routes = routes.map((rt, n) => decodeRoute(rt, `${root}.routes[${n}]`));
  const dns = decodeDns(x.dns, `${root}.dns`); if (dns) r.dns = dns;
  return r;
}

// ---------------------------------------------------------------------------------------------- errors

/** The CNI error JSON (spec "Error" section) for `e`, in the netconf's version when known. */
export function encodeError(e: AgentError, version: SpecVersion = LATEST_VERSION): Record<string, unknown> {
  const o: Record<string, unknown> = { cniVersion: version, code: e.cniCode, msg: e.message };
  if (e.details) o.details = e.details;
  return o;
}
