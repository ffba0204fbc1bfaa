// What a pod's wiring left in OVS and in the pod's namespace, normalised so that two daemons' wirings of the same
// pod (same container id, netns path and annotations) can be compared field by field: only configured state, never
// counters, kernel indexes, UUIDs, timestamps or the host veth's random MAC.
import type { BedNode } from '../bed/bed.ts';
import type { Netns } from '../bed/netns.ts';

export interface WiringSnapshot {
  /** configured columns of the OVS Interface row */
  iface: Record<string, unknown>;
  /** configured columns of the OVS Port row (qos as present/absent) */
  port: Record<string, unknown>;
  /** the host end of the veth */
  hostLink: Record<string, unknown>;
  /** pod-side links: name → attributes */
  podLinks: Record<string, Record<string, unknown>>;
  /** pod-side addresses, `dev ip/len scope` sorted */
  podAddrs: string[];
  /** pod-side routes of every table, in the kernel's order */
  podRoutes: string[];
  /** pod-side sysctls of eth0 and `all` that pod wiring sets (name → value) */
  podSysctls: Record<string, string>;
  /** `ethtool -k eth0` tx checksumming inside the pod */
  podTxChecksum: string;
}

const IFACE_COLUMNS = ['name', 'type', 'options', 'external_ids', 'other_config', 'mtu_request', 'ingress_policing_rate', 'ingress_policing_burst'];
const PORT_COLUMNS = ['name', 'external_ids', 'other_config', 'tag', 'trunks', 'vlan_mode', 'qos'];
/** external_ids that ovn-controller writes with the time of the write */
const VOLATILE_IDS = /-ts$/;
export const POD_SYSCTLS = [
  'net/ipv4/conf/eth0/arp_notify', 'net/ipv4/conf/eth0/rp_filter', 'net/ipv4/conf/all/rp_filter', 'net/ipv6/conf/eth0/disable_ipv6',
  'net/ipv6/conf/eth0/accept_ra', 'net/ipv6/conf/all/disable_ipv6', 'net/ipv6/conf/all/accept_ra', 'net/ipv4/conf/eth0/accept_local',
  'net/ipv4/conf/eth0/forwarding', 'net/ipv6/conf/eth0/accept_dad', 'net/ipv6/conf/eth0/dad_transmits',
];

/** ovs-vsctl's JSON value encoding → plain JSON (maps to objects, sets to sorted arrays, uuids to a marker). */
export function ovsValue(v: unknown): unknown {
  if (!Array.isArray(v)) return v;
  const [tag, body] = v as [string, unknown];
  if (tag === 'map') return Object.fromEntries((body as [unknown, unknown][]).map(([k, x]) => [String(ovsValue(k)), ovsValue(x)]));
  if (tag === 'set') return (body as unknown[]).map(ovsValue).sort();
  if (tag === 'uuid' || tag === 'named-uuid') return '<uuid>';
  return v;
}

async function ovsRow(node: BedNode, table: string, name: string, columns: string[]): Promise<Record<string, unknown>> {
  const out = JSON.parse(await node.ovs.vsctl(['--format=json', `--columns=${columns.join(',')}`, 'find', table, `name=${name}`])) as
    { headings: string[]; data: unknown[][] };
  if (out.data.length !== 1) throw new Error(`${table} ${name}: ${out.data.length} rows`);
  const row = Object.fromEntries(out.headings.map((h, i) => [h, ovsValue(out.data[0]![i])]));
  if (row.external_ids) row.external_ids = Object.fromEntries(Object.entries(row.external_ids as Record<string, unknown>).filter(([k]) => !VOLATILE_IDS.test(k)));
  return row;
}

interface IpLink { ifname: string; mtu: number; operstate: string; txqlen?: number; address?: string; link_type: string; flags: string[]; linkinfo?: { info_kind?: string } }

const linkAttrs = (l: IpLink, withMac: boolean): Record<string, unknown> => ({
  // `ip -j` leaves txqlen out when it is 0
  mtu: l.mtu, operstate: l.operstate, txqlen: l.txqlen ?? 0, link_type: l.link_type, kind: l.linkinfo?.info_kind ?? null,
  flags: [...l.flags].sort(), ...(withMac ? { address: l.address } : {}),
});

/** The snapshot of `hostIf` (on `node`) and of the pod namespace `pod`. */
export async function snapshotWiring(node: BedNode, hostIf: string, pod: Netns): Promise<WiringSnapshot> {
  const hostLinks = JSON.parse((await node.ns.ip(['-j', '-d', 'link', 'show', 'dev', hostIf])).stdout) as IpLink[];
  const links = JSON.parse((await pod.ip(['-j', '-d', 'link', 'show'])).stdout) as IpLink[];
  const addrs = JSON.parse((await pod.ip(['-j', 'addr', 'show'])).stdout) as { ifname: string; addr_info: { local: string; prefixlen: number; scope: string }[] }[];
  const routes4 = JSON.parse((await pod.ip(['-j', '-4', 'route', 'show', 'table', 'all'])).stdout) as Record<string, unknown>[];
  const routes6 = JSON.parse((await pod.ip(['-j', '-6', 'route', 'show', 'table', 'all'])).stdout) as Record<string, unknown>[];
  const route = (r: Record<string, unknown>) => ['dst', 'gateway', 'dev', 'protocol', 'scope', 'table', 'type', 'metric', 'prefsrc', 'pref']
    .filter((k) => r[k] !== undefined).map((k) => `${k}=${String(r[k])}`).join(' ');
  const sysctls: Record<string, string> = {};
  for (const s of POD_SYSCTLS) {
    const r = await pod.exec(['cat', `/proc/sys/${s}`], { allowFail: true });
    sysctls[s] = r.code === 0 ? r.stdout.trim() : '<absent>';
  }
  const eth = await pod.exec(['ethtool', '-k', 'eth0'], { allowFail: true });
  return {
    iface: await ovsRow(node, 'interface', hostIf, IFACE_COLUMNS),
    port: await ovsRow(node, 'port', hostIf, PORT_COLUMNS).then((p) => ({ ...p, qos: Array.isArray(p.qos) && p.qos.length === 0 ? 'none' : 'set' })),
    hostLink: linkAttrs(hostLinks[0]!, false),
    podLinks: Object.fromEntries(links.map((l) => [l.ifname, linkAttrs(l, true)])),
    podAddrs: addrs.flatMap((a) => a.addr_info.map((i) => `${a.ifname} ${i.local}/${i.prefixlen} ${i.scope}`)).sort(),
    podRoutes: [...routes4, ...routes6].map(route),
    podSysctls: sysctls,
    podTxChecksum: /^tx-checksumming: (\S+)/m.exec(eth.stdout)?.[1] ?? '<unknown>',
  };
}
