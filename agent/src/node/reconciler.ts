// The one reconciler shape of the agent's node-level state (and of the pod wing's GC): desired state, observed
// state, and the diff between them applied as operations. A pass is level-triggered: it never looks at what the
// event that woke it said, only at "what should be" versus "what is", so a missed, duplicated or reordered event
// costs nothing but a pass. Anchors: Calico Felix's iptables/ipset/route tables and Cilium's statedb reconcilers
// (../shared/notes/peers-and-style.md §4.4–4.5).
//
// Triggers: watch events, netlink and OVSDB events call trigger(); a periodic resync catches whatever no event
// announces (a rule deleted by hand on a backend without events). Triggers that arrive while a pass runs coalesce
// into one more pass. A failing pass is retried with exponential backoff; the resync timer is the only periodic
// wake-up of an idle, converged reconciler.

/** What one kind of node state needs to be reconciled. `diff` should be pure; the others do I/O. */
export interface ReconcileSpec<Desired, Observed, Op> {
  /** short, stable, metric-label-safe (`[a-z0-9_-]+`) */
  readonly name: string;
  /** the state we want, from caches and configuration (no I/O wanted, but allowed) */
  desired(): Desired | Promise<Desired>;
  /** the state the node has, read through the ports */
  observe(): Promise<Observed>;
  /** the operations that turn observed into desired; empty = converged */
  diff(desired: Desired, observed: Observed): readonly Op[];
  /** applies the operations (in order); throws when any failed; 'again' asks for one more pass right away (a
   * change that must land before the rest can be applied, e.g. an ipset rebuilt before the rules naming it) */
  apply(ops: readonly Op[]): Promise<void | 'again'>;
  /** one-line description of an op for the logs */
  describe?(op: Op): string;
}

export interface PassOutcome {
  readonly reconciler: string;
  readonly ok: boolean;
  /** operations applied (0 for a converged pass) */
  readonly changes: number;
  readonly seconds: number;
  readonly reason: string;
  readonly error?: unknown;
}

export interface ReconcilerLog {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface ReconcilerOptions {
  /** periodic resync; 0 = none (events only) */
  readonly resyncMs: number;
  /** first retry delay after a failed pass, doubled per failure up to maxBackoffMs (defaults 250 ms, 30 s) */
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** consecutive failed passes after which ready() reports the error (default 3) */
  readonly failuresBeforeUnready?: number;
  readonly log?: ReconcilerLog;
  /** metrics: called after every pass */
  readonly onPass?: (o: PassOutcome) => void;
  /** metrics: a pass starts; returns its end (event-loop lag is sampled while passes run) */
  readonly busy?: () => () => void;
}

/** Passes in a row (each triggered during the previous one) before the next ones are delayed; and the warning. */
const SPIN_PASSES = 5;
const SPIN_WARN = 50;

export class Reconciler<Desired, Observed, Op> {
  readonly name: string;
  readonly #spec: ReconcileSpec<Desired, Observed, Op>;
  readonly #o: Required<Pick<ReconcilerOptions, 'resyncMs' | 'initialBackoffMs' | 'maxBackoffMs' | 'failuresBeforeUnready'>> & ReconcilerOptions;
  #running: Promise<void> | undefined;
  #dirty = false;
  #reasons = new Set<string>();
  #scheduled: NodeJS.Immediate | undefined;
  #timer: NodeJS.Timeout | undefined;
  #started = false;
  #stopped = false;
  #failures = 0;
  #lastError = '';
  #converged = false;
  #convergedWaiters: (() => void)[] = [];
  #passes = 0;

  constructor(spec: ReconcileSpec<Desired, Observed, Op>, o: ReconcilerOptions) {
    if (!/^[a-z0-9_-]{1,40}$/.test(spec.name)) throw new Error(`invalid reconciler name "${spec.name}"`);
    this.name = spec.name;
    this.#spec = spec;
    this.#o = { initialBackoffMs: 250, maxBackoffMs: 30_000, failuresBeforeUnready: 3, ...o };
  }

  /** Starts with a first pass right away. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.trigger('start');
  }

  /** Asks for a pass: coalesced with other triggers of the same loop turn and with a pass already running. */
  trigger(reason: string): void {
    if (this.#stopped || !this.#started) return;
    this.#dirty = true;
    if (this.#reasons.size < 8) this.#reasons.add(reason);
    if (this.#running || this.#scheduled) return;
    this.#scheduled = setImmediate(() => { this.#scheduled = undefined; this.#kick(); });
  }

  /** Runs passes until nothing is dirty; resolves when done (tests, start-up ordering). Throws the last error. */
  async runNow(reason = 'manual'): Promise<PassOutcome> {
    if (this.#stopped) throw new Error(`reconciler ${this.name} is stopped`);
    while (this.#running) await this.#running;
    return this.#pass([reason]);
  }

  /** Resolves after the first pass that succeeded (immediately if one did). */
  converged(): Promise<void> {
    if (this.#converged) return Promise.resolve();
    return new Promise((r) => this.#convergedWaiters.push(r));
  }

  /** true once converged and not failing repeatedly since; else why not. */
  ready(): true | string {
    if (this.#failures >= this.#o.failuresBeforeUnready) return `${this.name}: ${this.#failures} failed passes in a row: ${this.#lastError}`;
    if (!this.#converged) return this.#lastError ? `${this.name}: not converged yet: ${this.#lastError}` : `${this.name}: not converged yet`;
    return true;
  }

  get passes(): number { return this.#passes; }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#scheduled) clearImmediate(this.#scheduled);
    if (this.#timer) clearTimeout(this.#timer);
    this.#scheduled = undefined;
    this.#timer = undefined;
    while (this.#running) await this.#running.catch(() => undefined);
  }

  #kick(): void {
    if (this.#stopped || this.#running || !this.#dirty) return;
    this.#running = (async () => {
      try {
        let streak = 0;
        while (this.#dirty && !this.#stopped) {
          // A pass whose own changes trigger it again (it watches what it writes, and the change never settles)
          // would run back to back: after a few passes in a row, each next one waits, doubling up to 1 s, so a
          // loop costs little CPU and leaves the event loop free instead of spinning a core.
          if (++streak > SPIN_PASSES) await new Promise((r) => setTimeout(r, Math.min(1000, 10 * 2 ** (streak - SPIN_PASSES))));
          if (streak === SPIN_WARN) this.#o.log?.warn({ reconciler: this.name, passes: streak }, 'reconciler keeps re-triggering itself; passes are slowed down');
          if (this.#stopped) break;
          this.#dirty = false;
          const reasons = [...this.#reasons];
          this.#reasons.clear();
          const out = await this.#pass(reasons).catch(() => undefined);
          if (!out?.ok) { this.#dirty = false; break; } // the backoff timer owns the retry
        }
      } finally {
        this.#running = undefined;
      }
    })();
  }

  /** One pass. Always re-arms the timer: resync after success, backoff after failure. */
  async #pass(reasons: readonly string[]): Promise<PassOutcome> {
    const t0 = performance.now();
    const done = this.#o.busy?.();
    this.#passes++;
    if (this.#timer) { clearTimeout(this.#timer); this.#timer = undefined; }
    let ops: readonly Op[] = [];
    let again = false;
    let outcome: PassOutcome;
    try {
      const desired = await this.#spec.desired();
      const observed = await this.#spec.observe();
      ops = this.#spec.diff(desired, observed);
      if (ops.length) {
        const describe = this.#spec.describe;
        this.#o.log?.info({ reconciler: this.name, reasons, ops: describe ? ops.slice(0, 20).map((op) => describe(op)) : ops.length },
          'reconciling');
        again = (await this.#spec.apply(ops)) === 'again';
      }
      outcome = { reconciler: this.name, ok: true, changes: ops.length, seconds: (performance.now() - t0) / 1000, reason: reasons.join(',') };
    } catch (e) {
      outcome = { reconciler: this.name, ok: false, changes: ops.length, seconds: (performance.now() - t0) / 1000, reason: reasons.join(','), error: e };
    }
    done?.();
    this.#o.onPass?.(outcome);
    if (outcome.ok) {
      this.#failures = 0;
      this.#lastError = '';
      if (!this.#converged) {
        this.#converged = true;
        for (const w of this.#convergedWaiters.splice(0)) w();
      }
      this.#arm(this.#o.resyncMs, 'resync');
      if (again) this.trigger('again');
      return outcome;
    }
    this.#failures++;
    this.#lastError = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
    const delay = Math.min(this.#o.maxBackoffMs, this.#o.initialBackoffMs * 2 ** Math.min(this.#failures - 1, 20));
    this.#o.log?.warn({ reconciler: this.name, failures: this.#failures, retryInMs: delay, err: this.#lastError }, 'reconcile pass failed');
    this.#arm(delay, 'retry');
    throw outcome.error;
  }

  #arm(ms: number, reason: string): void {
    if (this.#stopped || !this.#started || ms <= 0) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => { this.#timer = undefined; this.trigger(reason); }, ms);
    this.#timer.unref();
  }
}
