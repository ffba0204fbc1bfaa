// Netlink in-process against `ip` (spawnSync, argv) doing the same operation in the same run.
// Needs root. Every namespace is ours (prefix koanb + random) and is deleted at the end, also on failure.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { percentile, report, timeRuns, type BenchContext } from './lib.ts';
import { warmUp } from '../agent/src/native.ts';
import { RtNetlink } from '../agent/src/datapath/netlink/rtnl.ts';
import { NlSocket } from '../agent/src/datapath/netlink/transport.ts';
import type { NetlinkEvent } from '../agent/src/datapath/netlink/port.ts';

export const ids = ['netlink.event', 'netlink.veth_create', 'netlink.veth_delete', 'netlink.addr_add', 'netlink.route_add', 'netlink.pod_wiring', 'netlink.netns_socket'] as const;

const N = Number(process.env.KOA_BENCH_N) || 200;
const WARMUP = 3;
const run = `koanb${randomBytes(3).toString('hex')}`;
const made: string[] = [];

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

function netns(tag: string): { name: string; path: string } {
  const name = `${run}${tag}`;
  ip(['netns', 'add', name]);
  made.push(name);
  return { name, path: `/run/netns/${name}` };
}

/** `count` namespaces named <run><tag><i>; deleting them is left to the end (the kernel batches netns cleanup). */
function pool(tag: string, count: number) {
  return Array.from({ length: count }, (_, i) => netns(`${tag}${i}`));
}

/** timeRuns passes -1, -2, ... for warm-up runs: map them after the measured slots. */
const slot = (i: number): number => (i < 0 ? N - 1 - i : i);

export default async function bench(ctx: BenchContext): Promise<void> {
  if (!ids.some((id) => ctx.wants(id))) return;
  if (process.getuid?.() !== 0) throw new Error('netlink benches need root (they create network namespaces)');
  await warmUp();
  const nl = new RtNetlink();
  const size = N + WARMUP;
  try {
    const host = netns('h');
    const mac = (i: number) => `0a:58:0a:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}:05`;

    if (ctx.wants('netlink.veth_create') || ctx.wants('netlink.veth_delete')) {
      // create (peer born in its pod netns) then delete the same pairs; once in-process, once with ip
      const podsA = pool('a', size);
      const create = await timeRuns(N, (i) => nl.createVeth({ netns: host.path, name: `kva${slot(i)}`, mtu: 1400, peer: { name: 'eth0', netns: podsA[slot(i)]!.path } }), WARMUP);
      const del = await timeRuns(N, (i) => nl.deleteLink(host.path, `kva${slot(i)}`), WARMUP);
      const podsB = pool('b', size);
      const ipCreate = await timeRuns(N, (i) => ip(['-n', host.name, 'link', 'add', `kvb${slot(i)}`, 'mtu', '1400', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', podsB[slot(i)]!.name]), WARMUP);
      const ipDel = await timeRuns(N, (i) => ip(['-n', host.name, 'link', 'del', `kvb${slot(i)}`]), WARMUP);
      if (ctx.wants('netlink.veth_create')) report('netlink.veth_create', 'ms', create, { name: 'ip link add ... type veth peer name eth0 netns <pod> (spawnSync)', p50: median(ipCreate) });
      if (ctx.wants('netlink.veth_delete')) report('netlink.veth_delete', 'ms', del, { name: 'ip link del (spawnSync)', p50: median(ipDel) });
    }

    if (ctx.wants('netlink.addr_add') || ctx.wants('netlink.route_add') || ctx.wants('netlink.netns_socket')) {
      const pod = netns('p');
      await nl.createVeth({ netns: host.path, name: 'kvp', peer: { name: 'eth0', netns: pod.path } });
      await nl.setLink(pod.path, 'eth0', { up: true });
      await nl.addAddress(pod.path, 'eth0', { cidr: '10.16.0.5/16' });
      const a = (base: number, i: number) => `10.${base}.${slot(i) >> 8}.${slot(i) & 0xff}`;
      if (ctx.wants('netlink.addr_add')) {
        const mine = await timeRuns(N, (i) => nl.addAddress(pod.path, 'eth0', { cidr: `${a(100, i)}/32` }), WARMUP);
        const theirs = await timeRuns(N, (i) => ip(['-n', pod.name, 'addr', 'add', `${a(101, i)}/32`, 'dev', 'eth0']), WARMUP);
        report('netlink.addr_add', 'ms', mine, { name: 'ip -n <pod> addr add (spawnSync)', p50: median(theirs) });
      }
      if (ctx.wants('netlink.route_add')) {
        const mine = await timeRuns(N, (i) => nl.addRoute(pod.path, { dst: `${a(110, i)}/32`, gateway: '10.16.0.1', dev: 'eth0' }), WARMUP);
        const theirs = await timeRuns(N, (i) => ip(['-n', pod.name, 'route', 'add', `${a(111, i)}/32`, 'via', '10.16.0.1', 'dev', 'eth0']), WARMUP);
        report('netlink.route_add', 'ms', mine, { name: 'ip -n <pod> route add (spawnSync)', p50: median(theirs) });
      }
      if (ctx.wants('netlink.netns_socket')) {
        const mine = await timeRuns(N, () => new NlSocket(pod.path).close(), WARMUP);
        // the closest thing `ip` does: enter the netns, open a netlink socket, one request
        const theirs = await timeRuns(N, () => ip(['-n', pod.name, 'link', 'show', 'lo']), WARMUP);
        report('netlink.netns_socket', 'ms', mine, { name: 'ip -n <pod> link show lo (spawnSync)', p50: median(theirs) });
      }
    }

    if (ctx.wants('netlink.event')) {
      // A change made by `ip` (one long-running `ip -batch -`, fed a line per change: route add, or an MTU change of a
      // link) until the subscriber's callback has it: ms from writing the line. Baseline: the same changes found by a
      // 1 ms dump poll (what the carrier wait did before).
      const ev = netns('e');
      ip(['-n', ev.name, 'link', 'set', 'lo', 'up']);
      const batch = spawn('ip', ['-n', ev.name, '-batch', '-'], { stdio: ['pipe', 'ignore', 'inherit'] });
      try {
        let want: ((e: NetlinkEvent) => boolean) | undefined;
        let hit: (() => void) | undefined;
        const sub = nl.subscribe({ netns: ev.path, groups: ['link', 'route'] }, (e) => { if (want?.(e)) { want = undefined; hit?.(); } });
        await sub.ready;
        const change = (k: number): { line: string; match: (e: NetlinkEvent) => boolean; seen: () => Promise<boolean> } => k % 2 === 0
          ? { line: `route add 10.${100 + (k >> 16)}.${(k >> 8) & 0xff}.${k & 0xff}/32 dev lo`,
            match: (e) => e.kind === 'route' && e.action === 'new' && e.route.dst === `10.${100 + (k >> 16)}.${(k >> 8) & 0xff}.${k & 0xff}/32`,
            seen: async () => (await nl.listRoutes(ev.path, { family: 4 })).some((r) => r.dst === `10.${100 + (k >> 16)}.${(k >> 8) & 0xff}.${k & 0xff}/32`) }
          : { line: `link set dev lo mtu ${10000 + (k % 50000)}`,
            match: (e) => e.kind === 'link' && e.link.name === 'lo' && e.link.mtu === 10000 + (k % 50000),
            seen: async () => (await nl.getLink(ev.path, 'lo'))?.mtu === 10000 + (k % 50000) };
        let k = 0;
        const mine = await timeRuns(N, () => new Promise<void>((res) => {
          const c = change(++k);
          want = c.match;
          hit = res;
          batch.stdin.write(`${c.line}\n`);
        }), WARMUP);
        sub.close();
        const polled = await timeRuns(Math.min(N, 100), async () => {
          const c = change(++k);
          batch.stdin.write(`${c.line}\n`);
          while (!(await c.seen())) await new Promise((r) => setTimeout(r, 1));
        }, WARMUP);
        report('netlink.event', 'ms', mine, { name: '1 ms dump poll for the same change', p50: median(polled) });
      } finally {
        batch.stdin.end();
      }
    }

    if (ctx.wants('netlink.pod_wiring')) {
      const podsC = pool('c', size);
      const mine = await timeRuns(N, async (i) => {
        const p = podsC[slot(i)]!.path;
        await nl.createVeth({ netns: host.path, name: `kvc${slot(i)}`, mtu: 1400, peer: { name: `kvt${slot(i)}`, netns: p } });
        await nl.setLink(p, `kvt${slot(i)}`, { name: 'eth0', mac: mac(slot(i)), mtu: 1400, up: true });
        await nl.addAddress(p, 'eth0', { cidr: '10.16.0.5/16' });
        await nl.addAddress(p, 'eth0', { cidr: 'fd00:10:16::5/64', nodad: true });
        await nl.addRoute(p, { gateway: '10.16.0.1', dev: 'eth0' });
        await nl.addRoute(p, { gateway: 'fd00:10:16::1', dev: 'eth0' });
      }, WARMUP);
      const podsD = pool('d', size);
      const theirs = await timeRuns(N, (i) => {
        const p = podsD[slot(i)]!.name;
        ip(['-n', host.name, 'link', 'add', `kvd${slot(i)}`, 'mtu', '1400', 'type', 'veth', 'peer', 'name', `kvt${slot(i)}`, 'netns', p, 'mtu', '1400']);
        ip(['-n', p, 'link', 'set', 'dev', `kvt${slot(i)}`, 'name', 'eth0', 'address', mac(slot(i)), 'mtu', '1400', 'up']);
        ip(['-n', p, 'addr', 'add', '10.16.0.5/16', 'dev', 'eth0']);
        ip(['-n', p, 'addr', 'add', 'fd00:10:16::5/64', 'dev', 'eth0', 'nodad']);
        ip(['-n', p, 'route', 'add', 'default', 'via', '10.16.0.1', 'dev', 'eth0']);
        ip(['-n', p, '-6', 'route', 'add', 'default', 'via', 'fd00:10:16::1', 'dev', 'eth0']);
      }, WARMUP);
      report('netlink.pod_wiring', 'ms', mine, { name: 'the same 6 steps as ip commands (spawnSync)', p50: median(theirs) });
    }
  } finally {
    nl.close();
    for (const n of made.reverse()) if (existsSync(`/run/netns/${n}`)) spawnSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
  }
}

const median = (xs: number[]): number => percentile(xs, 50);
