// The agent's Prometheus registry and the small facade every other module sees.
//
// Two families live here:
//  - upstream kube-ovn-cni names and labels, kept exactly so existing dashboards and alerts keep working
//    (spec/upstream-agent-behaviour.md §8, features-from-user-docs.md §5);
//  - new metrics under the `kube_ovn_agent_` namespace, in base units (seconds), `_total` on counters.
//
// Other modules never import prom-client: they receive the `AgentMetrics` methods as plain callbacks
// (every method is an own arrow-function property, so `const f = metrics.observeOvsdb` works detached).
// All durations passed to the facade are SECONDS (the upstream millisecond histogram is converted here).
// Label values from open sets are bounded: fixed vocabularies map unknown values to `other`, free-form
// operation names are capped by `LabelGuard` (first N distinct values, then `other`). No pod names.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { registerDefaultMetrics } from './default-metrics.ts';
import { LoopLagMonitor } from './loop-lag.ts';
import { ERRORS } from '../errors.ts';
import { registerNodeSysctlGauges, type NodeSysctlOptions } from './node-sysctls.ts';

export const NAMESPACE = 'kube_ovn_agent_';

/** Upstream `ExponentialBuckets(0.001, 2, 10)` (1 ms … 512 ms) extended with the same factor to 262.144 s
 * (k = 0..18). Every upstream `le` value stays a bucket bound, so dashboards that read `le="0.512"` still work;
 * ADDs that wait for the controller (seconds, up to minutes) no longer all land in `+Inf`. */
export const CNI_OP_LATENCY_BUCKETS: readonly number[] = Array.from({ length: 19 }, (_, k) => round6(0.001 * 2 ** k));
/** Upstream `ExponentialBuckets(1, 2, 10)` in milliseconds, unchanged (1 … 512 ms). */
export const OVS_CLIENT_LATENCY_BUCKETS_MS: readonly number[] = Array.from({ length: 10 }, (_, k) => 2 ** k);
/** New CNI request / shim histograms: 1 ms … 240 s (kubelet's CRI timeout is 4 min). */
export const CNI_SECONDS_BUCKETS: readonly number[] =
  [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 240];
/** Per-stage waits (annotation, ovn-installed, gateway check): 1 ms … 120 s. */
export const WAIT_SECONDS_BUCKETS: readonly number[] =
  [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120];
/** Datapath calls (OVSDB, netlink, iptables-restore, ipset): 50 µs … 30 s. */
export const CALL_SECONDS_BUCKETS: readonly number[] =
  [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Kubernetes REST client: 1 ms … 60 s. */
export const REST_SECONDS_BUCKETS: readonly number[] =
  [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

function round6(x: number): number { return Math.round(x * 1e6) / 1e6; }

export const CNI_COMMANDS = ['ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION'] as const;
export type CniCommand = (typeof CNI_COMMANDS)[number];
/** Waits of one ADD. `annotation` feeds upstream `cni_wait_address_seconds_total`, `routed` feeds
 * `cni_wait_route_seconds_total`, `gateway_check` feeds `cni_wait_connectivity_seconds_total`. */
export const WAIT_STAGES = ['annotation', 'routed', 'ovn_installed', 'gateway_check'] as const;
export type WaitStage = (typeof WAIT_STAGES)[number];
/** Upstream `method` label values (the request URI of the upstream API). */
export const UPSTREAM_METHODS = ['/api/v1/add', '/api/v1/del'] as const;
export const KLOG_LEVELS = ['INFO', 'WARN', 'ERROR'] as const;
export type KlogLevel = (typeof KLOG_LEVELS)[number];

/** `result` label: `ok`, `error`, one of the coded errors of agent/src/errors.ts (`KOA_TIMEOUT`), or a CNI error
 * code as `cni_<n>` (n < 1000) when only the wire answer is known. All bounded sets. */
export function resultLabel(result: string | boolean): string {
  if (result === true || result === 'ok') return 'ok';
  if (result === false || result === 'error') return 'error';
  if (/^cni_[1-9][0-9]{0,2}$/.test(result)) return result;
  return Object.hasOwn(ERRORS, result) ? result : 'error';
}

function oneOf<T extends string>(allowed: readonly T[], v: string, fallback = 'other'): string {
  return (allowed as readonly string[]).includes(v) ? v : fallback;
}

/** Caps the number of distinct values of one label: the first `max` values seen pass, later ones are `other`.
 * Values are also trimmed to 64 characters. Protects the registry from a caller passing an unbounded string. */
export class LabelGuard {
  readonly #seen = new Set<string>();
  readonly #max: number;
  constructor(max = 64) { this.#max = max; }
  value(v: string): string {
    const s = v.length > 64 ? v.slice(0, 64) : v;
    if (this.#seen.has(s)) return s;
    if (this.#seen.size >= this.#max) return 'other';
    this.#seen.add(s);
    return s;
  }
}

/** What the CNI executable reports about its previous invocation (see README "shim_prev"). */
export interface ShimReport { command: string; ms: number; result: string }

/** Validates a `shim_prev` field from a forwarded request; returns null for anything malformed. */
export function parseShimReport(x: unknown): ShimReport | null {
  if (typeof x !== 'object' || x === null) return null;
  const r = x as Record<string, unknown>;
  if (typeof r.command !== 'string' || typeof r.ms !== 'number' || !Number.isFinite(r.ms) || r.ms < 0 || r.ms > 3.6e6)
    return null;
  const result = r.result === undefined ? 'ok' : typeof r.result === 'string' ? r.result : null;
  if (result === null) return null;
  return { command: r.command.toUpperCase(), ms: r.ms, result };
}

export interface AgentMetricsOptions {
  /** `node_name` / `hostname` label value of the upstream metrics. */
  nodeName: string;
  /** Agent version for `kube_ovn_agent_build_info`. */
  version: string;
  /** Source revision (git commit) if known. */
  revision?: string;
  /** Default: a fresh registry (never prom-client's global one, so tests and several agents do not clash). */
  registry?: Registry;
  /** process_* and nodejs_* collectors (default true). */
  defaultMetrics?: boolean;
  /** Upstream sysctl gauges read at scrape time (default on; `false` to leave them out). */
  sysctls?: false | Omit<NodeSysctlOptions, 'hostname'>;
}

export interface AgentMetrics {
  readonly registry: Registry;
  /** One CNI request as the server saw it: new histogram {command,result}, and upstream cni_op_latency_seconds
   * {method: upstreamMethod, status_code} unless upstreamMethod is null (upstream only ever had ADD and DEL). */
  observeCni(command: string, result: string | boolean, seconds: number, upstreamMethod: string | null, statusCode: number): void;
  /** One wait of an ADD (new histogram {stage}; also the matching upstream cni_wait_*_seconds_total counter). */
  observeWait(stage: WaitStage, seconds: number): void;
  /** One OVSDB call: upstream ovs_client_request_latency_milliseconds{db,method,code} + new seconds histogram. */
  observeOvsdb(db: string, method: string, seconds: number, ok: boolean): void;
  observeNetlink(op: string, seconds: number, ok: boolean): void;
  /** One `iptables-restore` / `ip6tables-restore` batch; `op` is e.g. the table or `v4-filter`. */
  observeIptables(op: string, seconds: number, ok: boolean, lines?: number): void;
  /** One `ipset restore` batch. */
  observeIpset(op: string, seconds: number, ok: boolean, lines?: number): void;
  /** Kubernetes REST call (upstream rest_client_* names; `url` must be a path template, not a pod path). */
  observeRestClient(verb: string, urlTemplate: string, code: number | string, host: string, seconds: number): void;
  watchRestarted(resource: string): void;
  setWatchHealthy(resource: string, healthy: boolean): void;
  /** Wall time the CNI executable measured for one invocation (reported back to the agent). */
  observeShim(command: string, seconds: number, result?: string | boolean): void;
  /** Convenience for a raw `shim_prev` field: validates it and records it; returns whether it was used. */
  observeShimReport(report: unknown): boolean;
  /** Upstream subnet gateway counters (deltas of the FORWARD counter rules). */
  addSubnetGatewayTraffic(subnet: string, cidr: string, direction: 'egress' | 'ingress', protocol: 'IPv4' | 'IPv6',
    packets: number, bytes: number): void;
  /** One log line written (feeds upstream-named klog_lines_total / klog_bytes_total gauges). */
  countLogLine(level: KlogLevel, bytes: number): void;
  /** Per-check readiness state and the first time the agent became ready. */
  setReadiness(check: string, ready: boolean): void;
  markReady(uptimeSeconds: number): void;
  /** One reconcile pass (node/reconciler.ts): runs by result, duration, operations applied. */
  observeReconcile(pass: { reconciler: string; ok: boolean; changes: number; seconds: number }): void;
  /** Objects the pod GC removed, by kind (port, veth, qos). */
  gcRemoved(kind: string, n: number): void;
  /** Exposes where kernel calls ran (datapath/kernel-calls.ts), read at scrape time: `inline`, `pool`, and the
   *  inline calls that were slow (each sent the next calls to the pool: RTNL was contended). */
  countKernelCalls(read: () => { inline: number; pooled: number; slow: number }): void;
  /** Work starts on the event loop (a CNI call, a reconcile pass): lag is sampled until the returned release. */
  loopBusy(): () => void;
  /** Stops the lag sampling (agent stop). */
  close(): void;
}

export function createAgentMetrics(opts: AgentMetricsOptions): AgentMetrics {
  const registry = opts.registry ?? new Registry();
  const registers = [registry];
  const node = opts.nodeName;
  // the event-loop lag histogram samples only while someone holds busy() (loop-lag.ts)
  const loopLag = new LoopLagMonitor();
  if (opts.defaultMetrics ?? true) { registerDefaultMetrics(registry); loopLag.register(registry); }
  if (opts.sysctls !== false) registerNodeSysctlGauges(registry, { ...opts.sysctls, hostname: node });

  // ---- upstream names (kube-ovn-cni) ----
  const cniOpLatency = new Histogram({
    name: 'cni_op_latency_seconds', help: 'the latency seconds of cni operations (buckets widened beyond 0.512 s)',
    labelNames: ['node_name', 'method', 'status_code'], buckets: [...CNI_OP_LATENCY_BUCKETS], registers,
  });
  const waitAddress = new Counter({
    name: 'cni_wait_address_seconds_total', help: 'seconds the cni waited for the controller to assign an address',
    labelNames: ['node_name'], registers,
  });
  const waitRoute = new Counter({
    name: 'cni_wait_route_seconds_total', help: 'seconds the cni waited for the controller to add the routed annotation',
    labelNames: ['node_name'], registers,
  });
  const waitConnectivity = new Counter({
    name: 'cni_wait_connectivity_seconds_total', help: 'seconds the cni waited for the address to be ready in the overlay',
    labelNames: ['node_name'], registers,
  });
  const ovsClientLatency = new Histogram({
    name: 'ovs_client_request_latency_milliseconds', help: 'the latency histogram for ovs request',
    labelNames: ['db', 'method', 'code'], buckets: [...OVS_CLIENT_LATENCY_BUCKETS_MS], registers,
  });
  const restLatency = new Histogram({
    name: 'rest_client_request_latency_seconds', help: 'Request latency in seconds. Broken down by verb and URL.',
    labelNames: ['verb', 'url'], buckets: [...REST_SECONDS_BUCKETS], registers,
  });
  const restRequests = new Counter({
    name: 'rest_client_requests_total', help: 'Number of HTTP requests, partitioned by status code, method, and host.',
    labelNames: ['code', 'method', 'host'], registers,
  });
  const gwLabels = ['hostname', 'subnet_name', 'cidr', 'direction', 'protocol'] as const;
  const gwPackets = new Counter({
    name: 'ovn_subnet_gateway_packets', help: 'the packets count for a subnet gateway', labelNames: gwLabels, registers,
  });
  const gwBytes = new Counter({
    name: 'ovn_subnet_gateway_packet_bytes', help: 'the packet bytes for a subnet gateway', labelNames: gwLabels, registers,
  });
  const klogLines = new Gauge({
    name: 'klog_lines_total', help: 'lines of log output by level (pino levels mapped to INFO/WARN/ERROR)',
    labelNames: ['level'], registers,
  });
  const klogBytes = new Gauge({
    name: 'klog_bytes_total', help: 'bytes of log output by level (pino levels mapped to INFO/WARN/ERROR)',
    labelNames: ['level'], registers,
  });
  for (const l of KLOG_LEVELS) { klogLines.set({ level: l }, 0); klogBytes.set({ level: l }, 0); }

  // ---- new, namespaced ----
  const cniDuration = new Histogram({
    name: `${NAMESPACE}cni_request_duration_seconds`, help: 'CNI request duration measured by the agent, by command and result',
    labelNames: ['command', 'result'], buckets: [...CNI_SECONDS_BUCKETS], registers,
  });
  const shimDuration = new Histogram({
    name: `${NAMESPACE}cni_shim_duration_seconds`,
    help: 'CNI request wall time measured by the CNI executable (reported with its next request), by command and result',
    labelNames: ['command', 'result'], buckets: [...CNI_SECONDS_BUCKETS], registers,
  });
  const waitDuration = new Histogram({
    name: `${NAMESPACE}cni_wait_duration_seconds`, help: 'time one ADD spent waiting, by stage',
    labelNames: ['stage'], buckets: [...WAIT_SECONDS_BUCKETS], registers,
  });
  const callHist = (what: string, help: string): Histogram<'op' | 'result'> => new Histogram({
    name: `${NAMESPACE}${what}_duration_seconds`, help, labelNames: ['op', 'result'], buckets: [...CALL_SECONDS_BUCKETS], registers,
  });
  const ovsdbDuration = callHist('ovsdb_request', 'OVSDB JSON-RPC call duration (count = calls), by operation and result');
  const netlinkDuration = callHist('netlink_request', 'netlink request duration (count = calls), by operation and result');
  const iptablesDuration = callHist('iptables_restore', 'iptables-restore batch duration (count = calls), by batch and result');
  const ipsetDuration = callHist('ipset_restore', 'ipset restore batch duration (count = calls), by batch and result');
  const iptablesLines = new Counter({
    name: `${NAMESPACE}iptables_restore_lines_total`, help: 'lines fed to iptables-restore', labelNames: ['op'], registers,
  });
  const ipsetLines = new Counter({
    name: `${NAMESPACE}ipset_restore_lines_total`, help: 'lines fed to ipset restore', labelNames: ['op'], registers,
  });
  const watchRestarts = new Counter({
    name: `${NAMESPACE}watch_restarts_total`, help: 'Kubernetes watch restarts, by resource', labelNames: ['resource'], registers,
  });
  const watchHealthy = new Gauge({
    name: `${NAMESPACE}watch_healthy`, help: '1 when the watch of the resource is established and synced, else 0',
    labelNames: ['resource'], registers,
  });
  const readinessGauge = new Gauge({
    name: `${NAMESPACE}readiness_check`, help: '1 when the named readiness check passes, else 0', labelNames: ['check'], registers,
  });
  const readyDuration = new Gauge({
    name: `${NAMESPACE}ready_duration_seconds`, help: 'seconds from process start until the agent first reported ready', registers,
  });
  const reconcileRuns = new Counter({
    name: `${NAMESPACE}reconcile_runs_total`, help: 'reconcile passes, by reconciler and result', labelNames: ['reconciler', 'result'], registers,
  });
  const reconcileDuration = new Histogram({
    name: `${NAMESPACE}reconcile_duration_seconds`, help: 'duration of one reconcile pass (desired, observed, diff, apply)',
    labelNames: ['reconciler'], buckets: [...CALL_SECONDS_BUCKETS], registers,
  });
  const reconcileChanges = new Counter({
    name: `${NAMESPACE}reconcile_changes_total`, help: 'operations applied by reconcile passes', labelNames: ['reconciler'], registers,
  });
  let kernelCalls: (() => { inline: number; pooled: number; slow: number }) | undefined;
  new Counter({
    name: `${NAMESPACE}kernel_calls_total`,
    help: 'netlink, ethtool and sysctl calls by where they ran: inline on the event loop, on the libuv pool, and slow_inline (inline calls slow enough to show RTNL contention)',
    labelNames: ['path'], registers,
    collect() {
      if (!kernelCalls) return;
      const s = kernelCalls();
      this.reset();
      this.inc({ path: 'inline' }, s.inline);
      this.inc({ path: 'pool' }, s.pooled);
      this.inc({ path: 'slow_inline' }, s.slow);
    },
  });
  const gcRemovedTotal = new Counter({
    name: `${NAMESPACE}gc_removed_total`, help: 'objects removed by the pod garbage collector, by kind', labelNames: ['kind'], registers,
  });
  const buildInfo = new Gauge({
    name: `${NAMESPACE}build_info`, help: 'always 1; build and runtime information in labels',
    labelNames: ['version', 'revision', 'node_version', 'arch'], registers,
  });
  buildInfo.set({ version: opts.version, revision: opts.revision ?? 'unknown', node_version: process.version, arch: process.arch }, 1);

  const g = {
    ovsdbMethod: new LabelGuard(), ovsdbDb: new LabelGuard(8), netlinkOp: new LabelGuard(), iptOp: new LabelGuard(32),
    ipsetOp: new LabelGuard(32), resource: new LabelGuard(32), restUrl: new LabelGuard(128), restHost: new LabelGuard(8),
    subnet: new LabelGuard(512), check: new LabelGuard(32), reconciler: new LabelGuard(32), gcKind: new LabelGuard(8),
  };
  const cmd = (c: string): string => oneOf(CNI_COMMANDS, c.toUpperCase());
  const nonNeg = (s: number): number => (Number.isFinite(s) && s > 0 ? s : 0);
  let readyMarked = false;

  const m: AgentMetrics = {
    registry,
    observeCni: (command, result, seconds, upstreamMethod, statusCode) => {
      const s = nonNeg(seconds);
      cniDuration.observe({ command: cmd(command), result: resultLabel(result) }, s);
      if (upstreamMethod !== null)
        cniOpLatency.observe({ node_name: node, method: oneOf(UPSTREAM_METHODS, upstreamMethod), status_code: String(statusCode | 0) }, s);
    },
    observeWait: (stage, seconds) => {
      const s = nonNeg(seconds);
      const st = oneOf(WAIT_STAGES, stage);
      waitDuration.observe({ stage: st }, s);
      if (st === 'annotation') waitAddress.inc({ node_name: node }, s);
      else if (st === 'routed') waitRoute.inc({ node_name: node }, s);
      else if (st === 'gateway_check') waitConnectivity.inc({ node_name: node }, s);
    },
    observeOvsdb: (db, method, seconds, ok) => {
      const s = nonNeg(seconds);
      const meth = g.ovsdbMethod.value(method);
      ovsClientLatency.observe({ db: g.ovsdbDb.value(db), method: meth, code: ok ? '0' : '1' }, s * 1000);
      ovsdbDuration.observe({ op: meth, result: ok ? 'ok' : 'error' }, s);
    },
    countKernelCalls: (read) => { kernelCalls = read; },
    observeNetlink: (op, seconds, ok) => {
      netlinkDuration.observe({ op: g.netlinkOp.value(op), result: ok ? 'ok' : 'error' }, nonNeg(seconds));
    },
    observeIptables: (op, seconds, ok, lines) => {
      const o = g.iptOp.value(op);
      iptablesDuration.observe({ op: o, result: ok ? 'ok' : 'error' }, nonNeg(seconds));
      if (lines !== undefined && lines > 0) iptablesLines.inc({ op: o }, lines);
    },
    observeIpset: (op, seconds, ok, lines) => {
      const o = g.ipsetOp.value(op);
      ipsetDuration.observe({ op: o, result: ok ? 'ok' : 'error' }, nonNeg(seconds));
      if (lines !== undefined && lines > 0) ipsetLines.inc({ op: o }, lines);
    },
    observeRestClient: (verb, urlTemplate, code, host, seconds) => {
      const v = verb.toUpperCase().slice(0, 16);
      restLatency.observe({ verb: v, url: g.restUrl.value(urlTemplate) }, nonNeg(seconds));
      restRequests.inc({ code: String(code), method: v, host: g.restHost.value(host) });
    },
    watchRestarted: (resource) => { watchRestarts.inc({ resource: g.resource.value(resource) }); },
    setWatchHealthy: (resource, healthy) => { watchHealthy.set({ resource: g.resource.value(resource) }, healthy ? 1 : 0); },
    observeShim: (command, seconds, result = 'ok') => {
      shimDuration.observe({ command: cmd(command), result: resultLabel(result) }, nonNeg(seconds));
    },
    observeShimReport: (report) => {
      const r = parseShimReport(report);
      if (r === null) return false;
      m.observeShim(r.command, r.ms / 1000, r.result);
      return true;
    },
    addSubnetGatewayTraffic: (subnet, cidr, direction, protocol, packets, bytes) => {
      const sub = g.subnet.value(subnet);
      const labels = { hostname: node, subnet_name: `${sub}/${direction}/${protocol}`, cidr, direction, protocol };
      if (packets > 0) gwPackets.inc(labels, packets);
      if (bytes > 0) gwBytes.inc(labels, bytes);
    },
    countLogLine: (level, bytes) => { klogLines.inc({ level }, 1); klogBytes.inc({ level }, bytes); },
    setReadiness: (check, ready) => { readinessGauge.set({ check: g.check.value(check) }, ready ? 1 : 0); },
    markReady: (uptimeSeconds) => {
      if (readyMarked) return;
      readyMarked = true;
      readyDuration.set(uptimeSeconds);
    },
    observeReconcile: (pass) => {
      const r = g.reconciler.value(pass.reconciler);
      reconcileRuns.inc({ reconciler: r, result: pass.ok ? 'ok' : 'error' });
      reconcileDuration.observe({ reconciler: r }, nonNeg(pass.seconds));
      if (pass.changes > 0) reconcileChanges.inc({ reconciler: r }, pass.changes);
    },
    gcRemoved: (kind, n) => { if (n > 0) gcRemovedTotal.inc({ kind: g.gcKind.value(kind) }, n); },
    loopBusy: loopLag.busy,
    close: () => loopLag.close(),
  };
  return m;
}

/** Seconds since `t0` (from `process.hrtime.bigint()`). */
export function secondsSince(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** Same shape as AgentMetrics, recording nothing: for unit tests of other modules and tools. */
export function nullMetrics(): AgentMetrics {
  const noop = (): void => {};
  return {
    registry: new Registry(), observeCni: noop, observeWait: noop, observeOvsdb: noop, observeNetlink: noop,
    observeIptables: noop, observeIpset: noop, observeRestClient: noop, watchRestarted: noop, setWatchHealthy: noop,
    observeShim: noop, observeShimReport: () => false, addSubnetGatewayTraffic: noop, countLogLine: noop,
    setReadiness: noop, markReady: noop, observeReconcile: noop, gcRemoved: noop, countKernelCalls: noop, loopBusy: () => noop, close: noop,
  };
}
