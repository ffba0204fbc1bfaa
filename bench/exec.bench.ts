// External commands (iptables-save/-restore, ipset) and the event loop:
//   exec.loop_block  ms the event loop is held by starting one command, in a process holding ~100 MB of heap like
//                    the agent: the synchronous part of execArgv through the process launcher (cni-shim/kube-ovn-exec:
//                    encode + one pipe write); baseline: Node's own spawn() of the same command (fork of this
//                    process + the wait until the child has exec'd, both on the loop's thread).
//   exec.command     ms from start to exit status of `iptables-save --version`, through the launcher; baseline: the
//                    same through Node's spawn().
import { percentile, report, type BenchContext } from './lib.ts';
import { execArgv, launcher, spawnDirect } from '../agent/src/exec/launcher.ts';

export const ids = ['exec.loop_block', 'exec.command'] as const;

const N = Number(process.env.KOA_BENCH_N) || 50;
const ARGV = ['iptables-save', '--version'];

export default async function bench(ctx: BenchContext): Promise<void> {
  if (!ids.some((id) => ctx.wants(id))) return;
  if (!launcher()) throw new Error('cni-shim/kube-ovn-exec is not built (npm run build:shim)');
  // the agent's heap at idle is ~80-100 MB RSS; fork cost grows with it, so hold as much here
  const ballast = Array.from({ length: 200 }, (_, i) => Array.from({ length: 1000 }, (_, j) => ({ i, j, s: `x${j}` })));
  const block = { via: [] as number[], direct: [] as number[] };
  const wall = { via: [] as number[], direct: [] as number[] };
  for (let i = 0; i < N + 3; i++) {
    for (const [kind, run] of [['via', execArgv], ['direct', spawnDirect]] as const) {
      const t0 = performance.now();
      const p = run(ARGV, undefined, 10_000);
      const t1 = performance.now();
      const r = await p;
      const t2 = performance.now();
      if (r.code !== 0) throw new Error(`${ARGV.join(' ')} (${kind}): ${r.stderr}`);
      if (i >= 3) { block[kind].push(t1 - t0); wall[kind].push(t2 - t0); }
    }
  }
  const rss = Math.round(process.memoryUsage().rss / 1e6);
  report('exec.loop_block', 'ms', block.via, { name: `Node spawn() of the same command (process RSS ${rss} MB)`, p50: percentile(block.direct, 50) });
  report('exec.command', 'ms', wall.via, { name: 'Node spawn() of the same command', p50: percentile(wall.direct, 50) });
  launcher()!.stop();
  ballast.length = 0;
}
