// The agent's side of cni-shim/kube-ovn-exec: one long-lived small process that spawns the agent's external
// commands (iptables-save/-restore, ipset), so the agent's event loop never forks (kube-ovn-exec.c says why).
// Requests are answered in order, one at a time. The launcher is started on first use; if it dies, what was
// pending fails with its reason and the next request starts a new one. Where the executable is missing (a source
// tree before `npm run build:shim`), commands are spawned directly.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants as osConstants } from 'node:os';
import { decodeAnswer, encodeRequest, type LaunchAnswer, type LaunchRequest } from './launcher-codec.ts';

export interface ExecResult { stdout: string; stderr: string; code: number | null }

interface Pending { resolve: (a: LaunchAnswer) => void; reject: (e: Error) => void }

const here = dirname(fileURLToPath(import.meta.url));
/** Next to the bundle in the image (/kube-ovn/dist/agent.mjs -> /kube-ovn/kube-ovn-exec), else cni-shim/ of the
 *  source tree, seen from the repository's dist/ bundle or from agent/src/exec/. */
export const LAUNCHER_CANDIDATES = [join(here, '..', 'kube-ovn-exec'), join(here, '..', 'cni-shim', 'kube-ovn-exec'),
  join(here, '..', '..', '..', 'cni-shim', 'kube-ovn-exec')];

export class Launcher {
  private child: ChildProcess | undefined;
  /** answer bytes received and not yet decoded; `need` is the current answer's size once its length is known */
  private chunks: Buffer[] = [];
  private have = 0;
  private need = -1;
  private readonly queue: Pending[] = [];
  /** commands run, launchers started (1 in steady state) */
  readonly stats = { runs: 0, starts: 0 };
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  run(r: LaunchRequest): Promise<LaunchAnswer> {
    let frame: Buffer;
    try {
      frame = encodeRequest(r);
    } catch (e) {
      return Promise.reject(e);
    }
    const child = this.child ?? this.start();
    this.stats.runs++;
    return new Promise((resolve, reject) => {
      this.queue.push({ resolve, reject });
      this.hold(child, true);
      child.stdin!.write(frame);
    });
  }

  /** The running launcher's PID (none before the first request or after it died). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Ends the launcher: it exits on EOF after the command it is running. */
  stop(): void {
    this.child?.stdin?.end();
    this.child = undefined;
  }

  private start(): ChildProcess {
    this.stats.starts++;
    const child = spawn(this.path, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.child = child;
    this.chunks = [];
    this.have = 0;
    this.need = -1;
    this.hold(child, false);
    child.stdin!.on('error', () => undefined); // reported through 'exit' below
    child.stdout!.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.have += d.length;
      try {
        this.drain();
      } catch (e) {
        child.kill('SIGKILL');
        this.failAll(e as Error);
      }
      if (this.queue.length === 0) this.hold(child, false);
    });
    const gone = (why: string) => {
      if (this.child === child) this.child = undefined;
      this.failAll(new Error(`process launcher ${this.path} ${why}`));
    };
    child.on('error', (e) => gone(`failed: ${e.message}`));
    child.on('exit', (code, signal) => gone(`exited (${signal ?? `status ${code}`})`));
    return child;
  }

  /** Decodes every complete answer. Chunks are joined once per answer (an iptables-save can be tens of MB). */
  private drain(): void {
    for (;;) {
      if (this.need < 0) {
        if (this.have < 4) return;
        if (this.chunks[0]!.length < 4) this.chunks = [Buffer.concat(this.chunks, this.have)];
        this.need = 4 + this.chunks[0]!.readUInt32LE(0);
      }
      if (this.have < this.need) return;
      const got = decodeAnswer(this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.have))!;
      this.chunks = got.rest.length ? [got.rest] : [];
      this.have = got.rest.length;
      this.need = -1;
      this.queue.shift()?.resolve(got.answer);
    }
  }

  /** The launcher keeps the event loop alive only while an answer is awaited: it never holds the agent open. */
  private hold(child: ChildProcess, on: boolean): void {
    const handles = [child, child.stdout, child.stdin] as unknown as Array<{ ref?: () => void; unref?: () => void }>;
    for (const h of handles) (on ? h.ref : h.unref)?.call(h);
  }

  private failAll(e: Error): void {
    for (const p of this.queue.splice(0)) p.reject(e);
  }
}

let shared: Launcher | null | undefined;

/** The process's launcher, or null where the executable is missing. */
export function launcher(): Launcher | null {
  if (shared === undefined) {
    const path = LAUNCHER_CANDIDATES.find((p) => existsSync(p));
    shared = path ? new Launcher(path) : null;
  }
  return shared;
}

const errnoName = (n: number): string =>
  Object.entries(osConstants.errno).find(([, v]) => v === n)?.[0] ?? `errno ${n}`;
const signalName = (n: number): string =>
  Object.entries(osConstants.signals).find(([, v]) => v === n)?.[0] ?? `signal ${n}`;

/** Runs argv with optional stdin through the launcher (or a direct spawn where there is none); resolves with the
 *  exit status (never rejects for a non-zero exit; rejects when the command could not be started). */
export async function execArgv(argv: readonly string[], input: string | undefined, timeoutMs: number): Promise<ExecResult> {
  if (argv.length === 0) throw new Error('execArgv: empty argv');
  const l = launcher();
  if (!l) return spawnDirect(argv, input, timeoutMs);
  const a = await l.run({ argv, input: input ?? '', timeoutMs });
  if (a.spawnErrno !== 0) {
    const e = new Error(`spawn ${argv[0]} ${errnoName(a.spawnErrno)}`) as NodeJS.ErrnoException;
    e.code = errnoName(a.spawnErrno);
    throw e;
  }
  const stderr = a.stderr.toString('utf8') + (a.signal ? `\nkilled by ${signalName(a.signal)}` : '');
  return { stdout: a.stdout.toString('utf8'), stderr, code: a.code };
}

/** The fallback: Node's own spawn (forks the agent; see kube-ovn-exec.c). */
export function spawnDirect(argv: readonly string[], input: string | undefined, timeoutMs: number): Promise<ExecResult> {
  const [file, ...args] = argv;
  return new Promise((resolve, reject) => {
    const child = spawn(file!, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString('utf8') + (signal ? `\nkilled by ${signal}` : '');
      resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr, code });
    });
    // a tool that exits early (bad option) closes stdin under us: that is reported through its exit status
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
  });
}
