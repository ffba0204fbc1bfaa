// Netfilter: observe + plan + apply of a node's desired state the size of 250 subnets (test/netfilter/sample.ts:
// 7 sets with ~750 members, 2 `ovn-subnet-gateway` counter rules per subnet = 500, and the ~35 chain/jump/filter
// rules), from empty and as a no-op re-apply, against upstream's way in the same run: one `iptables -A` exec per
// rule (sets through one `ipset restore`, as upstream's felix library does), and one `iptables -C` exec per rule
// for the no-op check (kube-ovn#4859). Needs root; everything happens in a namespace of our own (koanfb + random),
// reached with `nsenter --net`, deleted at the end. The no-op lines carry `lines` (must be 0).
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { emit, percentile, report, timeRuns, type BenchContext, type BenchLine } from './lib.ts';
import { ExecNetfilterRunner, execArgv } from '../agent/src/datapath/netfilter/runner.ts';
import { observe, apply, removeOwned } from '../agent/src/datapath/netfilter/apply.ts';
import { plan } from '../agent/src/datapath/netfilter/plan.ts';
import { canonicalRule } from '../agent/src/datapath/netfilter/canonical.ts';
import { splitArgs } from '../agent/src/datapath/netfilter/args.ts';
import { createLine, addLine, canonicalMember } from '../agent/src/datapath/netfilter/ipset-codec.ts';
import type { DesiredState, Ownership } from '../agent/src/datapath/netfilter/desired.ts';
import { sampleDesired, sampleOwnership } from '../test/netfilter/sample.ts';

export const ids = ['netfilter.apply_250_subnets', 'netfilter.noop_250_subnets', 'netfilter.plan_250_subnets'] as const;

const N = Number(process.env.KOA_BENCH_N) || 10;
const SUBNETS = 250;

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

/** The desired state as single commands, the way upstream applies it: -N per chain, -A/-I per rule. */
function perRuleCommands(d: DesiredState): string[][] {
  const out: string[][] = [];
  for (const [table, t] of Object.entries(d.tables)) {
    const chains = Object.entries((t?.chains ?? {}) as Record<string, string[]>);
    for (const [c] of chains) out.push(['-t', table, '-N', c]);
    for (const [c, rules] of chains) for (const r of rules) out.push(['-t', table, '-A', c, ...splitArgs(canonicalRule(r, d.family))]);
    for (const r of t?.rules ?? []) out.push(['-t', table, r.position === 'bottom' ? '-A' : '-I', r.chain, ...(r.position === 'bottom' ? [] : ['1']), ...splitArgs(canonicalRule(r.rule, d.family))]);
  }
  return out;
}

function setsRestore(d: DesiredState): string {
  return (d.ipsets ?? []).flatMap((s) => [createLine({ name: s.name, type: s.type, family: s.family ?? 'inet', ...(s.maxelem ? { maxelem: s.maxelem } : {}) }),
    ...[...s.members].map((m) => addLine(s.name, canonicalMember(s.type, s.family, m)))]).join('\n') + '\n';
}

export default async function bench(ctx: BenchContext): Promise<void> {
  if (!ids.some((id) => ctx.wants(id))) return;
  if (process.getuid?.() !== 0) throw new Error('netfilter benches need root (they create a network namespace)');
  const ns = `koanfb${randomBytes(3).toString('hex')}`;
  ip(['netns', 'add', ns]);
  try {
    const prefix = ['nsenter', `--net=/run/netns/${ns}`];
    const runner = new ExecNetfilterRunner({ backend: 'system', argvPrefix: prefix });
    const own: Ownership = sampleOwnership(4);
    const desired = sampleDesired(4, { subnets: SUBNETS });
    const clear = async () => { await removeOwned(runner, 4, own, { sets: true }); };
    let spawnsFromEmpty = 0;
    const once = async () => {
      const p = plan(desired, await observe(runner, 4, own), own);
      await apply(runner, p);
      spawnsFromEmpty = (p.ipset ? 1 : 0) + (p.iptables.size ? 1 : 0) + (p.ipsetAfter ? 1 : 0);
      return p.lines;
    };

    // from empty: each measured run starts from a cleared namespace (clearing is not measured)
    const applied: number[] = [];
    let linesFromEmpty = 0;
    for (let i = -2; i < N; i++) {
      await clear();
      const t0 = process.hrtime.bigint();
      linesFromEmpty = await once();
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (i >= 0) applied.push(ms);
    }
    // no-op: state already in place
    const writesFromEmpty = spawnsFromEmpty;
    let noopLines = -1;
    const noop = await timeRuns(N * 2, async () => { noopLines = await once(); }, 2);
    if (noopLines !== 0) throw new Error(`no-op re-apply emitted ${noopLines} lines`);
    // the agent's own CPU per resync: plan() over an observed state that matches
    const observed = await observe(runner, 4, own);
    const planOnly = await timeRuns(N * 20, () => { if (plan(desired, observed, own).lines !== 0) throw new Error('plan not empty'); }, 5);

    // baseline: upstream's way, one exec per rule (from empty), and one `iptables -C` per rule (no-op check)
    const cmds = perRuleCommands(desired);
    const sets = setsRestore(desired);
    const runCmd = async (argv: string[]) => {
      const r = await execArgv([...prefix, ...argv], undefined, 60_000);
      if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr.trim()}`);
    };
    const wantBaseline = ctx.wants('netfilter.apply_250_subnets') || ctx.wants('netfilter.noop_250_subnets');
    const baseN = wantBaseline ? Math.max(3, Math.ceil(N / 4)) : 0;
    const perRule: number[] = [];
    for (let i = 0; i < baseN; i++) {
      await clear();
      const t0 = process.hrtime.bigint();
      await runner.ipsetRestore(sets);
      for (const c of cmds) await runCmd(['iptables', '-w', '5', ...c]);
      perRule.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const checks = cmds.filter((c) => c[2] !== '-N').map((c) => [...c.slice(0, 2), '-C', c[3]!, ...c.slice(c[2] === '-I' ? 5 : 4)]);
    const perCheck = await timeRuns(baseN, async () => { for (const c of checks) await runCmd(['iptables', '-w', '5', ...c]); }, 0);
    await clear();

    if (ctx.wants('netfilter.apply_250_subnets')) {
      report('netfilter.apply_250_subnets', 'ms', applied, { name: `iptables -A per rule (${cmds.length} execs) + one ipset restore`, p50: percentile(perRule, 50) });
      process.stderr.write(`netfilter.apply_250_subnets: ${linesFromEmpty} lines from empty in ${writesFromEmpty} restore execs (+2 save execs to observe)\n`);
    }
    if (ctx.wants('netfilter.noop_250_subnets')) {
      const line: BenchLine & { lines: number } = { bench: 'netfilter.noop_250_subnets', unit: 'ms', p50: percentile(noop, 50), p99: percentile(noop, 99),
        n: noop.length, baseline: { name: `iptables -C per rule (${checks.length} execs)`, p50: percentile(perCheck, 50) }, lines: noopLines };
      emit(line);
    }
    if (ctx.wants('netfilter.plan_250_subnets')) report('netfilter.plan_250_subnets', 'ms', planOnly, null);
  } finally {
    ip(['netns', 'del', ns]);
  }
}
