// Restart pacing for watches (pure). The client's ListWatch gives up for good on errors other than 410, and in
// 2.x a tight reconnect loop piles up sockets (../shared/notes/dependencies.md §4): restarts are exponential with
// jitter, never closer together than a minimum interval, and the attempt count resets once a watch stayed up.

export interface BackoffOptions {
  /** first retry delay */
  readonly baseMs: number;
  readonly maxMs: number;
  readonly factor: number;
  /** +- fraction of the delay, spread uniformly (0.2 = +-20 %) */
  readonly jitter: number;
  /** two (re)starts of one watch are never closer than this */
  readonly minIntervalMs: number;
  /** a watch that ran this long before failing counts as healthy: the next delay starts from the base again */
  readonly stableMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = {
  baseMs: 500, maxMs: 30_000, factor: 2, jitter: 0.2, minIntervalMs: 1000, stableMs: 60_000,
};

/** Delay before restart number `attempt` (0-based), `random` in [0, 1). */
export function restartDelay(attempt: number, o: BackoffOptions, random: number): number {
  const raw = Math.min(o.maxMs, o.baseMs * o.factor ** Math.max(0, attempt));
  const jittered = raw * (1 + o.jitter * (2 * random - 1));
  return Math.max(o.minIntervalMs, Math.round(Math.min(o.maxMs * (1 + o.jitter), jittered)));
}

export interface RestartDecision {
  /** absolute time (ms) of the restart */
  at: number;
  /** the attempt number used (after a possible reset) */
  attempt: number;
}

/**
 * When to restart a watch that failed at `now`, having (re)started at `lastStartAt` with `attempt` failures before.
 * A watch that had been up for `stableMs` starts the sequence again.
 */
export function nextRestart(now: number, lastStartAt: number, attempt: number, o: BackoffOptions, random: number): RestartDecision {
  const a = now - lastStartAt >= o.stableMs ? 0 : attempt;
  const at = Math.max(now + restartDelay(a, o, random), lastStartAt + o.minIntervalMs);
  return { at, attempt: a };
}

/** The full schedule for `n` consecutive quick failures with a fixed random value (for docs and tests). */
export function schedule(n: number, o: BackoffOptions, random = 0.5): number[] {
  return Array.from({ length: n }, (_, i) => restartDelay(i, o, random));
}
