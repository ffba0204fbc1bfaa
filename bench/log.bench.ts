// Logging during a burst (issue 14: "logging must not turn a burst into seconds of lag; measure sync against
// async-with-flush-on-exit"). A child process (bench/log/child.ts) writes the log lines of a 500-call burst
// (6 info lines per call, ~330 bytes each, one call's lines per turn of the loop) through the agent's logger into a
// pipe that this process reads, and measures how long each turn holds the loop (what a concurrent request waits).
// The agent logs synchronously (observe/log.ts says why); the baseline is pino's asynchronous SonicBoom flushed on
// exit, in the same run. Samples: every turn of every run; the baseline is the async runs' p50 turn.
//   log.burst_lag              the reader draining promptly (as containerd's shim does)
//   log.burst_lag_slow_reader  the same with a reader that stops for 100 ms out of every 200 ms (a stalled log
//                              collector): a synchronous write waits for room in the 64 KiB pipe
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { report, type BenchContext } from './lib.ts';

export const ids = ['log.burst_lag', 'log.burst_lag_slow_reader'] as const;

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'log', 'child.ts');
const CALLS = 500;
const LINES_PER_CALL = 6;
const RUNS = Number(process.env.KOA_BENCH_N) || 5;

interface ChildResult { loopMs: number; p50: number; p99: number; max: number; turns: number[]; bytes: number }

function runChild(mode: 'sync' | 'async', slowReader: boolean): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CHILD, mode, String(CALLS), String(LINES_PER_CALL)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let bytes = 0;
    let err = '';
    p.stdout.on('data', (b: Buffer) => { bytes += b.length; });
    p.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    let paused = false;
    const t = slowReader ? setInterval(() => { paused = !paused; if (paused) p.stdout.pause(); else p.stdout.resume(); }, 100) : undefined;
    p.on('error', reject);
    p.on('close', (code) => {
      clearInterval(t);
      const line = err.trim().split('\n').at(-1) ?? '';
      if (code !== 0) { reject(new Error(`log child (${mode}) exited ${code}: ${err}`)); return; }
      resolve({ ...(JSON.parse(line) as Omit<ChildResult, 'bytes'>), bytes });
    });
  });
}

export default async function bench(ctx: BenchContext): Promise<void> {
  for (const [id, slow] of [['log.burst_lag', false], ['log.burst_lag_slow_reader', true]] as const) {
    if (!ctx.wants(id)) continue;
    const sync: number[] = [];
    const async: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      // alternate, so drift in the machine's load hits both
      for (const mode of ['sync', 'async'] as const) {
        const r = await runChild(mode, slow);
        if (r.bytes < CALLS * LINES_PER_CALL * 200) throw new Error(`log child (${mode}) wrote only ${r.bytes} bytes`);
        (mode === 'sync' ? sync : async).push(...r.turns);
      }
    }
    const asyncP50 = [...async].sort((a, b) => a - b)[Math.floor(async.length / 2)]!;
    report(id, 'ms', sync, { name: 'pino async (SonicBoom, flushed on exit): one call\'s log lines, one turn', p50: asyncP50 });
    const top = (xs: number[], q: number): string => [...xs].sort((a, b) => a - b)[Math.ceil(xs.length * q) - 1]!.toFixed(3);
    process.stderr.write(`${id}: sync max ${top(sync, 1)} ms; async p99 ${top(async, 0.99)} ms, max ${top(async, 1)} ms\n`);
  }
}
