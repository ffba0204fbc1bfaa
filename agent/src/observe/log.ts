// The agent's logger: pino JSON lines on stdout, written synchronously.
//
// Why synchronous: pino's default stdout destination buffers; notes/dependencies.md §6 measured 19,999 of
// 20,000 lines lost on SIGKILL. The agent can be OOM-killed or abort in the native addon, and the last lines
// are the ones that explain why. The measured cost is ~5 % per call.
//
// Levels can change at runtime (SIGUSR2 or the metrics server's /debug/loglevel). A pino child reads its level
// through its prototype chain until a level is set on it explicitly, so every child made without a `level`
// option (component loggers `logger.child({ module: 'x' })`, request loggers) follows the root's level.
//
// Secrets: structured fields named like credentials are censored (REDACT_PATHS), and error messages/stacks are
// scrubbed of bearer tokens and `token=`/`password=` pairs before they are written.

import pino, { type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import type { KlogLevel } from './metrics.ts';

export type { Logger };
export const LEVELS: readonly LevelWithSilent[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
export const CENSOR = '[REDACTED]';

/** Field paths censored in every line (one level of `*` wildcard, as pino's redaction allows). */
export const REDACT_PATHS: readonly string[] = [
  'authorization', '*.authorization', 'headers.authorization', 'req.headers.authorization', 'request.headers.authorization',
  'headers.Authorization', 'req.headers.Authorization', 'headers.cookie', 'req.headers.cookie',
  'token', '*.token', 'bearerToken', '*.bearerToken', 'accessToken', '*.accessToken',
  'password', '*.password', 'kubeconfig', '*.kubeconfig', 'clientKey', '*.clientKey', 'keyData', '*.keyData',
  'client-key-data', '*["client-key-data"]', 'secret', '*.secret',
];

const SECRET_TEXT: readonly RegExp[] = [
  /(bearer\s+)[A-Za-z0-9._~+/=-]+/gi,
  /((?:token|password|client-key-data|secret)["']?\s*[:=]\s*["']?)[^\s"',}]+/gi,
];

/** Removes bearer tokens and `token=`/`password:` values from free text (error messages, stacks). */
export function scrubText(s: string): string {
  let out = s;
  for (const re of SECRET_TEXT) out = out.replace(re, `$1${CENSOR}`);
  return out;
}

function errSerializer(e: unknown): unknown {
  const o = pino.stdSerializers.err(e as Error) as unknown as Record<string, unknown>;
  if (o && typeof o === 'object') {
    if (typeof o.message === 'string') o.message = scrubText(o.message);
    if (typeof o.stack === 'string') o.stack = scrubText(o.stack);
  }
  return o;
}

/** The DaemonSet's klog `--v=N` as a pino level: up to 3 (upstream's default) info, 4-5 debug, 6+ trace. */
export function levelFromVerbosity(v: number): LevelWithSilent {
  return v >= 6 ? 'trace' : v >= 4 ? 'debug' : 'info';
}

/** pino numeric level -> upstream klog level for klog_lines_total. */
export function klogLevel(n: number): KlogLevel {
  return n >= 50 ? 'ERROR' : n >= 40 ? 'WARN' : 'INFO';
}

export interface LoggerOptions {
  level?: LevelWithSilent;
  /** Where lines go; default a synchronous SonicBoom on fd 1. Tests pass a capture stream or a file. */
  destination?: DestinationStream | { fd: number } | { path: string };
  /** Fields on every line (e.g. `{ node: 'n1' }`). */
  base?: Record<string, unknown>;
  /** Called once per line written (level, bytes): the metrics' countLogLine. */
  onLine?: (level: KlogLevel, bytes: number) => void;
}

export interface LogControl {
  readonly logger: Logger;
  /** The level given at start; SIGUSR2 toggles between it and `debug`. */
  readonly baseLevel: LevelWithSilent;
  level(): string;
  /** Sets the level of the root (and so of every child made without its own level); throws on an unknown name. */
  setLevel(level: string): void;
  /** SIGUSR2 behaviour: at `debug`/`trace` go back to the base level, otherwise go to `debug`. Returns the new level. */
  toggleDebug(): string;
  /** Installs the SIGUSR2 handler; returns a function removing it. */
  handleSignal(signal?: NodeJS.Signals): () => void;
}

function openDestination(d: LoggerOptions['destination']): DestinationStream {
  if (d === undefined) return pino.destination({ dest: 1, sync: true });
  if ('path' in d) return pino.destination({ dest: d.path, sync: true, mkdir: true });
  if ('fd' in d) return pino.destination({ dest: d.fd, sync: true });
  return d;
}

function countingDestination(inner: DestinationStream, onLine: (level: KlogLevel, bytes: number) => void): DestinationStream {
  // pino writes `{"level":NN,...` first; reading two digits is cheaper than parsing the line.
  const wrapped = {
    write(s: string): void {
      const n = s.startsWith('{"level":') ? Number(s.slice(9, 11)) : 30;
      onLine(klogLevel(n), Buffer.byteLength(s));
      inner.write(s);
    },
    flushSync(): void {
      const f = (inner as { flushSync?: () => void }).flushSync;
      if (typeof f === 'function') f.call(inner);
    },
  };
  return wrapped;
}

export function createLogger(opts: LoggerOptions = {}): LogControl {
  const baseLevel = opts.level ?? 'info';
  if (!LEVELS.includes(baseLevel)) throw new Error(`unknown log level ${String(baseLevel)}`);
  let dest = openDestination(opts.destination);
  if (opts.onLine) dest = countingDestination(dest, opts.onLine);
  const logger = pino({
    level: baseLevel,
    base: { pid: process.pid, ...opts.base },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: [...REDACT_PATHS], censor: CENSOR },
    serializers: { err: errSerializer, error: errSerializer },
  }, dest);

  const ctl: LogControl = {
    logger,
    baseLevel,
    level: () => logger.level,
    setLevel: (level) => {
      if (!(LEVELS as readonly string[]).includes(level)) throw new Error(`unknown log level "${level}" (one of ${LEVELS.join(', ')})`);
      const before = logger.level;
      if (before === level) return;
      // announce at info while info is still (or already) enabled, so quieting down is visible too
      const quieter = logger.levels.values[level]! > logger.levelVal;
      if (quieter) logger.info({ from: before, to: level }, 'log level changed');
      logger.level = level;
      if (!quieter) logger.info({ from: before, to: level }, 'log level changed');
    },
    toggleDebug: () => {
      const cur = logger.level;
      ctl.setLevel(cur === 'debug' || cur === 'trace' ? (baseLevel === 'debug' || baseLevel === 'trace' ? 'info' : baseLevel) : 'debug');
      return logger.level;
    },
    handleSignal: (signal = 'SIGUSR2') => {
      const h = (): void => { ctl.toggleDebug(); };
      process.on(signal, h);
      return () => { process.off(signal, h); };
    },
  };
  return ctl;
}

/** Fields of one CNI request; absent values are left out. Never pod labels or annotations. */
export interface RequestFields {
  command?: string;
  containerId?: string;
  pod?: string;
  namespace?: string;
  netns?: string;
  ifName?: string;
}

/** A child logger for one request. Finish with `logger.info({ durationMs }, '...')`, see `durationMs()`. */
export function requestLogger(parent: Logger, f: RequestFields): Logger {
  const b: Record<string, string> = {};
  for (const [k, v] of Object.entries(f)) if (typeof v === 'string' && v !== '') b[k] = v;
  return parent.child(b);
}

/** Milliseconds since `t0` (process.hrtime.bigint()), rounded to µs: the `durationMs` field of request logs. */
export function durationMs(t0: bigint): number {
  return Math.round(Number(process.hrtime.bigint() - t0) / 1e3) / 1e3;
}
