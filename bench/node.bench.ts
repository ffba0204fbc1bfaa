// The node wing on the real bed (one node, kube-apiserver, OVS userspace datapath, OVN, the stand-in controller; the
// node namespace prepared as in integration/node/lib.ts), with the shipped bundle (dist/agent.mjs) at its built-in
// resync periods (iptables 15 s, routes/ovn0 30 s). Each line has a baseline measured in the same run:
//   node.startup                ms from spawning the agent to its `agent started` line (every component ready: ovn0,
//                               join gateway, routes, iptables), node annotations present, the node already set up by
//                               an earlier run (a restart); baseline: spawning `node -e 0` the same way (the floor of
//                               starting Node in the node namespace).
//   node.reconcile_250_subnets  ms of one full pass of host-routes + netfilter-v4 with 250 more subnets, nothing to
//                               change (from the agent's reconcile_duration histogram, one pass each per sample);
//                               `lines` = lines fed to iptables-restore over all those passes (goal 0); baseline:
//                               reading the same state once with the tools (iptables-save + ipset save + ip route).
//   node.idle_cpu_250_subnets   % of one core (utime+stime of the agent and its reaped children) over 60 s with the
//                               250 subnets; baseline: the same agent over 60 s before they were created (2 subnets).
//   node.route_repair           ms from `ip route del` of a subnet route to the route being back (the resync: 30 s,
//                               until netlink route events reach the reconciler); baseline: putting it back by hand
//                               with one `ip route replace`.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { waitFor } from '../integration/bed/exec.ts';
import { cleanupAll } from '../integration/bed/netns.ts';
import { buildBundle, type NodeAgent } from '../integration/e2e/agent-harness.ts';
import { metric, nodeBed, routeTo, startAgent, type NodeBed } from '../integration/node/lib.ts';
import { emit, percentile, report, type BenchContext, type BenchLine } from './lib.ts';

export const ids = ['node.startup', 'node.reconcile_250_subnets', 'node.idle_cpu_250_subnets', 'node.route_repair'] as const;

const N = Math.max(3, Number(process.env.KOA_BENCH_NODE_N) || 5);
const SUBNETS = 250;
const IDLE_S = 60;

export default async function bench(ctx: BenchContext): Promise<void> {
  if (!ids.some((id) => ctx.wants(id))) return;
  buildBundle();
  let nb: NodeBed | undefined;
  let agent: NodeAgent | undefined;
  const start = (dir?: string) => startAgent(nb!.bed, nb!.bed.nodes[0]!, { entry: 'bundle', resyncS: 0, ...(dir ? { dir } : {}) });
  try {
    nb = await nodeBed();
    const node = nb.bed.nodes[0]!;
    agent = await start(); // the first start sets the node up (ovn0, routes, rules); not measured

    if (ctx.wants('node.startup')) {
      const ms: number[] = [];
      for (let i = 0; i < N; i++) {
        const dir = agent.dir;
        await agent.stop();
        const t0 = Date.now();
        agent = await start(dir);
        const line = await agent.waitForLog(/^agent started$/);
        ms.push(Date.parse(String(line.time)) - t0);
      }
      const base: number[] = [];
      for (let i = 0; i < N; i++) {
        const t0 = performance.now();
        await node.ns.exec([process.execPath, '-e', '0']);
        base.push(performance.now() - t0);
      }
      report('node.startup', 'ms', ms, { name: 'node -e 0 in the node namespace', p50: percentile(base, 50) });
    }

    let idleBefore: number | undefined;
    if (ctx.wants('node.idle_cpu_250_subnets')) idleBefore = await cpuPercent(agent.pid, IDLE_S);
    await addSubnets(nb, SUBNETS);
    await waitFor('the 250 subnet routes', async () => (await node.ns.ip(['route', 'show', 'proto', 'static'])).stdout.split('\n').filter(Boolean).length >= SUBNETS + 1, 120_000, 500);

    if (ctx.wants('node.reconcile_250_subnets')) {
      // the subnets arrived in batches: wait until two passes in a row feed iptables-restore nothing
      const restoreLines = () => metric(agent!, 'kube_ovn_agent_iptables_restore_lines_total');
      for (let quiet = 0, i = 0; quiet < 2; i++) {
        if (i > 30) throw new Error('the netfilter reconciler did not settle with 250 subnets');
        const l0 = await restoreLines();
        await onePass(nb, agent, 1000 + i);
        quiet = (await restoreLines()) === l0 ? quiet + 1 : 0;
      }
      const lines0 = await restoreLines();
      const ms: number[] = [];
      for (let i = 0; i < N; i++) ms.push(await onePass(nb, agent, i));
      const lines = (await restoreLines()) - lines0;
      const base: number[] = [];
      for (let i = 0; i < N; i++) {
        const t0 = performance.now();
        await node.ns.exec(['iptables-save', '-c']);
        await node.ns.exec(['ipset', 'save']);
        await node.ns.ip(['route', 'show', 'table', 'all']);
        base.push(performance.now() - t0);
      }
      const line: BenchLine & { lines: number } = { bench: 'node.reconcile_250_subnets', unit: 'ms', p50: percentile(ms, 50), p99: percentile(ms, 99),
        n: ms.length, baseline: { name: 'iptables-save -c + ipset save + ip route show (read once by hand)', p50: percentile(base, 50) }, lines };
      emit(line);
    }

    if (ctx.wants('node.idle_cpu_250_subnets')) {
      const pct = await cpuPercent(agent.pid, IDLE_S);
      report('node.idle_cpu_250_subnets', '%', [pct], { name: `same agent, ${IDLE_S} s before the 250 subnets (2 subnets)`, p50: idleBefore! });
    }

    if (ctx.wants('node.route_repair')) {
      const dst = '10.128.7.0/24';
      const ms: number[] = [];
      for (let i = 0; i < N; i++) {
        const want = await routeTo(node, dst);
        await node.ns.ip(['route', 'del', dst]);
        const t0 = performance.now();
        await waitFor(`${dst} back`, async () => (await routeTo(node, dst)) === want, 120_000, 20);
        ms.push(performance.now() - t0);
      }
      const base: number[] = [];
      const want = (await routeTo(node, dst)).split(' ');
      for (let i = 0; i < N; i++) {
        const t0 = performance.now();
        await node.ns.ip(['route', 'replace', ...want]);
        base.push(performance.now() - t0);
      }
      report('node.route_repair', 'ms', ms, { name: 'ip route replace by hand', p50: percentile(base, 50) });
    }
  } finally {
    await agent?.stop().catch(() => undefined);
    await nb?.bed.down().catch(() => undefined);
    await cleanupAll().catch(() => undefined);
  }
}

/** 250 Subnet CRs in the default VPC, Validated (what the routes and iptables read; no OVN objects needed). */
async function addSubnets(nb: NodeBed, n: number): Promise<void> {
  const api = nb.bed.kube!.api;
  const now = new Date().toISOString();
  const cond = (type: string) => ({ type, status: 'True', reason: type, lastUpdateTime: now, lastTransitionTime: now });
  for (let i = 0; i < n; i += 25) {
    await Promise.all(Array.from({ length: Math.min(25, n - i) }, async (_x, k) => {
      const j = i + k;
      const name = `bench-${j}`;
      const cidr = `10.${128 + (j >> 8)}.${j & 255}.0/24`;
      await api.post('/apis/kubeovn.io/v1/subnets', { apiVersion: 'kubeovn.io/v1', kind: 'Subnet', metadata: { name },
        spec: { cidrBlock: cidr, gateway: cidr.replace(/0\/24$/, '1'), protocol: 'IPv4', provider: 'ovn', vpc: 'ovn-cluster', natOutgoing: j % 2 === 0, gatewayType: 'distributed' } });
      await api.mergePatch(`/apis/kubeovn.io/v1/subnets/${name}/status`, { status: { conditions: [cond('Validated'), cond('Ready')] } });
    }));
  }
}

/** Wakes both reconcilers with a Subnet change and returns the ms of their passes (histogram sum deltas / count). */
async function onePass(nb: NodeBed, agent: NodeAgent, i: number): Promise<number> {
  const names = ['host-routes', 'netfilter-v4'];
  const read = async () => Promise.all(names.flatMap((r) => [
    metric(agent, 'kube_ovn_agent_reconcile_duration_seconds_sum', `reconciler="${r}"`),
    metric(agent, 'kube_ovn_agent_reconcile_duration_seconds_count', `reconciler="${r}"`)]));
  const before = await read();
  await nb.bed.kube!.api.mergePatch('/apis/kubeovn.io/v1/subnets/bench-0', { metadata: { annotations: { 'koand/tick': String(i) } } });
  const after = await waitFor('one pass of each', async () => {
    const a = await read();
    return a[1]! > before[1]! && a[3]! > before[3]! ? a : undefined;
  }, 60_000, 50);
  return ((after[0]! - before[0]!) / (after[1]! - before[1]!) + (after[2]! - before[2]!) / (after[3]! - before[3]!)) * 1000;
}

/** % of one core the process (and its reaped children: iptables-save, ipset) used over `seconds`. */
async function cpuPercent(pid: number, seconds: number): Promise<number> {
  const hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const ticks = () => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields 14-17 (utime, stime, cutime, cstime) are 11-14 after the state field
    return [11, 12, 13, 14].reduce((a, k) => a + Number(f[k]), 0);
  };
  const t0 = ticks();
  const w0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return ((ticks() - t0) / hz) / ((performance.now() - w0) / 1000) * 100;
}

