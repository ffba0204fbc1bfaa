// The agent as a short list of components, in start order (stops run in reverse; lifecycle.ts):
//
//   netlink -> kubernetes-watches -> ovsdb -> cni-server -> delete-queue -> node-network -> node-initialised -> pod-gc
//   -> pod-qos -> underlay
//
// The underlay (provider networks, node/underlay/) comes after every listener is bound: moving a NIC's addresses
// must never be able to take away what the agent serves on.
//
// The CNI socket is served before the node is initialised: ADDs that arrive early wait at the node-ready gate
// (node/gate.ts, bounded, then code 11), DELs go through. Each component's readiness is registered once in the
// registry behind /readyz, and CNI STATUS asks the same registry. Spec §5.1 is upstream's start-up order.
//
// Tests pass hooks (a fake CNI backend, a fault injected before an ADD step); production passes none, and nothing
// here imports a fake.

import { dirname } from 'node:path';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { CniBackend } from './cni/backend.ts';
import { Dispatcher } from './cni/dispatcher.ts';
import { FLAGS, loadConfig, type Config } from './config/config.ts';
import { parseFlags } from './config/flags.ts';
import { NetlinkComponent, OvsdbComponent } from './datapath/component.ts';
import { kernelCalls } from './datapath/kernel-calls.ts';
import { VswitchdControl } from './datapath/ovsdb/unixctl.ts';
import { OvsOfctl } from './datapath/ovsdb/ofctl.ts';
import { AgentError } from './errors.ts';
import { KubeComponent } from './k8s/component.ts';
import { mergeServiceCidrs } from './k8s/service-cidrs.ts';
import { component, Lifecycle } from './lifecycle.ts';
import { NodeGate } from './node/gate.ts';
import { NodeInit } from './node/init.ts';
import { NodeNetwork, uniformResync, type NetfilterSetup } from './node/network.ts';
import { kernelChanges } from './node/kernel-feed.ts';
import type { SubnetTraffic } from './node/netfilter.ts';
import { decideBackend, ExecNetfilterRunner, probeBackend } from './datapath/netfilter/index.ts';
import { Reconciler } from './node/reconciler.ts';
import { UnderlayComponent } from './node/underlay/component.ts';
import { Readiness } from './observe/health.ts';
import type { AgentMetrics } from './observe/metrics.ts';
import { OvnBackend } from './pod/backend.ts';
import type { ExecutorDeps } from './pod/executor.ts';
import { probeTiming } from './pod/executor.ts';
import { podGcSpec } from './pod/gc.ts';
import { portContainerPrefix } from './pod/names.ts';
import { qosSyncSpec } from './pod/qos-sync.ts';
import { INTEGRATION_BRIDGE } from './pod/plan.ts';
import type { CniObserver, CniServer } from './server/cni-server.ts';
import { CniServerComponent, DeleteQueueComponent } from './server/component.ts';

export { instrument } from './observe/instrument.ts';

/** The configuration plus the explicitly passed flags this agent accepts but does not act on (logged at start). */
export interface AgentConfig extends Config {
  readonly ignored: readonly string[];
}

const KLOG = /^(logtostderr|alsologtostderr|skip_headers|skip_log_headers|add_dir_header|one_output|log_file|log_file_max_size|log_dir|stderrthreshold|vmodule|log_backtrace_at)$/;

/** loadConfig (upstream flag names, env, validation); throws an Error with a clear message. */
export function parseArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = process.env, host = hostname()): AgentConfig {
  let cfg: Config;
  try {
    cfg = loadConfig(argv, env, host);
  } catch (e) {
    throw new Error(e instanceof AgentError ? e.message : String(e));
  }
  const acted = new Set(FLAGS.filter((f) => f.acted).map((f) => f.name));
  const given = [...parseFlags(argv, FLAGS).values.keys()];
  const ignored = given.filter((name) => !KLOG.test(name) && !acted.has(name)).map((name) => `--${name}`);
  return Object.freeze({ ...cfg, ignored: Object.freeze(ignored) });
}

export interface Agent {
  cni: CniServer;
  dispatcher: Dispatcher;
  backend: CniBackend;
  log: Logger;
  /** the component names in start order */
  components: readonly string[];
  stop(): Promise<void>;
}

export interface AgentHooks {
  /** sees every CNI exchange and may add routes (metrics) */
  cniObserver?: CniObserver;
  metrics?: AgentMetrics;
  /** the readiness registry behind /readyz (a private one when absent) */
  readiness?: Readiness;
  /** bound of the wait for the first list of every watch before going on (default 30 s; then not ready) */
  syncTimeoutMs?: number;
  /** bound of the first OVSDB connection (default 30 s; start-up fails after it) */
  ovsdbConnectTimeoutMs?: number;
  /** tests: this CNI backend instead of the OVN one; nothing then talks to Kubernetes, OVS or the kernel */
  backend?: CniBackend;
  /** tests: runs before each ADD step (fault injection) */
  beforeStep?: ExecutorDeps['beforeStep'];
}

/** Builds the component list and starts it; on a failed start everything started is stopped again. */
export async function startAgent(cfg: AgentConfig, log: Logger, hooks: AgentHooks = {}): Promise<Agent> {
  if (cfg.ignored.length) log.warn({ flags: cfg.ignored }, 'ignoring flags this agent does not handle yet');
  const readiness = hooks.readiness ?? new Readiness();
  const life = new Lifecycle({ readiness, log });
  let dispatcher: Dispatcher | undefined;
  const getDispatcher = (): Dispatcher => dispatcher!;
  const cni = new CniServerComponent({ socketPath: cfg.bindSocket, dispatcher: getDispatcher, log, ...(hooks.cniObserver ? { observer: hooks.cniObserver } : {}) });
  let backend: CniBackend;

  if (hooks.backend) {
    log.warn('using a CNI backend passed in by a test: no pod is really wired');
    backend = hooks.backend;
    dispatcher = new Dispatcher({ backend, log });
    life.add(cni).add(new DeleteQueueComponent({ dir: cfg.delQueueDir, dispatcher: getDispatcher, log }));
  } else {
    const m = hooks.metrics;
    const gate = new NodeGate();
    const netlink = new NetlinkComponent(m?.observeNetlink);
    m?.countKernelCalls(() => kernelCalls.stats);
    const ovsdb = new OvsdbComponent(cfg.ovsSocket, {
      ...(hooks.ovsdbConnectTimeoutMs !== undefined ? { connectTimeoutMs: hooks.ovsdbConnectTimeoutMs } : {}),
      ...(m ? { onRequest: (db: string, method: string, ms: number, ok: boolean) => m.observeOvsdb(db, method, ms / 1000, ok) } : {}),
    });
    const kube = new KubeComponent(cfg, log, {
      ...(hooks.syncTimeoutMs !== undefined ? { syncTimeoutMs: hooks.syncTimeoutMs } : {}),
      ...(m ? { onRestart: (r: string) => m.watchRestarted(r), onHealth: (r: string, ok: boolean) => m.setWatchHealthy(r, ok) } : {}),
    });
    const node = new NodeNetwork({
      cfg, netlink: () => netlink.netlink, podNet: () => netlink.podNet, vswitch: () => ovsdb.vswitch,
      get api() { return kube.nodeApi; },
      node: () => kube.watches.node.store.get(cfg.nodeName), nodes: () => kube.watches.node.store.list(),
      subnets: () => kube.watches.subnets.store.list(),
      pods: () => kube.watches.pods.store.list(), podsSynced: () => kube.watches.pods.health().synced,
      serviceCidrs: () => mergeServiceCidrs(cfg.serviceClusterIpRange, kube.watches.serviceCidrs.list()),
      netfilter: () => netfilterSetup(log),
      ...(m ? {
        onSubnetTraffic: (ts: SubnetTraffic[]) => { for (const t of ts) m.addSubnetGatewayTraffic(t.subnet, t.cidr, t.direction, t.protocol, t.packets, t.bytes); },
        onNetfilterApplied: (f: number, lines: number, s: number, ok: boolean) => m.observeIptables(`v${f}`, s, ok, lines),
      } : {}),
      events: {
        onNodeChange: (l) => kube.watches.node.store.subscribe((_e, n) => l(n.metadata?.name ?? '')),
        onSubnetChange: (l) => kube.watches.subnets.store.subscribe(() => l()),
        onServiceCidrChange: (l) => kube.watches.serviceCidrs.subscribe(l),
        onInterfaceChange: (l) => ovsdb.vswitch.onInterfaceChange((e) => l(e.name)),
        onKernelChange: kernelChanges(() => netlink.netlink, log),
        onPodChange: (l) => kube.watches.pods.store.subscribe(() => l()),
      },
      gate, log, resyncMs: uniformResync(cfg.nodeResyncMs), ...(m ? { onPass: m.observeReconcile, busy: m.loopBusy } : {}),
    });
    const ovn = ovnBackend(cfg, log, hooks, { netlink, ovsdb, kube, node, gate, readiness });
    backend = ovn;
    dispatcher = new Dispatcher({ backend, log, ...(m ? { busy: m.loopBusy } : {}) });
    const gc = new Reconciler(podGcSpec({
      get vswitch() { return ovsdb.vswitch; },
      get netlink() { return netlink.netlink; },
      listPods: () => kube.watches.pods.store.list(),
      podsSynced: () => kube.watches.pods.health().synced,
      inFlight: () => ovn.inFlight(),
      removePort: (port, pod) => ovn.removePort(port, pod),
      gcQos: () => ovsdb.vswitch.gcQos(),
      ...(m ? { onRemoved: m.gcRemoved } : {}),
    }), { resyncMs: 60_000, log, ...(m ? { onPass: m.observeReconcile, busy: m.loopBusy } : {}) });
    const qos = new Reconciler(qosSyncSpec({
      get vswitch() { return ovsdb.vswitch; },
      podOf: (ns, name) => kube.watches.podSource.get(ns, name),
      get events() { return kube.events; },
      busy: (port) => { const p = portContainerPrefix(port); return p !== undefined && ovn.inFlight().some((c) => c.startsWith(p)); },
    }), { resyncMs: 60_000, log, ...(m ? { onPass: m.observeReconcile, busy: m.loopBusy } : {}) });
    let unsubscribeQos = (): void => {};
    life.add(netlink).add(kube).add(ovsdb)
      .add(cni)
      .add(new DeleteQueueComponent({ dir: cfg.delQueueDir, dispatcher: getDispatcher, log }))
      .add(node)
      .add(new NodeInit(gate))
      .add(component('pod-gc', { start: () => gc.start(), stop: () => gc.stop() }))
      .add(component('pod-qos', {
        start: () => { unsubscribeQos = kube.watches.pods.store.subscribe(() => qos.trigger('pod')); qos.start(); },
        stop: () => { unsubscribeQos(); return qos.stop(); },
      }))
      .add(new UnderlayComponent({
        nodeName: cfg.nodeName, journalDir: cfg.underlayJournalDir, macLearningFallback: cfg.macLearningFallback,
        watchIdleTimeoutMs: cfg.watchIdleTimeoutMs, kubeConfig: () => kube.kubeConfig,
        netlink: () => netlink.netlink, vswitch: () => ovsdb.vswitch, node: () => kube.watches.node.store.get(cfg.nodeName),
        onNodeChange: (l) => kube.watches.node.store.subscribe((_e, n) => { if (n.metadata?.name === cfg.nodeName) l(); }),
        nodeApi: () => kube.nodeApi, events: () => kube.events, log,
        ...(m ? { onPass: m.observeReconcile } : {}),
        subnets: () => kube.watches.subnets.store.list(), onSubnetChange: (l) => kube.watches.subnets.store.subscribe(() => l()),
        subnetsSynced: () => kube.watches.subnets.health().synced,
        vswitchd: new VswitchdControl(dirname(cfg.ovsSocket)),
        externalLbAddress: cfg.enableExternalLbAddress,
        openflow: new OvsOfctl(dirname(cfg.ovsSocket)),
      }));
  }
  try {
    await life.start();
  } catch (e) {
    await life.stop();
    throw e;
  }
  return { cni: cni.server, dispatcher, backend, log, components: life.names(), stop: () => life.stop() };
}

/** The iptables back end the node uses (as kubelet/kube-proxy do), a runner for it and for the other one. */
async function netfilterSetup(log: Logger): Promise<NetfilterSetup> {
  const d = decideBackend(await probeBackend());
  const other: 'legacy' | 'nft' = d.backend === 'nft' ? 'legacy' : 'nft';
  const otherRunner = new ExecNetfilterRunner({ backend: other });
  log.info({ backend: d.backend, reason: d.reason, cleanupLegacy: d.cleanupLegacy }, 'iptables back end chosen');
  return {
    runner: new ExecNetfilterRunner({ backend: d.backend }), others: [otherRunner], reason: d.reason,
    ...(d.cleanupLegacy.length ? { legacyCleanup: { runner: otherRunner, families: d.cleanupLegacy } } : {}),
    // iptables >= 1.6.2 and kernels >= 3.14 (Debian 12 ships 1.8.9): every supported node has it
    randomFully: true,
  };
}

interface Parts {
  netlink: NetlinkComponent;
  ovsdb: OvsdbComponent;
  kube: KubeComponent;
  node: NodeNetwork;
  gate: NodeGate;
  readiness: Readiness;
}

/** The OVN pod-wiring backend over the components (each part is read lazily: it exists once its component started). */
function ovnBackend(cfg: AgentConfig, log: Logger, hooks: AgentHooks, p: Parts): OvnBackend {
  const m = hooks.metrics;
  const probe = probeTiming(cfg.ipConflictProbeMs);
  return new OvnBackend({
    nodeName: cfg.nodeName,
    log,
    get ipApi() { return p.kube.watches.ipApi; },
    get events() { return p.kube.events; },
    gate: p.gate,
    gateTimeoutMs: cfg.nodeReadyTimeoutMs,
    maxParallelAdds: cfg.maxParallelAdds,
    prepare: {
      get pods() { return p.kube.watches.podSource; },
      subnets: () => p.kube.watches.subnets.store.list(),
      subnetsSynced: () => p.kube.watches.subnets.health().synced,
      node: () => p.kube.watches.node.store.get(cfg.nodeName),
      annotationWaitTimeoutMs: cfg.annotationWaitTimeoutMs,
      // br-int is created by ovn-controller, possibly after we started: its datapath type is read at each ADD
      get nodeFacts() {
        return {
          mtu: p.node.mtu,
          datapathType: p.ovsdb.vswitch.getBridge(INTEGRATION_BRIDGE)?.datapathType === 'netdev' ? 'netdev' as const : 'system' as const,
          enableArpDetectIpConflict: cfg.enableArpDetectIpConflict,
          ovnInstalledTimeoutMs: cfg.ovnInstalledTimeoutMs,
          gatewayCheckTimeoutMs: cfg.gatewayCheckTimeoutMs,
        };
      },
    },
    exec: {
      get netlink() { return p.netlink.netlink; },
      get podNet() { return p.netlink.podNet; },
      get vswitch() { return p.ovsdb.vswitch; },
      log, probe,
      ...(hooks.beforeStep ? { beforeStep: hooks.beforeStep } : {}),
      ...(m ? { onWait: (stage: 'ovn_installed' | 'gateway_check', s: number) => m.observeWait(stage, s) } : {}),
    },
    ...(m ? { onAnnotationWait: (s: number) => m.observeWait('annotation', s) } : {}),
    // per-ADD step timings at full resolution, for the e2e bench (it derives the agent's own time up to the OVN
    // binding wait from this line); debug: the info line `pod NIC configured` already carries them, rounded
    onAdded: (_plan, outcome, req) => log.debug({ containerId: req.containerId, stepMs: outcome.stepMs.map((x) => ({ op: x.op, ms: Math.round(x.ms * 1000) / 1000 })) }, 'ADD applied'),
    status: async () => {
      const e = await p.readiness.evaluate();
      return e.ok ? true : e.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.reason}`).join('; ');
    },
  });
}
