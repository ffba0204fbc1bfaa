// Shared helpers for benchmarks: timing, percentiles and the one JSON-line output format of DEVELOPERS.md.
/** '%' = percent of one CPU core */
export type Unit = 'ms' | 'MB' | 'ops/s' | '%';
export interface Baseline { name: string; p50: number }
export interface BenchLine { bench: string; unit: Unit; p50: number; p99: number; n: number; baseline: Baseline | null }

export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const s = [...samples].sort((a, b) => a - b);
  const idx = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[idx]!;
}

const round = (x: number): number => Math.round(x * 1000) / 1000;

export function emit(line: BenchLine): void {
  process.stdout.write(JSON.stringify({ ...line, p50: round(line.p50), p99: round(line.p99),
    baseline: line.baseline ? { name: line.baseline.name, p50: round(line.baseline.p50) } : null }) + '\n');
}

/** Emits a line from raw samples. */
export function report(bench: string, unit: Unit, samples: readonly number[], baseline: Baseline | null): void {
  emit({ bench, unit, p50: percentile(samples, 50), p99: percentile(samples, 99), n: samples.length, baseline });
}

/** Runs `fn` `warmup` times unmeasured, then `n` times; returns wall-clock milliseconds per run. */
export async function timeRuns(n: number, fn: (i: number) => unknown, warmup = 3): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn(-1 - i);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn(i);
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return out;
}

export interface BenchContext {
  /** True when the bench id should run under the current filter. */
  wants(id: string): boolean;
}
