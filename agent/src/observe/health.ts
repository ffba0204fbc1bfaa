// Readiness registry and the CNI-socket probe behind /readyz and /livez.
//
// Components register named checks (pull: a function) or flags (push: set when an event says so, e.g.
// "watches synced", "OVSDB connected", "node initialised"). /readyz is the conjunction of all of them; once
// shutdown() is called every evaluation is "not ready", so the kubelet stops sending work before the socket goes.

import { request } from 'node:http';
import { connect } from 'node:net';

/** `true` = passing; `false` or a string (the reason) = failing. A thrown error or a timeout also fails. */
export type CheckResult = boolean | string;
export type Check = () => CheckResult | Promise<CheckResult>;

export interface CheckOutcome { name: string; ok: boolean; reason: string }
export interface Evaluation { ok: boolean; checks: CheckOutcome[] }

export interface Flag {
  /** `true` = ready; `false`/string (reason) = not ready. */
  set(state: CheckResult): void;
}

export interface ReadinessOptions {
  /** Per-check time limit (default 2000 ms). */
  timeoutMs?: number;
  /** Called after each evaluation (metrics: per-check gauges, first-ready time). */
  onEvaluated?: (e: Evaluation) => void;
}

function withTimeout(p: Promise<CheckResult>, ms: number): Promise<CheckResult> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<CheckResult>((resolve) => { t = setTimeout(() => resolve(`timed out after ${ms} ms`), ms); });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

export class Readiness {
  readonly #checks = new Map<string, Check>();
  readonly #timeoutMs: number;
  readonly #onEvaluated: ((e: Evaluation) => void) | undefined;
  #shuttingDown = false;

  constructor(opts: ReadinessOptions = {}) {
    this.#timeoutMs = opts.timeoutMs ?? 2000;
    this.#onEvaluated = opts.onEvaluated;
  }

  /** Adds a pull check; names are unique (a second registration of a name throws). Returns an unregister function. */
  register(name: string, check: Check): () => void {
    if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(name)) throw new Error(`invalid readiness check name "${name}"`);
    if (this.#checks.has(name)) throw new Error(`readiness check "${name}" is already registered`);
    this.#checks.set(name, check);
    return () => { if (this.#checks.get(name) === check) this.#checks.delete(name); };
  }

  /** A push-style check, failing with `initial` until set(true). */
  flag(name: string, initial: CheckResult = 'not yet'): Flag {
    let state: CheckResult = initial;
    this.register(name, () => state);
    return {
      set: (s) => {
        state = s;
        void this.evaluate().catch(() => {});
      },
    };
  }

  names(): string[] { return [...this.#checks.keys()]; }

  /** From now on every evaluation fails with "shutting down". */
  shutdown(): void { this.#shuttingDown = true; }
  get shuttingDown(): boolean { return this.#shuttingDown; }

  async #run(name: string, check: Check): Promise<CheckOutcome> {
    let r: CheckResult;
    try {
      r = await withTimeout(Promise.resolve().then(check), this.#timeoutMs);
    } catch (e) {
      r = e instanceof Error ? e.message : String(e);
    }
    if (r === true) return { name, ok: true, reason: 'ok' };
    return { name, ok: false, reason: typeof r === 'string' && r !== '' ? r : 'failed' };
  }

  /** Runs every check (in parallel), or only `only`. Unknown `only` -> a single failing outcome. */
  async evaluate(only?: string): Promise<Evaluation> {
    let entries = [...this.#checks.entries()];
    if (only !== undefined) entries = entries.filter(([n]) => n === only);
    const checks = only !== undefined && entries.length === 0
      ? [{ name: only, ok: false, reason: 'no such check' }]
      : await Promise.all(entries.map(([n, c]) => this.#run(n, c)));
    if (this.#shuttingDown) checks.push({ name: 'shutdown', ok: false, reason: 'shutting down' });
    const e = { ok: checks.every((c) => c.ok), checks };
    this.#onEvaluated?.(e);
    return e;
  }
}

/** Kubernetes-style probe body: `ok`, or with `verbose` one `[+]name ok` / `[-]name failed: reason` line each. */
export function formatEvaluation(e: Evaluation, what: string, verbose: boolean): string {
  if (e.ok && !verbose) return 'ok';
  const lines = e.checks.map((c) => (c.ok ? `[+]${c.name} ok` : `[-]${c.name} failed: ${c.reason}`));
  lines.push(e.ok ? `${what} check passed` : `${what} check failed`);
  return lines.join('\n') + '\n';
}

export type SocketProbeMode = 'http' | 'connect';

/** Is the CNI Unix socket being served? `connect`: a connection is accepted (upstream's check).
 * `http` (default): an HTTP request gets any HTTP response, so the server loop is really answering. */
export function probeUnixSocket(path: string, timeoutMs = 2000, mode: SocketProbeMode = 'http'): Promise<true | string> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: true | string): void => { if (!settled) { settled = true; resolve(r); } };
    if (mode === 'connect') {
      const s = connect({ path });
      const t = setTimeout(() => { s.destroy(); done(`no connection to ${path} within ${timeoutMs} ms`); }, timeoutMs);
      s.once('connect', () => { clearTimeout(t); s.destroy(); done(true); });
      s.once('error', (e) => { clearTimeout(t); done(`cannot connect to ${path}: ${e.message}`); });
      return;
    }
    const req = request({ socketPath: path, method: 'GET', path: '/healthz', agent: false, timeout: timeoutMs,
      headers: { connection: 'close', 'user-agent': 'kube-ovn-agent-livez' } }, (res) => {
      res.resume();
      done(true);
      res.once('end', () => req.destroy());
    });
    req.once('timeout', () => { req.destroy(); done(`no answer from ${path} within ${timeoutMs} ms`); });
    req.once('error', (e) => done(`no answer from ${path}: ${e.message}`));
    req.end();
  });
}
