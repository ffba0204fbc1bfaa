// ovn0, the node's port on the join subnet (spec §5.4), as a reconciler: the desired port comes from the Node
// annotations (the controller's join allocation), the observed one from the OVSDB replica and the kernel. Any
// difference is repaired: a missing port (OVS restarted with a fresh database, someone ran del-port), a link set
// down, a lost address or join route. Upstream exits the process when ovn0 is down or missing and relies on the
// container restart; here the next pass (a netlink, OVSDB or Node event, or the resync) puts it back.

import type { Netlink, LinkInfo, AddressInfo, RouteInfo } from '../datapath/netlink/port.ts';
import type { InterfaceInfo, Vswitch } from '../datapath/ovsdb/port.ts';
import type { ReconcileSpec } from './reconciler.ts';
import type { JoinAllocation, JoinDecode } from './facts.ts';

export const OVN0 = 'ovn0';
export const OVN0_TXQUEUELEN = 1000;
const RT_SCOPE_LINK = 253;
const RTPROT_KERNEL = 2;
const IFA_F_PERMANENT = 0x80;

export interface Ovn0Desired {
  /** undefined while the Node annotations are not there (the reason says why) */
  readonly join: JoinAllocation | undefined;
  readonly reason: string;
  readonly mtu: number;
}

export interface Ovn0Observed {
  readonly iface: InterfaceInfo | undefined;
  /** the bridge holding the port ovn0 */
  readonly bridge: string | undefined;
  readonly link: LinkInfo | null;
  readonly addresses: readonly AddressInfo[];
  readonly routes: readonly RouteInfo[];
}

export type Ovn0Op =
  | { readonly op: 'port'; readonly join: JoinAllocation; readonly mtu: number; readonly why: string }
  | { readonly op: 'link'; readonly mac?: string; readonly mtu?: number; readonly txQueueLen?: number; readonly up?: true }
  | { readonly op: 'addAddress'; readonly cidr: string; readonly family: 4 | 6 }
  | { readonly op: 'delAddress'; readonly cidr: string }
  | { readonly op: 'joinRoute'; readonly cidr: string; readonly family: 4 | 6; readonly src?: string };

/** The external_ids upstream puts on ovn0 (iface-id = the node's LSP, ip = its join addresses). */
export function ovn0ExternalIds(join: JoinAllocation): Record<string, string> {
  return { 'iface-id': join.portName, ip: join.addresses.map((a) => a.ip).join(','), vendor: 'kube-ovn' };
}

/** EUI-64 link-local address from a MAC (what the kernel would add; needed when addr_gen_mode leaves none). */
export function eui64LinkLocal(mac: string): string {
  const b = mac.split(':').map((x) => parseInt(x, 16));
  b[0] = b[0]! ^ 0x02;
  const h = [(b[0]! << 8) | b[1]!, (b[2]! << 8) | 0xff, (0xfe << 8) | b[3]!, (b[4]! << 8) | b[5]!];
  return `fe80::${h.map((x) => x.toString(16)).join(':')}/64`;
}

const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

/** Pure: the operations that make the observed ovn0 the desired one (in the order they must run). */
export function diffOvn0(d: Ovn0Desired, o: Ovn0Observed): Ovn0Op[] {
  const join = d.join;
  if (!join) return [];
  const ops: Ovn0Op[] = [];
  const ids = ovn0ExternalIds(join);
  const i = o.iface;
  const portWhy = !i ? 'missing' : i.type !== 'internal' ? `type is ${JSON.stringify(i.type)}` : o.bridge !== 'br-int' ? `on bridge ${o.bridge ?? '(none)'}`
    : Object.entries(ids).some(([k, v]) => i.externalIds[k] !== v) ? 'external_ids differ'
      : !same(i.mac ?? '', join.mac) ? 'mac differs' : d.mtu > 0 && i.mtuRequest !== d.mtu ? 'mtu_request differs' : '';
  if (portWhy) ops.push({ op: 'port', join, mtu: d.mtu, why: portWhy });
  const l = o.link;
  if (!l) return ops; // the kernel device follows the port: the next pass (OVSDB/netlink event) goes on
  const link: { -readonly [K in keyof Extract<Ovn0Op, { op: 'link' }>]: Extract<Ovn0Op, { op: 'link' }>[K] } = { op: 'link' };
  if (!same(l.mac ?? '', join.mac)) link.mac = join.mac;
  if (d.mtu > 0 && l.mtu !== d.mtu) link.mtu = d.mtu;
  if (l.txQueueLen !== undefined && l.txQueueLen !== OVN0_TXQUEUELEN) link.txQueueLen = OVN0_TXQUEUELEN;
  if (!l.up) link.up = true;
  if (Object.keys(link).length > 1) ops.push(link);

  const want = new Map<string, 4 | 6>(join.addresses.map((a) => [`${a.ip}/${a.prefixLen}`, a.family]));
  if (join.addresses.some((a) => a.family === 6)) {
    const ll = eui64LinkLocal(join.mac);
    const hasLl = o.addresses.some((a) => a.family === 6 && a.address.startsWith('fe80:'));
    if (!hasLl) want.set(ll, 6);
  }
  const have = new Set(o.addresses.map((a) => `${a.address}/${a.prefixLen}`));
  for (const [cidr, family] of want) if (!have.has(cidr)) ops.push({ op: 'addAddress', cidr, family });
  for (const a of o.addresses) {
    const cidr = `${a.address}/${a.prefixLen}`;
    if (want.has(cidr) || (a.family === 6 && a.address.startsWith('fe80:'))) continue;
    ops.push({ op: 'delAddress', cidr });
  }
  // join-CIDR routes on ovn0 (link scope); the kernel adds them with the address, but a route deleted by hand stays
  // deleted until the address is re-added: ensure them
  for (const a of join.addresses) {
    const present = o.routes.some((r) => r.family === a.family && r.dst === a.cidr && r.oif === l.index);
    if (!present) ops.push({ op: 'joinRoute', cidr: a.cidr, family: a.family, ...(a.family === 4 ? { src: a.ip } : {}) });
  }
  return ops;
}

export interface Ovn0Deps {
  readonly vswitch: Vswitch;
  readonly netlink: Netlink;
  /** the node's join allocation from the Node cache */
  join(): JoinDecode;
  readonly mtu: () => number;
}

/** The reconcile spec of ovn0. */
export function ovn0Spec(d: Ovn0Deps): ReconcileSpec<Ovn0Desired, Ovn0Observed, Ovn0Op> {
  return {
    name: 'ovn0',
    desired: () => {
      const j = d.join();
      return j.ok ? { join: j.join, reason: '', mtu: d.mtu() } : { join: undefined, reason: j.reason, mtu: d.mtu() };
    },
    async observe() {
      const iface = d.vswitch.getInterface(OVN0);
      const bridge = d.vswitch.getPort(OVN0)?.bridge;
      const link = await d.netlink.getLink(null, OVN0);
      const addresses = link ? await d.netlink.listAddresses(null, { dev: OVN0 }) : [];
      const routes = link ? await d.netlink.listRoutes(null, { dev: OVN0 }) : [];
      return { iface, bridge, link, addresses, routes };
    },
    diff: diffOvn0,
    async apply(ops) {
      for (const op of ops) {
        switch (op.op) {
          case 'port':
            await d.vswitch.addInternalPort({ bridge: 'br-int', name: OVN0, mac: op.join.mac, ...(op.mtu > 0 ? { mtu: op.mtu } : {}), externalIds: ovn0ExternalIds(op.join) });
            // vswitchd opens the device and assigns an ofport (a monitor event); the kernel link exists from then on
            await d.vswitch.waitOfport(OVN0, 10_000);
            break;
          case 'link': {
            const { op: _op, ...changes } = op;
            await d.netlink.setLink(null, OVN0, changes);
            break;
          }
          case 'addAddress':
            await d.netlink.addAddress(null, OVN0, { cidr: op.cidr, ...(op.family === 6 ? { nodad: true } : {}) }, { replace: true });
            break;
          case 'delAddress':
            await d.netlink.deleteAddress(null, OVN0, op.cidr, { ignoreMissing: true });
            break;
          case 'joinRoute':
            await d.netlink.addRoute(null, { dst: op.cidr, dev: OVN0, scope: RT_SCOPE_LINK, protocol: RTPROT_KERNEL,
              ...(op.src ? { src: op.src } : {}), ...(op.family === 6 ? { metric: 256 } : {}) }, { replace: true });
            break;
        }
      }
    },
    describe: (op) => (op.op === 'port' ? `ovs port ovn0 (${op.why})` : op.op === 'link' ? `link ovn0 ${JSON.stringify({ ...op, op: undefined })}`
      : `${op.op} ${op.cidr}`),
  };
}

export { IFA_F_PERMANENT };
