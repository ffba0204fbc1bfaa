// Issue 14's figures under load:
//   burst500.total             ms, 500 concurrent ADDs through the real shim for 500 annotated pods on the real bed
//                              (first spawn to last exit); any error fails the bench. Baseline: one ADD alone on the
//                              same bed and agent (p50 of 5, sequential).
//   burst500.eventloop_lag_p99 ms, the agent's nodejs_eventloop_lag_p99_seconds over the burst (scraped right before
//                              and right after it: prom-client resets the histogram at each scrape). Baseline: the
//                              same figure over 5 s of the agent at rest.
//   agent.rss_peak_burst500    MB, VmHWM of the agent (the bundle, info level, fresh for the burst) after the burst.
//                              Baseline: its VmHWM before the burst.
//   agent.rss_rise_100x1mib    MB, VmHWM after 100 simultaneous calls of ~1 MiB stdin minus VmRSS at rest (an agent
//                              process with the in-memory FakeBackend: the request path only; integration/load/
//                              memory.ts). Baseline: the same with 100 calls of 1 KiB.
//   gc.pass_1000_ports         ms, one pass of the pod GC reconciler (desired, observe, diff, apply) over 1000 pod
//                              ports whose pods are all alive (the steady state, every minute). The subject runs on
//                              the in-memory FakeVswitch and FakeNetlink (1000 ports and 1000 host veths): it measures
//                              the GC's own work, not OVSDB or the kernel. Baseline: the same pass over 100 ports.
import { FakeNetlink } from '../agent/src/datapath/netlink/fake.ts';
import { FakeVswitch } from '../agent/src/datapath/ovsdb/fake.ts';
import type { Pod } from '../agent/src/k8s/types.ts';
import { Reconciler } from '../agent/src/node/reconciler.ts';
import { podGcSpec } from '../agent/src/pod/gc.ts';
import { up } from '../integration/bed/bed.ts';
import { cleanupAll, newPrefix } from '../integration/bed/netns.ts';
import { buildBundle, buildShim, podCall, startNodeAgent, type NodeAgent } from '../integration/e2e/agent-harness.ts';
import { burst, eventLoopLagP99Ms, inBatches, nodeLeaks, noLeaks, preparePods } from '../integration/load/lib.ts';
import { rssRiseUnderBodies } from '../integration/load/memory.ts';
import { percentile, report, timeRuns, type BenchContext } from './lib.ts';

export const ids = ['burst500.total', 'burst500.eventloop_lag_p99', 'agent.rss_peak_burst500', 'agent.rss_rise_100x1mib', 'gc.pass_1000_ports'] as const;

const BURST = Number(process.env.KOA_BENCH_BURST) || 500;

export default async function bench(ctx: BenchContext): Promise<void> {
  if (ctx.wants('gc.pass_1000_ports')) await gcPass();
  if (ctx.wants('agent.rss_rise_100x1mib')) {
    const big = await rssRiseUnderBodies(100);
    const small = await rssRiseUnderBodies(100, 1024);
    if (big.ok !== big.n || small.ok !== small.n) throw new Error(`agent.rss_rise_100x1mib: unanswered calls (${big.firstFailure ?? small.firstFailure})`);
    report('agent.rss_rise_100x1mib', 'MB', [big.riseMb], { name: 'same, 100 simultaneous calls of 1 KiB', p50: small.riseMb });
  }
  if (['burst500.total', 'burst500.eventloop_lag_p99', 'agent.rss_peak_burst500'].some((id) => ctx.wants(id))) await burst500(ctx);
}

async function gcPass(): Promise<void> {
  const subject = async (n: number): Promise<number[]> => {
    const vs = new FakeVswitch();
    const nl = new FakeNetlink();
    const pods: Pod[] = [];
    for (let i = 0; i < n; i++) {
      const cid = `${i.toString(16).padStart(12, '0')}ffff`;
      const host = `${cid.slice(0, 12)}_h`;
      await nl.createVeth({ name: host, peer: { name: `${cid.slice(0, 12)}_c` } });
      await vs.addPodPort({ name: host, ifaceId: `p${i}.default`, podName: `p${i}`, podNamespace: 'default', podNetns: `/var/run/netns/koab${i}` });
      pods.push({ metadata: { namespace: 'default', name: `p${i}` } });
    }
    const r = new Reconciler(podGcSpec({
      vswitch: vs, netlink: nl, listPods: () => pods, podsSynced: () => true, inFlight: () => [],
      removePort: async () => { throw new Error('nothing is stale: no port may be removed'); },
      gcQos: () => vs.gcQos(),
    }), { resyncMs: 0 });
    return timeRuns(50, async () => {
      const o = await r.runNow();
      if (o.changes !== 0 && o.changes !== 1) throw new Error(`gc pass changed ${o.changes}`); // the first pass sweeps QoS once
    }, 5);
  };
  const base = await subject(100);
  report('gc.pass_1000_ports', 'ms', await subject(1000), { name: 'same pass over 100 ports', p50: percentile(base, 50) });
}

async function burst500(ctx: BenchContext): Promise<void> {
  buildShim();
  buildBundle();
  const bed = await up({ prefix: newPrefix('koal') });
  let agent: NodeAgent | undefined;
  try {
    const node = bed.nodes[0]!;
    const opts = { entry: 'bundle' as const, ovnInstalledTimeout: '90s', gatewayCheckTimeout: '60s' };
    agent = await startNodeAgent(bed, node, opts);
    // baseline: one ADD alone, 5 times
    const singles = await preparePods(bed, node, 'one', 5, { qosEvery: 0 });
    const alone: number[] = [];
    for (const p of singles) {
      const r = await podCall('ADD', agent, p);
      if (r.code !== 0) throw new Error(`single ADD: ${r.stdout}`);
      alone.push(r.ms);
      if ((await podCall('DEL', agent, p)).code !== 0) throw new Error('single DEL failed');
    }
    const pods = await preparePods(bed, node, 'b', BURST);
    // a fresh agent for the burst, so the peak belongs to it
    await agent.stop();
    agent = await startNodeAgent(bed, node, { ...opts, dir: agent.dir });
    await eventLoopLagP99Ms(agent);
    await new Promise((r) => setTimeout(r, 5000));
    const idleLag = await eventLoopLagP99Ms(agent);
    const idleRss = agent.peakRssMb();
    const add = await burst('ADD', agent, pods);
    const lag = await eventLoopLagP99Ms(agent);
    const rss = agent.peakRssMb();
    if (add.errors.length) throw new Error(`burst${BURST}: ${add.errors.length} ADDs failed, e.g. ${add.errors[0]!.stdout}`);
    if (ctx.wants('burst500.total')) report('burst500.total', 'ms', [add.totalMs], { name: 'one ADD alone (p50 of 5)', p50: percentile(alone, 50) });
    if (ctx.wants('burst500.eventloop_lag_p99')) report('burst500.eventloop_lag_p99', 'ms', [lag], { name: 'agent at rest, 5 s', p50: idleLag });
    if (ctx.wants('agent.rss_peak_burst500')) report('agent.rss_peak_burst500', 'MB', [rss], { name: 'same agent, VmHWM before the burst', p50: idleRss });
    const del = await burst('DEL', agent, pods);
    if (del.errors.length) throw new Error(`burst${BURST}: ${del.errors.length} DELs failed, e.g. ${del.errors[0]!.stdout}`);
    const left = await nodeLeaks(node);
    if (!noLeaks(left)) throw new Error(`burst${BURST}: leaks ${JSON.stringify(left).slice(0, 500)}`);
    await inBatches(pods, 16, (p) => p.ns.delete());
  } finally {
    await agent?.stop().catch(() => undefined);
    await bed.down().catch(() => undefined);
    await cleanupAll().catch(() => undefined);
  }
}
