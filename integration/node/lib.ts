// Shared pieces of the node-wing tests (integration/node/*.test.ts): a bed whose node namespaces are prepared the way
// the install-cni init container prepares a host, the real agent with a short resync, pods wired by the agent through
// the real CNI executable, an "external" namespace reachable only through a node, and a traffic tool (peer.ts).
// Everything happens inside namespaces of the bed: iptables, ipsets and routes are the node namespace's, never the
// host's.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { leaks, up, type Bed, type BedNode } from '../bed/bed.ts';
import type { Allocation } from '../bed/controller.ts';
import { onCleanup } from '../bed/cleanup.ts';
import { isAlive, stopPid } from '../bed/daemon.ts';
import { run, waitFor } from '../bed/exec.ts';
import { addAddress, cleanupAll, createNetns, newPrefix, type Netns } from '../bed/netns.ts';
import { buildShim, newPod, podCall, ROOT, startNodeAgent, type AgentOptions, type NodeAgent, type TestPod } from '../e2e/agent-harness.ts';

export const PEER = join(ROOT, 'integration', 'node', 'peer.ts');
/** `--node-resync-period` the tests run with (seconds): repairs without an event land within this */
export const RESYNC_S = 2;

export interface NodeBed {
  readonly bed: Bed;
  /** the "external" host: linked to each node by a veth, no route into the cluster (see external()) */
  readonly ext: Netns;
  /** per node: its address on the link to ext (what a masqueraded packet carries) and ext's address there */
  readonly uplinks: { nodeIp: string; extIp: string }[];
}

/**
 * A bed (`koand*`) whose node namespaces forward, as install-cni makes a host do (ip_forward=1, rp_filter=0), plus an
 * external namespace. One node: the link to ext is the node's uplink and 192.168.77.1 becomes its InternalIP (the
 * bed's one-node default, 127.0.0.1, cannot source traffic into ovn0); ext holds 192.168.77.2 and .3. Two nodes: the
 * InternalIPs stay on the bed's underlay (172.30.0.N) and ext is linked to node N as 192.168.(76+N).0/24.
 */
export async function nodeBed(o: { nodes?: 1 | 2 } = {}): Promise<NodeBed> {
  buildShim();
  const bed = await up({ prefix: newPrefix('koand'), nodes: o.nodes ?? 1 });
  for (const n of bed.nodes) {
    await n.ns.exec(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']);
  }
  const uplinks = bed.nodes.map((_n, i) => ({ nodeIp: `192.168.${77 + i}.1`, extIp: `192.168.${77 + i}.2` }));
  const ext = await external(bed, bed.nodes.map((node, i) => ({ node, nodeCidr: `${uplinks[i]!.nodeIp}/24`, extCidr: `${uplinks[i]!.extIp}/24`,
    ...(i === 0 ? { extra: ['192.168.77.3/24'] } : {}) })));
  if (bed.nodes.length === 1) await bed.controller!.setNodeInternalIp(bed.nodes[0]!.name, uplinks[0]!.nodeIp);
  return { bed, ext, uplinks };
}

/** The real agent in the node's namespace with `--node-resync-period` (default RESYNC_S). */
/** Every node test's `after`: its own stops (agents, listeners, in its order), the bed down, every namespace of the
 * run removed, then nothing of the bed's prefix may be left (namespaces, temp dirs, processes). */
export async function downNodeBed(nb: NodeBed | undefined, stop: () => Promise<unknown>): Promise<void> {
  const prefix = nb?.bed.prefix;
  try {
    await stop();
    await nb?.bed.down();
  } finally {
    await cleanupAll();
  }
  if (prefix) assert.deepEqual(leaks(prefix), { netns: [], tmpDirs: [], processes: [] });
}

export function startAgent(bed: Bed, node: BedNode, o: AgentOptions & { resyncS?: number } = {}): Promise<NodeAgent> {
  return startNodeAgent(bed, node, { ...o, args: [`--node-resync-period=${o.resyncS ?? RESYNC_S}`, ...(o.args ?? [])] });
}

export interface Pod { readonly pod: TestPod; readonly alloc: Allocation; readonly ip: string }

/** A Pod object on `node`, allocated by the stand-in controller in `subnet`, wired by the agent (CNI ADD). */
export async function agentPod(bed: Bed, agent: NodeAgent, name: string, subnet = 'ovn-default'): Promise<Pod> {
  const pod = await newPod(bed, agent.node, name);
  const alloc = await bed.controller!.allocatePod(pod.namespace, pod.name, { subnet });
  const r = await podCall('ADD', agent, pod);
  if (r.code !== 0) throw new Error(`ADD ${name}: ${r.stdout} ${r.stderr}`);
  return { pod, alloc, ip: alloc.ips[0]! };
}

/**
 * An "external" host: a namespace linked to each given node by a veth (`koand-ext` on the node side), with no route
 * into the cluster. It can only see what the node forwards to it: pod traffic that left OVN through ovn0.
 */
export async function external(bed: Bed, links: { node: BedNode; nodeCidr: string; extCidr: string; extra?: string[] }[]): Promise<Netns> {
  const ext = await createNetns(`${bed.prefix}ext`);
  for (const [i, l] of links.entries()) {
    const dev = `eth${i}`;
    await l.node.ns.ip(['link', 'add', 'koand-ext', 'type', 'veth', 'peer', 'name', dev, 'netns', ext.name]);
    await addAddress(l.node.ns, 'koand-ext', l.nodeCidr);
    await l.node.ns.ip(['link', 'set', 'koand-ext', 'up']);
    await addAddress(ext, dev, l.extCidr);
    for (const x of l.extra ?? []) await addAddress(ext, dev, x);
    await ext.ip(['link', 'set', dev, 'up']);
  }
  return ext;
}

export interface Listener {
  /** lines seen so far ({proto, from, to|text}) */
  readonly seen: { proto: string; from: string; to?: string; text?: string }[];
  /** the first line (seen or future) matching `pred` */
  next(pred: (l: Listener['seen'][number]) => boolean, what: string, timeoutMs?: number): Promise<Listener['seen'][number]>;
  stop(): Promise<void>;
}

/** peer.ts listening in `ns` (stopped by PID at cleanup). */
export async function listen(ns: Netns, proto: 'tcp' | 'udp', port: number): Promise<Listener> {
  const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, PEER, 'listen', proto, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid!;
  const stop = onCleanup({ label: `peer ${pid}`, run: () => stopPid(pid), runSync: () => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } } });
  const seen: Listener['seen'] = [];
  let ready = false;
  let err = '';
  let buf = '';
  child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
  child.stdout.on('data', (c: Buffer) => {
    buf += c.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const o = JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
      if (o.ready) ready = true; else seen.push(o);
    }
  });
  await waitFor(`listener ${proto}/${port} in ${ns.name}`, () => { if (!isAlive(pid)) throw new Error(err); return ready; }, 30_000);
  return {
    seen,
    next: (pred, what, timeoutMs = 20_000) => waitFor(what, () => seen.find(pred), timeoutMs, 20),
    stop,
  };
}

/** One UDP datagram from `ns` to ip:port. */
export async function sendUdp(ns: Netns, ip: string, port: number, text: string): Promise<void> {
  await run(['ip', 'netns', 'exec', ns.name, process.execPath, PEER, 'send', 'udp', ip, String(port), text]);
}

/** Sends `text` from `ns` every 500 ms until the listener saw it (the first packets may race ARP/OVN flows). */
export async function udpUntilSeen(from: Netns, l: Listener, ip: string, port: number, text: string, timeoutMs = 20_000): Promise<{ from: string }> {
  return waitFor(`datagram "${text}" at ${ip}:${port}`, async () => {
    const hit = l.seen.find((x) => x.text === text);
    if (hit) return hit;
    await sendUdp(from, ip, port, text);
    await new Promise((r) => setTimeout(r, 300));
    return l.seen.find((x) => x.text === text);
  }, timeoutMs, 200);
}

/** TCP connect from `ns` to ip:port (what a kubelet probe does); true when it connected. */
export async function tcpConnects(ns: Netns, ip: string, port: number): Promise<boolean> {
  return (await run(['ip', 'netns', 'exec', ns.name, process.execPath, PEER, 'connect', 'tcp', ip, String(port)], { allowFail: true, timeoutMs: 15_000 })).code === 0;
}

/** `ip route show <dst>` in the node namespace (main table), trimmed; '' when absent. */
export async function routeTo(node: BedNode, dst: string): Promise<string> {
  return (await node.ns.ip(['route', 'show', dst])).stdout.trim();
}

/** Polls (20 ms) until `check` holds; returns the ms it took, for the test to print. */
export async function measure(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  await waitFor(what, check, timeoutMs, 20);
  return Math.round(performance.now() - t0);
}

/** iptables-save / ipset save inside the node namespace (the nft back end the agent chose on this bed). */
export async function iptablesSave(node: BedNode, family: 4 | 6 = 4): Promise<string> {
  return (await node.ns.exec([family === 4 ? 'iptables-save' : 'ip6tables-save'])).stdout;
}

export async function ipsetList(node: BedNode, set: string): Promise<string> {
  return (await node.ns.exec(['ipset', 'list', set], { allowFail: true })).stdout;
}

/** A counter of the agent's /metrics, summed over the label sets matching `labels` (e.g. `reconciler="netfilter-v4"`). */
export async function metric(agent: NodeAgent, name: string, labels = ''): Promise<number> {
  const text = await agent.metrics();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (labels && !line.includes(labels))) continue;
    const m = /^(\S+?)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === name) sum += Number(m[3]);
  }
  return sum;
}
