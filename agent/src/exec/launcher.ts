// The agent's side of cni-shim/kube-ovn-exec: one long-lived small process that spawns the agent's external
// commands (iptables-save/-restore, ipset), so the agent's event loop never forks (kube-ovn-exec.c says why).
// Each launcher process answers in order, one command at a time; up to four run side by side, started on demand.
// All but one exit after EXTRA_IDLE_MS without a command: at rest the agent keeps a single launcher (0.7 MB of RSS
// each, nearly all the static executable's pages), and a netfilter pass that runs two commands at once starts a
// second one again (a fork of the agent, which is what the launcher saves the busy path from, not the idle one).
// If one dies, what it had pending fails with the reason and the next request starts a new one. Where the executable is missing (a source
// tree before `npm run build:shim`), commands are spawned directly.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants as osConstants } from 'node:os';
import { decodeAnswer, encodeRequest, type LaunchAnswer, type LaunchRequest } from './launcher-codec.ts';

export interface ExecResult { stdout: string; stderr: string; code: number | null }

const here = dirname(fileURLToPath(import.meta.url));
/** Next to the bundle in the image (/kube-ovn/dist/agent.mjs -> /kube-ovn/kube-ovn-exec), else cni-shim/ of the
 *  source tree, seen from the repository's dist/ bundle or from agent/src/exec/. */
export const LAUNCHER_CANDIDATES = [join(here, '..', 'kube-ovn-exec'), join(here, '..', 'cni-shim', 'kube-ovn-exec'),
  join(here, '..', '..', '..', 'cni-shim', 'kube-ovn-exec')];

/** How long a launcher beyond the first may stay idle. */
export const EXTRA_IDLE_MS = 10_000;

interface Pending { resolve: (a: LaunchAnswer) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }

/** Thrown when the launcher executable itself could not be started (execArgv then spawns directly). */
export class LauncherUnavailable extends Error {}

/** One kube-ovn-exec process: its pipes, its queue of awaited answers, its undecoded bytes. */
class LauncherProcess {
  readonly child: ChildProcess;
  readonly queue: Pending[] = [];
  private chunks: Buffer[] = [];
  private have = 0;
  /** the current answer's size once its length is known */
  private need = -1;
  private dead = false;
  private readonly onGone: (p: LauncherProcess) => void;
  private readonly onIdle: (p: LauncherProcess) => void;

  constructor(path: string, onGone: (p: LauncherProcess) => void, onIdle: (p: LauncherProcess) => void = () => undefined) {
    this.onGone = onGone;
    this.onIdle = onIdle;
    this.child = spawn(path, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.hold(false);
    this.child.stdin!.on('error', () => undefined); // reported through 'close' below
    this.child.stdout!.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.have += d.length;
      try {
        this.drain();
      } catch (e) {
        this.kill(e as Error);
      }
    });
    this.child.on('error', (e) => this.fail(new LauncherUnavailable(`process launcher ${path} failed: ${e.message}`)));
    // 'close', not 'exit': every answer already written is read before what is still pending fails
    this.child.on('close', (code, signal) => this.fail(new Error(`process launcher ${path} exited (${signal ?? `status ${code}`})`)));
  }

  send(frame: Buffer, watchdogMs: number): Promise<LaunchAnswer> {
    return new Promise((resolve, reject) => {
      // the launcher enforces the command's timeout; this bound only catches a launcher that stopped answering
      const timer = setTimeout(() => this.kill(new Error(`process launcher gave no answer within ${watchdogMs} ms`)), watchdogMs);
      timer.unref();
      this.queue.push({ resolve, reject, timer });
      this.hold(true);
      this.child.stdin!.write(frame);
    });
  }

  end(): void {
    this.dead = true;
    this.child.stdin?.end();
    this.onGone(this);
  }

  private kill(e: Error): void {
    this.child.kill('SIGKILL');
    this.fail(e);
  }

  private fail(e: Error): void {
    if (!this.dead) {
      this.dead = true;
      this.onGone(this);
    }
    for (const p of this.queue.splice(0)) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.hold(false);
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
      const rest = Buffer.from(got.rest); // a copy: a view would keep the whole joined answer alive
      this.chunks = rest.length ? [rest] : [];
      this.have = rest.length;
      this.need = -1;
      const p = this.queue.shift();
      if (!p) throw new Error('process launcher sent an answer nobody asked for');
      clearTimeout(p.timer);
      p.resolve(got.answer);
      if (this.queue.length === 0) {
        this.hold(false);
        this.onIdle(this);
      }
    }
  }

  /** A launcher keeps the event loop alive only while an answer is awaited: it never holds the agent open. */
  private hold(on: boolean): void {
    const handles = [this.child, this.child.stdout, this.child.stdin] as unknown as Array<{ ref?: () => void; unref?: () => void }>;
    for (const h of handles) (on ? h.ref : h.unref)?.call(h);
  }
}

/** Up to `max` launcher processes, each running one command at a time: a command waiting for the xtables lock
 *  (`iptables-restore -w`) does not hold up an `ipset` next to it. Started on demand. */
export class Launcher {
  private readonly procs: LauncherProcess[] = [];
  readonly stats = { runs: 0, starts: 0, idleExits: 0 };
  readonly path: string;
  readonly max: number;
  readonly extraIdleMs: number;
  private reaper: NodeJS.Timeout | undefined;

  constructor(path: string, max = 4, extraIdleMs = EXTRA_IDLE_MS) {
    this.path = path;
    this.max = max;
    this.extraIdleMs = extraIdleMs;
  }

  /** PIDs of the running launcher processes. */
  get pids(): number[] {
    return this.procs.map((p) => p.child.pid).filter((p): p is number => p !== undefined);
  }

  /** After a command: once every launcher is idle, the extras get EXTRA_IDLE_MS before they exit (one stays). */
  private idle(): void {
    if (this.procs.length <= 1 || this.procs.some((p) => p.queue.length > 0)) return;
    clearTimeout(this.reaper);
    this.reaper = setTimeout(() => {
      this.reaper = undefined;
      const extras = this.procs.filter((p) => p.queue.length === 0).slice(this.procs.some((p) => p.queue.length > 0) ? 0 : 1);
      for (const p of extras) { this.stats.idleExits++; p.end(); }
    }, this.extraIdleMs);
    this.reaper.unref();
  }

  run(r: LaunchRequest): Promise<LaunchAnswer> {
    let frame: Buffer;
    try {
      frame = encodeRequest(r);
    } catch (e) {
      return Promise.reject(e);
    }
    this.stats.runs++;
    clearTimeout(this.reaper); // re-armed when everything is idle again
    return this.pick().send(frame, r.timeoutMs + 30_000);
  }

  /** Ends every launcher process: each exits on EOF after the command it is running. */
  stop(): void {
    clearTimeout(this.reaper);
    for (const p of [...this.procs]) p.end();
  }

  private pick(): LauncherProcess {
    const idle = this.procs.find((p) => p.queue.length === 0);
    if (idle) return idle;
    if (this.procs.length < this.max) {
      this.stats.starts++;
      const p = new LauncherProcess(this.path, (gone) => {
        const i = this.procs.indexOf(gone);
        if (i >= 0) this.procs.splice(i, 1);
      }, () => this.idle());
      this.procs.push(p);
      return p;
    }
    return this.procs.reduce((a, b) => (b.queue.length < a.queue.length ? b : a));
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
  let a: LaunchAnswer;
  try {
    a = await l.run({ argv, input: input ?? '', timeoutMs });
  } catch (e) {
    if (e instanceof LauncherUnavailable) return spawnDirect(argv, input, timeoutMs); // e.g. a noexec mount
    throw e;
  }
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
