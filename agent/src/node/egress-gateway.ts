// External egress gateway policy routing (spec §5.5, §3.9, §4, §5.9; user guide §7.13), as one level-triggered
// reconciler. A default-VPC subnet with `externalEgressGateway` sends its pods' traffic that leaves OVN through this
// node's ovn0 to that gateway instead of the node's own default route:
//
//   distributed: `from <pod IP>/32|128 lookup <policyRoutingTableID> priority <policyRoutingPriority>` per pod wired
//                on this node;
//   centralized: `from <subnet CIDR> lookup <table> priority <prio>`, only on the subnet's gateway nodes
//                (`gatewayNode` names, else `gatewayNodeSelectors`);
//   and in that table, `default via <egw of the family> proto static`.
//
// Better than upstream, which only re-adds every 3 s and never removes a stale rule outside the subnet-event diff:
// desired and observed are compared on every Subnet, Pod, OVSDB pod-port, node, netlink rule/table-route event and
// at the resync, and what is no longer wanted goes away.
//
// Which rules are ours: those carrying FRA_PROTOCOL = RTPROT_KUBE_OVN (`ip rule` prints `proto 107`). Only they are
// ever deleted, and the delete names the protocol, so the kernel cannot match a foreign rule of the same shape.
// A plain untagged rule of exactly the wanted shape (the one an upstream daemon or a hand leaves: a source, a table,
// a priority, nothing else) is adopted: a tagged twin is added, then the untagged one removed. An untagged rule
// nothing wants is never touched (it may be the user's). Table routes are ours in the tables our rules name: the
// default route there is replaced when the gateway differs, and removed (proto static only) when no rule of ours
// wants the table any more. Routes are removed before rules, so a failed pass cannot orphan a route we could no
// longer attribute.
//
// Pods: a distributed subnet's pod gets its rule once its OVS port exists on this node (the ADD's port, an OVSDB
// event), and loses it when the port goes (DEL), so the Pod object's own life (a terminating pod, a completed Job)
// does not matter; the pod's annotations say which subnet each port IP belongs to.

import { isNetlinkError } from '../datapath/netlink/errors.ts';
import type { Netlink, RouteInfo, RuleInfo } from '../datapath/netlink/port.ts';
import { matchesLabelSelector, type LabelSelector } from '../k8s/selector.ts';
import type { Node, Pod, Subnet } from '../k8s/types.ts';
import { canonicalIp, cidrContains, networkOf, parseCidr, parseIp, type Family, type ParsedCidr } from '../net/ip.ts';
import type { ReconcileSpec } from './reconciler.ts';
import { RTPROT_STATIC } from './routes.ts';
import { byName, compareStrings } from '../order.ts';

/** The FRA_PROTOCOL tag of our rules (not in iproute2's rt_protos; Calico's routes use 80, Open/R 99). */
export const RTPROT_KUBE_OVN = 107;
const FR_ACT_TO_TBL = 1;
/** default, main, local: a gateway route there would replace the node's own */
const RESERVED_TABLES: ReadonlySet<number> = new Set([0, 253, 254, 255]);

export interface EgwRule { readonly family: Family; readonly src: string; readonly table: number; readonly priority: number; readonly subnet: string }
export interface EgwRoute { readonly family: Family; readonly table: number; readonly gateway: string; readonly subnet: string }

export interface EgwDesired {
  readonly rules: readonly EgwRule[];
  readonly routes: readonly EgwRoute[];
  /** false until the pods are listed: nothing is removed before (a pod not yet seen must not lose its rule) */
  readonly complete: boolean;
  /** subnets skipped or in conflict, for the log */
  readonly problems: readonly string[];
}

export interface EgwObserved {
  /** every rule of both families */
  readonly rules: readonly RuleInfo[];
  /** the default routes of the tables that desired or our rules name */
  readonly routes: readonly RouteInfo[];
}

export type EgwOp =
  | { readonly op: 'add-route'; readonly route: EgwRoute }
  | { readonly op: 'add-rule'; readonly rule: EgwRule }
  | { readonly op: 'adopt-rule'; readonly rule: EgwRule }
  | { readonly op: 'delete-route'; readonly route: RouteInfo; readonly why: string }
  | { readonly op: 'delete-rule'; readonly rule: RuleInfo; readonly why: string };

/** A pod port wired on this node (OVS Interface external_ids pod_name, pod_namespace, ip). */
export interface LocalPort { readonly podName: string; readonly podNamespace: string; readonly ips: readonly string[] }

export interface EgwInput {
  readonly subnets: readonly Subnet[];
  readonly node: Node | undefined;
  readonly nodeName: string;
  readonly clusterRouter: string;
  readonly pods: readonly Pod[];
  readonly podsSynced: boolean;
  readonly ports: readonly LocalPort[];
}

type EgwSpec = NonNullable<Subnet['spec']> & {
  externalEgressGateway?: string; policyRoutingPriority?: number; policyRoutingTableID?: number; natOutgoing?: boolean;
  gatewayType?: string; gatewayNode?: string; gatewayNodeSelectors?: LabelSelector[];
};

interface EgwSubnet { name: string; table: number; priority: number; centralized: boolean; spec: EgwSpec;
  cidrs: Map<Family, ParsedCidr>; gateways: Map<Family, string> }

const u32 = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

/** The default-VPC, non-NAT, overlay (or logical-gateway) subnets with an external egress gateway; else why not. */
function egwSubnet(s: Subnet, clusterRouter: string): EgwSubnet | string | undefined {
  const x = (s.spec ?? {}) as EgwSpec;
  const name = s.metadata?.name ?? '';
  if (!(x.externalEgressGateway ?? '').trim() || s.metadata?.deletionTimestamp) return undefined;
  if ((x.vpc ?? clusterRouter) !== clusterRouter) return undefined;
  const p = x.provider ?? 'ovn';
  if (p !== 'ovn' && !p.endsWith('.ovn')) return undefined;
  if (x.vlan && !x.logicalGateway) return undefined; // underlay: its traffic never crosses ovn0
  if (x.natOutgoing) return `subnet ${name}: natOutgoing and externalEgressGateway exclude each other; no policy routing`;
  const table = x.policyRoutingTableID;
  if (!u32(table) || RESERVED_TABLES.has(table)) return `subnet ${name}: policyRoutingTableID ${String(table)} is not a usable table (1-252, 256-4294967295)`;
  const priority = x.policyRoutingPriority ?? 0;
  if (!u32(priority)) return `subnet ${name}: policyRoutingPriority ${String(priority)} is not a u32`;
  const cidrs = new Map<Family, ParsedCidr>();
  for (const t of (x.cidrBlock ?? '').split(',')) { const c = parseCidr(t.trim()); if (c && !cidrs.has(c.family)) cidrs.set(c.family, c); }
  const gateways = new Map<Family, string>();
  for (const t of (x.externalEgressGateway ?? '').split(',')) { const ip = parseIp(t.trim()); if (ip && !gateways.has(ip.family)) gateways.set(ip.family, canonicalIp(t.trim())); }
  return { name, table, priority, centralized: x.gatewayType === 'centralized', spec: x, cidrs, gateways };
}

/** Is this node a gateway of the centralized subnet: named in gatewayNode (`n1,n2:ip`), else matched by a selector. */
export function isGatewayNode(spec: EgwSpec, node: Node | undefined, nodeName: string): boolean {
  const names = (spec.gatewayNode ?? '').split(',').map((e) => e.trim().split(':')[0]!).filter(Boolean);
  if (names.length) return names.includes(nodeName);
  const labels = node?.metadata?.labels ?? {};
  return (spec.gatewayNodeSelectors ?? []).some((sel) => matchesLabelSelector(sel, labels));
}

/** The subnet each of a pod's IPs was allocated in, per the `<provider>.kubernetes.io/{ip_address,logical_switch}` pairs. */
function subnetsOfPodIps(pod: Pod): Map<string, string> {
  const a = pod.metadata?.annotations ?? {};
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(a)) {
    if (!k.endsWith('.kubernetes.io/ip_address')) continue;
    const ls = a[`${k.slice(0, -'ip_address'.length)}logical_switch`];
    if (!ls) continue;
    for (const t of v.split(',')) { const ip = parseIp(t.trim().split('/')[0]!); if (ip) out.set(canonicalIp(t.trim().split('/')[0]!), ls); }
  }
  return out;
}

/** Pure: the rules and table routes this node should have. */
export function desiredEgw(i: EgwInput): EgwDesired {
  const problems: string[] = [];
  const subnets = new Map<string, EgwSubnet>();
  for (const s of [...i.subnets].sort(byName)) {
    const e = egwSubnet(s, i.clusterRouter);
    if (typeof e === 'string') problems.push(e); else if (e) subnets.set(e.name, e);
  }
  const rules = new Map<string, EgwRule>();
  const add = (e: EgwSubnet, family: Family, src: string): void => {
    if (!e.gateways.has(family)) return; // no gateway of that family: the table would be empty
    const r: EgwRule = { family, src, table: e.table, priority: e.priority, subnet: e.name };
    rules.set(ruleKey(r), r);
  };
  for (const e of subnets.values()) {
    if (!e.centralized || !isGatewayNode(e.spec, i.node, i.nodeName)) continue;
    for (const [f, c] of e.cidrs) add(e, f, networkOf(c.ip, c.prefixLen));
  }
  const pods = new Map(i.pods.map((p) => [`${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`, p]));
  for (const port of i.ports) {
    const pod = pods.get(`${port.podNamespace}/${port.podName}`);
    if (!pod) continue;
    const owners = subnetsOfPodIps(pod);
    for (const text of port.ips) {
      const ip = parseIp(text);
      const e = ip && subnets.get(owners.get(canonicalIp(text)) ?? '');
      if (!ip || !e || e.centralized) continue;
      const c = e.cidrs.get(ip.family);
      if (!c || !cidrContains(c, ip)) continue;
      add(e, ip.family, `${canonicalIp(text)}/${ip.family === 4 ? 32 : 128}`);
    }
  }
  // a table route per family and table a rule uses; two subnets sharing a table with different gateways: first wins
  const routes = new Map<string, EgwRoute>();
  for (const r of rules.values()) {
    const gw = subnets.get(r.subnet)!.gateways.get(r.family)!;
    const k = `${r.family}|${r.table}`;
    const had = routes.get(k);
    if (had && had.gateway !== gw) problems.push(`subnets ${had.subnet} and ${r.subnet} share table ${r.table} with different IPv${r.family} gateways; ${had.gateway} is used`);
    if (!had) routes.set(k, { family: r.family, table: r.table, gateway: gw, subnet: r.subnet });
  }
  const byKey = (a: { family: Family; table: number }, b: { family: Family; table: number }): number => a.family - b.family || a.table - b.table;
  return { rules: [...rules.values()].sort((a, b) => byKey(a, b) || compareStrings(a.src, b.src)), routes: [...routes.values()].sort(byKey),
    complete: i.podsSynced, problems: [...new Set(problems)] };
}

const ruleKey = (r: { family: Family; src?: string; table: number; priority?: number }): string => `${r.family}|${r.src}|${r.table}|${r.priority}`;

/** Only a source, a table and a priority: the shape we make (and the only untagged shape we adopt). */
export function plainRule(r: RuleInfo): boolean {
  return r.action === FR_ACT_TO_TBL && r.src !== undefined && r.priority !== undefined && r.dst === undefined && r.iif === undefined
    && r.oif === undefined && r.fwmark === undefined && !r.tos && !r.invert && r.other === undefined;
}

export const ours = (r: RuleInfo): boolean => r.protocol === RTPROT_KUBE_OVN;

/** The (family, table) pairs whose default route we manage or clean: wanted ones and those our rules name. */
export function tablesOfInterest(d: EgwDesired, rules: readonly RuleInfo[]): { family: Family; table: number }[] {
  const m = new Map<string, { family: Family; table: number }>();
  for (const x of [...d.routes, ...rules.filter(ours)]) m.set(`${x.family}|${x.table}`, { family: x.family, table: x.table });
  return [...m.values()];
}

/** Pure: adds (routes, then rules), then removals (routes, then rules). */
export function diffEgw(d: EgwDesired, o: EgwObserved): EgwOp[] {
  const ops: EgwOp[] = [];
  // indexed once: a node with hundreds of rules and tables must not pay n² key comparisons per pass
  const defaultsByTable = new Map<string, RouteInfo[]>();
  for (const r of o.routes) {
    if (r.dst !== null) continue;
    const k = `${r.family}|${r.table}`;
    defaultsByTable.set(k, [...(defaultsByTable.get(k) ?? []), r]);
  }
  const defaults = (family: Family, table: number): RouteInfo[] => defaultsByTable.get(`${family}|${table}`) ?? [];
  for (const w of d.routes) {
    if (!defaults(w.family, w.table).some((r) => r.gateway !== undefined && canonicalIp(r.gateway) === w.gateway)) ops.push({ op: 'add-route', route: w });
  }
  const oursPlain = new Set<string>();
  const othersPlain = new Set<string>();
  for (const r of o.rules) if (plainRule(r)) (ours(r) ? oursPlain : othersPlain).add(ruleKey(r));
  const wanted = new Set(d.rules.map(ruleKey));
  for (const w of d.rules) {
    const k = ruleKey(w);
    if (oursPlain.has(k)) continue;
    ops.push(othersPlain.has(k) ? { op: 'adopt-rule', rule: w } : { op: 'add-rule', rule: w });
  }
  if (!d.complete) return ops;
  const keptTables = new Set(d.rules.map((r) => `${r.family}|${r.table}`));
  for (const t of tablesOfInterest(d, o.rules)) {
    if (keptTables.has(`${t.family}|${t.table}`)) continue;
    for (const r of defaults(t.family, t.table)) if (r.protocol === RTPROT_STATIC) ops.push({ op: 'delete-route', route: r, why: 'no rule of ours uses the table' });
  }
  for (const r of o.rules.filter(ours)) {
    if (!plainRule(r)) ops.push({ op: 'delete-rule', rule: r, why: 'tagged as ours but not a plain rule' });
    else if (!wanted.has(ruleKey(r))) ops.push({ op: 'delete-rule', rule: r, why: 'no subnet or local pod wants it' });
  }
  return ops;
}

export interface EgwDeps {
  readonly netlink: Netlink;
  input(): EgwInput;
  onProblems?(problems: readonly string[]): void;
}

const ruleText = (r: { src?: string; table: number; priority?: number }): string => `from ${r.src ?? 'all'} lookup ${r.table} priority ${r.priority ?? '-'}`;

export function egwSpec(d: EgwDeps): ReconcileSpec<EgwDesired, EgwObserved, EgwOp> {
  // observe() runs right after desired() in the same pass and reads only the tables that pass wants or our rules name
  let last: EgwDesired = { rules: [], routes: [], complete: false, problems: [] };
  let lastProblems = '';
  return {
    name: 'egress-gateway',
    desired() {
      last = desiredEgw(d.input());
      const p = last.problems.join('\n');
      if (p !== lastProblems) { lastProblems = p; if (last.problems.length) d.onProblems?.(last.problems); }
      return last;
    },
    async observe() {
      const rules = [...await d.netlink.listRules(null, 4), ...await d.netlink.listRules(null, 6)];
      // one dump of every table per family in use (a dump per table costs a round trip each: 250 tables took 1.7 s)
      const tables = tablesOfInterest(last, rules);
      const routes: RouteInfo[] = [];
      for (const family of [4, 6] as const) {
        const want = new Set(tables.filter((t) => t.family === family).map((t) => t.table));
        if (!want.size) continue;
        routes.push(...(await d.netlink.listRoutes(null, { family, table: 0 })).filter((r) => r.dst === null && want.has(r.table)));
      }
      return { rules, routes };
    },
    diff: diffEgw,
    async apply(ops) {
      const errors: string[] = [];
      for (const op of ops) {
        try {
          await applyOne(d.netlink, op);
        } catch (e) {
          errors.push(`${describeEgw(op)}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      // one subnet's unreachable gateway must not hold back the others: every op is tried, then the pass fails
      if (errors.length) throw new Error(`${errors.length} of ${ops.length} policy-routing changes failed: ${errors.slice(0, 5).join('; ')}`);
    },
    describe: describeEgw,
  };
}

async function applyOne(nl: Netlink, op: EgwOp): Promise<void> {
  switch (op.op) {
    case 'add-route':
      await nl.addRoute(null, { family: op.route.family, gateway: op.route.gateway, table: op.route.table, protocol: RTPROT_STATIC }, { replace: true });
      return;
    case 'add-rule':
    case 'adopt-rule': {
      const r = op.rule;
      try {
        await nl.addRule(null, { family: r.family, src: r.src, table: r.table, priority: r.priority, protocol: RTPROT_KUBE_OVN });
      } catch (e) {
        if (!isNetlinkError(e, 'EEXIST')) throw e; // a tagged twin appeared since the observation
      }
      // the untagged twin sits before the tagged one (same priority, older): a delete without protocol takes it
      if (op.op === 'adopt-rule') await nl.deleteRule(null, { family: r.family, src: r.src, table: r.table, priority: r.priority }, { ignoreMissing: true });
      return;
    }
    case 'delete-route':
      await nl.deleteRoute(null, { family: op.route.family, table: op.route.table, ...(op.route.gateway ? { gateway: op.route.gateway } : {}) }, { ignoreMissing: true });
      return;
    case 'delete-rule': {
      const r = op.rule;
      await nl.deleteRule(null, { family: r.family, table: r.table, protocol: RTPROT_KUBE_OVN,
        ...(r.src !== undefined ? { src: r.src } : {}), ...(r.priority !== undefined ? { priority: r.priority } : {}),
        ...(r.dst !== undefined ? { dst: r.dst } : {}), ...(r.iif !== undefined ? { iif: r.iif } : {}), ...(r.oif !== undefined ? { oif: r.oif } : {}),
        ...(r.fwmark !== undefined ? { fwmark: r.fwmark } : {}), ...(r.fwmask !== undefined ? { fwmask: r.fwmask } : {}) }, { ignoreMissing: true });
      return;
    }
  }
}

export function describeEgw(op: EgwOp): string {
  switch (op.op) {
    case 'add-route': return `add default via ${op.route.gateway} table ${op.route.table} (subnet ${op.route.subnet})`;
    case 'add-rule': return `add rule ${ruleText(op.rule)} (subnet ${op.rule.subnet})`;
    case 'adopt-rule': return `adopt untagged rule ${ruleText(op.rule)} (subnet ${op.rule.subnet})`;
    case 'delete-route': return `delete default via ${op.route.gateway ?? '-'} table ${op.route.table} (${op.why})`;
    case 'delete-rule': return `delete rule ${ruleText(op.rule)} (${op.why})`;
  }
}
