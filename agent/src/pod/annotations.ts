// Decoding of the controller's pod annotations for one provider and one interface (spec §3.2, user docs §2.1/§2.2).
// Keys are `<P>.kubernetes.io/<key>` (P = provider: `ovn`, `<nad>.<ns>.ovn`, or `<nad>.<ns>` for IPAM-only).
// "appendIfName": when `<P>.<I>.kubernetes.io/ip_address` exists, the per-NIC keys are read from `<P>.<I>.kubernetes.io/`.
// The result is either the typed NIC facts, a reason to keep waiting (the controller has not finished), or a
// fatal reason (an annotation that cannot become valid by waiting).

import { cidrContains, formatIp, parseCidr, parseIp, type Family } from '../net/ip.ts';

export type Annotations = Readonly<Record<string, string>>;

/** Per-NIC keys: read from `<P>.<I>.kubernetes.io/` under appendIfName (spec §3.2 marks them (O)). */
export const PER_NIC_KEYS = ['allocated', 'ip_address', 'mac_address', 'cidr', 'gateway', 'logical_switch',
  'ingress_rate', 'egress_rate', 'ingress_burst', 'egress_burst', 'latency', 'limit', 'loss', 'jitter',
  'provider_network', 'virtualmachine', 'vlan_id'] as const;
/** Keys always read from `<P>.kubernetes.io/`. */
export const PER_PROVIDER_KEYS = ['routes', 'routed', 'default_route', 'pod_nic_type', 'mirror', 'activation_strategy'] as const;
export type PerNicKey = (typeof PER_NIC_KEYS)[number];
export type PerProviderKey = (typeof PER_PROVIDER_KEYS)[number];

export const MIGRATION_JOB_KEY = 'kubevirt.io/migrationJobName';

export const DEFAULT_PROVIDER = 'ovn';

/** `ovn`, empty, or three dot-separated fields ending in `ovn` (`<nad>.<ns>.ovn`): a NIC wired into OVN. */
export function isOvnProvider(provider: string): boolean {
  if (provider === '' || provider === DEFAULT_PROVIDER) return true;
  const parts = provider.split('.');
  return parts.length === 3 && parts[2] === 'ovn';
}

/** The provider a Subnet's spec.provider is compared with: the request provider without a `.<ifName>` suffix. */
export function providerForSubnet(provider: string, ifName: string): string {
  const suffix = `.${ifName}`;
  return ifName !== '' && provider.endsWith(suffix) ? provider.slice(0, -suffix.length) : provider;
}

export interface AnnotationKeys {
  readonly provider: string;
  readonly ifName: string;
  readonly appendIfName: boolean;
  nic(key: PerNicKey): string;
  prov(key: PerProviderKey): string;
}

/** Key names for (provider, ifName), with the appendIfName detection. */
export function annotationKeys(annotations: Annotations, provider: string, ifName: string): AnnotationKeys {
  const p = provider === '' ? DEFAULT_PROVIDER : provider;
  const ifn = ifName === '' ? 'eth0' : ifName;
  const appendIfName = annotations[`${p}.${ifn}.kubernetes.io/ip_address`] !== undefined;
  const nicPrefix = appendIfName ? `${p}.${ifn}.kubernetes.io/` : `${p}.kubernetes.io/`;
  return {
    provider: p,
    ifName: ifn,
    appendIfName,
    nic: (key) => nicPrefix + key,
    prov: (key) => `${p}.kubernetes.io/${key}`,
  };
}

export interface NicAddress {
  readonly family: Family;
  /** canonical text, no prefix */
  readonly ip: string;
  /** prefix length of the family's subnet CIDR */
  readonly prefixLen: number;
  /** the family's subnet CIDR as annotated */
  readonly cidr: string;
}

export interface AnnotatedRoute {
  /** '' = default route of gw's family */
  readonly dst: string;
  readonly gw: string;
}

export interface NicQos {
  /** Mbit/s */
  readonly ingressRate?: number;
  readonly egressRate?: number;
  /** Mbit */
  readonly ingressBurst?: number;
  readonly egressBurst?: number;
  /** ms */
  readonly latency?: number;
  readonly jitter?: number;
  /** packets */
  readonly limit?: number;
  /** percent */
  readonly loss?: number;
}

export interface PodNicAnnotations {
  readonly provider: string;
  readonly ifName: string;
  readonly appendIfName: boolean;
  /** ip_address empty, allocated=true, mac set, cidr empty: the NIC gets only a MAC (external DHCP) */
  readonly macOnly: boolean;
  /** the raw ip_address annotation ('' for MAC-only) */
  readonly ipAddress: string;
  readonly addresses: readonly NicAddress[];
  /** lower-case, colon-separated; undefined when the controller gave none (IPAM-only NICs) */
  readonly mac: string | undefined;
  readonly cidrs: readonly string[];
  /** subnet gateways, only of the families the NIC has an address in */
  readonly gateways: readonly string[];
  readonly logicalSwitch: string | undefined;
  /** `<P>.kubernetes.io/routes` (never per-ifname) */
  readonly routes: readonly AnnotatedRoute[];
  readonly routed: boolean;
  /** `<P>.kubernetes.io/default_route`, else ifName === 'eth0' */
  readonly defaultRoute: boolean;
  /** '' | 'veth-pair' | 'internal-port' | ... */
  readonly podNicType: string;
  readonly qos: NicQos;
  readonly providerNetwork: string | undefined;
  /** VM name (KubeVirt): replaces the pod name in the iface-id, IP CR name and external_ids:pod_name */
  readonly virtualMachine: string | undefined;
  readonly vlanId: number | undefined;
  readonly mirror: boolean;
  readonly activationStrategy: string | undefined;
  /** `kubevirt.io/migrationJobName` present: live-migration target (no gateway check, no DAD, no ARP probe) */
  readonly migrationTarget: boolean;
}

export type DecodeResult =
  | { readonly ok: true; readonly nic: PodNicAnnotations }
  /** the controller has not finished: waiting may help; `key` is the annotation that is missing or wrong */
  | { readonly ok: false; readonly retry: true; readonly key: string; readonly reason: string }
  /** waiting cannot help */
  | { readonly ok: false; readonly retry: false; readonly key: string; readonly reason: string };

const MAC = /^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$/;

function wait(key: string, reason: string): DecodeResult { return { ok: false, retry: true, key, reason }; }
function fatal(key: string, reason: string): DecodeResult { return { ok: false, retry: false, key, reason }; }

const splitList = (v: string | undefined): string[] => (v ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');

function parseBoolish(v: string | undefined): boolean | undefined {
  if (v === 'true') return true;
  if (v === 'false') return false;
  return undefined;
}

/** Parses the annotation `routes` value: a JSON array of {dst?, gw?} strings. */
export function parseAnnotatedRoutes(text: string | undefined): AnnotatedRoute[] | string {
  if (text === undefined || text.trim() === '') return [];
  let v: unknown;
  try { v = JSON.parse(text); } catch (e) { return `not JSON: ${(e as Error).message}`; }
  if (v === null) return [];
  if (!Array.isArray(v)) return 'expected a JSON array of {"dst","gw"}';
  const out: AnnotatedRoute[] = [];
  for (const [i, r] of v.entries()) {
    if (typeof r !== 'object' || r === null || Array.isArray(r)) return `entry ${i} is not an object`;
    const { dst = '', gw = '' } = r as { dst?: unknown; gw?: unknown };
    if (typeof dst !== 'string' || typeof gw !== 'string') return `entry ${i}: dst and gw must be strings`;
    out.push({ dst: dst.trim(), gw: gw.trim() });
  }
  return out;
}

/**
 * Decodes the NIC of (provider, ifName). Wait reasons follow upstream's loop (§3.2): no address yet; address not
 * inside the annotated CIDR, bad MAC (validation); `routed` not yet true on the default-route NIC of an OVN
 * provider; and for OVN providers a missing `logical_switch`. Fatal: unparsable `routes`, QoS numbers.
 */
export function decodePodNic(annotations: Annotations, provider: string, ifName: string): DecodeResult {
  const k = annotationKeys(annotations, provider, ifName);
  const a = (key: string): string | undefined => {
    const v = annotations[key];
    return v === undefined ? undefined : v.trim();
  };
  const ipText = a(k.nic('ip_address')) ?? '';
  const allocated = a(k.nic('allocated')) === 'true';
  const macText = a(k.nic('mac_address')) ?? '';
  const cidrText = a(k.nic('cidr')) ?? '';
  const macOnly = ipText === '' && allocated && macText !== '' && cidrText === '';
  const ovn = isOvnProvider(k.provider);

  if (ipText === '' && !macOnly) {
    return wait(k.nic('ip_address'), allocated
      ? `${k.nic('ip_address')} is empty although ${k.nic('allocated')}=true`
      : `no address allocated yet (${k.nic('allocated')} is not "true", ${k.nic('ip_address')} is missing)`);
  }

  let mac: string | undefined;
  if (macText !== '') {
    if (!MAC.test(macText)) return wait(k.nic('mac_address'), `${JSON.stringify(macText)} is not a MAC address`);
    mac = macText.toLowerCase().replace(/-/g, ':');
  } else if (ovn) {
    return wait(k.nic('mac_address'), `${k.nic('mac_address')} is missing`);
  }

  // addresses, each with the prefix length of its family's CIDR
  const addresses: NicAddress[] = [];
  const cidrs = splitList(cidrText);
  if (!macOnly) {
    if (cidrs.length === 0) return wait(k.nic('cidr'), `${k.nic('cidr')} is missing`);
    const parsedCidrs = [];
    for (const c of cidrs) {
      const pc = parseCidr(c);
      if (!pc) return wait(k.nic('cidr'), `${JSON.stringify(c)} is not a CIDR`);
      parsedCidrs.push(pc);
    }
    const seen = new Set<Family>();
    for (const text of splitList(ipText)) {
      const ip = parseIp(text);
      if (!ip) return wait(k.nic('ip_address'), `${JSON.stringify(text)} is not an IP address`);
      if (seen.has(ip.family)) return wait(k.nic('ip_address'), `${JSON.stringify(ipText)} has two IPv${ip.family} addresses`);
      seen.add(ip.family);
      const cidr = parsedCidrs.find((c) => c.family === ip.family);
      if (!cidr) return wait(k.nic('cidr'), `no IPv${ip.family} CIDR in ${JSON.stringify(cidrText)} for ${text}`);
      if (!cidrContains(cidr, ip)) return wait(k.nic('ip_address'), `${text} is not inside ${k.nic('cidr')} ${cidrs.join(',')}`);
      addresses.push({ family: ip.family, ip: formatIp(ip), prefixLen: cidr.prefixLen, cidr: cidrs[parsedCidrs.indexOf(cidr)]! });
    }
  }
  const families = new Set(addresses.map((x) => x.family));

  const gateways: string[] = [];
  for (const g of splitList(a(k.nic('gateway')))) {
    const ip = parseIp(g);
    if (!ip) return wait(k.nic('gateway'), `${JSON.stringify(g)} is not an IP address`);
    if (families.has(ip.family)) gateways.push(formatIp(ip));
  }

  const routes = parseAnnotatedRoutes(annotations[k.prov('routes')]);
  if (typeof routes === 'string') return fatal(k.prov('routes'), routes);

  const qos: Record<string, number> = {};
  const qosKeys: [keyof NicQos, PerNicKey, 'int' | 'float'][] = [['ingressRate', 'ingress_rate', 'int'],
    ['egressRate', 'egress_rate', 'int'], ['ingressBurst', 'ingress_burst', 'int'], ['egressBurst', 'egress_burst', 'int'],
    ['latency', 'latency', 'int'], ['jitter', 'jitter', 'int'], ['limit', 'limit', 'int'], ['loss', 'loss', 'float']];
  for (const [field, key, kind] of qosKeys) {
    const v = a(k.nic(key));
    if (v === undefined || v === '') continue;
    const ok = kind === 'int' ? /^\d+$/.test(v) : /^\d+(\.\d+)?$/.test(v);
    const n = Number(v);
    if (!ok || !Number.isSafeInteger(Math.floor(n)) || (key === 'loss' && n > 100)) {
      return fatal(k.nic(key), `${JSON.stringify(v)} is not a ${kind === 'int' ? 'non-negative integer' : 'percentage'}`);
    }
    qos[field] = n;
  }

  let vlanId: number | undefined;
  const vlanText = a(k.nic('vlan_id'));
  if (vlanText !== undefined && vlanText !== '') {
    if (!/^\d+$/.test(vlanText) || Number(vlanText) > 4095) return fatal(k.nic('vlan_id'), `${JSON.stringify(vlanText)} is not a VLAN id`);
    vlanId = Number(vlanText);
  }

  const defaultRoute = parseBoolish(a(k.prov('default_route'))) ?? (k.ifName === 'eth0');
  const routed = a(k.prov('routed')) === 'true';
  if (!macOnly && defaultRoute && !routed && ovn) {
    return wait(k.prov('routed'), `${k.prov('routed')} is not "true" yet (the controller has not finished the routes)`);
  }
  const logicalSwitch = a(k.nic('logical_switch')) || undefined;
  if (ovn && logicalSwitch === undefined) return wait(k.nic('logical_switch'), `${k.nic('logical_switch')} is missing`);

  const opt = (key: string): string | undefined => a(key) || undefined;
  return {
    ok: true,
    nic: {
      provider: k.provider,
      ifName: k.ifName,
      appendIfName: k.appendIfName,
      macOnly,
      ipAddress: ipText,
      addresses,
      mac,
      cidrs,
      gateways,
      logicalSwitch,
      routes,
      routed,
      defaultRoute,
      podNicType: a(k.prov('pod_nic_type')) ?? '',
      qos: qos as NicQos,
      providerNetwork: opt(k.nic('provider_network')),
      virtualMachine: opt(k.nic('virtualmachine')),
      vlanId,
      mirror: a(k.prov('mirror')) === 'true',
      activationStrategy: opt(k.prov('activation_strategy')),
      migrationTarget: (annotations[MIGRATION_JOB_KEY] ?? '') !== '',
    },
  };
}
