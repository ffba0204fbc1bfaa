// OvnBackend: the real CniBackend. ADD = prepareAdd (provider check, event-driven annotation wait bounded by config,
// subnet + node facts, plan) -> executor (rollback on failure) -> the plan's CNI result; the IP CR update runs
// alongside and never fails the ADD. DEL plans from the request alone (no annotations needed) and is idempotent.
// CHECK compares the live pod link with prevResult; STATUS reports readiness; GC removes our stale pod ports.
// The dispatcher (cni/dispatcher.ts) has already validated the request and holds the per-container lock.

import { agentError, toAgentError } from '../errors.ts';
import type { CniBackend } from '../cni/backend.ts';
import type { CniRequest, CniResult, GcRequest, NetConf } from '../cni/types.ts';
import { updateIpCr, type IpCrApi, type IpCrUpdateOptions } from '../k8s/ipcr.ts';
import { isOvnProvider } from './annotations.ts';
import { applyAdd, applyDelSteps, type AddOutcome, type ExecLog, type ExecutorDeps } from './executor.ts';
import { vethNames } from './names.ts';
import { hostSideOwner } from './ownership.ts';
import { INTEGRATION_BRIDGE, planDel, type AddPlan, type DelStep } from './plan.ts';
import { podTarget, type AgentEvent } from '../k8s/events.ts';
import { Slots } from '../limits.ts';
import { sameIp } from '../net/ip.ts';
import { portsNotKept } from './gc.ts';
import { prepareAdd, type PrepareDeps } from './prepare.ts';
import { delRequestFromCni, nicRequestFromCni } from './request.ts';

export interface OvnBackendOptions {
  readonly prepare: PrepareDeps;
  readonly exec: ExecutorDeps;
  readonly nodeName: string;
  /** the IP CR API; absent = no IP CR update (tests) */
  readonly ipApi?: IpCrApi;
  readonly ipCrOptions?: IpCrUpdateOptions;
  readonly log?: ExecLog;
  /** seconds waited for the pod's annotations (metrics stage `annotation`) */
  readonly onAnnotationWait?: (seconds: number) => void;
  /** STATUS: the agent's readiness (the same answer as /readyz): true, or why ADD cannot succeed now */
  readonly status?: () => true | string | Promise<true | string>;
  /** the node-ready gate: an ADD waits here (bounded) until the node is initialised, then fails with code 11 */
  readonly gate?: { wait(timeoutMs: number, signal?: AbortSignal): Promise<void> };
  /** ADDs in the datapath at once (default 32); the others queue in arrival order. DELs are never limited. */
  readonly maxParallelAdds?: number;
  /** bound of that wait (default 30 s) */
  readonly gateTimeoutMs?: number;
  /** Kubernetes Events about pods (rate-limited by the recorder) */
  readonly events?: { record(e: AgentEvent): boolean };
  /** observer of each finished ADD (bench / logs): the plan and the executor's step timings */
  readonly onAdded?: (plan: AddPlan, outcome: AddOutcome, req: CniRequest) => void;
}

export class OvnBackend implements CniBackend {
  readonly #o: OvnBackendOptions;
  /** containers with an ADD in progress: GC never touches them */
  readonly #adding = new Set<string>();
  /** containers with a DEL in progress (the GC reconciler leaves them to it) */
  readonly #deleting = new Set<string>();
  /** host veth name -> container ID of the ADD in flight that uses it (two IDs alike in 12 characters share a name) */
  readonly #hostNames = new Map<string, string>();
  readonly #slots: Slots;
  /** IP CR updates still running (tests and shutdown can wait for them) */
  readonly #ipCrUpdates = new Set<Promise<void>>();

  constructor(o: OvnBackendOptions) {
    this.#o = o;
    this.#slots = new Slots(o.maxParallelAdds ?? 32);
  }

  async add(req: CniRequest, signal?: AbortSignal): Promise<CniResult> {
    try {
      const r = await this.#add(req, signal);
      this.#event(req, 'Normal', 'PodNetworkConfigured',
        `configured ${req.ifName} (${req.netconf.provider || 'ovn'}): ${(r.ips ?? []).map((i) => i.address).join(', ') || 'no address'}`);
      return r;
    } catch (e) {
      const err = toAgentError(e);
      // waiting for the controller or the node is not a failure worth an Event; kubelet retries those
      if (err.code !== 'KOA_TRY_AGAIN') this.#event(req, 'Warning', 'PodNetworkConfigureFailed', `configuring ${req.ifName} failed: ${err.message}`);
      throw err;
    }
  }

  #event(req: CniRequest, type: 'Normal' | 'Warning', reason: string, message: string): void {
    if (!this.#o.events) return;
    const uid = req.podUid ?? this.#o.prepare.pods.get(req.podNamespace, req.podName)?.metadata?.uid;
    this.#o.events.record({ target: podTarget(req.podNamespace, req.podName, uid), type, reason, message });
  }

  /** the host veth name an ADD/DEL of `req` uses, or undefined when it creates none */
  #hostName(req: CniRequest): string | undefined {
    if (req.netconf.ipamMode || !isOvnProvider(req.netconf.provider)) return undefined;
    const names = vethNames(req.containerId, req.ifName);
    return typeof names === 'string' ? undefined : names.host;
  }

  async #add(req: CniRequest, stop?: AbortSignal): Promise<CniResult> {
    // the per-container lock does not serialise two containers whose IDs share 12 characters: the first one's ADD
    // owns the host name until it ends, the second is refused without touching anything
    const host = this.#hostName(req);
    const holder = host === undefined ? undefined : this.#hostNames.get(host);
    if (host !== undefined && holder !== undefined && holder !== req.containerId) {
      throw agentError('KOA_HOST_NIC_TAKEN', host, `container ${holder} has an ADD in flight with that name`);
    }
    const claimed = host !== undefined && holder === undefined;
    if (claimed) this.#hostNames.set(host, req.containerId);
    this.#adding.add(req.containerId);
    try {
      await this.#o.gate?.wait(this.#o.gateTimeoutMs ?? 30_000, stop);
      const nic = nicRequestFromCni(req);
      const t0 = performance.now();
      let prepared;
      try {
        prepared = await prepareAdd(this.#o.prepare, nic, stop);
      } finally {
        this.#o.onAnnotationWait?.((performance.now() - t0) / 1000);
      }
      const { plan } = prepared;
      if (prepared.via === 'event') {
        this.#o.log?.info({ containerId: req.containerId, pod: `${req.podNamespace}/${req.podName}`, waitedMs: Math.round(prepared.waitedMs) }, 'pod annotations arrived');
      }
      for (const w of plan.warnings) this.#o.log?.warn({ pod: `${req.podNamespace}/${req.podName}`, ifName: plan.ifName }, w);
      if (plan.ipCr && this.#o.ipApi) this.#updateIpCr(plan.ipCr.name, plan.ipCr.subnet);
      // the pod deleted while we wire it: stop (upstream cancels its gateway check when the pod is gone)
      const gone = new AbortController();
      const key = `${req.podNamespace}/${req.podName}`;
      const unsubscribe = this.#o.prepare.pods.subscribe((k, change, p) => {
        if (k === key && change === 'delete' && (!req.podUid || !p.metadata?.uid || p.metadata.uid === req.podUid)) gone.abort(new Error(`pod ${key} was deleted`));
      });
      let outcome: AddOutcome;
      try {
        // at most maxParallelAdds ADDs in the datapath at once; the rest wait their turn in arrival order (the
        // annotation wait above holds no slot: a pod waiting for the controller never delays another)
        const signal = stop ? AbortSignal.any([gone.signal, stop]) : gone.signal;
        outcome = await this.#slots.run(() => applyAdd(plan, this.#o.exec, signal));
      } finally {
        unsubscribe();
      }
      this.#o.log?.info({ containerId: req.containerId, pod: `${req.podNamespace}/${req.podName}`, ifName: plan.ifName, kind: plan.kind,
        waitedMs: Math.round(prepared.waitedMs), steps: Object.fromEntries(outcome.stepMs.map((s) => [s.op, Math.round(s.ms * 10) / 10])) }, 'pod NIC configured');
      this.#o.onAdded?.(plan, outcome, req);
      return plan.result;
    } finally {
      this.#adding.delete(req.containerId);
      if (claimed) this.#hostNames.delete(host);
    }
  }

  /** Concurrent with the datapath work: a missing CR (retried ~20 s upstream) adds no latency to the ADD. */
  #updateIpCr(name: string, subnet: string): void {
    const p = updateIpCr(this.#o.ipApi!, name, subnet, this.#o.nodeName, this.#o.ipCrOptions).then((r) => {
      if (r.result === 'missing' || r.result === 'failed') this.#o.log?.warn({ ip: name, ...r }, 'IP CR not updated');
      else this.#o.log?.debug({ ip: name, ...r }, 'IP CR update');
    }, (e: unknown) => { this.#o.log?.warn({ ip: name, err: String(e) }, 'IP CR update failed'); });
    this.#ipCrUpdates.add(p);
    void p.finally(() => this.#ipCrUpdates.delete(p));
  }

  /** Resolves when every IP CR update started so far has finished. */
  async settled(): Promise<void> { await Promise.all([...this.#ipCrUpdates]); }

  /** Removes one pod port found stale by the GC: the OVS port, the pod's QoS rows, the host veth. Idempotent. */
  async removePort(port: string, pod: string): Promise<void> {
    const failed = await applyDelSteps([{ op: 'ovsDelPort', bridge: INTEGRATION_BRIDGE, port }, { op: 'destroyQos', podKey: pod },
      { op: 'deleteLink', link: port, onlyIfVeth: true }], this.#o.exec, { bestEffort: true });
    if (failed.length) throw agentError('KOA_DATAPATH', `could not remove port ${port}: ${failed.join('; ')}`);
  }

  /** container IDs with an ADD or DEL in progress */
  inFlight(): string[] { return [...this.#adding, ...this.#deleting]; }

  async del(req: CniRequest): Promise<void> {
    this.#deleting.add(req.containerId);
    try {
      if (await this.#del(req)) this.#event(req, 'Normal', 'PodNetworkRemoved', `removed ${req.ifName} (${req.netconf.provider || 'ovn'})`);
    } catch (e) {
      this.#event(req, 'Warning', 'PodNetworkRemoveFailed', `removing ${req.ifName} failed: ${toAgentError(e).message}`);
      throw e;
    } finally {
      this.#deleting.delete(req.containerId);
    }
  }

  /** true when there was something to remove */
  async #del(req: CniRequest): Promise<boolean> {
    const dreq = delRequestFromCni(req);
    const provider = dreq.provider === '' ? 'ovn' : dreq.provider;
    // KubeVirt: QoS rows carry the VM name; the pod (if still cached) says which
    const pod = this.#o.prepare.pods.get(req.podNamespace, req.podName);
    const vm = pod?.metadata?.annotations?.[`${provider}.kubernetes.io/virtualmachine`] || undefined;
    const plan = planDel(dreq, vm);
    if (plan.skip) { this.#o.log?.debug({ containerId: req.containerId, reason: plan.skip }, 'DEL: nothing to remove'); return false; }
    let steps = plan.steps;
    // the host side goes only when it is provably this pod's: the same name may be another live pod's NIC
    const holder = plan.hostNic === undefined ? undefined : this.#hostNames.get(plan.hostNic);
    const owner = holder !== undefined && holder !== req.containerId
      ? { mine: false as const, why: `container ${holder} has an ADD in flight with that name` }
      : await hostSideOwner(this.#o.exec, { host: plan.hostNic!, podName: req.podName, podNamespace: req.podNamespace, vm, netns: req.netns });
    if (!owner.mine) {
      this.#o.log?.warn({ containerId: req.containerId, pod: `${req.podNamespace}/${req.podName}`, port: plan.hostNic, why: owner.why }, 'DEL: the host side is another pod\'s; left alone');
      steps = steps.filter((s) => s.op === 'destroyQos');
    }
    await applyDelSteps(steps, this.#o.exec);
    // the pod cache still has the pod on the runtime's first DEL; the later empty-netns DELs find nothing to announce
    return req.netns !== '';
  }

  async check(req: CniRequest, prev: CniResult): Promise<void> {
    const n = req.netconf;
    if (n.ipamMode || !isOvnProvider(n.provider)) return; // the calling plugin owns the link
    const { netlink, vswitch } = this.#o.exec;
    const names = vethNames(req.containerId, req.ifName);
    if (typeof names === 'string') throw agentError('KOA_UNKNOWN_CONTAINER', req.containerId, names);
    const fail = (why: string): never => { throw agentError('KOA_DATAPATH', `CHECK ${req.containerId}/${req.ifName}: ${why}`); };
    if (!vswitch.getInterface(names.host)) fail(`OVS port ${names.host} is missing`);
    let link;
    try {
      link = await netlink.getLink(req.netns, req.ifName);
    } catch (e) {
      fail(`cannot read the pod netns ${req.netns}: ${toAgentError(e).message}`);
    }
    if (!link) return fail(`no link ${req.ifName} in ${req.netns}`);
    const idx = (prev.interfaces ?? []).findIndex((i) => i.name === req.ifName && (!i.sandbox || i.sandbox === req.netns));
    const want = idx >= 0 ? prev.interfaces![idx]! : undefined;
    if (want?.mac && want.mac.toLowerCase() !== (link.mac ?? '').toLowerCase()) fail(`MAC is ${link.mac}, prevResult says ${want.mac}`);
    if (!link.up) fail(`link ${req.ifName} is down`);
    const have = new Set((await netlink.listAddresses(req.netns, { dev: req.ifName })).map((a) => `${a.address}/${a.prefixLen}`));
    for (const ip of prev.ips ?? []) {
      if (ip.interface !== undefined && ip.interface !== idx) continue;
      const [addr, len] = ip.address.split('/');
      const canon = [...have].find((h) => { const [ha, hl] = h.split('/'); return hl === len && sameIp(ha!, addr!); });
      if (!canon) fail(`address ${ip.address} is not configured`);
    }
  }

  async status(_netconf: NetConf): Promise<void> {
    const r = (await this.#o.status?.()) ?? true;
    if (r !== true) throw agentError('KOA_NOT_READY', r);
  }

  /**
   * CNI GC: removes our pod ports on br-int (Interface external_ids vendor=kube-ovn with pod_name/pod_namespace, a
   * `<cid>[_<if>]_h` veth name) whose container has no valid attachment at all, with their QoS rows and host veth.
   * A container with any valid attachment keeps all its ports (Multus attachment NICs are not in this network's
   * list); containers with an ADD in progress are never touched. IPAM-only networks own no ports.
   */
  async gc(req: GcRequest): Promise<void> {
    const n = req.netconf;
    if (n.ipamMode || !isOvnProvider(n.provider)) return;
    const valid = req.validAttachments.map((a) => a.containerID);
    const steps: DelStep[] = [];
    const removed: string[] = [];
    for (const name of portsNotKept(this.#o.exec.vswitch, [...valid, ...this.#adding])) {
      const ids = this.#o.exec.vswitch.getInterface(name)?.externalIds ?? {};
      steps.push({ op: 'ovsDelPort', bridge: INTEGRATION_BRIDGE, port: name }, { op: 'destroyQos', podKey: `${ids.pod_namespace}/${ids.pod_name}` },
        { op: 'deleteLink', link: name, onlyIfVeth: true });
      removed.push(name);
    }
    if (removed.length) this.#o.log?.info({ ports: removed }, 'GC: removing stale pod ports');
    const failed = await applyDelSteps(steps, this.#o.exec, { bestEffort: true });
    if (failed.length) throw agentError('KOA_DATAPATH', `GC could not remove everything: ${failed.join('; ')}`);
  }
}
