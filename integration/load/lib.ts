// Load helpers shared by integration/load/*.test.ts and bench/load.bench.ts: many annotated pods made ready in
// parallel batches (Pod object, netns, the stand-in controller's allocation), a whole-node leak count, the agent's
// event-loop lag p99 from its /metrics, and a burst of concurrent CNI calls through the real shim (burst-spawn).
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Bed, BedNode } from '../bed/bed.ts';
import { ROOT, cniCallInput, createPod, createPodNetns, newContainerId, type CniCallResult, type NodeAgent, type TestPod } from '../e2e/agent-harness.ts';
import { find, parseExposition } from '../../test/observe/prom-text.ts';
import { parseStat, TICKS_PER_S } from '../upstream/proc.ts';

const execFileP = promisify(execFile);

/** Runs `f` over `items`, at most `width` at a time. */
export async function inBatches<T, R>(items: readonly T[], width: number, f: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await f(items[i]!, i);
    }
  }));
  return out;
}

/**
 * `n` pods named `<tag><i>`, each with its Pod object (annotated: every `qosEvery`-th one also carries egress and
 * ingress rates, so QoS and Queue rows are created and must go), its netns and its allocation (LSP, IP CR, the
 * kube-ovn annotations), prepared `width` at a time.
 */
export async function preparePods(bed: Bed, node: BedNode, tag: string, n: number, o: { width?: number; qosEvery?: number } = {}): Promise<TestPod[]> {
  const qosEvery = o.qosEvery ?? 5;
  return inBatches(Array.from({ length: n }, (_, i) => i), o.width ?? 16, async (i) => {
    const name = `${tag}${i}`;
    const annotations = qosEvery > 0 && i % qosEvery === 0 ? { 'ovn.kubernetes.io/egress_rate': '100', 'ovn.kubernetes.io/ingress_rate': '50' } : undefined;
    const { uid } = await createPod(bed, node, name, annotations ? { annotations } : {});
    const ns = await createPodNetns(bed, name);
    await bed.controller!.allocatePod('default', name);
    return { name, namespace: 'default', uid, ns, containerId: newContainerId() };
  });
}

/** Everything pod wiring leaves on a node, whoever it belonged to. All zero = no leak. */
export interface NodeLeaks {
  /** OVS interfaces with external_ids vendor=kube-ovn and a pod_name (ovn0 and the tunnel ports have none) */
  podInterfaces: string[];
  /** `…_h` veths in the node's namespace */
  hostVeths: string[];
  qos: number;
  queues: number;
}

export async function nodeLeaks(node: BedNode): Promise<NodeLeaks> {
  const rows = JSON.parse(await node.ovs.vsctl(['--format=json', '--columns=name,external_ids', 'find', 'interface', 'external_ids:vendor=kube-ovn'])) as
    { data: [string, [string, [string, string][]]][] };
  const podInterfaces = rows.data.filter(([, [, kv]]) => kv.some(([k]) => k === 'pod_name')).map(([name]) => name);
  const links = JSON.parse((await node.ns.ip(['-j', 'link', 'show', 'type', 'veth'])).stdout) as { ifname: string }[];
  const hostVeths = links.map((l) => l.ifname).filter((n) => n.endsWith('_h'));
  const count = async (table: string): Promise<number> =>
    (JSON.parse(await node.ovs.vsctl(['--format=json', '--columns=_uuid', 'list', table])) as { data: unknown[] }).data.length;
  return { podInterfaces, hostVeths, qos: await count('qos'), queues: await count('queue') };
}

export const noLeaks = (l: NodeLeaks): boolean => l.podInterfaces.length + l.hostVeths.length + l.qos + l.queues === 0;

/**
 * The agent's event-loop lag p99 in ms since the previous scrape: prom-client's collector resets its
 * monitorEventLoopDelay histogram at every collection, so a scrape before a burst and one right after it read the
 * burst's window.
 */
export async function eventLoopLagP99Ms(agent: NodeAgent, boundMs = 120_000): Promise<number> {
  // the harness's scrape gives up after 5 s; on a saturated machine one can, so scrape again (bounded)
  const t0 = performance.now();
  for (;;) {
    const m = /^nodejs_eventloop_lag_p99_seconds\s+([0-9.eE+-]+)/m.exec(await agent.metrics());
    if (m) return Number(m[1]) * 1000;
    if (performance.now() - t0 > boundMs) throw new Error(`no nodejs_eventloop_lag_p99_seconds in /metrics within ${boundMs} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * Where the ADDs' time went, from the agent's own `kube_ovn_agent_cni_wait_duration_seconds` (sum and count per stage,
 * cumulative) and `kube_ovn_agent_cni_request_duration_seconds{command="ADD"}`: seconds per ADD, on average.
 */
export async function waitStages(agent: NodeAgent): Promise<Record<string, { n: number; avgS: number }>> {
  const e = parseExposition(await agent.metrics());
  const out: Record<string, { n: number; avgS: number }> = {};
  const read = (name: string, labels: Record<string, string>, key: string): void => {
    const [sum] = find(e, `${name}_sum`, labels);
    const [count] = find(e, `${name}_count`, labels);
    if (sum && count && count.value > 0) out[key] = { n: count.value, avgS: sum.value / count.value };
  };
  for (const stage of ['annotation', 'routed', 'ovn_installed', 'gateway_check']) read('kube_ovn_agent_cni_wait_duration_seconds', { stage }, stage);
  read('kube_ovn_agent_cni_request_duration_seconds', { command: 'ADD', result: 'ok' }, 'add_total');
  return out;
}

export const formatStages = (s: Record<string, { n: number; avgS: number }>): string =>
  Object.entries(s).map(([k, v]) => `${k} ${(v.avgS * 1000).toFixed(0)} ms (n ${v.n})`).join(', ');

export interface BurstResult {
  readonly results: CniCallResult[];
  /** first spawn to last exit, ms */
  readonly totalMs: number;
  readonly errors: CniCallResult[];
}

/**
 * One concurrent `command` per pod through the real shim (or `o.plugin`), all started at once from inside the node namespace by
 * cni-shim/burst-spawn (posix_spawn, as a Go runtime starts plugins; burst-spawn.c says why not Node's spawn).
 * startedAt/endedAt are burst-spawn's CLOCK_MONOTONIC in ms; `ms` is each call's spawn-to-exit time.
 */
export async function burst(command: 'ADD' | 'DEL', agent: NodeAgent, pods: readonly TestPod[], timeoutMs = 300_000,
  o: { plugin?: string; built?: boolean } = {}): Promise<BurstResult> {
  if (!o.built) buildBurstSpawn();
  const dir = await mkdtemp(join(tmpdir(), 'koal-burst-'));
  try {
    let plugin = '';
    await Promise.all(pods.map(async (p, i) => {
      const input = cniCallInput(command, { agent, netns: p.ns.path, containerId: p.containerId, podName: p.name, podNamespace: p.namespace, podUid: p.uid,
        ...(o.plugin ? { plugin: o.plugin } : {}) });
      plugin = input.plugin;
      await writeFile(join(dir, `${i}.env`), Object.entries(input.env).map(([k, v]) => `${k}=${v}\0`).join(''));
      await writeFile(join(dir, `${i}.in`), input.stdin);
    }));
    const r = await execFileP('ip', ['netns', 'exec', agent.node.ns.name, join(ROOT, 'cni-shim', 'burst-spawn'), dir, String(pods.length), plugin],
      { timeout: timeoutMs, maxBuffer: 16 << 20, encoding: 'utf8' });
    const results: CniCallResult[] = new Array(pods.length);
    for (const line of r.stdout.trim().split('\n')) {
      const [i, start, end, status] = line.split(' ').map(Number) as [number, number, number, number];
      const stdout = await readFile(join(dir, `${i}.out`), 'utf8').catch(() => '');
      const stderr = await readFile(join(dir, `${i}.err`), 'utf8').catch(() => '');
      let json: unknown;
      try { json = stdout.trim() ? JSON.parse(stdout) : undefined; } catch { json = undefined; }
      results[i] = { code: status, stdout, stderr, json, startedAt: start / 1000, endedAt: end / 1000, ms: (end - start) / 1000 };
    }
    if (results.some((x) => x === undefined)) throw new Error(`burst-spawn reported ${r.stdout.trim().split('\n').length} of ${pods.length} runs`);
    const totalMs = Math.max(...results.map((x) => x.endedAt)) - Math.min(...results.map((x) => x.startedAt));
    return { results, totalMs, errors: results.filter((x) => x.code !== 0) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Builds cni-shim/burst-spawn (make: a no-op when it is current). A caller that runs many bursts builds it once
 * and passes `built` to burst(). */
export function buildBurstSpawn(): void {
  execFileSync('make', ['-s', '-C', join(ROOT, 'cni-shim'), 'burst-spawn'], { stdio: 'inherit' });
}

export function p99(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(0.99 * s.length) - 1))] ?? Number.NaN;
}

/** CPU time so far: the whole machine's busy time (/proc/stat) and each live process's own (utime + stime). */
export interface CpuSnapshot {
  readonly busyS: number;
  readonly cpus: number;
  /** pid -> [comm, seconds] */
  readonly procs: ReadonlyMap<number, readonly [string, number]>;
}

export async function cpuSnapshot(): Promise<CpuSnapshot> {
  const stat = await readFile('/proc/stat', 'utf8');
  const cpuLine = stat.split('\n')[0]!.split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: busy = all but idle and iowait
  const busy = cpuLine.slice(0, 8).reduce((a, x, i) => (i === 3 || i === 4 ? a : a + x), 0);
  const cpus = stat.split('\n').filter((l) => /^cpu\d/.test(l)).length;
  const procs = new Map<number, readonly [string, number]>();
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = parseStat(Number(e), await readFile(`/proc/${e}/stat`, 'utf8'));
      let comm = st.comm;
      // Node names its main thread MainThread: name a Node process after its script (agent.mjs, main.ts, ...)
      if (comm === 'MainThread' || comm === 'node') {
        const argv = (await readFile(`/proc/${e}/cmdline`, 'utf8')).split('\0').filter(Boolean);
        const script = argv.slice(1).find((x) => !x.startsWith('-'));
        comm = `node ${script?.split('/').pop() ?? ''}`;
      }
      procs.set(st.pid, [comm, st.selfTicks / TICKS_PER_S]);
    } catch { /* exited meanwhile */ }
  }
  return { busyS: busy / TICKS_PER_S, cpus, procs };
}

/**
 * Where the machine's CPU went between two snapshots: busy CPU-seconds in all, and the processes that used the most,
 * grouped by command name with digits dropped (kernel workers rename themselves after their work queue, e.g.
 * `kworker/u4:2-mld`). Processes that started and ended in between (the CNI executables) count only in the total.
 */
export function cpuBetween(a: CpuSnapshot, b: CpuSnapshot, top = 8): { busyS: number; cpus: number; byCommand: [string, number][] } {
  const by = new Map<string, number>();
  for (const [pid, [comm, s]] of b.procs) {
    const d = s - (a.procs.get(pid)?.[1] ?? 0);
    if (d <= 0) continue;
    const k = comm.replace(/\d+/g, '');
    by.set(k, (by.get(k) ?? 0) + d);
  }
  return { busyS: b.busyS - a.busyS, cpus: b.cpus, byCommand: [...by].sort((x, y) => y[1] - x[1]).slice(0, top) };
}

export const formatCpu = (c: ReturnType<typeof cpuBetween>): string =>
  `${c.busyS.toFixed(1)} CPU-s busy on ${c.cpus} CPUs; ${c.byCommand.map(([k, s]) => `${k} ${s.toFixed(2)}`).join(', ')}`;
