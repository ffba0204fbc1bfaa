// Event-loop lag under prom-client's names (`nodejs_eventloop_lag_*_seconds`), sampled only while the agent works.
//
// prom-client's collector keeps `monitorEventLoopDelay` armed all the time: a libuv timer every 10 ms, so an idle
// agent wakes 100 times a second for nothing. Lag only matters while something runs on the loop (CNI calls,
// reconcile passes), so the histogram is enabled while at least one `busy()` holder is open, and for a short tail
// after the last one closes (the tail is a one-shot timer, not a period). An idle agent then makes no wake-up of
// its own. The gauges report the window since the previous scrape, as prom-client's do; 0 when nothing ran.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';

export interface LoopLagOptions {
  /** sampling resolution while busy (prom-client's default precision) */
  readonly resolutionMs?: number;
  /** how long sampling continues after the last holder closed (catches work that completes a call) */
  readonly tailMs?: number;
}

export class LoopLagMonitor {
  // created on the first busy(): a histogram that was never enabled and then collected leaves a dangling handle
  // that crashes Node 24's process._getActiveHandles() (which prom-client's nodejs_active_handles calls)
  #histogram: ReturnType<typeof monitorEventLoopDelay> | undefined;
  readonly #resolutionMs: number;
  readonly #tailMs: number;
  #holders = 0;
  #enabled = false;
  #tail: NodeJS.Timeout | undefined;

  constructor(o: LoopLagOptions = {}) {
    this.#resolutionMs = o.resolutionMs ?? 10;
    this.#tailMs = o.tailMs ?? 100;
  }

  get #h(): ReturnType<typeof monitorEventLoopDelay> {
    this.#histogram ??= monitorEventLoopDelay({ resolution: this.#resolutionMs });
    return this.#histogram;
  }

  /** Whether the histogram is sampling now (tests). */
  get sampling(): boolean { return this.#enabled; }

  /** Marks the start of work on the loop; call the returned function once when it ends (extra calls are no-ops). */
  busy = (): (() => void) => {
    this.#holders++;
    if (this.#tail) { clearTimeout(this.#tail); this.#tail = undefined; }
    if (!this.#enabled) { this.#h.enable(); this.#enabled = true; }
    let open = true;
    return () => {
      if (!open) return;
      open = false;
      if (--this.#holders > 0 || this.#tail) return;
      this.#tail = setTimeout(() => {
        this.#tail = undefined;
        if (this.#holders === 0 && this.#enabled) { this.#h.disable(); this.#enabled = false; }
      }, this.#tailMs);
      this.#tail.unref();
    };
  };

  /** Stops sampling for good (agent stop). */
  close(): void {
    if (this.#tail) clearTimeout(this.#tail);
    this.#tail = undefined;
    if (this.#enabled) this.#histogram?.disable();
    this.#enabled = false;
  }

  /** Registers the gauges (same names, help and semantics as prom-client's default collector). */
  register(registry: Registry): void {
    const self = this;
    const h = {
      get count() { return self.#histogram?.count ?? 0; },
      get min() { return self.#histogram?.min ?? 0; },
      get max() { return self.#histogram?.max ?? 0; },
      get mean() { return self.#histogram?.mean ?? 0; },
      get stddev() { return self.#histogram?.stddev ?? 0; },
      percentile: (p: number) => self.#histogram?.percentile(p) ?? 0,
      reset: () => self.#histogram?.reset(),
    };
    const registers = [registry];
    const s = (ns: number) => (Number.isFinite(ns) ? ns / 1e9 : 0);
    const gauges: [string, string, () => number][] = [
      ['nodejs_eventloop_lag_min_seconds', 'The minimum recorded event loop delay.', () => (h.count ? s(h.min) : 0)],
      ['nodejs_eventloop_lag_max_seconds', 'The maximum recorded event loop delay.', () => (h.count ? s(h.max) : 0)],
      ['nodejs_eventloop_lag_mean_seconds', 'The mean of the recorded event loop delays.', () => (h.count ? s(h.mean) : 0)],
      ['nodejs_eventloop_lag_stddev_seconds', 'The standard deviation of the recorded event loop delays.', () => (h.count ? s(h.stddev) : 0)],
      ['nodejs_eventloop_lag_p50_seconds', 'The 50th percentile of the recorded event loop delays.', () => (h.count ? s(h.percentile(50)) : 0)],
      ['nodejs_eventloop_lag_p90_seconds', 'The 90th percentile of the recorded event loop delays.', () => (h.count ? s(h.percentile(90)) : 0)],
      ['nodejs_eventloop_lag_p99_seconds', 'The 99th percentile of the recorded event loop delays.', () => (h.count ? s(h.percentile(99)) : 0)],
    ];
    const read = new Map<string, number>();
    const last = gauges.length - 1;
    gauges.forEach(([name, help, value], i) => {
      new Gauge({
        name, help, registers,
        collect() {
          // the first gauge collected snapshots all of them; the last one resets the window (scrape order is
          // registration order, and a partial scrape only leaves the window open a little longer)
          if (i === 0) for (const [n, , v] of gauges) read.set(n, v());
          this.set(read.get(name) ?? value());
          if (i === last) h.reset();
        },
      });
    });
    new Gauge({
      name: 'nodejs_eventloop_lag_seconds', help: 'Lag of event loop in seconds.', registers,
      async collect() {
        const t0 = process.hrtime.bigint();
        await new Promise<void>((r) => setImmediate(r));
        this.set(Number(process.hrtime.bigint() - t0) / 1e9);
      },
    });
  }
}
