// Test doubles for the k8s layer: a manual clock and a scriptable informer standing in for the client's ListWatch.
import type { InformerLike, ListFn, Timers } from '../../agent/src/k8s/watch.ts';

export class ManualTimers implements Timers {
  #now = 1_000_000;
  #seq = 0;
  readonly timers = new Map<number, { at: number; fn: () => void }>();
  now(): number { return this.#now; }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#seq;
    this.timers.set(id, { at: this.#now + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void { this.timers.delete(h as number); }
  /** delays of pending timers, sorted */
  pending(): number[] { return [...this.timers.values()].map((t) => t.at - this.#now).sort((a, b) => a - b); }
  /** advances the clock, firing due timers in time order */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.#now = due[1].at;
      due[1].fn();
      await flush();
    }
    this.#now = end;
  }
}

export const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

type Cb = (x?: any) => void;
export class FakeInformer<T> implements InformerLike<T> {
  readonly handlers = new Map<string, Cb[]>();
  started = 0;
  stopped = false;
  readonly list: ListFn<T>;
  constructor(list: ListFn<T>) { this.list = list; }
  on(verb: string, cb: Cb): void {
    const l = this.handlers.get(verb) ?? [];
    l.push(cb);
    this.handlers.set(verb, l);
  }
  /** like ListWatch: connect, list (errors are reported through 'error', never thrown) */
  async start(): Promise<void> {
    this.started++;
    this.emit('connect');
    try { await this.list(); } catch (e) { this.emit('error', e); }
  }
  async stop(): Promise<void> { this.stopped = true; }
  emit(verb: string, arg?: unknown): void { for (const cb of this.handlers.get(verb) ?? []) cb(arg); }
}
