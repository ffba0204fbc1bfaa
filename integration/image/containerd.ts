// A private containerd for the image test: its own root, state, runc root and sockets under a temp dir, the CRI
// plugin and everything else that would touch global paths (/opt/containerd, tracing) off, started by the test and
// stopped by its PID. Containers run with containerd's default networking off: a fresh network namespace with only
// `lo`. (containerd-shim-runc-v2 still puts its socket under /run/containerd/s/; stop() removes the directories it
// created there when they are empty again.)
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const NS = 'k8s.io';
const GLOBAL_DIRS = ['/run/containerd', '/run/containerd/s', '/run/containerd/fifo'];

export interface Containerd {
  readonly address: string;
  /** `ctr` with this containerd's address and namespace */
  ctr(args: string[], opts?: { timeoutMs?: number }): Promise<{ stdout: string; stderr: string }>;
  /** runs argv in a new container of `image` (removed afterwards); never rejects: the exit code is returned.
   *  `binds`: host directories bind-mounted (read-write) at container paths; `input`: the program's stdin (then its end) */
  runIn(image: string, argv: string[], env?: Record<string, string>, opts?: RunInOptions): Promise<{ code: number; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

export interface RunInOptions {
  binds?: readonly { src: string; dst: string }[];
  input?: string;
}

export async function startContainerd(dir: string): Promise<Containerd> {
  await mkdir(dir, { recursive: true });
  const address = join(dir, 'containerd.sock');
  const config = `version = 2
root = "${dir}/root"
state = "${dir}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "${address}"
[ttrpc]
  address = "${address}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
`;
  await writeFile(join(dir, 'config.toml'), config);
  const created = GLOBAL_DIRS.filter((d) => !existsSync(d));
  const log = openSync(join(dir, 'containerd.log'), 'a');
  const proc: ChildProcess = spawn('containerd', ['--config', join(dir, 'config.toml')], { stdio: ['ignore', log, log] });
  closeSync(log);
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  let seq = 0;

  const ctr = (args: string[], opts: { timeoutMs?: number } = {}) =>
    run('ctr', ['--address', address, '--namespace', NS, ...args], { timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20 });

  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      // tasks left by a failed step: their shims would outlive containerd
      const tasks = await ctr(['tasks', 'ls', '-q']).then((r) => r.stdout.split('\n').filter(Boolean), () => []);
      for (const t of tasks) await ctr(['tasks', 'kill', '-s', 'SIGKILL', t]).catch(() => undefined);
      for (const t of tasks) await ctr(['tasks', 'delete', t]).catch(() => undefined);
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    for (const d of [...created].reverse()) await rmdir(d).catch(() => undefined);
  };

  // ready when the API answers (bounded: a containerd that cannot start shows its log)
  const t0 = Date.now();
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`containerd exited ${proc.exitCode}: ${await readFile(join(dir, 'containerd.log'), 'utf8')}`);
    try {
      await ctr(['version'], { timeoutMs: 5_000 });
      break;
    } catch (e) {
      if (Date.now() - t0 > 60_000) {
        await stop();
        throw new Error(`containerd did not answer in 60 s: ${String(e)}\n${await readFile(join(dir, 'containerd.log'), 'utf8')}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  const runIn = async (image: string, argv: string[], env: Record<string, string> = {}, opts: RunInOptions = {}) => {
    const id = `koaim-${process.pid}-${++seq}`;
    const envArgs = Object.entries(env).flatMap(([k, v]) => ['--env', `${k}=${v}`]);
    const mountArgs = (opts.binds ?? []).flatMap((b) => ['--mount', `type=bind,src=${b.src},dst=${b.dst},options=rbind:rw`]);
    // `ctr run` copies its stdin to the container but never closes the container's end (a reader of `-` waits
    // forever), so the input goes through a pipe made inside the container by the image's sh, argv unchanged after it
    const cmd = opts.input === undefined ? argv : ['sh', '-c', 'printf "%s" "$0" | "$@"', opts.input, ...argv];
    try {
      const r = await ctr(['run', '--rm', '--runc-root', join(dir, 'runc'), ...envArgs, ...mountArgs, image, id, ...cmd]);
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      const err = e as { code?: number | string; stdout?: string; stderr?: string };
      if (typeof err.code !== 'number') throw e;
      // ctr run --rm leaves nothing behind after a non-zero exit; its exit code is the container's
      return { code: err.code, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
    }
  };

  return { address, ctr, runIn, stop };
}
