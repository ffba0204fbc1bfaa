// OpenFlow flows for external LoadBalancer addresses on underlay subnets (spec §5.17, first bullet; user guide §7.9
// "MetalLB with underlay"). A Service annotated `ovn.kubernetes.io/service_external_ip_from_subnet=<subnet>`, whose
// Subnet has `enableExternalLBAddress` and a Vlan, gets for each LoadBalancer ingress IP x port a flow on the
// provider bridge: traffic from the wire (in_port = the NIC) to that IP and port gets the subnet's router MAC
// (status.u2oInterconnectionMAC, else 00:00:00:01:00:01) as destination and goes straight to the localnet patch
// port, so OVN's load balancer sees it. Cookie 0x1000 (IPv4) / 0x1001 (IPv6), priority 10000.
//
// Upstream rewrites every bridge's whole flow table with `replace-flows` every 15 s, racing with anyone else's
// flows. Here only our cookies are read (`dump-flows cookie=0x1000/0xfffffffffffffffe` covers both) and only the
// difference is written, as one `--bundle add-flows` per bridge whose lines are `delete_strict` (restricted to our
// cookie) then `add`. An `add` whose match equals a foreign flow's would replace that flow (OpenFlow semantics);
// nothing else foreign is touched. Only bridges this agent owns (external_ids:vendor=kube-ovn) are read or
// written. Priority 10001 flows (upstream's obsolete u2o "keep source MAC" flows) are deleted once per bridge per
// agent start.
//
// No pass runs before the Service, Subnet, Vlan and ProviderNetwork watches have listed; failures are logged and
// retried by the reconciler and stay out of readiness (like the u2o FDB entries: pods keep being wired).

import type { Node, Service, Subnet } from '../../k8s/types.ts';
import { EXTERNAL_IP_FROM_SUBNET } from '../../k8s/slim.ts';
import { formatIp, parseIp } from '../../net/ip.ts';
import type { InterfaceEvent, Vswitch } from '../../datapath/ovsdb/port.ts';
import type { OpenFlow } from '../../datapath/ovsdb/ofctl.ts';
import type { ReconcileSpec } from '../reconciler.ts';
import { localnetPort } from './fdb.ts';
import { planUnderlay } from './plan.ts';
import type { ProviderNetwork, Vlan } from './types.ts';

export const LB_COOKIE_V4 = '0x1000';
export const LB_COOKIE_V6 = '0x1001';
/** one dump filter for both cookies: the mask ignores the lowest bit */
export const LB_COOKIE_FILTER = 'cookie=0x1000/0xfffffffffffffffe';
export const LB_PRIORITY = 10000;
export const OBSOLETE_U2O_PRIORITY = 10001;
/** the destination MAC when the subnet has no u2o router port MAC */
export const DEFAULT_LB_MAC = '00:00:00:01:00:01';
/** upstream's flow sync period: how soon a flow deleted behind our back (no event announces it) is back */
export const LB_FLOWS_RESYNC_MS = 15_000;

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** One flow in table 0: `match` and `actions` in ovs-ofctl syntax, `match` including the priority. */
export interface LbFlow {
  readonly bridge: string;
  /** hexadecimal, `0x` and lower case, no leading zeros (as ovs-ofctl prints it) */
  readonly cookie: string;
  readonly table: number;
  readonly match: string;
  readonly actions: string;
}

export interface LbPlanInput {
  readonly services: readonly Service[];
  readonly subnets: readonly Subnet[];
  readonly vlans: readonly Vlan[];
  readonly providerNetworks: readonly ProviderNetwork[];
  readonly node: Node | undefined;
  readonly nodeName: string;
  /** the bridge exists and is ours (external_ids:vendor=kube-ovn) */
  readonly owned: (bridge: string) => boolean;
  /** the OpenFlow port number of interface `iface` when it is a port of `bridge` and numbered (>= 1) */
  readonly ofport: (bridge: string, iface: string) => number | undefined;
}

interface SubnetTarget { bridge: string; inPort: number; outPort: number; mac: string }

/** Where a subnet's LB flows go on this node, or undefined (not enabled, not VLAN, network absent here, port not
 * numbered yet). The bridge and NIC port are the underlay planner's (exchangeLinkName swaps the names). */
function target(i: LbPlanInput, subnet: Subnet | undefined): SubnetTarget | undefined {
  const name = subnet?.metadata?.name;
  if (!name || subnet.spec?.enableExternalLBAddress !== true || !subnet.spec.vlan) return undefined;
  const provider = i.vlans.find((v) => v.metadata?.name === subnet.spec!.vlan)?.spec?.provider;
  if (!provider) return undefined;
  const pn = i.providerNetworks.find((p) => p.metadata?.name === provider);
  if (!pn) return undefined;
  const plan = planUnderlay({ pnName: provider, pn, vlans: i.vlans, node: i.node, nodeName: i.nodeName, macLearningFallback: false });
  if (plan.kind !== 'present' || plan.nic === '' || !i.owned(plan.bridge)) return undefined;
  const inPort = i.ofport(plan.bridge, plan.port);
  const outPort = i.ofport(plan.bridge, localnetPort(name));
  if (inPort === undefined || outPort === undefined) return undefined;
  const mac = subnet.status?.u2oInterconnectionMAC;
  return { bridge: plan.bridge, inPort, outPort, mac: typeof mac === 'string' && MAC.test(mac) ? mac.toLowerCase() : DEFAULT_LB_MAC };
}

/** The flows the Services want on this node (pure; sorted, one per bridge and match: the first Service by
 * namespace/name wins a duplicate). Ports other than TCP and UDP (SCTP) and ingress entries without an IP get none. */
export function desiredLbFlows(i: LbPlanInput): LbFlow[] {
  const subnets = new Map(i.subnets.map((s) => [s.metadata?.name ?? '', s]));
  const targets = new Map<string, SubnetTarget | undefined>();
  const out = new Map<string, LbFlow>();
  const services = i.services.filter((s) => s.metadata?.annotations?.[EXTERNAL_IP_FROM_SUBNET])
    .sort((a, b) => key(a).localeCompare(key(b)));
  for (const svc of services) {
    const subnet = svc.metadata!.annotations![EXTERNAL_IP_FROM_SUBNET]!;
    if (!targets.has(subnet)) targets.set(subnet, target(i, subnets.get(subnet)));
    const t = targets.get(subnet);
    if (!t) continue;
    for (const ingress of svc.status?.loadBalancer?.ingress ?? []) {
      const ip = parseIp(ingress.ip ?? '');
      if (!ip) continue;
      const v6 = ip.family === 6;
      for (const p of svc.spec?.ports ?? []) {
        const proto = (p.protocol ?? 'TCP').toUpperCase();
        if ((proto !== 'TCP' && proto !== 'UDP') || !Number.isInteger(p.port) || p.port! < 1 || p.port! > 65535) continue;
        const l4 = `${proto.toLowerCase()}${v6 ? '6' : ''}`;
        const match = `priority=${LB_PRIORITY},${l4},in_port=${t.inPort},${v6 ? 'ipv6_dst' : 'nw_dst'}=${formatIp(ip)},tp_dst=${p.port}`;
        const flow: LbFlow = { bridge: t.bridge, cookie: v6 ? LB_COOKIE_V6 : LB_COOKIE_V4, table: 0, match, actions: `mod_dl_dst:${t.mac},output:${t.outPort}` };
        const k = flowKey(flow);
        if (!out.has(k)) out.set(k, flow);
      }
    }
  }
  return [...out.values()].sort((a, b) => flowKey(a).localeCompare(flowKey(b)));
}

const key = (s: Service): string => `${s.metadata?.namespace ?? ''}/${s.metadata?.name ?? ''}`;

/** A match in a canonical form (fields sorted, addresses canonical), so ours and ovs-ofctl's spelling compare. */
export function canonicalMatch(match: string): string {
  return match.split(',').filter((f) => f !== '').map((f) => {
    const eq = f.indexOf('=');
    if (eq < 0) return f;
    const k = f.slice(0, eq);
    const v = f.slice(eq + 1);
    const ip = /^(nw_dst|nw_src|ipv6_dst|ipv6_src)$/.test(k) ? parseIp(v) : undefined;
    return `${k}=${ip ? formatIp(ip) : v.toLowerCase()}`;
  }).sort().join(',');
}

/** bridge, table and canonical match: what makes two flows the same flow table entry (the cookie does not) */
export const flowKey = (f: Pick<LbFlow, 'bridge' | 'table' | 'match'>): string => `${f.bridge}|${f.table}|${canonicalMatch(f.match)}`;

/** One line of `ovs-ofctl --no-stats --no-names dump-flows` as a flow of `bridge`, or undefined for other lines.
 * E.g. ` cookie=0x1000, priority=10000,tcp,in_port=1,nw_dst=10.0.0.5,tp_dst=80 actions=mod_dl_dst:..,output:2`;
 * cookie 0 and table 0 are not printed; the match may be empty (` priority=0 actions=NORMAL`). Pure. */
export function parseDumpedFlow(bridge: string, line: string): LbFlow | undefined {
  const at = line.indexOf('actions=');
  if (at < 0 || (at > 0 && !/\s/.test(line[at - 1]!))) return undefined;
  let cookie = '0x0';
  let table = 0;
  let match = '';
  // meta fields end with a comma (`cookie=0x1000, table=2, `); the match is the one token without
  for (const t of line.slice(0, at).trim().split(/\s+/).filter((x) => x !== '')) {
    if (!t.endsWith(',')) { match = t; continue; }
    const m = /^(\w+)=(.*),$/.exec(t);
    if (m?.[1] === 'cookie' && /^(0x[0-9a-f]+|\d+)$/i.test(m[2]!)) cookie = `0x${BigInt(m[2]!).toString(16)}`;
    else if (m?.[1] === 'table') table = Number(m[2]);
  }
  return { bridge, cookie, table, match, actions: line.slice(at + 'actions='.length).trim() };
}

const priorityOf = (match: string): number => Number(/(?:^|,)priority=(\d+)/.exec(match)?.[1] ?? 32768);

export interface LbObserved {
  /** our cookies' flows on every bridge we own */
  readonly flows: readonly LbFlow[];
  /** priority-10001 flows on bridges not yet cleaned since start */
  readonly obsolete: readonly LbFlow[];
  /** bridges read (a bridge not read gets no ops) */
  readonly bridges: readonly string[];
}

export type LbOp =
  | { readonly op: 'add'; readonly flow: LbFlow }
  | { readonly op: 'del'; readonly flow: LbFlow };

/** Pure: stale flows of ours (and the obsolete ones) are deleted, missing or changed ones added (an add with the
 * same match replaces the actions). Deletes come first in each bridge's bundle. */
export function diffLbFlows(want: readonly LbFlow[], o: LbObserved): LbOp[] {
  const read = new Set(o.bridges);
  const wanted = new Map(want.filter((f) => read.has(f.bridge)).map((f) => [flowKey(f), f]));
  const have = new Map(o.flows.map((f) => [flowKey(f), f]));
  const ops: LbOp[] = [];
  for (const f of o.obsolete) ops.push({ op: 'del', flow: f });
  for (const [k, f] of have) if (!wanted.has(k)) ops.push({ op: 'del', flow: f });
  for (const [k, f] of wanted) {
    const h = have.get(k);
    if (!h || h.cookie !== f.cookie || h.actions.toLowerCase() !== f.actions.toLowerCase()) ops.push({ op: 'add', flow: f });
  }
  return ops;
}

/** The ovs-ofctl bundle line of an op. A delete names the flow's own cookie exactly, so a foreign flow that took
 * the same match since the dump is never deleted. */
export function opLine(op: LbOp): string {
  const f = op.flow;
  const table = f.table === 0 ? '' : `table=${f.table},`;
  if (op.op === 'add') return `add cookie=${f.cookie},${table}${f.match},actions=${f.actions}`;
  return `delete_strict cookie=${f.cookie}/-1,${table}${f.match}`;
}

export interface LbFlowsDeps extends Omit<LbPlanInput, 'owned' | 'ofport' | 'services' | 'subnets' | 'vlans' | 'providerNetworks' | 'node'> {
  /** every cache the desired state comes from has listed once */
  readonly synced: () => boolean;
  readonly services: () => readonly Service[];
  readonly subnets: () => readonly Subnet[];
  readonly vlans: () => readonly Vlan[];
  readonly providerNetworks: () => readonly ProviderNetwork[];
  readonly node: () => Node | undefined;
  readonly vswitch: () => Vswitch;
  readonly openflow: OpenFlow;
}

/** Bridges this agent owns, from the OVSDB replica. */
export function ownedBridges(vs: Vswitch): string[] {
  return vs.listBridges().filter((b) => vs.getBridge(b)?.externalIds.vendor === 'kube-ovn').sort();
}

/** The plan input over the caches and the OVSDB replica. */
export function planInput(d: LbFlowsDeps): LbPlanInput {
  const vs = d.vswitch();
  return {
    services: d.services(), subnets: d.subnets(), vlans: d.vlans(), providerNetworks: d.providerNetworks(), node: d.node(), nodeName: d.nodeName,
    owned: (b) => vs.getBridge(b)?.externalIds.vendor === 'kube-ovn',
    ofport: (b, iface) => {
      if (vs.getPort(iface)?.bridge !== b) return undefined;
      const n = vs.getInterface(iface)?.ofport;
      return n !== undefined && n >= 1 ? n : undefined;
    },
  };
}

export function lbFlowsSpec(d: LbFlowsDeps): ReconcileSpec<LbFlow[] | null, LbObserved, LbOp> {
  /** bridges whose priority-10001 flows are gone (checked or deleted) since this agent started */
  const cleaned = new Set<string>();
  return {
    name: 'underlay-lb-flows',
    desired: () => (d.synced() ? desiredLbFlows(planInput(d)) : null),
    async observe(): Promise<LbObserved> {
      if (!d.synced()) return { flows: [], obsolete: [], bridges: [] };
      const bridges = ownedBridges(d.vswitch());
      const flows: LbFlow[] = [];
      const obsolete: LbFlow[] = [];
      for (const b of bridges) {
        for (const line of await d.openflow.dumpFlows(b, LB_COOKIE_FILTER)) {
          const f = parseDumpedFlow(b, line);
          if (f && (f.cookie === LB_COOKIE_V4 || f.cookie === LB_COOKIE_V6)) flows.push(f);
        }
        if (cleaned.has(b)) continue;
        const old = (await d.openflow.dumpFlows(b)).map((l) => parseDumpedFlow(b, l))
          .filter((f): f is LbFlow => f !== undefined && priorityOf(f.match) === OBSOLETE_U2O_PRIORITY);
        if (old.length === 0) cleaned.add(b);
        obsolete.push(...old);
      }
      return { flows, obsolete, bridges };
    },
    diff: (want, o) => (want === null ? [] : diffLbFlows(want, o)),
    describe: (op) => `${op.flow.bridge}: ${opLine(op)}`,
    async apply(ops) {
      const byBridge = new Map<string, LbOp[]>();
      for (const op of ops) byBridge.set(op.flow.bridge, [...(byBridge.get(op.flow.bridge) ?? []), op]);
      const errors: string[] = [];
      for (const [bridge, list] of byBridge) {
        const sorted = [...list.filter((o) => o.op === 'del'), ...list.filter((o) => o.op === 'add')];
        try {
          await d.openflow.bundle(bridge, sorted.map(opLine));
          cleaned.add(bridge);
        } catch (e) {
          errors.push(e instanceof Error ? e.message : String(e));
        }
      }
      if (errors.length) throw new Error(errors.join('; '));
    },
  };
}

/** What the Subnets contribute to the wanted flows, as one comparable string: a Subnet event (every pod ADD moves
 * a Subnet's counters) triggers a pass only when this changes. */
export function subnetsKey(subnets: readonly Subnet[]): string {
  return subnets.filter((s) => s.spec?.enableExternalLBAddress === true)
    .map((s) => `${s.metadata?.name} ${s.spec?.vlan ?? ''} ${s.status?.u2oInterconnectionMAC ?? ''}`).sort().join('\n');
}

/** Does an OVSDB Interface event concern the flows? A port of a bridge of ours (or a localnet patch port, or a
 * `br-*` NIC port) appearing, going, renumbered, or its link_state changing: a vswitchd restart shows as the
 * ports' link_state going and coming back, and a restarted vswitchd has forgotten every flow. */
export function lbInterfaceEvent(e: InterfaceEvent, vs: Vswitch): boolean {
  if (e.old?.ofport === e.new?.ofport && e.old?.linkState === e.new?.linkState && !e.old === !e.new) return false;
  if (e.name.startsWith('patch-localnet.') || e.name.startsWith('br-')) return true;
  const bridge = vs.getPort(e.name)?.bridge;
  return bridge !== undefined && vs.getBridge(bridge)?.externalIds.vendor === 'kube-ovn';
}
