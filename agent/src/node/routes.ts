// Host routes to the default VPC's subnets through ovn0 (spec §5.5), as a reconciler. Desired: for each qualifying
// subnet CIDR of a family the node runs, `dst <cidr> via <join gateway> src <node InternalIP> dev ovn0 proto static`.
// Observed: the main routing table. Routes on ovn0 that no subnet wants are removed; a destination that another link
// already routes is a conflict (left to that link, ours removed), as upstream does. Triggered by Subnet and Node
// events, route-deleted netlink events, and the resync; a route deleted by hand comes back on the event.

import type { Netlink, RouteInfo, LinkInfo } from '../datapath/netlink/port.ts';
import type { Node, Subnet } from '../k8s/types.ts';
import { canonicalIp, cidrContains, networkOf, parseCidr, parseIp, type Family } from '../net/ip.ts';
import { decodeJoin, internalIps } from './facts.ts';
import { OVN0 } from './ovn0.ts';
import type { ReconcileSpec } from './reconciler.ts';
import { compareStrings } from '../order.ts';

export const RTPROT_STATIC = 4;
const RT_SCOPE_UNIVERSE = 0;
const MAIN_TABLE = 254;

export interface HostRoute {
  readonly family: Family;
  /** canonical network form */
  readonly dst: string;
  readonly gateway: string;
  readonly src?: string;
}

export interface RoutesDesired {
  readonly routes: readonly HostRoute[];
  /** false until the node's join allocation is known: nothing is removed before */
  readonly known: boolean;
}

export interface RoutesObserved {
  readonly ovn0: number | undefined;
  readonly routes: readonly RouteInfo[];
}

export type RouteOp =
  | { readonly op: 'add'; readonly route: HostRoute }
  | { readonly op: 'delete'; readonly route: RouteInfo; readonly why: string };

export interface RouteConfig {
  /** --cluster-router: the default VPC */
  readonly clusterRouter: string;
  /** --node-switch: the join subnet (its routes are ovn0's link routes, not these) */
  readonly nodeSwitch: string;
}

const condTrue = (s: Subnet, type: string): boolean => {
  const conds = (s.status as { conditions?: { type?: string; status?: string }[] } | undefined)?.conditions ?? [];
  return conds.some((c) => c.type === type && c.status === 'True');
};

/** Does the subnet get a host route (spec §5.5)? */
export function routedSubnet(s: Subnet, cfg: RouteConfig): boolean {
  const spec = s.spec ?? {};
  if (s.metadata?.name === cfg.nodeSwitch) return false;
  if ((spec.vpc ?? cfg.clusterRouter) !== cfg.clusterRouter) return false;
  if (s.metadata?.deletionTimestamp) return false;
  if (!condTrue(s, 'Validated')) return false;
  const enableLb = (spec as { enableLb?: boolean }).enableLb;
  if (spec.vlan && !spec.logicalGateway && (!spec.u2oInterconnection || enableLb === true)) return false;
  return (spec.provider ?? 'ovn') === 'ovn' || (spec.provider ?? '').endsWith('.ovn');
}

/** Pure: the host routes the node should have. */
export function desiredRoutes(subnets: readonly Subnet[], node: Node | undefined, cfg: RouteConfig): RoutesDesired {
  const j = decodeJoin(node);
  if (!j.ok) return { routes: [], known: false };
  const gw = new Map(j.join.addresses.map((a) => [a.family, a.gateway] as const));
  const own = internalIps(node);
  const ownIp = (f: Family): string | undefined => (f === 4 ? own.v4 : own.v6);
  const out = new Map<string, HostRoute>();
  for (const s of subnets) {
    if (!routedSubnet(s, cfg)) continue;
    for (const text of (s.spec?.cidrBlock ?? '').split(',').map((x) => x.trim()).filter(Boolean)) {
      const c = parseCidr(text);
      if (!c) continue;
      const via = gw.get(c.family);
      if (!via) continue; // a family the node does not run
      const src = ownIp(c.family);
      if (src && cidrContains(c, parseIp(src)!)) continue; // the node's own network
      const dst = networkOf(c.ip, c.prefixLen);
      out.set(`${c.family}|${dst}`, { family: c.family, dst, gateway: via, ...(src ? { src } : {}) });
    }
  }
  return { routes: [...out.values()].sort((a, b) => compareStrings(a.dst, b.dst)), known: true };
}


const canonIp = (ip: string | undefined): string | undefined => (ip === undefined ? undefined : canonicalIp(ip));

/** Pure: what to add and delete. Only main-table, universe-scope routes on ovn0 are ours to delete. */
export function diffRoutes(d: RoutesDesired, o: RoutesObserved): RouteOp[] {
  if (o.ovn0 === undefined) return []; // ovn0's reconciler brings the link; its event brings us back
  const ops: RouteOp[] = [];
  const main = o.routes.filter((r) => r.table === MAIN_TABLE && r.dst !== null);
  const onOvn0 = main.filter((r) => r.oif === o.ovn0 && r.scope === RT_SCOPE_UNIVERSE && !(r.family === 6 && r.dst!.startsWith('fe80:')));
  const elsewhere = main.filter((r) => r.oif !== o.ovn0);
  const wanted = new Map(d.routes.map((r) => [`${r.family}|${r.dst}`, r]));
  for (const r of onOvn0) {
    const key = `${r.family}|${r.dst}`;
    const w = wanted.get(key);
    if (!w) { if (d.known) ops.push({ op: 'delete', route: r, why: 'no subnet wants it' }); continue; }
    if (elsewhere.some((x) => x.family === r.family && x.dst === r.dst)) { ops.push({ op: 'delete', route: r, why: 'the destination is routed by another link' }); continue; }
    if (canonIp(r.gateway) !== w.gateway || (w.src !== undefined && canonIp(r.prefSrc) !== w.src)) ops.push({ op: 'delete', route: r, why: 'gateway or source changed' });
  }
  for (const w of d.routes) {
    if (elsewhere.some((x) => x.family === w.family && x.dst === w.dst)) continue; // conflict: another link owns it
    const ok = onOvn0.some((r) => r.family === w.family && r.dst === w.dst && canonIp(r.gateway) === w.gateway
      && (w.src === undefined || canonIp(r.prefSrc) === w.src));
    if (!ok) ops.push({ op: 'add', route: w });
  }
  return ops;
}

export interface RoutesDeps {
  readonly netlink: Netlink;
  subnets(): readonly Subnet[];
  node(): Node | undefined;
  readonly config: RouteConfig;
}

export function routesSpec(d: RoutesDeps): ReconcileSpec<RoutesDesired, RoutesObserved, RouteOp> {
  return {
    name: 'host-routes',
    desired: () => desiredRoutes(d.subnets(), d.node(), d.config),
    async observe() {
      const links: LinkInfo[] = await d.netlink.listLinks(null);
      const ovn0 = links.find((l) => l.name === OVN0)?.index;
      const routes = [...await d.netlink.listRoutes(null, { family: 4 }), ...await d.netlink.listRoutes(null, { family: 6 })];
      return { ovn0, routes };
    },
    diff: diffRoutes,
    async apply(ops) {
      for (const op of ops) {
        if (op.op === 'delete') {
          await d.netlink.deleteRoute(null, { dst: op.route.dst!, family: op.route.family, dev: OVN0, table: MAIN_TABLE,
            ...(op.route.gateway ? { gateway: op.route.gateway } : {}) }, { ignoreMissing: true });
        } else {
          const r = op.route;
          await d.netlink.addRoute(null, { dst: r.dst, gateway: r.gateway, dev: OVN0, protocol: RTPROT_STATIC, ...(r.src ? { src: r.src } : {}) }, { replace: true });
        }
      }
    },
    describe: (op) => (op.op === 'add' ? `add ${op.route.dst} via ${op.route.gateway}${op.route.src ? ` src ${op.route.src}` : ''} dev ovn0`
      : `delete ${op.route.dst} dev ovn0 (${op.why})`),
  };
}
