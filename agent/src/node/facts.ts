// What the Node object says about this node's own network (pure): the join-subnet allocation the controller wrote
// (ovn.kubernetes.io/{allocated, ip_address, mac_address, cidr, gateway, port_name}; spec §5.4), the node's
// InternalIP per family, and the IP families the node runs (they decide which ovn40*/ovn60* sets and chains exist).

import type { Node } from '../k8s/types.ts';
import { cidrContains, formatIp, networkOf, parseCidr, parseIp, type Family } from '../net/ip.ts';

export const NODE_ANNOTATION = {
  allocated: 'ovn.kubernetes.io/allocated',
  ipAddress: 'ovn.kubernetes.io/ip_address',
  macAddress: 'ovn.kubernetes.io/mac_address',
  cidr: 'ovn.kubernetes.io/cidr',
  gateway: 'ovn.kubernetes.io/gateway',
  portName: 'ovn.kubernetes.io/port_name',
  chassis: 'ovn.kubernetes.io/chassis',
  tunnelInterface: 'ovn.kubernetes.io/tunnel_interface',
  nodeNetworks: 'ovn.kubernetes.io/node_networks',
} as const;

export interface JoinAddress {
  readonly family: Family;
  /** canonical address */
  readonly ip: string;
  readonly prefixLen: number;
  /** the join CIDR of this family, canonical network form */
  readonly cidr: string;
  /** the join gateway of this family */
  readonly gateway: string;
}

/** ovn0's desired identity from the Node annotations. */
export interface JoinAllocation {
  /** OVN logical switch port (iface-id), normally `node-<node>` */
  readonly portName: string;
  readonly mac: string;
  /** per family, IPv4 first */
  readonly addresses: readonly JoinAddress[];
}

export type JoinDecode = { ok: true; join: JoinAllocation } | { ok: false; reason: string };

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** Decodes the node's join allocation; `reason` says what is missing or wrong (the agent waits for the next event). */
export function decodeJoin(node: Node | undefined): JoinDecode {
  const a = node?.metadata?.annotations ?? {};
  const no = (reason: string): JoinDecode => ({ ok: false, reason });
  if (!node) return no('the Node object is not in the cache yet');
  const ipText = a[NODE_ANNOTATION.ipAddress];
  if (!ipText) return no(`annotation ${NODE_ANNOTATION.ipAddress} is missing (the controller has not allocated the join address yet)`);
  const mac = (a[NODE_ANNOTATION.macAddress] ?? '').toLowerCase();
  if (!MAC.test(mac)) return no(`annotation ${NODE_ANNOTATION.macAddress} is missing or not a MAC address: ${JSON.stringify(a[NODE_ANNOTATION.macAddress] ?? '')}`);
  const portName = a[NODE_ANNOTATION.portName] ?? '';
  if (!portName) return no(`annotation ${NODE_ANNOTATION.portName} is missing`);
  const ips = ipText.split(',').map((s) => s.trim()).filter(Boolean);
  const cidrs = (a[NODE_ANNOTATION.cidr] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const gws = (a[NODE_ANNOTATION.gateway] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const addresses: JoinAddress[] = [];
  for (const text of ips) {
    const ip = parseIp(text.includes('/') ? text.slice(0, text.indexOf('/')) : text);
    if (!ip) return no(`annotation ${NODE_ANNOTATION.ipAddress}: ${JSON.stringify(text)} is not an IP address`);
    const cidr = cidrs.map(parseCidr).find((c) => c && cidrContains(c, ip));
    if (!cidr) return no(`annotation ${NODE_ANNOTATION.cidr}: no CIDR of ${JSON.stringify(a[NODE_ANNOTATION.cidr] ?? '')} contains ${text}`);
    const gw = gws.map(parseIp).find((g) => g && cidrContains(cidr, g));
    if (!gw) return no(`annotation ${NODE_ANNOTATION.gateway}: no gateway of ${JSON.stringify(a[NODE_ANNOTATION.gateway] ?? '')} is in ${formatIp(cidr.ip)}/${cidr.prefixLen}`);
    const net = networkOf(cidr.ip, cidr.prefixLen);
    addresses.push({ family: ip.family, ip: formatIp(ip), prefixLen: cidr.prefixLen, cidr: net, gateway: formatIp(gw) });
  }
  if (addresses.length === 0) return no(`annotation ${NODE_ANNOTATION.ipAddress} is empty`);
  addresses.sort((x, y) => x.family - y.family);
  return { ok: true, join: { portName, mac, addresses } };
}


/** The node's InternalIP addresses, first of each family. */
export function internalIps(node: Node | undefined): { v4?: string; v6?: string } {
  const out: { v4?: string; v6?: string } = {};
  for (const a of node?.status?.addresses ?? []) {
    if (a.type !== 'InternalIP') continue;
    const ip = parseIp(a.address);
    if (!ip) continue;
    if (ip.family === 4) out.v4 ??= formatIp(ip);
    else out.v6 ??= formatIp(ip);
  }
  return out;
}

/** The IP families this node runs: those of its join allocation (upstream reads ip_address), else of its InternalIPs. */
export function nodeFamilies(node: Node | undefined): Family[] {
  const j = decodeJoin(node);
  if (j.ok) return [...new Set(j.join.addresses.map((x) => x.family))];
  const ips = internalIps(node);
  return [...(ips.v4 ? [4 as const] : []), ...(ips.v6 ? [6 as const] : [])];
}
