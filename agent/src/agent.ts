// The agent's wiring, used by main.ts (the composition root) and by tests that start an agent in-process:
// configuration -> infrastructure (netlink after warmUp, the Kubernetes watches, the OVSDB connection) -> the CNI
// backend -> the CNI server -> the delete-queue drain. Spec §5.1 is upstream's start-up order; ours differs where
// nothing depends on it (the node-level reconcilers of later issues are not here yet).

import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { CniBackend } from './cni/backend.ts';
import { Dispatcher } from './cni/dispatcher.ts';
import { FakeBackend } from './cni/fake-backend.ts';
import { FLAGS, loadConfig, type Config } from './config/config.ts';
import { parseFlags } from './config/flags.ts';
import { nodePodMtu } from './config/mtu.ts';
import { createNetlink } from './datapath/netlink/index.ts';
import type { Netlink, PodNet, Vswitch } from './datapath/ports.ts';
import { OvsVswitch } from './datapath/ovsdb/vswitch.ts';
import { AgentError } from './errors.ts';
import { createWatchSet, loadKubeConfig, type WatchSet } from './k8s/client.ts';
import { warmUp } from './native.ts';
import type { AgentMetrics } from './observe/metrics.ts';
import { OvnBackend } from './pod/backend.ts';
import { probeTiming } from './pod/executor.ts';
import { INTEGRATION_BRIDGE } from './pod/plan.ts';
import { drainDeleteQueue, startCniServer, type CniApp, type CniServer } from './server/cni-server.ts';
import type { Readiness } from './server/health.ts';

export const BACKEND_NAMES = ['ovn', 'fake'] as const;

/** The configuration plus the explicitly passed flags this agent accepts but does not act on (logged at start). */
export interface AgentConfig extends Config {
  readonly ignored: readonly string[];
}

/** Flags the agent acts on; any other flag given on the command line is reported as not handled (yet). */
const HANDLED = new Set(['node-name', 'bind-socket', 'ovs-socket', 'kubeconfig', 'mtu', 'iface', 'network-type', 'pprof-port',
  'enable-metrics', 'enable-arp-detect-ip-conflict', 'annotation-wait-timeout', 'ovn-installed-timeout', 'gateway-check-timeout',
  'watch-idle-timeout', 'ip-conflict-probe-time', 'backend', 'cni-del-queue-dir', 'log-level', 'v']);
/** With `--backend=fake` nothing talks to Kubernetes, OVS or the kernel. */
const INFRA = new Set(['ovs-socket', 'kubeconfig', 'mtu', 'iface', 'network-type', 'enable-arp-detect-ip-conflict',
  'annotation-wait-timeout', 'ovn-installed-timeout', 'gateway-check-timeout', 'watch-idle-timeout', 'ip-conflict-probe-time']);
const KLOG = /^(logtostderr|alsologtostderr|skip_headers|skip_log_headers|add_dir_header|one_output|log_file|log_file_max_size|log_dir|stderrthreshold|vmodule|log_backtrace_at)$/;

/** loadConfig (upstream flag names, env, validation) + the backend choice; throws an Error with a clear message. */
export function parseArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = process.env, host = hostname()): AgentConfig {
  let cfg: Config;
  try {
    cfg = loadConfig(argv, env, host);
  } catch (e) {
    throw new Error(e instanceof AgentError ? e.message : String(e));
  }
  if (!(BACKEND_NAMES as readonly string[]).includes(cfg.backend)) {
    throw new Error(`--backend must be one of ${BACKEND_NAMES.join(', ')} (got "${cfg.backend}")`);
  }
  const given = [...parseFlags(argv, FLAGS).values.keys()];
  const ignored = given.filter((name) => !KLOG.test(name) && (!HANDLED.has(name) || (cfg.backend === 'fake' && INFRA.has(name))))
    .map((name) => `--${name}`);
  return Object.freeze({ ...cfg, ignored: Object.freeze(ignored) });
}

export interface Agent {
  cni: CniServer;
  dispatcher: Dispatcher;
  backend: CniBackend;
  log: Logger;
  stop(): Promise<void>;
}

export interface AgentHooks {
  /** sees the CNI app before it listens (metrics instrumentation) */
  onCniApp?: (app: CniApp) => void;
  metrics?: AgentMetrics;
  readiness?: Readiness;
  /** bound of the wait for the first list of every watch before serving (default 30 s; then served anyway, not ready) */
  syncTimeoutMs?: number;
  /** bound of the first OVSDB connection (default 30 s; start-up fails after it) */
  ovsdbConnectTimeoutMs?: number;
}

/** Builds and starts the agent: backend infrastructure, CNI server, then the queued DELs. */
export async function startAgent(cfg: AgentConfig, log: Logger, hooks: AgentHooks | ((app: CniApp) => void) = {}): Promise<Agent> {
  const h: AgentHooks = typeof hooks === 'function' ? { onCniApp: hooks } : hooks;
  if (cfg.ignored.length) log.warn({ flags: cfg.ignored }, 'ignoring flags this agent does not handle yet');
  const stops: (() => Promise<void> | void)[] = [];
  const stopAll = async (): Promise<void> => { for (const s of stops.splice(0).reverse()) await s(); };
  try {
    let backend: CniBackend;
    if (cfg.backend === 'fake') {
      log.warn('using the in-memory fake CNI backend: no pod is really wired (tests only)');
      backend = new FakeBackend();
    } else {
      backend = await startOvnBackend(cfg, log, h, stops);
    }
    const dispatcher = new Dispatcher({ backend, log });
    const cni = await startCniServer({ socketPath: cfg.bindSocket, dispatcher, log, ...(h.onCniApp ? { onApp: h.onCniApp } : {}) });
    stops.push(() => cni.close());
    const drained = await drainDeleteQueue(cfg.delQueueDir, dispatcher, log);
    if (drained.completed + drained.kept + drained.discarded > 0) log.info({ ...drained, dir: cfg.delQueueDir }, 'delete queue drained');
    return { cni, dispatcher, backend, log, stop: stopAll };
  } catch (e) {
    await stopAll().catch(() => undefined);
    throw e;
  }
}

/** Netlink (after warmUp), the watches (bounded sync), OVSDB, the node facts, and the OvnBackend over them. */
async function startOvnBackend(cfg: AgentConfig, log: Logger, h: AgentHooks, stops: (() => Promise<void> | void)[]): Promise<OvnBackend> {
  const m = h.metrics;
  if (cfg.kubeconfig === '' && !process.env.KUBERNETES_SERVICE_HOST) {
    throw new Error('no --kubeconfig (or KUBECONFIG) given and not running in a cluster (KUBERNETES_SERVICE_HOST is not set)');
  }
  // threads inherit the namespace of their creator: the libuv pool and the addon come up before any netns switch
  await warmUp();
  const raw = createNetlink();
  stops.push(() => raw.netlink.close());
  const netlink = m ? instrument(raw.netlink, m.observeNetlink) : raw.netlink;
  const podNet = m ? instrument(raw.podNet, m.observeNetlink) : raw.podNet;

  const kc = loadKubeConfig(cfg.kubeconfig);
  const watches = createWatchSet(kc, cfg, {
    log,
    ...(m ? { onRestart: (r: string) => m.watchRestarted(r), onHealth: (r: string, ok: boolean) => m.setWatchHealthy(r, ok) } : {}),
  });
  for (const w of watches.all()) w.start();
  stops.push(() => watches.stop());
  const synced = h.readiness?.flag('watches-synced', 'waiting for the first list of pods, node and subnets');

  const vswitch = await OvsVswitch.connect({
    remote: `unix:${cfg.ovsSocket}`, connectTimeoutMs: h.ovsdbConnectTimeoutMs ?? 30_000,
    ...(m ? { onRequest: (db: string, method: string, ms: number, ok: boolean) => m.observeOvsdb(db, method, ms / 1000, ok) } : {}),
  });
  stops.push(() => vswitch.close());
  h.readiness?.register('ovsdb-connected', () => vswitch.client.connected || `no synced OVSDB connection to ${cfg.ovsSocket}`);

  const syncMs = h.syncTimeoutMs ?? 30_000;
  const inTime = await Promise.race([watches.waitSynced().then(() => true), new Promise<false>((r) => setTimeout(() => r(false), syncMs).unref())]);
  if (inTime) synced?.set(true);
  else {
    log.warn({ health: watches.health() }, `watches not synced after ${syncMs} ms; serving anyway`);
    void watches.waitSynced().then(() => { synced?.set(true); log.info('watches synced'); });
  }

  const mtu = await podMtu(cfg, netlink, vswitch, log);
  const probe = probeTiming(cfg.ipConflictProbeMs);
  const backend = new OvnBackend({
    nodeName: cfg.nodeName,
    log,
    ipApi: watches.ipApi,
    prepare: {
      pods: watches.podSource,
      subnets: () => watches.subnets.store.list(),
      node: () => watches.node.store.get(cfg.nodeName),
      annotationWaitTimeoutMs: cfg.annotationWaitTimeoutMs,
      // br-int is created by ovn-controller, possibly after we started: its datapath type is read at each ADD
      get nodeFacts() {
        return {
          mtu,
          datapathType: vswitch.getBridge(INTEGRATION_BRIDGE)?.datapathType === 'netdev' ? 'netdev' as const : 'system' as const,
          enableArpDetectIpConflict: cfg.enableArpDetectIpConflict,
          ovnInstalledTimeoutMs: cfg.ovnInstalledTimeoutMs,
          gatewayCheckTimeoutMs: cfg.gatewayCheckTimeoutMs,
        };
      },
    },
    exec: {
      netlink, podNet, vswitch, log, probe, ...faultInjection(log),
      ...(m ? { onWait: (stage: 'ovn_installed' | 'gateway_check', s: number) => m.observeWait(stage, s) } : {}),
    },
    ...(m ? { onAnnotationWait: (s: number) => m.observeWait('annotation', s) } : {}),
    // per-ADD step timings (the e2e bench derives the agent's own time up to the OVN binding wait from this line)
    onAdded: (_plan, outcome, req) => log.info({ containerId: req.containerId, stepMs: outcome.stepMs.map((x) => ({ op: x.op, ms: Math.round(x.ms * 1000) / 1000 })) }, 'ADD applied'),
    ready: () => {
      if (!vswitch.client.connected) return `no synced OVSDB connection to ${cfg.ovsSocket}`;
      const notSynced = watches.health().filter((w) => !w.synced).map((w) => w.resource);
      return notSynced.length ? `Kubernetes watches not synced: ${notSynced.join(', ')}` : true;
    },
  });
  log.info({ node: cfg.nodeName, mtu, ovsSocket: cfg.ovsSocket, probeMs: cfg.ipConflictProbeMs }, 'pod wiring backend ready');
  return backend;
}

/**
 * Test-only fault injection: `KOA_FAULT_AFTER_STEP=<op>` (e.g. `ovsAddPort`) kills this process with SIGKILL right after
 * that ADD step was applied, to prove that an ADD killed halfway leaves nothing behind once the runtime's DEL runs
 * (integration/e2e/failures.test.ts). Unset in production: no hook at all.
 */
function faultInjection(log: Logger): { beforeStep?: (step: { op: string }, index: number) => void } {
  const after = process.env.KOA_FAULT_AFTER_STEP;
  if (!after) return {};
  log.warn({ after }, 'KOA_FAULT_AFTER_STEP set: this agent kills itself mid-ADD (tests only)');
  let previous = '';
  return {
    beforeStep: (step, index) => {
      const prev = index === 0 ? '' : previous;
      previous = step.op;
      if (prev !== after) return;
      log.fatal({ after, next: step.op }, 'fault injected: killing the agent mid-ADD');
      process.kill(process.pid, 'SIGKILL');
    },
  };
}

/**
 * The node-wide pod MTU (§5.2): --mtu when set, else the tunnel NIC's MTU minus the encapsulation overhead. The
 * tunnel NIC is --iface (a plain name), else the link holding OVS external_ids:ovn-encap-ip; a loopback or unknown
 * NIC counts as 1500 (single-node sandboxes encapsulate over 127.0.0.1).
 */
async function podMtu(cfg: Config, nl: Netlink, vs: Vswitch, log: Logger): Promise<number> {
  if (cfg.mtu > 0) return cfg.mtu;
  const encapIp = (vs.getOvsExternalIds()['ovn-encap-ip'] ?? '').split(',')[0]!.trim();
  let linkMtu = 1500;
  let nic: string | undefined;
  try {
    const name = cfg.iface.split(',')[0]!.trim();
    let link = /^[A-Za-z0-9_.-]{1,15}$/.test(name) ? await nl.getLink(null, name) : null;
    if (!link && encapIp) {
      const a = (await nl.listAddresses(null)).find((x) => x.address === encapIp);
      if (a) link = await nl.getLinkByIndex(null, a.index);
    }
    if (link && link.name !== 'lo' && (link.flags & 0x8) === 0) { linkMtu = link.mtu; nic = link.name; }
  } catch (e) {
    log.warn({ err: e instanceof Error ? e.message : String(e) }, 'cannot read the tunnel NIC; assuming MTU 1500');
  }
  const r = nodePodMtu(0, linkMtu, cfg.networkType, encapIp.includes(':'));
  if (r.warning) log.warn(r.warning);
  log.info({ tunnelNic: nic ?? '(none)', linkMtu, podMtu: r.mtu, networkType: cfg.networkType }, 'pod MTU');
  return r.mtu;
}

/** Wraps every async method of a datapath port so each call is timed into `observe(op, seconds, ok)`. */
export function instrument<T extends object>(target: T, observe: (op: string, seconds: number, ok: boolean) => void): T {
  const cache = new Map<PropertyKey, unknown>();
  return new Proxy(target, {
    get(t, prop) {
      const v = Reflect.get(t, prop, t) as unknown;
      if (typeof v !== 'function' || prop === 'close' || prop === 'constructor') return v;
      let w = cache.get(prop);
      if (!w) {
        const op = String(prop);
        const fn = v as (...a: unknown[]) => unknown;
        w = (...args: unknown[]) => {
          const t0 = performance.now();
          const r = fn.apply(t, args);
          if (!(r instanceof Promise)) return r;
          return r.then((x) => { observe(op, (performance.now() - t0) / 1000, true); return x; },
            (e: unknown) => { observe(op, (performance.now() - t0) / 1000, false); throw e; });
        };
        cache.set(prop, w);
      }
      return w;
    },
  });
}

export type { Netlink, PodNet };
