// The executor: applies a plan's steps (plan.ts) through the datapath ports (Netlink, PodNet, Vswitch). ADD runs the
// steps in order and, on any failure, runs the undo steps of everything applied so far (and of the step that failed,
// which may have half-happened) in reverse, then rethrows a coded error. DEL steps are all "if exists", so DEL is
// idempotent and succeeds when the netns, the pod or the agent's memory of the container is gone. Upstream facts:
// spec §2.3.1 (pod sysctls), §3.6 (host side), §3.7 (QoS), §3.8 (container side), §2.5 (IPAM-only), §4 (DEL).

import { AgentError, agentError, toAgentError } from '../errors.ts';
import type { Netlink, PodNet, ProbeTiming, Vswitch } from '../datapath/ports.ts';
import { isNetlinkError } from '../datapath/netlink/errors.ts';
import { hostSideOwner } from './ownership.ts';
import { waitCarrier as waitForCarrier } from '../datapath/netlink/wait.ts';
import { undoSteps, type AddPlan, type AddStep, type DelStep, type GatewayCheck, type PlannedAddress, type QosSpec } from './plan.ts';

export type WaitStage = 'ovn_installed' | 'gateway_check';

/** Minimal logger (pino's Logger fits). */
export interface ExecLog {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface ExecutorDeps {
  readonly netlink: Netlink;
  readonly podNet: PodNet;
  readonly vswitch: Vswitch;
  readonly log?: ExecLog;
  /** seconds spent in a wait stage (metrics: kube_ovn_agent_cni_wait_duration_seconds) */
  readonly onWait?: (stage: WaitStage, seconds: number) => void;
  /**
   * IPv4 conflict probe timing. The RFC 5227 defaults take 4-9 s per address; the agent passes short, bounded timings
   * (probeTiming(ms) below) so a probe costs a fraction of a second (upstream: --enable-arp-detect-ip-conflict).
   * Default: probeTiming(DEFAULT_PROBE_MS).
   */
  readonly probe?: Partial<ProbeTiming>;
  /** per-try timeout of a gateway ping (default 250 ms; the whole check is bounded by the plan's timeout) */
  readonly gatewayPingTryMs?: number;
  /** does a netns path still exist (ownership proof of a leftover; default: the filesystem) */
  readonly netnsExists?: (path: string) => Promise<boolean>;
  /** test hook: runs before each ADD step (throw to inject a fault at that step) */
  readonly beforeStep?: (step: AddStep, index: number) => void | Promise<void>;
}

/** The executor's probe bound when the caller gives none (config: --ip-conflict-probe-time, same default). */
export const DEFAULT_PROBE_MS = 60;

/** Probe timing that fits in `totalMs`: no random pre-wait, 3 probes totalMs/6 apart, then listen totalMs/2. */
export function probeTiming(totalMs: number): ProbeTiming {
  const gap = Math.max(1, Math.floor(totalMs / 6));
  return { probeWaitMs: 0, probeNum: 3, probeMinMs: gap, probeMaxMs: gap, announceWaitMs: Math.max(1, Math.floor(totalMs / 2)) };
}

export interface AddOutcome {
  /** ms per applied step, in order (a bench can sum everything before waitOvnInstalled) */
  readonly stepMs: readonly { op: AddStep['op']; ms: number }[];
}

const isV4 = (a: PlannedAddress): boolean => a.family === 4;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Applies an ADD plan. On failure everything this ADD created is removed (undo in reverse), and the error is rethrown
 * as an AgentError (netlink -> KOA_NETLINK, OVSDB -> KOA_OVSDB, timeouts -> KOA_TIMEOUT, ...). `signal` (the pod was
 * deleted) stops the ADD between steps and inside the gateway check (KOA_TRY_AGAIN), with the same rollback.
 */
export async function applyAdd(plan: AddPlan, deps: ExecutorDeps, signal?: AbortSignal): Promise<AddOutcome> {
  const applied: AddStep[] = [];
  const stepMs: { op: AddStep['op']; ms: number }[] = [];
  for (const [i, step] of plan.steps.entries()) {
    const t0 = performance.now();
    try {
      await deps.beforeStep?.(step, i);
      if (signal?.aborted) throw agentError('KOA_TRY_AGAIN', `ADD stopped before ${step.op}: ${String(signal.reason instanceof Error ? signal.reason.message : signal.reason)}`);
      await runAddStep(step, deps, signal);
    } catch (e) {
      // the failing step may have half-happened (a veth whose name existed, a port write that timed out): its own
      // undo runs too; every undo step is "if exists"
      // ...except when the step refused to touch a live attachment it did not create (a repeated ADD)
      const undo = undoSteps(e instanceof AlreadyWired ? applied : [...applied, step]);
      const err = toAgentError(e);
      deps.log?.warn({ step: step.op, code: err.code, err: err.message, undo: undo.map((u) => u.op) }, 'ADD failed; rolling back');
      const left = await applyDelSteps(undo, deps, { bestEffort: true });
      if (left.length) deps.log?.warn({ failed: left }, 'rollback left something behind');
      throw err;
    }
    applied.push(step);
    stepMs.push({ op: step.op, ms: performance.now() - t0 });
  }
  return { stepMs };
}

/** A repeated ADD found this container's NIC already wired, or the name belongs to another pod: the failing step must not be undone. */
class AlreadyWired extends AgentError {}

/**
 * Host veth names derive from the container ID's first 12 characters, so EEXIST means this container's NIC exists
 * already, or another container whose ID starts alike owns the name. If the peer still sits in this pod's netns the
 * attachment is live: refuse without touching it (a second ADD without DEL must not break a working pod). If the OVS
 * row of that name does not prove it is this pod's (ownership.ts), it is another pod's NIC: refuse, untouched.
 * Otherwise it is the leftover of an interrupted ADD: remove it and create afresh, once.
 */
async function createPodVeth(step: Extract<AddStep, { op: 'createVeth' }>, d: ExecutorDeps): Promise<void> {
  const nl = d.netlink;
  const spec = {
    name: step.host, ...(step.mtu > 0 ? { mtu: step.mtu } : {}),
    peer: { name: step.container, netns: step.netns, ...(step.mtu > 0 ? { mtu: step.mtu } : {}) },
  };
  try {
    return await nl.createVeth(spec);
  } catch (e) {
    if (!isNetlinkError(e, 'EEXIST')) throw e;
    const host = await nl.getLink(null, step.host);
    if (host?.kind === 'veth') {
      const podLinks = await nl.listLinks(step.netns).catch(() => []);
      if (podLinks.some((l) => l.kind === 'veth' && l.link === host.index)) {
        const err = agentError('KOA_ALREADY_WIRED', step.netns, step.host);
        throw new AlreadyWired(err.code, err.message);
      }
    }
    const owner = await hostSideOwner(d, { host: step.host, podName: step.podName, podNamespace: step.podNamespace, netns: step.netns });
    if (!owner.mine) {
      const err = agentError('KOA_HOST_NIC_TAKEN', step.host, owner.why);
      throw new AlreadyWired(err.code, err.message);
    }
    d.log?.info({ link: step.host, netns: step.netns }, 'removing the leftover host veth of an interrupted ADD of this pod');
    await nl.deleteLink(null, step.host, { ignoreMissing: true });
    return nl.createVeth(spec);
  }
}

/** `p`, or a KOA_TRY_AGAIN rejection as soon as `signal` aborts (the pod deleted, the agent shutting down). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined, what: string): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(agentError('KOA_TRY_AGAIN',
      `stopped ${what}: ${String(signal.reason instanceof Error ? signal.reason.message : signal.reason)}`));
    if (signal.aborted) { onAbort(); return; }
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

async function runAddStep(step: AddStep, d: ExecutorDeps, signal?: AbortSignal): Promise<void> {
  const { netlink: nl, podNet, vswitch: vs } = d;
  switch (step.op) {
    case 'podSysctls':
      return podSysctls(step.netns, d);
    case 'createVeth':
      return createPodVeth(step, d);
    case 'renameInNetns':
      return nl.setLink(step.netns, step.link, { name: step.newName, alias: step.alias });
    case 'ovsAddPort': {
      const ids = step.externalIds;
      const ips = ids.ip ? ids.ip.split(',') : [];
      await vs.addPodPort({
        bridge: step.bridge, name: step.port, ifaceId: ids['iface-id'] ?? '', podName: ids.pod_name ?? '',
        podNamespace: ids.pod_namespace ?? '', podNetns: ids.pod_netns ?? '', ...(ips.length ? { ips } : {}),
        ...(ids['encap-ip'] ? { encapIp: ids['encap-ip'] } : {}),
      });
      return;
    }
    case 'hostLinkUp':
      return nl.setLink(null, step.link, { up: true, txQueueLen: step.txQueueLen });
    case 'setQos':
      return setQos(step.port, step.qos, vs);
    case 'txChecksumOff':
      return podNet.setTxChecksum(step.netns, step.link, false);
    case 'waitOvnInstalled': {
      const t0 = performance.now();
      try {
        await untilAborted(vs.waitOvnInstalled(step.iface, step.timeoutMs), signal, `waiting for ovn-installed on ${step.iface}`);
      } finally {
        d.onWait?.('ovn_installed', (performance.now() - t0) / 1000);
      }
      return;
    }
    case 'waitLocalnet':
      await untilAborted(vs.waitOfport(step.iface, step.timeoutMs), signal, `waiting for the localnet patch port ${step.iface}`);
      return;
    case 'configureContainerNic':
      return configureContainerNic(step, d);
    case 'announce':
      return announce(step, d);
    case 'addRoutes':
      for (const r of step.routes) {
        const isDefault = r.dst === '0.0.0.0/0' || r.dst === '::/0';
        try {
          await nl.addRoute(step.netns, { family: r.family, ...(isDefault ? {} : { dst: r.dst }), ...(r.gw ? { gateway: r.gw } : {}), dev: step.link },
            { replace: true });
        } catch (e) {
          // upstream only logs failing custom routes (§3.8.7); a default route via the gateway must exist
          if (isDefault) throw e;
          d.log?.warn({ dst: r.dst, gw: r.gw, err: e instanceof Error ? e.message : String(e) }, 'custom route not installed');
        }
      }
      return;
    case 'gatewayCheck':
      return gatewayCheck(step.netns, step.link, step.check, d, signal);
    case 'removeDefaultRoutes':
      for (const family of step.families) {
        const routes = await nl.listRoutes(step.netns, { family });
        for (const r of routes.filter((x) => x.dst === null)) {
          await nl.deleteRoute(step.netns, { family, ...(r.gateway ? { gateway: r.gateway } : {}), ...(r.metric !== undefined ? { metric: r.metric } : {}) },
            { ignoreMissing: true });
        }
      }
      return;
  }
}

const POD_SYSCTLS: readonly [string, string][] = [
  ['net.ipv6.conf.all.disable_ipv6', '0'], ['net.ipv6.conf.default.disable_ipv6', '0'],
  ['net.ipv6.conf.all.accept_ra', '0'], ['net.ipv6.conf.default.accept_ra', '0'],
];

/**
 * IPv6 on, router advertisements ignored (runtimes' "none" network disables IPv6); missing or read-only: skipped.
 * A value already in place is not written again: the kernel's disable_ipv6 handler takes RTNL with a trylock and
 * restarts the write() until it gets it, so under a burst (RTNL busy with other pods' links) each write spun on the
 * event loop's thread; reading takes no lock.
 */
async function podSysctls(netns: string, d: ExecutorDeps): Promise<void> {
  for (const [k, v] of POD_SYSCTLS) {
    const now = await d.podNet.getSysctl(netns, k).catch(() => undefined);
    if (now?.trim() === v) continue;
    try {
      await d.podNet.setSysctl(netns, k, v);
    } catch (e) {
      if (isNetlinkError(e, 'ENOENT', 'EACCES', 'EPERM', 'EROFS')) continue;
      throw e;
    }
  }
}

/** Pod egress = OVS ingress policing; pod ingress = OVS egress HTB queue; then netem (§3.7). */
async function setQos(port: string, q: QosSpec, vs: Vswitch): Promise<void> {
  if (q.egressRate !== undefined) await vs.setIngressPolicing(q.ifaceId, q.egressRate, q.egressBurst);
  if (q.ingressRate !== undefined && q.ingressRate > 0) {
    await vs.setHtbQos({ ifaceId: q.ifaceId, pod: q.podKey, port, rateMbps: q.ingressRate, ...(q.ingressBurst !== undefined ? { burstMbit: q.ingressBurst } : {}) });
  }
  if (q.latency || q.jitter || q.limit || q.loss) {
    await vs.setNetemQos({ ifaceId: q.ifaceId, pod: q.podKey, port, ...(q.latency ? { latencyMs: q.latency } : {}),
      ...(q.jitter ? { jitterMs: q.jitter } : {}), ...(q.limit ? { limit: q.limit } : {}), ...(q.loss ? { lossPercent: q.loss } : {}) });
  }
}

type ConfigureStep = Extract<AddStep, { op: 'configureContainerNic' }>;

/** MAC (OVN port security needs LSP MAC == NIC MAC), MTU, up, then addresses with the IPv4 probe / IPv6 DAD rules (§3.8.4). */
async function configureContainerNic(s: ConfigureStep, d: ExecutorDeps): Promise<void> {
  const { netlink: nl, podNet } = d;
  const v4 = s.addresses.filter(isV4);
  const v6 = s.addresses.filter((a) => !isV4(a));
  if (v6.length && s.ipv6Dad) await noDadStartDelay(s.netns, s.link, d);
  await nl.setLink(s.netns, s.link, { mac: s.mac, ...(s.mtu > 0 ? { mtu: s.mtu } : {}), up: true });
  await waitCarrier(s.netns, s.link, d);
  // IPv6 first: its DAD (1 s in the kernel) then runs while the IPv4 conflict probe listens
  for (const a of v6) await nl.addAddress(s.netns, s.link, { cidr: a.address, nodad: !s.ipv6Dad }, { replace: true });
  if (s.ipv4ConflictProbe && v4.length) {
    const timing = d.probe ?? probeTiming(DEFAULT_PROBE_MS);
    const results = await Promise.all(v4.map(async (a) => ({ a, r: await podNet.probeIPv4(s.netns, s.link, a.ip, timing) })));
    for (const { a, r } of results) {
      if (r.conflict) throw agentError('KOA_DATAPATH', `IP address ${a.ip} has already been used by host with MAC ${r.mac}`);
    }
  }
  for (const a of v4) await nl.addAddress(s.netns, s.link, { cidr: a.address }, { replace: true });
}

type AnnounceStep = Extract<AddStep, { op: 'announce' }>;

/** GARP / unsolicited NA once the port is bound; best effort: a lost one only delays the neighbours' learning. */
async function announce(s: AnnounceStep, d: ExecutorDeps): Promise<void> {
  const { podNet } = d;
  const v4 = s.addresses.filter(isV4);
  const v6 = s.addresses.filter((a) => !isV4(a));
  const best = (p: Promise<void>, what: string): Promise<void> =>
    p.catch((e: unknown) => d.log?.debug({ err: e instanceof Error ? e.message : String(e) }, `${what} not sent`));
  await Promise.all([
    ...v4.map((a) => best(podNet.announceIPv4(s.netns, s.link, a.ip, { count: 1 }), 'gratuitous ARP')),
    // as upstream: one unsolicited NA right after the address (with DAD on, gatewayCheck sends another once it is preferred)
    ...v6.map((a) => best(podNet.announceIPv6(s.netns, s.link, a.ip), 'neighbour advertisement')),
  ]);
  if (v4.length && s.secondGarp) {
    // upstream sends a second announcement 2 s later; ours goes out in the background 1 s later, never failing the ADD
    const t = setTimeout(() => { for (const a of v4) void best(podNet.announceIPv4(s.netns, s.link, a.ip, { count: 1 }), 'second gratuitous ARP'); }, 1000);
    t.unref();
  }
}

/**
 * The kernel starts DAD of each IPv6 address (link-local included) after a random delay of up to the interface's
 * router_solicitation_delay (1 s), then waits RetransTimer (1 s) for a conflicting answer: 1-2 s per dual-stack ADD.
 * That delay (RFC 4862 §5.4.2) spreads the first solicitations of many hosts that boot together; a veth created
 * for one pod has nobody to collide with, so it is 0 on this NIC. DAD itself still runs and a conflict still fails
 * the ADD. Skipped where the kernel has no IPv6 (no such file).
 */
async function noDadStartDelay(netns: string, link: string, d: ExecutorDeps): Promise<void> {
  try {
    await d.podNet.setSysctl(netns, `net/ipv6/conf/${link}/router_solicitation_delay`, '0');
  } catch (e) {
    if (!isNetlinkError(e, 'ENOENT', 'EACCES', 'EPERM', 'EROFS')) throw e;
    d.log?.debug({ link, err: e instanceof Error ? e.message : String(e) }, 'router_solicitation_delay not set; DAD starts after the kernel delay');
  }
}

/**
 * Until the kernel's linkwatch has processed the veth's carrier-on, both ends transmit through the noop qdisc, which
 * drops: our GARP and the first ARP request for the gateway would be lost, and the kernel only retries ARP after 1 s
 * (seen as ~1 s gateway checks in quick ADD sequences). IFF_RUNNING appears in the same linkwatch pass that attaches
 * the real qdisc, so wait (bounded) for the link events saying both ends have it; proceed anyway at the bound.
 */
async function waitCarrier(netns: string, link: string, d: ExecutorDeps, boundMs = 250): Promise<void> {
  const t0 = performance.now();
  const r = await waitForCarrier(d.netlink, netns, link, boundMs);
  if (!r.ok) d.log?.warn({ link, podRunning: r.podRunning, hostRunning: r.hostRunning, ms: Math.round(performance.now() - t0) }, 'veth carrier not up yet; going on');
}

/**
 * IPv6 addresses preferred (DAD done), then each gateway answers from inside the pod: an IPv4 gateway of an underlay
 * subnet (the `arping` modes) by ARP, as upstream, since a physical gateway may drop ICMP to itself; every other
 * gateway by ICMP/ICMPv6 echo (an IPv4 echo needs the same ARP resolution first, and proves the OVN path too).
 * Bounded by check.timeoutMs; "not concerned" modes try once and ignore the answer (§3.8.9).
 */
async function gatewayCheck(netns: string, link: string, check: GatewayCheck, d: ExecutorDeps, signal?: AbortSignal): Promise<void> {
  const t0 = performance.now();
  const deadline = t0 + check.timeoutMs;
  const tryMs = d.gatewayPingTryMs ?? 250;
  try {
    const v6 = check.targets.filter((t) => t.family === 6);
    const dad = async (): Promise<void> => {
      if (v6.length === 0) return;
      const r = await d.podNet.waitIPv6Dad(netns, link, { timeoutMs: Math.max(1, Math.min(5000, deadline - performance.now())) });
      if (r.dadFailed.length) throw agentError('KOA_DATAPATH', `IPv6 duplicate address detection failed for ${r.dadFailed.join(', ')} (the address is used by another host)`);
      if (!r.ok) throw agentError('KOA_TIMEOUT', Math.round(performance.now() - t0), `IPv6 addresses ${r.tentative.join(', ')} to leave the tentative state`);
      for (const t of v6) await d.podNet.announceIPv6(netns, link, t.ip).catch(() => undefined);
    };
    const arp = check.mode === 'arping' || check.mode === 'arping-not-concerned';
    const probe = (t: GatewayCheck['targets'][number], timeoutMs: number): Promise<unknown> => (arp && t.family === 4
      ? d.podNet.arping(netns, link, t.gateway, { src: t.ip, timeoutMs, tries: 1 })
      : d.podNet.ping(netns, t.gateway, { timeoutMs, tries: 1, ...(t.family === 6 ? { dev: link } : {}) }));
    const one = async (t: GatewayCheck['targets'][number]): Promise<void> => {
      if (t.family === 6) await dadDone;
      if (!check.concerned) {
        await probe(t, 1000).catch(() => null);
        return;
      }
      // one echo per try, so that a deleted pod (signal) stops the check within one try (upstream: within 5 s)
      for (;;) {
        if (signal?.aborted) throw agentError('KOA_TRY_AGAIN', `gateway check of ${t.ip} stopped: ${String(signal.reason instanceof Error ? signal.reason.message : signal.reason)}`);
        const started = performance.now();
        const left = deadline - started;
        const r = await probe(t, Math.min(tryMs, Math.max(1, left)));
        if (r) return;
        // a try that failed early (no route yet, an ICMP error) waits out its slot: no busy loop
        const rest = Math.min(tryMs, deadline - performance.now()) - (performance.now() - started);
        if (rest > 0) await sleep(rest);
        if (deadline - performance.now() <= 0) throw agentError('KOA_TIMEOUT', check.timeoutMs, `gateway ${t.gateway} to answer from ${t.ip} (gateway check)`);
      }
    };
    const dadDone = dad();
    dadDone.catch(() => undefined);
    await Promise.all([dadDone, ...check.targets.map(one)]);
  } finally {
    d.onWait?.('gateway_check', (performance.now() - t0) / 1000);
  }
}

export interface DelOptions {
  /** keep going after a failing step (rollback); the failures are returned instead of thrown */
  readonly bestEffort?: boolean;
}

/** Runs removal steps in order. Each succeeds when there is nothing to remove. */
export async function applyDelSteps(steps: readonly DelStep[], d: Pick<ExecutorDeps, 'netlink' | 'vswitch' | 'log'>, o: DelOptions = {}): Promise<string[]> {
  const failed: string[] = [];
  for (const s of steps) {
    try {
      await runDelStep(s, d);
    } catch (e) {
      if (!o.bestEffort) throw toAgentError(e);
      failed.push(`${s.op}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return failed;
}

async function runDelStep(s: DelStep, d: Pick<ExecutorDeps, 'netlink' | 'vswitch' | 'log'>): Promise<void> {
  switch (s.op) {
    case 'ovsDelPort':
      await d.vswitch.deletePort(s.port);
      return;
    case 'destroyQos':
      await d.vswitch.deletePodQos(s.podKey);
      return;
    case 'deleteLink': {
      const l = await d.netlink.getLink(null, s.link);
      if (!l) return;
      if (s.onlyIfVeth && l.kind !== 'veth') {
        d.log?.warn({ link: s.link, kind: l.kind }, 'not deleting a link that is not a veth');
        return;
      }
      await d.netlink.deleteLink(null, s.link, { ignoreMissing: true });
      return;
    }
  }
}
