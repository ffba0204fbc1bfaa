// ResilientListWatch: one list+watch per resource that never gives up. The informer (listwatch.ts) resumes after
// clean closes and relists on 410, but stops on any other error: we restart it with exponential backoff + jitter
// and a minimum interval, restart it when it showed no sign of life for `idleTimeoutMs` (watchdog), and every
// restart relists (a full resync: the store emits exactly the differences). Health (synced / healthy / restarts)
// is exposed and reported through callbacks. Objects go through `decode` before the store (slim.ts keeps only the
// fields the agent reads), so the cache never holds what the API server sent in full.

import { DEFAULT_BACKOFF, nextRestart, type BackoffOptions } from './backoff.ts';
import { ObjectStore } from './store.ts';
import type { KubeList, KubeObject } from './types.ts';

/** What ResilientListWatch needs of an informer (KubeListWatch; unit tests drive a fake one). */
export interface InformerLike<T> {
  on(verb: 'add' | 'update' | 'delete', cb: (obj: T) => void): void;
  on(verb: 'error' | 'connect', cb: (err?: unknown) => void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export type ListFn<T> = () => Promise<KubeList<T>>;
/** Builds a fresh informer around `list` (which the informer must use for every (re)list). */
export type InformerFactory<T> = (list: ListFn<T>) => InformerLike<T>;

export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => { const t = setTimeout(fn, ms); t.unref(); return t; },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** Minimal logger shape (pino's Logger fits). */
export interface Log {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface WatchHealth {
  readonly resource: string;
  /** the first list completed: the store can be trusted */
  readonly synced: boolean;
  /** the current watch is up (listed and no error since) */
  readonly healthy: boolean;
  readonly restarts: number;
  readonly objects: number;
  readonly lastError: string | undefined;
  /** ms since the last event, reconnect or list */
  readonly idleMs: number;
}

export interface ResilientListWatchOptions<T> {
  /** name for health and logs: `pods`, `nodes`, `subnets`, `ips` */
  readonly resource: string;
  readonly list: ListFn<T>;
  readonly informer: InformerFactory<T>;
  /** applied to every listed or watched object before the store (default: kept as received) */
  readonly decode?: (obj: T) => T;
  readonly idleTimeoutMs: number;
  readonly backoff?: BackoffOptions;
  readonly timers?: Timers;
  readonly random?: () => number;
  readonly onRestart?: (resource: string, reason: string) => void;
  readonly onHealth?: (resource: string, ok: boolean) => void;
  readonly log?: Log;
}

export class ResilientListWatch<T extends KubeObject> {
  readonly store = new ObjectStore<T>();
  readonly resource: string;
  readonly #o: ResilientListWatchOptions<T>;
  readonly #t: Timers;
  readonly #backoff: BackoffOptions;
  #gen = 0;
  #current: InformerLike<T> | undefined;
  #started = false;
  #stopped = false;
  #attempt = 0;
  #lastStartAt = 0;
  #lastLifeAt = 0;
  #restartTimer: unknown;
  #idleTimer: unknown;
  #synced = false;
  #healthy = false;
  #restarts = 0;
  #lastError: string | undefined;
  #syncWaiters: (() => void)[] = [];

  constructor(options: ResilientListWatchOptions<T>) {
    this.#o = options;
    this.resource = options.resource;
    this.#t = options.timers ?? realTimers;
    this.#backoff = options.backoff ?? DEFAULT_BACKOFF;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#launch();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#gen++;
    if (this.#restartTimer !== undefined) this.#t.clearTimeout(this.#restartTimer);
    if (this.#idleTimer !== undefined) this.#t.clearTimeout(this.#idleTimer);
    this.#restartTimer = this.#idleTimer = undefined;
    const cur = this.#current;
    this.#current = undefined;
    for (const w of this.#syncWaiters.splice(0)) w();
    await cur?.stop().catch(() => undefined);
  }

  health(): WatchHealth {
    return {
      resource: this.resource, synced: this.#synced, healthy: this.#healthy, restarts: this.#restarts,
      objects: this.store.size, lastError: this.#lastError, idleMs: this.#t.now() - this.#lastLifeAt,
    };
  }

  /** Resolves once the first list has landed in the store (or the watch is stopped). */
  waitSynced(): Promise<void> {
    if (this.#synced || this.#stopped) return Promise.resolve();
    return new Promise((resolve) => this.#syncWaiters.push(resolve));
  }

  /** Forces a restart with a full relist (e.g. an operator's resync), paced like any other restart. */
  resync(reason = 'resync requested'): void {
    this.#fail(this.#gen, new Error(reason));
  }

  #launch(): void {
    const g = ++this.#gen;
    const old = this.#current;
    void old?.stop().catch(() => undefined);
    this.#lastStartAt = this.#t.now();
    this.#life();
    const decode = this.#o.decode ?? ((o: T) => o);
    const list: ListFn<T> = async () => {
      const l = await this.#o.list();
      if (g !== this.#gen) return l;
      this.store.replace((l.items ?? []).map(decode));
      this.#life();
      this.#setHealthy(true);
      if (!this.#synced) {
        this.#synced = true;
        for (const w of this.#syncWaiters.splice(0)) w();
      }
      return l;
    };
    const inf = this.#o.informer(list);
    this.#current = inf;
    inf.on('add', (o) => { if (g === this.#gen) { this.store.upsert(decode(o)); this.#life(); } });
    inf.on('update', (o) => { if (g === this.#gen) { this.store.upsert(decode(o)); this.#life(); } });
    inf.on('delete', (o) => { if (g === this.#gen) { this.store.remove(o); this.#life(); } });
    inf.on('connect', () => { if (g === this.#gen) this.#life(); });
    inf.on('error', (err) => this.#fail(g, err));
    inf.start().catch((err: unknown) => this.#fail(g, err));
  }

  #life(): void {
    this.#lastLifeAt = this.#t.now();
    if (this.#idleTimer === undefined && !this.#stopped) this.#armIdle(this.#o.idleTimeoutMs);
  }

  #armIdle(ms: number): void {
    this.#idleTimer = this.#t.setTimeout(() => {
      this.#idleTimer = undefined;
      if (this.#stopped) return;
      const idle = this.#t.now() - this.#lastLifeAt;
      if (idle >= this.#o.idleTimeoutMs) this.#fail(this.#gen, new Error(`no sign of life for ${idle} ms (watchdog)`));
      else this.#armIdle(this.#o.idleTimeoutMs - idle);
    }, ms);
  }

  #setHealthy(ok: boolean): void {
    if (this.#healthy === ok) return;
    this.#healthy = ok;
    this.#o.onHealth?.(this.resource, ok);
  }

  #fail(g: number, err: unknown): void {
    if (g !== this.#gen || this.#stopped) return;
    const msg = describe(err);
    this.#lastError = msg;
    this.#setHealthy(false);
    if (this.#restartTimer !== undefined) return;
    const now = this.#t.now();
    const d = nextRestart(now, this.#lastStartAt, this.#attempt, this.#backoff, (this.#o.random ?? Math.random)());
    this.#attempt = d.attempt + 1;
    this.#o.log?.warn({ resource: this.resource, err: msg, restartInMs: d.at - now, attempt: d.attempt }, 'watch failed; restarting');
    this.#restartTimer = this.#t.setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#stopped) return;
      this.#restarts++;
      this.#o.onRestart?.(this.resource, msg);
      this.#launch();
    }, d.at - now);
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { statusCode?: unknown; code?: unknown }).statusCode ?? (err as { code?: unknown }).code;
    return code !== undefined ? `${err.message} (${String(code)})` : err.message;
  }
  return String(err);
}
