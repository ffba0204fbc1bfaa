// The tunnel interface and encap IP (spec §5.2), and the Open_vSwitch external_ids the agent owns for them (§5.3).
// Pure: the kernel's links/addresses/routes and the node's facts in, a decision (or a clear reason) out.

import type { AddressInfo, LinkInfo, RouteInfo } from '../datapath/netlink/port.ts';
import { formatIp, parseIp } from '../net/ip.ts';

export interface TunnelInputs {
  /** node annotation ovn.kubernetes.io/tunnel_interface (wins over --iface) */
  readonly annotationIface?: string;
  /** --iface: a link name or comma-separated regexes */
  readonly iface: string;
  /** env POD_IP (the DaemonSet's hostNetwork pod IP = a node address) */
  readonly podIp?: string;
  /** the node's InternalIP addresses */
  readonly internalIps: { v4?: string; v6?: string };
  /** --host-tunnel-src: /32 and /128 addresses may be the encap IP */
  readonly hostTunnelSrc: boolean;
  /** NIC name -> OVS bridge, for NICs a provider network moved onto a bridge */
  readonly bridgedNics?: ReadonlyMap<string, string>;
  readonly links: readonly LinkInfo[];
  readonly addresses: readonly AddressInfo[];
  readonly routes: readonly RouteInfo[];
}

export type TunnelChoice = { ok: true; link: LinkInfo; encapIp: string; source: string } | { ok: false; reason: string };

const RT_SCOPE_LINK = 253;

function usable(a: AddressInfo, hostTunnelSrc: boolean): boolean {
  if (a.family === 6 && a.address.toLowerCase().startsWith('fe80:')) return false;
  if (a.family === 4 && a.address.startsWith('127.')) return false;
  if (a.family === 6 && a.address === '::1') return false;
  if (!hostTunnelSrc && a.prefixLen === (a.family === 4 ? 32 : 128)) return false;
  return true;
}

/** Picks the tunnel link and the encap IP, in upstream's precedence. */
export function chooseTunnel(i: TunnelInputs): TunnelChoice {
  const configured = (i.annotationIface ?? '').trim() || i.iface.trim();
  const source = (i.annotationIface ?? '').trim() ? 'node annotation ovn.kubernetes.io/tunnel_interface' : '--iface';
  if (!configured) {
    const want = i.podIp || i.internalIps.v4 || i.internalIps.v6;
    if (!want) return { ok: false, reason: 'no tunnel interface configured and neither POD_IP nor a node InternalIP is known' };
    const ip = parseIp(want);
    if (!ip) return { ok: false, reason: `${want} is not an IP address` };
    const canon = formatIp(ip);
    const a = i.addresses.find((x) => { const p = parseIp(x.address); return p !== undefined && formatIp(p) === canon; });
    if (!a) return { ok: false, reason: `no link holds ${canon} (${i.podIp ? 'POD_IP' : 'the node InternalIP'})` };
    const link = i.links.find((l) => l.index === a.index);
    if (!link) return { ok: false, reason: `the link holding ${canon} (index ${a.index}) is gone` };
    return { ok: true, link, encapIp: canon, source: i.podIp ? 'POD_IP' : 'node InternalIP' };
  }
  let link = i.links.find((l) => l.name === configured);
  if (!link) {
    for (const text of configured.split(',').map((s) => s.trim()).filter(Boolean)) {
      let re: RegExp;
      try { re = new RegExp(text); } catch { continue; }
      link = i.links.find((l) => re.test(l.name));
      if (link) break;
    }
  }
  if (!link) return { ok: false, reason: `${source} ${JSON.stringify(configured)} matches no link` };
  const bridge = i.bridgedNics?.get(link.name);
  if (bridge) link = i.links.find((l) => l.name === bridge) ?? link;
  const srcs = new Set(i.routes.filter((r) => r.oif === link!.index && r.scope === RT_SCOPE_LINK && r.prefSrc).map((r) => r.prefSrc!));
  const a = i.addresses.filter((x) => x.index === link!.index && usable(x, i.hostTunnelSrc))
    .find((x) => srcs.size === 0 || srcs.has(x.address));
  if (!a) return { ok: false, reason: `iface ${link.name} has no valid IP address` };
  return { ok: true, link, encapIp: a.address, source };
}

/** The node networks annotation (JSON {network: IP}); invalid entries are dropped with a reason each. */
export function parseNodeNetworks(text: string | undefined): { networks: Record<string, string>; problems: string[] } {
  if (!text) return { networks: {}, problems: [] };
  let v: unknown;
  try { v = JSON.parse(text); } catch { return { networks: {}, problems: ['ovn.kubernetes.io/node_networks is not JSON'] }; }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { networks: {}, problems: ['ovn.kubernetes.io/node_networks is not an object'] };
  const networks: Record<string, string> = {};
  const problems: string[] = [];
  for (const [k, x] of Object.entries(v)) {
    const p = typeof x === 'string' ? parseIp(x) : undefined;
    if (p) networks[k] = formatIp(p); else problems.push(`node network ${k}: ${JSON.stringify(x)} is not an IP address`);
  }
  return { networks, problems };
}

/** The Open_vSwitch external_ids the agent owns (§5.3): encap IP list (default first, then node networks sorted). */
export function encapExternalIds(encapIp: string, nodeNetworks: Record<string, string>, encapChecksum: boolean): Record<string, string> {
  const others = [...new Set(Object.values(nodeNetworks))].filter((x) => x !== encapIp).sort();
  return {
    'ovn-encap-ip': [encapIp, ...others].join(','),
    'ovn-encap-ip-default': encapIp,
    'ovn-encap-csum': String(encapChecksum),
  };
}
