// The network configuration on stdin, with the upstream kube-ovn keys (spec §2.2): `server_socket`, `provider`
// (default "ovn"), `routes`, SR-IOV and vhost-user keys, and IPAM-only mode, where kube-ovn is the `ipam` plugin of
// another main plugin (macvlan, ipvlan, ...) and `server_socket`/`provider`/`routes` come from the `ipam` object.
import { familyOf } from '../net/ip.ts';
import { agentError } from '../errors.ts';
import { decodeDns, decodeResult, isSupportedVersion, parseCidr } from './codec.ts';
import { SUPPORTED_VERSIONS, type NetConf, type SpecVersion, type UpstreamRoute } from './types.ts';

export const KUBE_OVN_TYPE = 'kube-ovn';
export const DEFAULT_PROVIDER = 'ovn';
export const DEFAULT_SERVER_SOCKET = '/run/openvswitch/kube-ovn-daemon.sock';
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);
const bad = (what: string) => agentError('KOA_BAD_NETCONF', what);

function optString(o: Obj, k: string, where = ''): string | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw bad(`${where}${k} must be a string`);
  return v;
}

function optObject(o: Obj, k: string): Obj | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw bad(`${k} must be an object`);
  return v;
}

/** Parses the stdin text into a JSON object; code 6 when it is not JSON. */
export function decodeJsonObject(text: string, what: string): Obj {
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch (e) {
    throw agentError('KOA_BAD_JSON', what, e instanceof Error ? e.message : String(e));
  }
  if (!isObj(x)) throw agentError('KOA_BAD_JSON', what, 'expected a JSON object');
  return x;
}

/** The netconf's spec version: missing means 0.1.0 (as the CNI library does); unknown is code 1. */
export function netconfVersion(o: Obj): SpecVersion {
  const v = o.cniVersion;
  if (v === undefined || v === '') return '0.1.0';
  if (!isSupportedVersion(v)) throw agentError('KOA_BAD_VERSION', JSON.stringify(v), SUPPORTED_VERSIONS.join(', '));
  return v;
}

/** Upstream custom routes: `[{dst, gw}]`, strings, either may be empty (empty dst = default route). */
export function parseRoutes(x: unknown, where: string): UpstreamRoute[] | null {
  if (x === undefined || x === null) return null;
  if (!Array.isArray(x)) throw bad(`${where} must be an array of {dst, gw}`);
  return x.map((r, i) => {
    const w = `${where}[${i}].`;
    if (!isObj(r)) throw bad(`${where}[${i}] must be an object with dst and gw`);
    const dst = optString(r, 'dst', w) ?? '';
    const gw = optString(r, 'gw', w) ?? '';
    if (dst !== '' && !parseCidr(dst)) throw bad(`${w}dst "${dst}" is not a CIDR`);
    if (gw !== '' && familyOf(gw) === 0) throw bad(`${w}gw "${gw}" is not an IP address`);
    if (dst === '' && gw === '') throw bad(`${where}[${i}] needs dst or gw`);
    const out: UpstreamRoute = {};
    if (dst !== '') out.dst = dst;
    if (gw !== '') out.gw = gw;
    return out;
  });
}

function parseValidAttachments(x: unknown): { containerID: string; ifname: string }[] | undefined {
  if (x === undefined || x === null) return undefined;
  if (!Array.isArray(x)) throw bad('cni.dev/valid-attachments must be an array');
  return x.map((a, i) => {
    if (!isObj(a) || typeof a.containerID !== 'string' || typeof a.ifname !== 'string') {
      throw bad(`cni.dev/valid-attachments[${i}] must be {containerID, ifname} strings`);
    }
    return { containerID: a.containerID, ifname: a.ifname };
  });
}

/**
 * Parses and validates the netconf. The upstream provider rule "type kube-ovn and ifname eth0 -> ovn" is covered
 * by the plain default. `lenientPrevResult` (DEL) drops an undecodable prevResult instead of failing.
 */
export function parseNetconf(text: string, opts: { lenientPrevResult?: boolean } = {}): NetConf {
  const o = decodeJsonObject(text, 'network configuration');
  const cniVersion = netconfVersion(o);
  const name = o.name;
  if (typeof name !== 'string' || name === '') throw bad('"name" is required');
  if (!NETWORK_NAME.test(name)) throw bad(`name "${name}" must start with a letter or digit and contain only letters, digits, '_', '.', '-'`);
  const type = o.type;
  if (typeof type !== 'string' || type === '') throw bad('"type" is required');

  const ipam = optObject(o, 'ipam');
  const ipamType = ipam ? optString(ipam, 'type', 'ipam.') : undefined;
  const ipamMode = type !== KUBE_OVN_TYPE && ipam !== undefined;
  if (ipamMode && ipamType !== undefined && ipamType !== KUBE_OVN_TYPE) {
    throw bad(`type is "${type}" and ipam.type is "${ipamType}": this plugin runs as type ${KUBE_OVN_TYPE} or as ipam type ${KUBE_OVN_TYPE}`);
  }
  const src = ipamMode ? ipam! : o;
  const where = ipamMode ? 'ipam.' : '';

  const nc: NetConf = {
    cniVersion,
    name,
    type,
    ipamMode,
    serverSocket: optString(src, 'server_socket', where) ?? '',
    provider: optString(src, 'provider', where) || DEFAULT_PROVIDER,
    routes: parseRoutes(src.routes, `${where}routes`),
    raw: o,
  };
  if (nc.serverSocket !== '' && !nc.serverSocket.startsWith('/')) throw bad(`${where}server_socket "${nc.serverSocket}" must be an absolute path`);
  const dns = decodeDns(o.dns, 'dns');
  if (dns) nc.dns = dns;
  const deviceID = optString(o, 'deviceID'); if (deviceID) nc.deviceID = deviceID;
  const vfDriver = optString(o, 'vf_driver'); if (vfDriver) nc.vfDriver = vfDriver;
  const vol = optString(o, 'vhost_user_socket_volume_name'); if (vol) nc.vhostUserSocketVolumeName = vol;
  const sock = optString(o, 'vhost_user_socket_name'); if (sock) nc.vhostUserSocketName = sock;
  const cons = optString(o, 'vhost_user_socket_consumption'); if (cons) nc.vhostUserSocketConsumption = cons;
  const rc = optObject(o, 'runtimeConfig'); if (rc) nc.runtimeConfig = rc;
  const caps = optObject(o, 'capabilities'); if (caps) nc.capabilities = caps;
  const args = optObject(o, 'args'); if (args) nc.args = args;
  if (o.prevResult !== undefined && o.prevResult !== null) {
    try {
      nc.prevResult = decodeResult(o.prevResult, cniVersion);
    } catch (e) {
      // DEL must tear down even when a runtime's cached prevResult is unreadable: it does not need it
      if (!opts.lenientPrevResult) throw e;
    }
  }
  // libcni 1.2.0 sent the list as `cni.dev/attachments` (spec erratum); read it when the spec's key is absent,
  // so that an old runtime's GC never looks like "nothing is valid"
  const va = parseValidAttachments(o['cni.dev/valid-attachments'] ?? o['cni.dev/attachments']); if (va) nc.validAttachments = va;
  return nc;
}

/** Best-effort version of a netconf text for error replies (never throws). */
export function sniffVersion(text: string): SpecVersion | undefined {
  try {
    const o = JSON.parse(text) as unknown;
    if (isObj(o) && isSupportedVersion(o.cniVersion)) return o.cniVersion;
  } catch { /* not JSON */ }
  return undefined;
}
