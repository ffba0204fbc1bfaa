// Service CIDRs (spec §5.7, the `ovn40services`/`ovn60services` sets): `--service-cluster-ip-range` merged with the
// ServiceCIDR objects (networking.k8s.io/v1, GA in Kubernetes 1.33) whose `Ready` condition is True. A cluster can
// grow its Service range at run time by adding a ServiceCIDR; the flag alone would leave the new range out of the
// services set, so its ClusterIPs would be masqueraded and rejected like any other destination.
//
// Older API servers do not serve the resource: discovery (GET /apis/networking.k8s.io/v1) says so once at start,
// and then there is no watch and the flag is the whole answer, with nothing unready. A discovery that fails for
// another reason (API server unreachable) is retried with the watches' backoff; until it answers, the source
// reports itself not synced, like any other watch that has not listed yet. Discovery is not repeated once it
// answered: an API server upgraded under a running agent is picked up when the agent restarts (its DaemonSet is
// rolled with the cluster upgrade anyway).

import { cidrNetwork } from '../net/ip.ts';
import { DEFAULT_BACKOFF, restartDelay, type BackoffOptions } from './backoff.ts';
import type { KubeObject } from './types.ts';
import { realTimers, type Log, type ResilientListWatch, type Timers, type WatchHealth } from './watch.ts';
import { byName } from '../order.ts';

/** networking.k8s.io/v1 ServiceCIDR (cluster-scoped): the fields we read. */
export interface ServiceCidr extends KubeObject {
  spec?: { cidrs?: string[] };
  status?: { conditions?: { type?: string; status?: string; reason?: string }[] };
}

export const SERVICE_CIDR_RESOURCE = 'servicecidrs';

/** Pure: the canonical CIDRs of the objects whose Ready condition is True, in name order. */
export function readyServiceCidrs(objects: readonly ServiceCidr[]): string[] {
  const ready = objects.filter((o) => o.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
  ready.sort(byName);
  return ready.flatMap((o) => o.spec?.cidrs ?? []);
}

/** Pure: the flag's CIDRs, then the Ready objects' ones, each once (canonical network form; invalid ones dropped). */
export function mergeServiceCidrs(flag: readonly string[], objects: readonly ServiceCidr[]): string[] {
  const out: string[] = [];
  for (const c of [...flag, ...readyServiceCidrs(objects)]) {
    const n = cidrNetwork(c);
    if (n !== undefined && !out.includes(n)) out.push(n);
  }
  return out;
}

export interface ServiceCidrSourceOptions {
  /** true: the API serves networking.k8s.io/v1 servicecidrs; false: it does not (404, or not listed); throws: unknown */
  discover(): Promise<boolean>;
  /** builds (does not start) the watch, once discovery said the resource is served */
  watch(): ResilientListWatch<ServiceCidr>;
  readonly backoff?: BackoffOptions;
  readonly timers?: Timers;
  readonly random?: () => number;
  readonly log?: Log;
}

/** The ServiceCIDR objects, watched when the API serves them; the shape of a watch for the watch set. */
export class ServiceCidrSource {
  readonly resource = SERVICE_CIDR_RESOURCE;
  readonly #o: ServiceCidrSourceOptions;
  readonly #t: Timers;
  #state: 'idle' | 'discovering' | 'absent' | 'watching' = 'idle';
  #watch: ResilientListWatch<ServiceCidr> | undefined;
  #attempt = 0;
  #timer: unknown;
  #stopped = false;
  #lastError: string | undefined;
  #ready = '';
  readonly #listeners = new Set<() => void>();
  #waiters: (() => void)[] = [];

  constructor(o: ServiceCidrSourceOptions) {
    this.#o = o;
    this.#t = o.timers ?? realTimers;
  }

  /** 'absent' once discovery said the API has no ServiceCIDRs */
  get state(): 'idle' | 'discovering' | 'absent' | 'watching' { return this.#state; }

  start(): void {
    if (this.#state !== 'idle' || this.#stopped) return;
    this.#state = 'discovering';
    void this.#discover();
  }

  /** every ServiceCIDR object (none when the API has no such resource) */
  list(): ServiceCidr[] { return this.#watch?.store.list() ?? []; }

  /** Called when the set of Ready CIDRs changed (not on other updates of the objects). */
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => { this.#listeners.delete(listener); };
  }

  /** Resolves once the answer is known: the resource is absent, or its first list landed (or stopped). */
  waitSynced(): Promise<void> {
    if (this.#stopped || this.#state === 'absent') return Promise.resolve();
    if (this.#watch) return this.#watch.waitSynced();
    return new Promise((r) => this.#waiters.push(r));
  }

  health(): WatchHealth {
    if (this.#watch) return this.#watch.health();
    const absent = this.#state === 'absent';
    return { resource: this.resource, synced: absent, healthy: absent, restarts: this.#attempt, objects: 0, lastError: this.#lastError, idleMs: 0 };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#t.clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const w of this.#waiters.splice(0)) w();
    await this.#watch?.stop();
  }

  async #discover(): Promise<void> {
    let served: boolean;
    try {
      served = await this.#o.discover();
    } catch (e) {
      if (this.#stopped) return;
      this.#lastError = e instanceof Error ? e.message : String(e);
      const ms = restartDelay(this.#attempt++, this.#o.backoff ?? DEFAULT_BACKOFF, (this.#o.random ?? Math.random)());
      this.#o.log?.warn({ resource: this.resource, err: this.#lastError, retryInMs: ms }, 'API discovery of networking.k8s.io/v1 failed; retrying');
      this.#timer = this.#t.setTimeout(() => { this.#timer = undefined; if (!this.#stopped) void this.#discover(); }, ms);
      return;
    }
    if (this.#stopped) return;
    this.#lastError = undefined;
    if (!served) {
      this.#state = 'absent';
      this.#o.log?.info({ resource: this.resource }, 'the API server has no networking.k8s.io/v1 ServiceCIDRs: the service CIDRs are --service-cluster-ip-range alone');
      for (const w of this.#waiters.splice(0)) w();
      return;
    }
    const w = this.#o.watch();
    this.#watch = w;
    this.#state = 'watching';
    w.store.subscribe(() => {
      const now = readyServiceCidrs(w.store.list()).join(',');
      if (now === this.#ready) return;
      this.#ready = now;
      for (const l of [...this.#listeners]) l();
    });
    w.start();
    const waiters = this.#waiters.splice(0);
    void w.waitSynced().then(() => { for (const x of waiters) x(); });
  }
}
