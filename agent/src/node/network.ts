// The node's own network as one lifecycle component (spec §5.1-§5.5): it starts the node's reconcilers in upstream's
// order, waits for each to converge (the node-ready gate says which one it is waiting for), and then keeps them
// converged from events: the Node and Subnet watches, OVSDB changes of ovn0, netlink link/address/route events,
// plus each reconciler's resync.
//
//   kube-ovn bridges up -> encap (OVS external_ids) -> pod MTU -> chassis annotation -> ovn0 -> join gateway check and
//   NetworkUnavailable -> tunnel tx checksum off -> host routes (then egress-gateway policy routing, not awaited) ->
//   iptables/ipsets per family (or, in non-primary mode, a one-time removal of ours)
//
// The egress-gateway reconciler does not gate readiness: a subnet whose external gateway is unreachable is that
// subnet's problem (logged, retried with backoff and on every event), not a reason to refuse every pod of the node.

import type { Logger } from 'pino';
import type { IdentityConfig, NodeConfig } from '../config/config.ts';
import type { Netlink, PodNet } from '../datapath/netlink/port.ts';
import type { Vswitch } from '../datapath/ovsdb/port.ts';
import type { NodeApi } from '../k8s/node-api.ts';
import type { Node, Pod, Subnet } from '../k8s/types.ts';
import type { Component } from '../lifecycle.ts';
import { removeOwned, type NetfilterRunner, type Plan } from '../datapath/netfilter/index.ts';
import type { Family } from '../net/ip.ts';
import { egwSpec, type LocalPort } from './egress-gateway.ts';
import { decodeJoin, nodeFamilies } from './facts.ts';
import { netfilterSpec, ownership, removeAllOwned, type SubnetTraffic } from './netfilter.ts';
import { podMtu } from './init.ts';
import type { NodeGate } from './gate.ts';
import { chassisSpec, encapSpec } from './identity.ts';
import { joinGatewaySpec } from './join-gateway.ts';
import { OVN0, ovn0Spec } from './ovn0.ts';
import { Reconciler, type PassOutcome, type ReconcileSpec, type ReconcilerOptions } from './reconciler.ts';
import { routesSpec } from './routes.ts';

/** Change feeds the component listens to; each returns an unsubscribe function. */
export interface NodeEventSources {
  /** any Node changed (its name; the node itself or another one: the other-node set follows all of them) */
  onNodeChange(listener: (name: string) => void): () => void;
  onSubnetChange(listener: () => void): () => void;
  /** the merged service CIDRs may have changed (a ServiceCIDR became Ready, or went) */
  onServiceCidrChange?(listener: () => void): () => void;
  /** OVSDB: an Interface row changed (name) */
  onInterfaceChange(listener: (name: string) => void): () => void;
  /** netlink: a link, address, route (main table / other tables) or rule of the agent's namespace changed, or the
   * feed overflowed (resync) */
  onKernelChange?(listener: (what: 'link' | 'address' | 'route' | 'table-route' | 'rule' | 'resync') => void): () => void;
  /** a Pod of this node changed (egress-gateway rules follow the pods' subnets) */
  onPodChange?(listener: () => void): () => void;
}

export interface NodeNetworkDeps {
  readonly cfg: Pick<NodeConfig, 'iface' | 'hostTunnelSrc' | 'encapChecksum' | 'clusterRouter' | 'nodeSwitch' | 'nonPrimaryCniMode'
    | 'networkType' | 'setVxlanTxOff' | 'mtu'> & Pick<IdentityConfig, 'nodeName' | 'podIp'>;
  netlink(): Netlink;
  podNet(): PodNet;
  vswitch(): Vswitch;
  readonly api: NodeApi;
  node(): Node | undefined;
  /** every Node (the other-node ipset) */
  nodes(): readonly Node[];
  subnets(): readonly Subnet[];
  /** the Pods of this node, and whether they have been listed (absent: none, listed) */
  pods?(): readonly Pod[];
  podsSynced?(): boolean;
  /** --service-cluster-ip-range merged with Ready ServiceCIDR objects */
  serviceCidrs(): readonly string[];
  /** the iptables/ipset runners: the back end in use, the others (cleanups), families to clean in legacy tables */
  netfilter(): Promise<NetfilterSetup>;
  readonly events: NodeEventSources;
  readonly gate: NodeGate;
  readonly log: Logger;
  readonly onPass?: (o: PassOutcome) => void;
  readonly busy?: () => () => void;
  /** resync periods (tests shorten them) */
  readonly resyncMs?: Partial<Record<keyof typeof RESYNC, number>>;
  /** metrics: subnet gateway counter deltas, netfilter batches */
  readonly onSubnetTraffic?: (t: SubnetTraffic[]) => void;
  readonly onNetfilterApplied?: (family: Family, lines: number, seconds: number, ok: boolean) => void;
}

// Built-in resync periods: the safety net for what no event announces. ovn0, host routes and encap also wake on
// kernel events, and every reconciler on the watch events of what it reads. Netfilter is the costly one: a pass
// spawns iptables-save and ipset save per family, about 60-80 ms of CPU per pass with 250 subnets on a loaded 2-core
// machine (the fork of the ~150 MB agent, the tools' own work, the parse), and that alone was half of the idle agent's
// CPU at a 15 s period (bench node.idle_cpu_250_subnets). So its full compare runs once a minute: a rule or member
// deleted by hand is repaired within 60 s, and the subnet gateway counters, read from the same save, move at each
// pass (at least once a minute); Node, Subnet and ServiceCIDR events still trigger a pass at once.
const RESYNC = { encap: 60_000, chassis: 300_000, ovn0: 30_000, 'join-gateway': 30_000, 'host-routes': 30_000, 'egress-gateway': 30_000,
  netfilter: 60_000 };

/** --node-resync-period: the same period for every node reconciler; 0 keeps the built-in ones. */
export function uniformResync(ms: number): NodeNetworkDeps['resyncMs'] {
  return ms > 0 ? Object.fromEntries(Object.keys(RESYNC).map((k) => [k, ms])) : {};
}

export interface NetfilterSetup {
  readonly runner: NetfilterRunner;
  /** runners of the other back ends (non-primary cleanup covers them all) */
  readonly others: readonly NetfilterRunner[];
  /** the legacy runner, when rules of ours may be left in legacy tables of these families (nft nodes) */
  readonly legacyCleanup?: { runner: NetfilterRunner; families: readonly Family[] };
  readonly reason: string;
  readonly randomFully: boolean;
}

export class NodeNetwork implements Component {
  readonly name = 'node-network';
  readonly #d: NodeNetworkDeps;
  readonly #reconcilers: Reconciler<unknown, unknown, unknown>[] = [];
  /** reconcilers that do not gate readiness (egress-gateway) */
  readonly #background: Reconciler<unknown, unknown, unknown>[] = [];
  readonly #unsubscribe: (() => void)[] = [];
  #gatewayOk = false;
  #gatewayDetail = 'not checked yet';
  #gatewayWaiters: (() => void)[] = [];
  #mtu = 0;

  constructor(d: NodeNetworkDeps) { this.#d = d; }

  /** the node-wide pod MTU (ovn0's too): --mtu, else the tunnel NIC's MTU minus the encap overhead (after start) */
  get mtu(): number { return this.#mtu; }

  #make<D, O, Op>(spec: ReconcileSpec<D, O, Op>, key: keyof typeof RESYNC, gatesReadiness = true): Reconciler<D, O, Op> {
    const o: ReconcilerOptions = { resyncMs: this.#d.resyncMs?.[key] ?? RESYNC[key], log: this.#d.log, ...(this.#d.onPass ? { onPass: this.#d.onPass } : {}), ...(this.#d.busy ? { busy: this.#d.busy } : {}) };
    const r = new Reconciler(spec, o);
    (gatesReadiness ? this.#reconcilers : this.#background).push(r as Reconciler<unknown, unknown, unknown>);
    return r;
  }

  async start(): Promise<void> {
    const d = this.#d;
    const gate = d.gate;
    const nl = (): Netlink => d.netlink();
    const vs = (): Vswitch => d.vswitch();
    const lazy = { get netlink() { return nl(); }, get vswitch() { return vs(); } };

    gate.progress('bringing up the kube-ovn OVS bridges');
    await this.#bridgesUp();

    const encap = this.#make(encapSpec({
      ...lazy, node: d.node, iface: d.cfg.iface, podIp: d.cfg.podIp, hostTunnelSrc: d.cfg.hostTunnelSrc, encapChecksum: d.cfg.encapChecksum,
      onChosen: (c) => d.log.debug(c, 'tunnel interface'),
    }), 'encap');
    const chassis = this.#make(chassisSpec({ ...lazy, api: d.api, nodeName: d.cfg.nodeName, node: d.node }), 'chassis');
    const ovn0 = this.#make(ovn0Spec({
      ...lazy, mtu: () => this.#mtu,
      join: () => {
        const j = decodeJoin(d.node());
        // waiting for the controller is not an error of ours, but the pass must not count as converged
        if (!j.ok) throw new Error(`waiting for the node's join allocation: ${j.reason}`);
        return j;
      },
    }), 'ovn0');
    const joinGw = this.#make(joinGatewaySpec({
      podNet: d.podNet(), api: d.api, nodeName: d.cfg.nodeName, node: d.node, writeCondition: !d.cfg.nonPrimaryCniMode,
      onChecked: (ok, detail) => {
        this.#gatewayOk = ok;
        this.#gatewayDetail = detail;
        if (ok) for (const w of this.#gatewayWaiters.splice(0)) w();
      },
    }), 'join-gateway');
    const routes = this.#make(routesSpec({
      get netlink() { return nl(); }, subnets: d.subnets, node: d.node,
      config: { clusterRouter: d.cfg.clusterRouter, nodeSwitch: d.cfg.nodeSwitch },
    }), 'host-routes');

    const egw = this.#make(egwSpec({
      get netlink() { return nl(); },
      input: () => ({ subnets: d.subnets(), node: d.node(), nodeName: d.cfg.nodeName, clusterRouter: d.cfg.clusterRouter,
        pods: d.pods?.() ?? [], podsSynced: d.podsSynced?.() ?? true, ports: localPorts(vs()) }),
      onProblems: (problems) => d.log.warn({ problems }, 'external egress gateway: subnets skipped or in conflict'),
    }), 'egress-gateway', false);
    // pod ports and pods matter only while some subnet has an egress gateway (its removal is a Subnet event)
    const egwInUse = (): boolean => d.subnets().some((s) => !!(s.spec as { externalEgressGateway?: string } | undefined)?.externalEgressGateway);

    // event wiring: level-triggered, so any change of a source wakes every reconciler that reads it
    const ev = d.events;
    this.#unsubscribe.push(
      ev.onNodeChange((name) => { if (name === d.cfg.nodeName) for (const r of [encap, chassis, ovn0, joinGw, routes, egw]) r.trigger('node'); }),
      ev.onSubnetChange(() => { routes.trigger('subnet'); egw.trigger('subnet'); }),
      ev.onInterfaceChange((name) => {
        if (name === OVN0) { ovn0.trigger('ovsdb ovn0'); routes.trigger('ovsdb ovn0'); joinGw.trigger('ovsdb ovn0'); } else if (egwInUse()) egw.trigger('ovsdb port');
      }),
    );
    if (ev.onPodChange) this.#unsubscribe.push(ev.onPodChange(() => { if (egwInUse()) egw.trigger('pod'); }));
    if (ev.onKernelChange) {
      this.#unsubscribe.push(ev.onKernelChange((what) => {
        if (what !== 'route') egw.trigger(`netlink ${what}`); // its tables and rules, and links/addresses that make a gateway reachable
        if (what === 'rule' || what === 'table-route') return;
        ovn0.trigger(`netlink ${what}`);
        routes.trigger(`netlink ${what}`);
        if (what !== 'route') encap.trigger(`netlink ${what}`);
      }));
    }

    gate.progress('choosing the tunnel interface and setting the encap IP');
    encap.start();
    await encap.converged();
    this.#mtu = await podMtu(d.cfg, d.netlink(), d.vswitch(), d.log);
    gate.progress('annotating the node with its chassis');
    chassis.start();
    await chassis.converged();
    gate.progress('setting up ovn0 (waiting for the node annotations from kube-ovn-controller)');
    ovn0.start();
    await ovn0.converged();
    gate.progress('checking the join gateway through ovn0');
    joinGw.start();
    await this.#gatewayReachable();
    await this.#tunnelTxOff();
    gate.progress('installing the host routes');
    routes.start();
    await routes.converged();
    egw.start();
    gate.progress('setting up iptables rules and ipsets');
    await this.#netfilter();
    d.log.info({ ovn0: decodeJoin(d.node()).ok, gateway: this.#gatewayDetail }, 'node network ready');
  }

  /** iptables and ipsets (§5.7-§5.9): reconcilers per family, or, in non-primary mode, one cleanup of ours. */
  async #netfilter(): Promise<void> {
    const d = this.#d;
    const nf = await d.netfilter();
    const families = nodeFamilies(d.node());
    if (d.cfg.nonPrimaryCniMode) {
      // kube-ovn is a secondary CNI: its service/NAT rules would break the primary CNI's Services (kube-ovn#6761)
      const lines = await removeAllOwned([nf.runner, ...nf.others], [4, 6]);
      d.log.info({ lines }, 'non-primary CNI mode: no kube-ovn iptables rules or ipsets; removed any left by a primary-mode run');
      return;
    }
    d.log.info({ reason: nf.reason, families }, 'iptables back end');
    if (nf.legacyCleanup) {
      for (const f of nf.legacyCleanup.families) {
        const r = await removeOwned(nf.legacyCleanup.runner, f, ownership(f), { sets: false });
        if (r.lines) d.log.info({ family: f, lines: r.lines }, 'removed kube-ovn rules left in the legacy iptables tables');
      }
    }
    const rs = families.map((family) => this.#make(netfilterSpec(family, {
      runner: nf.runner,
      facts: () => ({ nodeName: d.cfg.nodeName, node: d.node(), nodes: d.nodes(), subnets: d.subnets(), serviceCidrs: d.serviceCidrs(),
        clusterRouter: d.cfg.clusterRouter, randomFully: nf.randomFully }),
      ...(d.onSubnetTraffic ? { onTraffic: d.onSubnetTraffic } : {}),
      ...(d.onNetfilterApplied ? { onApplied: (p: Plan, s: number) => d.onNetfilterApplied!(family, p.lines, s, true) } : {}),
    }), 'netfilter'));
    this.#unsubscribe.push(
      d.events.onNodeChange(() => { for (const r of rs) r.trigger('node'); }),
      d.events.onSubnetChange(() => { for (const r of rs) r.trigger('subnet'); }),
    );
    if (d.events.onServiceCidrChange) this.#unsubscribe.push(d.events.onServiceCidrChange(() => { for (const r of rs) r.trigger('servicecidr'); }));
    for (const r of rs) r.start();
    await Promise.all(rs.map((r) => r.converged()));
  }

  #gatewayReachable(): Promise<void> {
    if (this.#gatewayOk) return Promise.resolve();
    return new Promise((r) => this.#gatewayWaiters.push(r));
  }

  /** Every OVS bridge we own comes up (§5.1 step 4): a provider bridge left down by a reboot carries no traffic. */
  async #bridgesUp(): Promise<void> {
    const vs = this.#d.vswitch();
    for (const name of vs.listBridges()) {
      if (vs.getBridge(name)?.externalIds.vendor !== 'kube-ovn') continue;
      const link = await this.#d.netlink().getLink(null, name);
      if (link && !link.up) await this.#d.netlink().setLink(null, name, { up: true });
    }
  }

  /** tx checksum offload off on the kernel tunnel devices (§5.1 step 9); absent on userspace-datapath nodes. */
  async #tunnelTxOff(): Promise<void> {
    const devs = ['genev_sys_6081', ...(this.#d.cfg.setVxlanTxOff && this.#d.cfg.networkType === 'vxlan' ? ['vxlan_sys_4789'] : [])];
    for (const dev of devs) {
      if (!(await this.#d.netlink().getLink(null, dev))) continue;
      await this.#d.podNet().setTxChecksum(null, dev, false);
      this.#d.log.info({ dev }, 'tunnel tx checksum offload off');
    }
  }

  async stop(): Promise<void> {
    for (const u of this.#unsubscribe.splice(0)) u();
    await Promise.all([...this.#reconcilers.splice(0), ...this.#background.splice(0)].map((r) => r.stop()));
  }

  ready(): true | string {
    for (const r of this.#reconcilers) {
      const x = r.ready();
      if (x !== true) return x;
    }
    return this.#gatewayOk ? true : `join gateway: ${this.#gatewayDetail}`;
  }
}

/** The pod ports wired on this node: OVS Interfaces with the pod's name, namespace and IPs in external_ids. */
function localPorts(vs: Vswitch): LocalPort[] {
  return vs.findInterfaces({ pod_name: '*', pod_namespace: '*', ip: '*' }).map((i) => ({
    podName: i.externalIds.pod_name!, podNamespace: i.externalIds.pod_namespace!,
    ips: i.externalIds.ip!.split(',').map((x) => x.trim()).filter(Boolean),
  }));
}
