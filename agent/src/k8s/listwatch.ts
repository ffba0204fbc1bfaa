// One list+watch of one resource, as an informer for ResilientListWatch (watch.ts): list, then watch from the
// list's resourceVersion; every event moves the resourceVersion on (BOOKMARKs too, which the watch asks for), so
// a watch the server ends cleanly, or one that went quiet for `idleTimeoutMs`, is resumed where it stopped without
// a relist; a 410 Gone (HTTP status or ERROR event) relists. Any other failure is reported as 'error' and this
// informer stops: ResilientListWatch restarts it with backoff and a full relist. It keeps no objects itself (the
// store does), and it starts a new watch request at most once per `minIntervalMs`, so a server that ends every
// watch at once cannot make it loop as fast as the network allows (dependencies.md §4 measured ~1,400 sockets with
// unpaced client-node 2.0.1 reconnects). The server ends each watch after a random 50-90 % of `idleTimeoutMs`
// (client-go spreads its watch timeouts the same way), so a quiet watch is renewed before the watchdog calls it dead.

import type { KubeRest, Query, WatchEvent } from './rest.ts';
import type { InformerLike, ListFn } from './watch.ts';

type Verb = 'add' | 'update' | 'delete' | 'error' | 'connect';

export interface KubeListWatchOptions {
  readonly rest: Pick<KubeRest, 'watch'>;
  /** e.g. /api/v1/pods */
  readonly path: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  /** minimum ms between two watch requests */
  readonly minIntervalMs: number;
  /** the watchdog period: the stream's inactivity bound, and the base of the server-side timeout */
  readonly idleTimeoutMs: number;
  readonly random?: () => number;
}

/** Server-side watch timeout: a random 50-90 % of the watchdog period, at least 1 s. */
export const watchTimeoutSeconds = (idleTimeoutMs: number, r: number): number =>
  Math.max(1, Math.floor((idleTimeoutMs / 1000) * (0.5 + 0.4 * r)));

export class KubeListWatch<T> implements InformerLike<T> {
  readonly #o: KubeListWatchOptions;
  readonly #list: ListFn<T>;
  readonly #listeners: Record<Verb, ((x: any) => void)[]> = { add: [], update: [], delete: [], error: [], connect: [] };
  #rv = '';
  #stopped = true;
  #abort: AbortController | undefined;
  #lastWatchAt = 0;

  constructor(list: ListFn<T>, o: KubeListWatchOptions) {
    this.#list = list;
    this.#o = o;
  }

  on(verb: 'add' | 'update' | 'delete', cb: (obj: T) => void): void;
  on(verb: 'error' | 'connect', cb: (err?: unknown) => void): void;
  on(verb: Verb, cb: (x: any) => void): void { this.#listeners[verb].push(cb); }

  /** Lists, then keeps watching in the background; resolves once the first watch request is under way. */
  async start(): Promise<void> {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#abort = new AbortController();
    void this.#run(this.#abort.signal);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort?.abort();
  }

  #emit(verb: Verb, x?: unknown): void {
    for (const cb of this.#listeners[verb]) cb(x);
  }

  async #run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      let watching = false;
      try {
        this.#emit('connect');
        if (this.#rv === '') {
          const l = await this.#list();
          if (signal.aborted) return;
          this.#rv = l.metadata?.resourceVersion ?? '';
        }
        await this.#pace(signal);
        if (signal.aborted) return;
        this.#lastWatchAt = Date.now();
        const q: Query = {
          resourceVersion: this.#rv, allowWatchBookmarks: true,
          timeoutSeconds: watchTimeoutSeconds(this.#o.idleTimeoutMs, (this.#o.random ?? Math.random)()),
          labelSelector: this.#o.labelSelector, fieldSelector: this.#o.fieldSelector,
        };
        watching = true;
        await this.#o.rest.watch(this.#o.path, q, (e) => this.#onEvent(e), { signal, idleTimeoutMs: this.#o.idleTimeoutMs });
      } catch (e) {
        if (signal.aborted) return;
        const code = (e as { statusCode?: number }).statusCode;
        if (code === 410) { this.#rv = ''; continue; }
        // a watch quiet for the whole period: resume from the last resourceVersion. A list that timed out is a failure
        // like any other (logged, backed off): retried here at once, it looked alive to the watchdog and never synced
        if (watching && (e as Error).name === 'TimeoutError') continue;
        this.#stopped = true;
        this.#emit('error', e);
        return;
      }
    }
  }

  #onEvent(e: WatchEvent): void {
    const rv = e.object?.metadata?.resourceVersion;
    switch (e.type) {
      case 'ADDED': this.#emit('add', e.object); break;
      case 'MODIFIED': this.#emit('update', e.object); break;
      case 'DELETED': this.#emit('delete', e.object); break;
      case 'BOOKMARK': this.#emit('connect'); break;
      case 'ERROR':
        // 410: our resourceVersion is gone from the server's window; the server ends the stream next, we relist
        if (e.object?.code === 410) this.#rv = '';
        return;
      default: return;
    }
    if (rv) this.#rv = rv;
  }

  #pace(signal: AbortSignal): Promise<void> {
    const wait = this.#lastWatchAt + this.#o.minIntervalMs - Date.now();
    if (wait <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(done, wait);
      function done(): void { clearTimeout(t); signal.removeEventListener('abort', done); resolve(); }
      signal.addEventListener('abort', done, { once: true });
    });
  }
}
