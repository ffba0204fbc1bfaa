// Helpers for the CNI integration tests: build and run the real shim, run the real agent (as a process or
// in-process), temp dirs and network namespaces with the `koac` prefix.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const SHIM = join(ROOT, 'cni-shim', 'kube-ovn');
export const MAIN = join(ROOT, 'agent', 'src', 'main.ts');
/** main.ts with test hooks from the environment (integration/support/agent-main.ts) */
export const TEST_MAIN = join(ROOT, 'integration', 'support', 'agent-main.ts');

/** Builds the shim once (make is incremental). */
export function buildShim(): void {
  execFileSync('make', ['-s', '-C', join(ROOT, 'cni-shim')], { stdio: 'inherit' });
}

export interface ShimRun { code: number | null; stdout: string; stderr: string; ms: number }

/** Runs the executable asynchronously (an in-process agent must keep its event loop free). */
/** The shim's own-time state file: `<socket>.shim-last`, or with KOA_SHIM_STATE_DIR=`dir`
 *  `<dir>/shim-last.<FNV-1a 64 of the socket path, hex>`. */
export function shimStateFile(socket: string, dir?: string): string {
  if (dir === undefined) return `${socket}.shim-last`;
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(socket)) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
  return join(dir, `shim-last.${h.toString(16).padStart(16, '0')}`);
}

export function runShim(env: Record<string, string>, stdin: string | Buffer, exe = SHIM): Promise<ShimRun> {
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    const p = spawn(exe, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (c: Buffer) => out.push(c));
    p.stderr.on('data', (c: Buffer) => err.push(c));
    p.on('error', reject);
    p.stdin.on('error', () => undefined); // the shim may exit before reading an oversize stdin
    p.on('close', (code) => resolvePromise({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms: performance.now() - t0 }));
    p.stdin.end(stdin);
  });
}

export const tempDir = (prefix = 'koac-') => mkdtemp(join(tmpdir(), prefix));
export const rand = () => randomBytes(3).toString('hex');

export interface AgentProc { proc: ChildProcess; lines: Record<string, unknown>[]; exited: Promise<number | null>; waitFor(msg: RegExp, ms?: number): Promise<Record<string, unknown>> }

/** Starts `agent/src/main.ts` with the pinned Node (process.execPath) and collects its JSON log lines. */
const started = new Set<ChildProcess>();

/** Kills (by PID, SIGKILL) every agent process this module started that is still running. */
export async function killStartedAgents(): Promise<void> {
  for (const p of started) {
    if (p.exitCode === null && p.signalCode === null) {
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await gone;
    }
  }
  started.clear();
}

/**
 * Runs the agent as a process. `backend: 'fake'` runs the test entry point with the in-memory FakeBackend (no
 * Kubernetes, OVS or kernel); `'real'` runs the production entry point agent/src/main.ts as it is.
 */
export function startAgentProcess(args: string[], o: { backend?: 'fake' | 'real'; nodeArgs?: string[]; env?: Record<string, string> } = {}): AgentProc {
  // an ephemeral metrics/health port, so that several agents (and other tests) never collide on :10665
  const all = args.some((a) => a.startsWith('--pprof-port')) ? args : [...args, '--pprof-port=0'];
  const fake = (o.backend ?? 'fake') === 'fake';
  const proc = spawn(process.execPath, [...(o.nodeArgs ?? []), fake ? TEST_MAIN : MAIN, ...all], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...o.env, KOA_TEST_BACKEND: fake ? 'fake' : '' },
  });
  started.add(proc);
  // start-up takes ~1 s; the bound is for a machine loaded by parallel builds (seen: 15 s was not enough at load 15)
  return { proc, ...followAgentLog(proc, 60_000) };
}

/**
 * Follows an agent process's JSON log lines (stdout; stderr lines kept as plain messages): every line parsed, and
 * `waitFor(re)` resolving on the first line whose msg matches (rejecting on timeout or when the agent exits first).
 */
export function followAgentLog(proc: ChildProcess, defaultMs: number): Omit<AgentProc, 'proc'> {
  const lines: Record<string, unknown>[] = [];
  const waiters: { re: RegExp; resolve: (l: Record<string, unknown>) => void }[] = [];
  let buf = '';
  const onLine = (l: string) => {
    let o: Record<string, unknown>;
    try { o = JSON.parse(l) as Record<string, unknown>; } catch { o = { msg: l }; }
    lines.push(o);
    for (const w of [...waiters]) if (w.re.test(String(o.msg))) { waiters.splice(waiters.indexOf(w), 1); w.resolve(o); }
  };
  proc.stdout!.on('data', (c: Buffer) => { buf += c.toString(); let i; while ((i = buf.indexOf('\n')) >= 0) { onLine(buf.slice(0, i)); buf = buf.slice(i + 1); } });
  proc.stderr!.on('data', (c: Buffer) => { for (const l of c.toString().split('\n')) if (l.trim()) onLine(l); });
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  return {
    lines, exited,
    waitFor(re, ms = defaultMs) {
      const hit = lines.find((o) => re.test(String(o.msg)));
      if (hit) return Promise.resolve(hit);
      return new Promise((res, rej) => {
        const t = setTimeout(() => rej(new Error(`agent did not log ${re} within ${ms} ms; log: ${JSON.stringify(lines).slice(0, 2000)}`)), ms);
        waiters.push({ re, resolve: (l) => { clearTimeout(t); res(l); } });
        void exited.then((code) => { clearTimeout(t); rej(new Error(`agent exited with ${code} before logging ${re}; log: ${JSON.stringify(lines).slice(0, 2000)}`)); });
      });
    },
  };
}

export async function stopAgent(a: AgentProc, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (a.proc.exitCode !== null || a.proc.signalCode !== null) return a.proc.exitCode;
  a.proc.kill(signal);
  return a.exited;
}

export const cniEnv = (cmd: string, o: Record<string, string> = {}): Record<string, string> => ({
  CNI_COMMAND: cmd, CNI_CONTAINERID: 'koac-c1', CNI_NETNS: '/var/run/netns/koac-none', CNI_IFNAME: 'eth0',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=koac-pod', CNI_PATH: '/opt/cni/bin', ...o,
});

export const netconf = (sock: string, v = '1.0.0', extra: Record<string, unknown> = {}) =>
  JSON.stringify({ cniVersion: v, name: 'kube-ovn', type: 'kube-ovn', server_socket: sock, ...extra });

/** `ip netns add` with the koac prefix; returns the name. */
export function addNetns(tag = ''): string {
  const name = `koac${tag}${rand()}`;
  execFileSync('ip', ['netns', 'add', name]);
  return name;
}

export function delNetns(name: string): void {
  try { execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' }); } catch { /* already gone */ }
}
