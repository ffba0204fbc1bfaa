// The CNI path: the C executable's cost per call and its memory, and the agent's handling of one forwarded call.
//   shim.call     wall time of one `kube-ovn` ADD against the real agent running as a separate process with the
//                 in-memory fake backend (a trivially answering agent), spawned like a runtime does (posix_spawn +
//                 wait4, by cni-shim/bench-spawn: Node's own spawnSync adds ~1.2 ms per call that is not the
//                 executable's); baseline: `node -e 0` with the pinned Node 24 (process.execPath), spawned the same way.
//   shim.rss      peak RSS (VmHWM at exit, read under ptrace by bench-spawn --rss) of that same ADD call;
//                 baseline: node -e 0 measured the same way.
//   agent.request round trip of one forwarded ADD over the Unix socket to an in-process agent (keep-alive client);
//                 baseline: the same round trip to a bare node:http server answering a constant (transport floor).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent as HttpAgent, createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { percentile, report, timeRuns } from './lib.ts';
import type { BenchContext } from './lib.ts';
import { Dispatcher } from '../agent/src/cni/dispatcher.ts';
import { FakeBackend } from '../agent/src/cni/fake-backend.ts';
import { CALL_PATH, startCniServer } from '../agent/src/server/cni-server.ts';

export const ids = ['shim.call', 'shim.rss', 'agent.request'] as const;

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SHIM = join(ROOT, 'cni-shim', 'kube-ovn');
const N = Math.max(200, Number(process.env.KOA_BENCH_N) || 300);
let SPAWN = ''; // built per run into the bench's temp dir from cni-shim/bench-spawn.c (a helper, not the product)
const WARMUP = 10;

const env = (): Record<string, string> => ({
  CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'koacbench0', CNI_NETNS: '/var/run/netns/koacbench', CNI_IFNAME: 'eth0',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=bench', CNI_PATH: '/opt/cni/bin',
});
const netconf = (sock: string) => JSON.stringify({ cniVersion: '0.3.1', name: 'kube-ovn', type: 'kube-ovn', server_socket: sock });

/** Runs argv `n + WARMUP` times through bench-spawn; returns [ms, KiB] per measured run (all must exit 0). */
function spawnRuns(n: number, stdinFile: string, argv: string[], e: NodeJS.ProcessEnv, rss = false): { ms: number[]; kib: number[] } {
  const r = spawnSync(SPAWN, [...(rss ? ['--rss'] : []), String(n + WARMUP), stdinFile, ...argv], { env: e, encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`bench-spawn failed: ${r.stderr}`);
  const rows = r.stdout.trim().split('\n').map((l) => l.split(' ').map(Number) as [number, number, number]);
  const bad = rows.find((x) => x[2] !== 0);
  if (bad) throw new Error(`${argv.join(' ')} exited ${bad[2]}`);
  const measured = rows.slice(WARMUP);
  return { ms: measured.map((x) => x[0]), kib: measured.map((x) => x[1]) };
}

export default async function bench(ctx: BenchContext): Promise<void> {
  if (!ids.some((id) => ctx.wants(id))) return;
  execFileSync('make', ['-s', '-C', join(ROOT, 'cni-shim')], { stdio: 'inherit' });
  const dir = await mkdtemp(join(tmpdir(), 'koac-bench-'));
  SPAWN = join(dir, 'bench-spawn');
  execFileSync(process.env.CC || 'gcc', ['-O2', '-Wall', '-o', SPAWN, join(ROOT, 'cni-shim', 'bench-spawn.c')], { stdio: 'inherit' });
  try {
    if (ctx.wants('shim.call') || ctx.wants('shim.rss')) await benchShim(ctx, dir);
    if (ctx.wants('agent.request')) await benchAgent(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function benchShim(ctx: BenchContext, dir: string): Promise<void> {
  const sock = join(dir, 'agent.sock');
  const agent = spawn(process.execPath, [join(ROOT, 'agent', 'src', 'main.ts'), '--bind-socket', sock, '--backend=fake',
    '--cni-del-queue-dir', join(dir, 'q'), '--log-level=warn', '--pprof-port=0'], { stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    for (let i = 0; i < 200 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
    if (!existsSync(sock)) throw new Error('agent did not create its socket');
    const e = env();
    const stdinFile = join(dir, 'netconf.json');
    await writeFile(stdinFile, netconf(sock));
    const empty = join(dir, 'empty');
    await writeFile(empty, '');
    const nodeArgv = [process.execPath, '-e', '0'];
    if (ctx.wants('shim.call')) {
      const shim = spawnRuns(N, stdinFile, [SHIM], e).ms;
      const node = spawnRuns(Math.min(N, 200), empty, nodeArgv, process.env).ms;
      report('shim.call', 'ms', shim, { name: 'node -e 0 (Node 24)', p50: percentile(node, 50) });
    }
    if (ctx.wants('shim.rss')) {
      const shim = spawnRuns(200, stdinFile, [SHIM], e, true).kib.map((k) => k / 1024);
      const node = spawnRuns(20, empty, nodeArgv, process.env, true).kib.map((k) => k / 1024);
      report('shim.rss', 'MB', shim, { name: 'node -e 0 (Node 24)', p50: percentile(node, 50) });
    }
  } finally {
    const gone = new Promise((r) => agent.once('exit', r));
    agent.kill('SIGTERM');
    await gone;
  }
}

function post(sock: string, path: string, body: string, agent: HttpAgent): Promise<string> {
  return new Promise((res, rej) => {
    const req = request({ socketPath: sock, path, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (r) => {
      let s = '';
      r.on('data', (c: Buffer) => { s += c.toString(); });
      r.on('end', () => (r.statusCode === 200 ? res(s) : rej(new Error(`HTTP ${r.statusCode}: ${s}`))));
    });
    req.on('error', rej);
    req.end(body);
  });
}

async function benchAgent(dir: string): Promise<void> {
  const sock = join(dir, 'inproc.sock');
  const srv = await startCniServer({ socketPath: sock, dispatcher: new Dispatcher({ backend: new FakeBackend() }), log: pino({ level: 'silent' }) });
  const bare = createServer((_q, r) => { _q.resume(); _q.on('end', () => r.end('{}')); });
  const bareSock = join(dir, 'bare.sock');
  await new Promise<void>((r) => bare.listen(bareSock, r));
  const ka = new HttpAgent({ keepAlive: true, maxSockets: 1 });
  try {
    const e = env();
    const body = JSON.stringify({ env: e, stdin: netconf(sock) });
    const n = Math.max(N, 2000);
    const agentMs = await timeRuns(n, () => post(sock, CALL_PATH, body, ka), 200);
    const bareMs = await timeRuns(n, () => post(bareSock, '/', body, ka), 200);
    report('agent.request', 'ms', agentMs, { name: 'bare node:http on a Unix socket', p50: percentile(bareMs, 50) });
  } finally {
    ka.destroy();
    await new Promise<void>((r) => bare.close(() => r()));
    await srv.close();
  }
}
