// Side by side with upstream (`npm run bench -- vs-upstream`): upstream's kube-ovn-daemon v1.16.2 and our agent, each
// on a fresh one-node bed, driven with identical inputs: the same pod names, container ids and call order, so the
// stand-in controller hands out the same IPs and MACs on both beds. Every line's baseline is upstream's figure.
// Both daemons get the same flags (integration/upstream/daemon.ts sharedFlags); our agent runs as shipped (the bundle
// with the image's Node flags). Calls go through upstream's `kube-ovn` CNI executable for both; ours also gets a
// pass through our own executable (the `.ourshim` lines). Upstream runs first, then ours.
//   sbs.startup               ms, spawn → /readyz 200 on :10665 (the DaemonSet's readiness probe), fresh bed
//   sbs.cpu_idle_30s          ms of CPU time of the daemon's process tree (self + children) over 30 s idle after ready
//   sbs.rss_idle              MB, VmRSS summed over the daemon's process tree at the end of those 30 s
//   sbs.add_seq               ms per ADD (spawn of the CNI executable to its exit, started with posix_spawn inside the
//                             node namespace as a runtime does: runtimeCall), 30 sequential pods, default flags (the
//                             ARP IP-conflict probe on); each pod DEL'd before the next
//   sbs.del_seq               ms per DEL of those pods
//   sbs.add_after_annotation  ms from the annotation patch returning (the ADD already waiting) to the ADD's exit (as
//                             the Node driver sees it: started with `ip netns exec`, so its exit is timed by the driver)
//   sbs.add_seq_noprobe       as add_seq, daemon restarted with --enable-arp-detect-ip-conflict=false
//   sbs.burst50_add           ms, 50 concurrent ADDs (probe off), first spawn to last exit, started at once with
//                             posix_spawn as a runtime does (cni-shim/burst-spawn); any failure fails the bench
//   sbs.burst50_del           ms, the 50 DELs of those pods, concurrent
//   sbs.rss_peak              MB, VmHWM of the daemon process after the burst (the probe-off daemon's whole life)
//   sbs.*.ourshim             our agent through our `kube-ovn` executable (add_seq_noprobe, del_seq, burst50_add)
// At the end a markdown table of the run (with the load average) goes to stderr, for the README.
import { loadavg } from 'node:os';
import { up, type BedNode } from '../integration/bed/bed.ts';
import { cleanupAll, newPrefix } from '../integration/bed/netns.ts';
import {
  buildBundle, buildShim, createPod, createPodNetns, deletePod, newContainerId, podCall, SHIM, startNodeAgent, type NodeAgent, type TestPod,
} from '../integration/e2e/agent-harness.ts';
import { sharedFlags, startUpstreamDaemon, UPSTREAM_CNI, upstreamDaemonMissing } from '../integration/upstream/daemon.ts';
import { treeCpuSeconds, treeRssMb } from '../integration/upstream/proc.ts';
import { buildBurstSpawn, burst as spawnBurst, formatStages, waitStages } from '../integration/load/lib.ts';
import { percentile, report, type BenchContext, type Unit } from './lib.ts';

export const group = 'vs-upstream';
export const ids = [
  'sbs.startup', 'sbs.cpu_idle_30s', 'sbs.rss_idle', 'sbs.add_seq', 'sbs.del_seq', 'sbs.add_after_annotation', 'sbs.add_seq_noprobe',
  'sbs.burst50_add', 'sbs.burst50_del', 'sbs.rss_peak', 'sbs.add_seq_noprobe.ourshim', 'sbs.del_seq.ourshim', 'sbs.burst50_add.ourshim',
] as const;
type Id = (typeof ids)[number];

const SEQ = Math.max(10, Number(process.env.KOA_BENCH_SBS_N) || 30);
const WARMUP = 3;
const AFTER = 10;
const BURST = 50;
const IDLE_MS = 30_000;

type Side = 'upstream' | 'ours';
type Figures = Partial<Record<Id, number[]>>;

/** The same inputs for both sides: container ids by pod index (pod names are `q<index>`). */
const containerIds = Array.from({ length: 400 }, () => newContainerId());

export default async function bench(ctx: BenchContext): Promise<void> {
  if (!ids.some((id) => ctx.wants(id))) return;
  const missing = upstreamDaemonMissing();
  if (missing) throw new Error(`sbs (vs-upstream): ${missing}`);
  buildShim();
  buildBundle();
  buildBurstSpawn();
  const load0 = loadavg();
  const theirs = await runSide('upstream');
  const ours = await runSide('ours');
  const load1 = loadavg();
  const units: Record<Id, Unit> = Object.fromEntries(ids.map((id) => [id, id.startsWith('sbs.rss') ? 'MB' : 'ms'])) as Record<Id, Unit>;
  units['sbs.cpu_idle_30s'] = 'ms';
  const rows: string[] = [];
  for (const id of ids) {
    const mine = ours[id];
    const base = theirs[id.replace('.ourshim', '') as Id];
    if (!mine || !base || !ctx.wants(id)) continue;
    const baseP50 = percentile(base, 50);
    report(id, units[id], mine, { name: `upstream kube-ovn-daemon v1.16.2 (${id.endsWith('.ourshim') ? 'its CNI executable' : 'same CNI executable'}), same inputs`, p50: baseP50 });
    const p50 = percentile(mine, 50);
    rows.push(`| \`${id}\` | ${fmt(baseP50)} | ${fmt(p50)} | ${(baseP50 / p50).toFixed(1)}× |`);
  }
  process.stderr.write([
    `\nvs-upstream, ${new Date().toISOString()}, load average ${load0.map((x) => x.toFixed(1)).join(' ')} at start, ${load1.map((x) => x.toFixed(1)).join(' ')} at end (p50; ratio = upstream / ours)`,
    '| figure | upstream | ours | ratio |', '|---|---|---|---|', ...rows, '',
  ].join('\n'));
}

const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

async function runSide(side: Side): Promise<Figures> {
  const out: Figures = {};
  const add = (id: Id, v: number | number[]) => { out[id] = [...(out[id] ?? []), ...(Array.isArray(v) ? v : [v])]; };
  const bed = await up({ prefix: newPrefix('koasbs') });
  const node = bed.nodes[0]!;
  let seq = 0;
  const nextPod = async (): Promise<TestPod> => {
    const i = seq++;
    const name = `q${i}`;
    const { uid } = await createPod(bed, node, name);
    const ns = await createPodNetns(bed, name);
    return { name, namespace: 'default', uid, ns, containerId: containerIds[i]! };
  };
  const start = (arpProbe: boolean) => side === 'upstream'
    ? startUpstreamDaemon(bed, node, { arpProbe })
    : startNodeAgent(bed, node, { entry: 'bundle', args: sharedFlags({ arpProbe }) });
  let daemon: NodeAgent | undefined;
  try {
    const t0 = performance.now();
    daemon = await start(true);
    add('sbs.startup', performance.now() - t0);
    const cpu0 = treeCpuSeconds(daemon.pid);
    await new Promise((r) => setTimeout(r, IDLE_MS));
    add('sbs.cpu_idle_30s', (treeCpuSeconds(daemon.pid) - cpu0) * 1000);
    add('sbs.rss_idle', treeRssMb(daemon.pid));

    const seqRun = async (plugin: string, addId: Id, delId: Id | undefined) => {
      for (let i = -WARMUP; i < SEQ; i++) {
        const p = await nextPod();
        await bed.controller!.allocatePod(p.namespace, p.name);
        const r = await runtimeCall('ADD', daemon!, p, plugin);
        if (r.code !== 0) throw new Error(`${side} ADD ${p.name}: ${r.stdout} ${r.stderr}`);
        const d = await runtimeCall('DEL', daemon!, p, plugin);
        if (d.code !== 0) throw new Error(`${side} DEL ${p.name}: ${d.stdout} ${d.stderr}`);
        if (i >= 0) { add(addId, r.ms); if (delId) add(delId, d.ms); }
        await p.ns.delete();
        await deletePod(bed, p.name);
      }
    };
    await seqRun(UPSTREAM_CNI, 'sbs.add_seq', 'sbs.del_seq');

    for (let i = 0; i < AFTER; i++) {
      const p = await nextPod();
      // kubelet calls ADD well after the pod exists; a call right after the create can reach a daemon whose pod cache
      // has not seen it yet (upstream's then fails the ADD, "pod not found": once in a run here)
      await new Promise((r) => setTimeout(r, 1000));
      const pending = podCall('ADD', daemon, p, { plugin: UPSTREAM_CNI });
      await new Promise((r) => setTimeout(r, 300)); // the ADD is waiting for the controller
      await bed.controller!.allocatePod(p.namespace, p.name);
      const annotatedAt = performance.now();
      const r = await pending;
      if (r.code !== 0) throw new Error(`${side} ADD ${p.name} (after annotation): ${r.stdout} ${r.stderr}`);
      add('sbs.add_after_annotation', r.endedAt - annotatedAt);
      const d = await podCall('DEL', daemon, p, { plugin: UPSTREAM_CNI });
      if (d.code !== 0) throw new Error(`${side} DEL ${p.name}: ${d.stdout} ${d.stderr}`);
      await p.ns.delete();
      await deletePod(bed, p.name);
    }

    await daemon.stop();
    daemon = await start(false);
    await seqRun(UPSTREAM_CNI, 'sbs.add_seq_noprobe', undefined);
    const burst = async (plugin: string, addId: Id, delId: Id | undefined) => {
      const pods: TestPod[] = [];
      for (let i = 0; i < BURST; i++) pods.push(await nextPod());
      for (const p of pods) await bed.controller!.allocatePod(p.namespace, p.name);
      const before = side === 'ours' ? await waitStages(daemon!) : undefined;
      const adds = await spawnBurst('ADD', daemon!, pods, 300_000, { plugin });
      if (adds.errors.length) throw new Error(`${side} burst: ${adds.errors.length} of ${BURST} ADDs failed, e.g. ${adds.errors[0]!.stdout} ${adds.errors[0]!.stderr}`);
      add(addId, adds.totalMs);
      if (addId === 'sbs.burst50_add') add('sbs.rss_peak', daemon!.peakRssMb());
      if (before) process.stderr.write(`sbs ${addId}: our agent's waits per ADD, ${formatStages(stagesSince(before, await waitStages(daemon!)))}\n`);
      const dels = await spawnBurst('DEL', daemon!, pods, 300_000, { plugin });
      if (dels.errors.length) throw new Error(`${side} burst: ${dels.errors.length} DELs failed, e.g. ${dels.errors[0]!.stdout}`);
      if (delId) add(delId, dels.totalMs);
      await leftPorts(node, side);
      for (const p of pods) { await p.ns.delete(); await deletePod(bed, p.name); }
    };
    await burst(UPSTREAM_CNI, 'sbs.burst50_add', 'sbs.burst50_del');
    if (side === 'ours') {
      await seqRun(SHIM, 'sbs.add_seq_noprobe.ourshim', 'sbs.del_seq.ourshim');
      await burst(SHIM, 'sbs.burst50_add.ourshim', undefined);
    }
    return out;
  } finally {
    await daemon?.stop().catch(() => undefined);
    await bed.down().catch(() => undefined);
    await cleanupAll().catch(() => undefined);
  }
}

/**
 * One CNI call started the way a runtime starts a plugin: posix_spawn from a process already in the node's network
 * namespace, timed from the spawn to the exit (cni-shim/burst-spawn with one run). podCall's `ip netns exec` from the
 * Node test driver adds 5-9 ms of the driver's own to every call (Node's fork, then ip's mount-namespace set-up),
 * the same for both daemons.
 */
async function runtimeCall(command: 'ADD' | 'DEL', daemon: NodeAgent, p: TestPod, plugin: string) {
  const r = await spawnBurst(command, daemon, [p], 120_000, { plugin, built: true });
  return r.results[0]!;
}

type Stages = Awaited<ReturnType<typeof waitStages>>;

/** The stage averages of the calls between two readings of the agent's histograms. */
function stagesSince(a: Stages, b: Stages): Stages {
  const out: Stages = {};
  for (const [k, v] of Object.entries(b)) {
    const n = v.n - (a[k]?.n ?? 0);
    if (n > 0) out[k] = { n, avgS: (v.avgS * v.n - (a[k] ? a[k].avgS * a[k].n : 0)) / n };
  }
  return out;
}

/** Fails when a pod port is left on br-int after every DEL answered ok. */
async function leftPorts(node: BedNode, side: Side): Promise<void> {
  const left = (await node.ovs.vsctl(['list-ports', 'br-int'])).split('\n').filter((x) => x.endsWith('_h'));
  if (left.length) throw new Error(`${side}: ${left.length} OVS ports left after DEL`);
}
