// Pod wiring end to end on the real bed (OVS userspace datapath, OVN, kube-apiserver, the stand-in controller), with
// the real agent process in the node's namespace and the real CNI executable (integration/e2e/agent-harness.ts).
//   add.agent            ms, annotations already present: the agent's own work on an ADD up to the point where it
//                        starts waiting for the OVN binding (request decoding, annotation check, plan, every step
//                        before waitOvnInstalled), from the agent's per-ADD log lines; baseline: the same wiring by hand
//                        with `ip` + `ovs-vsctl` (veth into the pod, MAC, address, up, default route, OVS port).
//   add.total            ms, spawn of `kube-ovn` ADD to its exit, with the real OVN binding and gateway check;
//                        baseline: the by-hand wiring + `ovs-vsctl wait-until` ovn-installed + one `ping` of the gateway.
//   add.after_annotation ms from the annotation patch returning (ADD already waiting) to the ADD's exit.
//   add.dualstack        ms, `kube-ovn` ADD of a dual-stack pod (IPv4 + IPv6, DAD on, both gateways checked), spawn to
//                        exit; baseline: add.total's p50 (single stack) of the same run when it ran, else null.
//   del                  ms, `kube-ovn` DEL; baseline: `ovs-vsctl del-port` + `ip link del` of the by-hand wiring.
//   burst100.total       ms for 100 concurrent ADDs through the executable (first spawn to last exit); any error fails.
//   agent.rss            MB, VmHWM of the agent process after the burst (its peak; a fresh agent at the default log
//                        level runs the burst); baseline: VmHWM of that agent before the burst.
//   agent.rss_idle       MB, VmRSS of a fresh agent (the bundle as the image runs it, info level) 30 s after /readyz,
//                        nothing else happening; baseline: VmRSS of a bare `node -e` (Node 24) in the same run.
import { execFileSync } from 'node:child_process';
import { up, type Bed, type BedNode } from '../integration/bed/bed.ts';
import type { Allocation } from '../integration/bed/controller.ts';
import { run } from '../integration/bed/exec.ts';
import { cleanupAll, newPrefix } from '../integration/bed/netns.ts';
import {
  buildBundle, buildShim, createPod, createPodNetns, deletePod, newContainerId, newPod, podCall, startNodeAgent, type NodeAgent, type TestPod,
} from '../integration/e2e/agent-harness.ts';
import { percentile, report, type BenchContext } from './lib.ts';

export const ids = ['add.agent', 'add.total', 'add.after_annotation', 'add.dualstack', 'del', 'burst100.total', 'agent.rss', 'agent.rss_idle'] as const;

const N = Math.max(10, Number(process.env.KOA_BENCH_POD_N) || 30);
const WARMUP = 3;
const BURST = 100;

export default async function bench(ctx: BenchContext): Promise<void> {
  if (!ids.some((id) => ctx.wants(id))) return;
  buildShim();
  buildBundle(); // measured as shipped: dist/agent.mjs (running the .ts sources adds the type stripper's memory)
  const bed = await up({ prefix: newPrefix('koae') });
  let agent: NodeAgent | undefined;
  try {
    const node = bed.nodes[0]!;
    if (ctx.wants('agent.rss_idle')) {
      const idle = await startNodeAgent(bed, node, { entry: 'bundle' });
      await new Promise((r) => setTimeout(r, 30_000));
      const rss = idle.rssMb();
      await idle.stop();
      report('agent.rss_idle', 'MB', [rss], { name: 'bare node -e (Node 24), VmRSS', p50: bareNodeRssMb() });
    }
    agent = await startNodeAgent(bed, node, { logLevel: 'debug', entry: 'bundle' }); // debug: the per-request `cni call done` line
    let seq = 0;
    let singleStackP50: number | undefined;
    const next = (tag: string) => `${tag}${++seq}`;

    if (ctx.wants('add.agent') || ctx.wants('add.total') || ctx.wants('del')) {
      const agentMs: number[] = [];
      const totalMs: number[] = [];
      const delMs: number[] = [];
      for (let i = -WARMUP; i < N; i++) {
        const p = await newPod(bed, node, next('b'));
        await bed.controller!.allocatePod(p.namespace, p.name);
        const from = agent.lines.length;
        const r = await podCall('ADD', agent, p);
        if (r.code !== 0) throw new Error(`ADD ${p.name}: ${r.stdout}`);
        const a = await agentAddMs(agent, from, p.containerId);
        const d = await podCall('DEL', agent, p);
        if (d.code !== 0) throw new Error(`DEL ${p.name}: ${d.stdout}`);
        if (i >= 0) { totalMs.push(r.ms); delMs.push(d.ms); if (a !== undefined) agentMs.push(a); }
        await p.ns.delete();
        await deletePod(bed, p.name);
      }
      const base = await byHand(bed, node, Math.min(N, 15), () => next('h'));
      if (ctx.wants('add.agent')) {
        if (agentMs.length === 0) throw new Error('the agent logged no per-ADD timing (add.agent)');
        report('add.agent', 'ms', agentMs, { name: 'ip + ovs-vsctl, same wiring by hand (7 processes)', p50: percentile(base.wire, 50) });
      }
      singleStackP50 = percentile(totalMs, 50);
      if (ctx.wants('add.total')) report('add.total', 'ms', totalMs, { name: 'by hand + ovs-vsctl wait-until ovn-installed + ping gateway', p50: percentile(base.total, 50) });
      if (ctx.wants('del')) report('del', 'ms', delMs, { name: 'ovs-vsctl del-port + ip link del', p50: percentile(base.del, 50) });
    }

    if (ctx.wants('add.dualstack')) {
      await bed.controller!.createSubnet({ name: 'dual', cidrBlock: '10.18.0.0/16,fd00:10:18::/64' });
      const dual: number[] = [];
      for (let i = -WARMUP; i < Math.min(N, 15); i++) {
        const p = await newPod(bed, node, next('d'));
        await bed.controller!.allocatePod(p.namespace, p.name, { subnet: 'dual' });
        const r = await podCall('ADD', agent, p);
        if (r.code !== 0) throw new Error(`dual-stack ADD ${p.name}: ${r.stdout}`);
        if (i >= 0) dual.push(r.ms);
        const d = await podCall('DEL', agent, p);
        if (d.code !== 0) throw new Error(`DEL ${p.name}: ${d.stdout}`);
        await p.ns.delete();
        await deletePod(bed, p.name);
      }
      report('add.dualstack', 'ms', dual, singleStackP50 === undefined ? null : { name: 'add.total (single stack) of this run', p50: singleStackP50 });
    }

    if (ctx.wants('add.after_annotation')) {
      const after: number[] = [];
      for (let i = 0; i < Math.min(N, 15); i++) {
        const p = await newPod(bed, node, next('l'));
        const add = podCall('ADD', agent, p);
        await new Promise((r) => setTimeout(r, 300)); // the ADD is waiting for the controller
        await bed.controller!.allocatePod(p.namespace, p.name); // annotations are the last write
        const annotatedAt = performance.now();
        const r = await add;
        if (r.code !== 0) throw new Error(`ADD ${p.name}: ${r.stdout}`);
        after.push(r.endedAt - annotatedAt);
        const d = await podCall('DEL', agent, p);
        if (d.code !== 0) throw new Error(`DEL ${p.name}: ${d.stdout}`);
        await p.ns.delete();
        await deletePod(bed, p.name);
      }
      report('add.after_annotation', 'ms', after, null);
    }

    if (ctx.wants('burst100.total') || ctx.wants('agent.rss')) {
      // a fresh agent at the production log level (info), so the peak belongs to this burst and to the shipped config
      await agent.stop();
      agent = await startNodeAgent(bed, node, { entry: 'bundle', dir: agent.dir });
      const pods: TestPod[] = [];
      for (let i = 0; i < BURST; i += 10) {
        pods.push(...await Promise.all(Array.from({ length: Math.min(10, BURST - i) }, async () => {
          const name = next('u');
          const { uid } = await createPod(bed, node, name);
          const ns = await createPodNetns(bed, name);
          return { name, namespace: 'default', uid, ns, containerId: newContainerId() };
        })));
      }
      for (const p of pods) await bed.controller!.allocatePod(p.namespace, p.name);
      const idleRss = agent.peakRssMb();
      const results = await Promise.all(pods.map((p) => podCall('ADD', agent!, p)));
      const failed = results.filter((r) => r.code !== 0);
      if (failed.length) throw new Error(`burst100: ${failed.length} of ${BURST} ADDs failed, e.g. ${failed[0]!.stdout}`);
      const total = Math.max(...results.map((r) => r.endedAt)) - Math.min(...results.map((r) => r.startedAt));
      const rss = agent.peakRssMb();
      if (ctx.wants('burst100.total')) report('burst100.total', 'ms', [total], null);
      if (ctx.wants('agent.rss')) report('agent.rss', 'MB', [rss], { name: 'same agent, VmHWM before the burst', p50: idleRss });
      const dels = await Promise.all(pods.map((p) => podCall('DEL', agent!, p)));
      const badDel = dels.filter((r) => r.code !== 0);
      if (badDel.length) throw new Error(`burst100: ${badDel.length} DELs failed, e.g. ${badDel[0]!.stdout}`);
      const left = (await node.ovs.vsctl(['list-ports', 'br-int'])).split('\n').filter((x) => x.endsWith('_h'));
      if (left.length) throw new Error(`burst100: ${left.length} OVS ports left after DEL`);
    }
  } finally {
    await agent?.stop().catch(() => undefined);
    await bed.down().catch(() => undefined);
    await cleanupAll().catch(() => undefined);
  }
}

/** VmRSS of a bare Node process (the pinned Node 24, nothing loaded), in MB. */
function bareNodeRssMb(): number {
  const out = execFileSync(process.execPath, ['-e', 'setTimeout(() => process.stdout.write(/VmRSS:\\s+(\\d+)/.exec(require("fs").readFileSync("/proc/self/status", "utf8"))[1]), 200)'], { encoding: 'utf8' });
  return Number(out) / 1024;
}

/**
 * The agent's own ADD time up to the OVN binding wait, from its log (debug level): the request's total
 * (`cni call done`, ms from the request arriving to the answer) minus the ADD's step timings (`ADD applied`,
 * stepMs) from waitOvnInstalled on. So it covers request decoding, the annotation check, planning and every step
 * before the wait.
 */
async function agentAddMs(agent: NodeAgent, from: number, containerId: string): Promise<number | undefined> {
  const find = (re: RegExp) => agent.lines.slice(from).find((l) => l.containerId === containerId && re.test(String(l.msg)));
  let steps = find(/^ADD applied$/);
  let done = find(/^cni call done$/);
  for (let i = 0; (!steps || !done) && i < 40; i++) {
    await new Promise((r) => setTimeout(r, 5));
    steps = find(/^ADD applied$/);
    done = find(/^cni call done$/);
  }
  if (!steps || !done || typeof done.ms !== 'number') return undefined;
  const list = steps.stepMs as { op: string; ms: number }[];
  const i = list.findIndex((s) => s.op === 'waitOvnInstalled');
  if (i < 0) return undefined;
  return done.ms - list.slice(i).reduce((a, s) => a + s.ms, 0);
}

/** The same wiring by hand, the fork/exec way: returns ms per pod for the wiring, wiring+binding+ping, and removal. */
async function byHand(bed: Bed, node: BedNode, n: number, name: () => string): Promise<{ wire: number[]; total: number[]; del: number[] }> {
  const wire: number[] = [];
  const total: number[] = [];
  const del: number[] = [];
  const env = node.ovs.env;
  for (let i = -1; i < n; i++) {
    const podName = name();
    await createPod(bed, node, podName);
    const a: Allocation = await bed.controller!.allocatePod('default', podName);
    const ns = await createPodNetns(bed, podName);
    // not `_h`: the agent's GC owns `…_h` veths and removes one that has no OVS port yet (the window before add-port)
    const host = `${podName}_x`.slice(-15);
    const t0 = performance.now();
    await run(['ip', '-n', node.ns.name, 'link', 'add', host, 'mtu', String(bed.mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', String(bed.mtu), 'netns', ns.name]);
    await run(['ip', '-n', ns.name, 'link', 'set', 'eth0', 'address', a.mac, 'up']);
    await run(['ip', '-n', ns.name, 'addr', 'add', `${a.ips[0]}/16`, 'dev', 'eth0']);
    await run(['ip', '-n', ns.name, 'route', 'add', 'default', 'via', '10.16.0.1', 'dev', 'eth0']);
    await run(['ip', 'netns', 'exec', ns.name, 'ethtool', '-K', 'eth0', 'tx', 'off']);
    await run(['ip', '-n', node.ns.name, 'link', 'set', host, 'up']);
    await run(['ovs-vsctl', '--timeout=10', 'add-port', 'br-int', host, '--', 'set', 'interface', host, `external_ids:iface-id=${a.lsp}`,
      'external_ids:vendor=kube-ovn'], { env });
    const t1 = performance.now();
    await run(['ovs-vsctl', '--timeout=10', 'wait-until', 'interface', host, 'external_ids:ovn-installed="true"'], { env });
    await run(['ip', 'netns', 'exec', ns.name, 'ping', '-n', '-q', '-c', '1', '-W', '2', '10.16.0.1']);
    const t2 = performance.now();
    await run(['ovs-vsctl', '--timeout=10', 'del-port', 'br-int', host], { env });
    await run(['ip', '-n', node.ns.name, 'link', 'del', host]);
    const t3 = performance.now();
    if (i >= 0) { wire.push(t1 - t0); total.push(t2 - t0); del.push(t3 - t2); }
    await ns.delete();
    await deletePod(bed, podName);
  }
  return { wire, total, del };
}
