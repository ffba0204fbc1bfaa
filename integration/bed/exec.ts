// argv-only process helpers for the test bed: never a shell string, always a readable error with stderr.
import { execFile, execFileSync } from 'node:child_process';

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** Milliseconds before the child is killed (default 30 s). */
  timeoutMs?: number;
  input?: string;
  /** Do not throw on a non-zero exit; the caller inspects `code`. */
  allowFail?: boolean;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

export class CommandError extends Error {
  readonly result: RunResult;
  constructor(argv: readonly string[], result: RunResult) {
    super(`command failed (rc=${result.code}): ${argv.join(' ')}\n${result.stderr.trim() || result.stdout.trim()}`);
    this.result = result;
  }
}

export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = argv;
  if (!file) throw new Error('run: empty argv');
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 << 20, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        const result = { stdout, stderr, code };
        if (err && !opts.allowFail) reject(new CommandError(argv, result));
        else resolve(result);
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Synchronous form, only for exit-time cleanup where nothing can be awaited. Never throws. */
export function runSyncQuiet(argv: readonly string[], env?: NodeJS.ProcessEnv): void {
  const [file, ...args] = argv;
  if (!file) return;
  try {
    execFileSync(file, args, { env: env ?? process.env, stdio: 'ignore', timeout: 10_000 });
  } catch {
    // best effort
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns a truthy value or `timeoutMs` passes (then throws with `what`). */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false | null> | T | undefined | false | null, timeoutMs = 10_000, stepMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ''}`);
    }
    await sleep(stepMs);
  }
}

const traceStart = performance.now();
/** `KOA_BED_TRACE=1` prints bed phases with a millisecond clock to stderr (for finding slow start-up steps). */
export function trace(what: string): void {
  if (process.env.KOA_BED_TRACE) process.stderr.write(`[bed ${Math.round(performance.now() - traceStart)} ms] ${what}\n`);
}
