// Pod-side helpers against the real kernel in fresh namespaces (prefix koan): ARP probe finds a real conflicting
// host, gratuitous ARP and unsolicited NA are seen on the wire (packet socket on the other end), ICMP echo, DAD,
// TX checksum offload.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { warmUp, native, AF_PACKET, SOCK_RAW } from '../../agent/src/native.ts';
import { RtNetlink } from '../../agent/src/datapath/netlink/rtnl.ts';
import { closesInFlight, PodSide, settled } from '../../agent/src/datapath/podnet/podside.ts';
import { ETH_P_ARP, ETH_P_IPV6, parseArpFrame, parseNaFrame, sockaddrLl } from '../../agent/src/datapath/podnet/packets.ts';
import { formatIp } from '../../agent/src/datapath/netlink/ip.ts';
import { isNetlinkError } from '../../agent/src/datapath/netlink/errors.ts';
import { fdCount, sh, withNs, type TestNs } from './ns.ts';

const nl = new RtNetlink();
const pod = new PodSide(nl);
const FAST = { probeWaitMs: 0, probeNum: 2, probeMinMs: 50, probeMaxMs: 80, announceWaitMs: 150 };
/** A probe that, without a conflict, lasts at least SLOW_PROBE_TOTAL_MS: a conflict must end it far earlier. */
const SLOW = { probeWaitMs: 0, probeNum: 3, probeMinMs: 5000, probeMaxMs: 6000, announceWaitMs: 10_000 };
const SLOW_PROBE_TOTAL_MS = (SLOW.probeNum - 1) * SLOW.probeMinMs + SLOW.announceWaitMs;

before(async () => {
  await warmUp();
});

async function pair(host: TestNs, p: TestNs): Promise<{ hostMac: string; podMac: string }> {
  await nl.createVeth({ netns: host.path, name: 'koah0', peer: { name: 'eth0', netns: p.path, mac: '0a:58:0a:10:00:05' } });
  await nl.setLink(p.path, 'eth0', { up: true });
  await nl.setLink(host.path, 'koah0', { up: true });
  await nl.addAddress(host.path, 'koah0', { cidr: '10.16.0.1/16' });
  await nl.addAddress(host.path, 'koah0', { cidr: 'fd00:10:16::1/64', nodad: true });
  return { hostMac: (await nl.getLink(host.path, 'koah0'))!.mac!, podMac: '0a:58:0a:10:00:05' };
}

/** Frames of `ethertype` seen on `dev` in `ns` while `during` runs (a packet socket opened in that namespace). */
async function capture(ns: TestNs, dev: string, ethertype: number, during: () => Promise<void>): Promise<Buffer[]> {
  const n = native();
  const index = (await nl.getLink(ns.path, dev))!.index;
  const fd = n.socketInNetns(ns.path, AF_PACKET, SOCK_RAW, ((ethertype & 0xff) << 8) | (ethertype >> 8));
  const frames: Buffer[] = [];
  try {
    n.bind(fd, sockaddrLl(ethertype, index));
    await during();
    const buf = Buffer.alloc(65536);
    for (;;) {
      const got = n.recv(fd, buf, 50, null);
      if (got < 0) break;
      frames.push(Buffer.from(buf.subarray(0, got)));
    }
  } finally {
    n.close(fd);
  }
  return frames;
}

test('ARP probe (RFC 5227): a free address has no conflict; an address held by the other end reports its MAC', async () => {
  await withNs(2, async (host, p) => {
    const { hostMac } = await pair(host, p);
    assert.deepEqual(await pod.probeIPv4(p.path, 'eth0', '10.16.0.5', FAST), { conflict: false });
    const t0 = performance.now();
    assert.deepEqual(await pod.probeIPv4(p.path, 'eth0', '10.16.0.1', SLOW), { conflict: true, mac: hostMac });
    assert.ok(performance.now() - t0 < SLOW_PROBE_TOTAL_MS / 2, 'a conflict ends the probe early');
    // the probes on the wire: sender IP 0.0.0.0, target the probed address
    const frames = await capture(host, 'koah0', ETH_P_ARP, async () => { await pod.probeIPv4(p.path, 'eth0', '10.16.0.9', FAST); });
    const probes = frames.map(parseArpFrame).filter((a) => a && formatIp(a.tpa) === '10.16.0.9');
    assert.equal(probes.length, 2);
    assert.ok(probes.every((a) => formatIp(a!.spa) === '0.0.0.0' && a!.op === 1 && a!.srcMac === '0a:58:0a:10:00:05'));
  });
});

test('arping: a gateway that drops ICMP to itself still answers ARP with its MAC; an absent address gives null', async () => {
  await withNs(2, async (host, p) => {
    const { hostMac } = await pair(host, p);
    await nl.addAddress(p.path, 'eth0', { cidr: '10.16.0.5/16' });
    // the "physical gateway" (the other end, a namespace of this test) drops ICMP to itself
    sh(['ip', 'netns', 'exec', host.name, 'iptables', '-w', '-A', 'INPUT', '-p', 'icmp', '-j', 'DROP']);
    assert.equal(await pod.ping(p.path, '10.16.0.1', { timeoutMs: 300, tries: 1 }), null, 'ICMP is dropped');
    const r = await pod.arping(p.path, 'eth0', '10.16.0.1', { src: '10.16.0.5', timeoutMs: 2000, tries: 2 });
    assert.equal(r?.mac, hostMac);
    assert.equal(await pod.arping(p.path, 'eth0', '10.16.0.77', { src: '10.16.0.5', timeoutMs: 200, tries: 2 }), null);
    await assert.rejects(pod.arping(p.path, 'eth0', 'fd00:10:16::1', { src: '10.16.0.5' }), (e) => isNetlinkError(e, 'EINVAL'));
  });
});

test('gratuitous ARP is on the wire and updates the neighbour entry of the other end', async () => {
  await withNs(2, async (host, p) => {
    await pair(host, p);
    await nl.addAddress(p.path, 'eth0', { cidr: '10.16.0.5/16' });
    // a stale entry for the pod IP on the node side, with another MAC
    sh(['ip', '-n', host.name, 'neigh', 'replace', '10.16.0.5', 'lladdr', '02:00:00:00:00:99', 'dev', 'koah0', 'nud', 'stale']);
    const frames = await capture(host, 'koah0', ETH_P_ARP, () => pod.announceIPv4(p.path, 'eth0', '10.16.0.5', { count: 2 }));
    const garps = frames.map(parseArpFrame).filter((a) => a && formatIp(a.spa) === '10.16.0.5' && formatIp(a.tpa) === '10.16.0.5');
    assert.equal(garps.length, 2);
    assert.equal(garps[0]!.srcMac, '0a:58:0a:10:00:05');
    const neigh = sh(['ip', '-n', host.name, 'neigh', 'show', '10.16.0.5', 'dev', 'koah0']);
    assert.match(neigh, /lladdr 0a:58:0a:10:00:05/);
  });
});

test('unsolicited neighbour advertisement is on the wire with a valid checksum and overrides the stale entry', async () => {
  await withNs(2, async (host, p) => {
    await pair(host, p);
    await nl.addAddress(p.path, 'eth0', { cidr: 'fd00:10:16::5/64', nodad: true });
    sh(['ip', '-n', host.name, 'neigh', 'replace', 'fd00:10:16::5', 'lladdr', '02:00:00:00:00:99', 'dev', 'koah0', 'nud', 'stale']);
    const frames = await capture(host, 'koah0', ETH_P_IPV6, () => pod.announceIPv6(p.path, 'eth0', 'fd00:10:16::5'));
    const nas = frames.map(parseNaFrame).filter((x) => x && x.target === 'fd00:10:16::5');
    assert.equal(nas.length, 1);
    assert.deepEqual(nas[0], { srcMac: '0a:58:0a:10:00:05', src: 'fd00:10:16::5', dst: 'ff02::1', hopLimit: 255, flags: 0x20000000,
      target: 'fd00:10:16::5', tlla: '0a:58:0a:10:00:05', checksumOk: true });
    // the kernel accepted it (it checks hop limit and checksum): the override flag replaced the MAC
    assert.match(sh(['ip', '-n', host.name, 'neigh', 'show', 'fd00:10:16::5', 'dev', 'koah0']), /lladdr 0a:58:0a:10:00:05/);
  });
});

test('ICMP echo to the peer (v4 and v6) returns an RTT; no answer returns null within the bound', async () => {
  await withNs(2, async (host, p) => {
    await pair(host, p);
    await nl.addAddress(p.path, 'eth0', { cidr: '10.16.0.5/16' });
    await nl.addAddress(p.path, 'eth0', { cidr: 'fd00:10:16::5/64', nodad: true });
    const v4 = await pod.ping(p.path, '10.16.0.1', { timeoutMs: 1000, tries: 3 });
    assert.ok(v4 && v4.rttMs > 0, JSON.stringify(v4));
    const v6 = await pod.ping(p.path, 'fd00:10:16::1', { timeoutMs: 1000, tries: 3 });
    assert.ok(v6 && v6.rttMs > 0, JSON.stringify(v6));
    const t0 = performance.now();
    assert.equal(await pod.ping(p.path, '10.16.0.77', { timeoutMs: 100, tries: 2 }), null);
    assert.ok(performance.now() - t0 < 10_000, 'bounded: 2 tries of 100 ms');
    // link-local with a scope
    const ll = (await nl.listAddresses(host.path, { dev: 'koah0', family: 6 })).find((a) => a.address.startsWith('fe80'));
    if (ll) {
      const r = await pod.ping(p.path, ll.address, { dev: 'eth0', timeoutMs: 2000, tries: 3, intervalMs: 200 });
      assert.ok(r, 'link-local echo with scope id');
    }
  });
});

test('DAD: a fresh address is tentative, then preferred; a duplicate is reported as dadfailed', async () => {
  await withNs(2, async (host, p) => {
    await pair(host, p);
    // make DAD quick and certain in the pod
    await pod.setSysctl(p.path, 'net/ipv6/conf/eth0/dad_transmits', '1');
    await pod.setSysctl(p.path, 'net/ipv6/neigh/eth0/retrans_time_ms', '100');
    await pod.setSysctl(p.path, 'net/ipv6/conf/eth0/accept_dad', '1');
    await nl.addAddress(p.path, 'eth0', { cidr: 'fd00:10:16::5/64' });
    const first = (await nl.listAddresses(p.path, { dev: 'eth0', family: 6 })).find((a) => a.address === 'fd00:10:16::5');
    assert.equal(first?.tentative, true);
    const ok = await pod.waitIPv6Dad(p.path, 'eth0', { timeoutMs: 5000 });
    assert.deepEqual(ok, { ok: true, tentative: [], dadFailed: [] });

    await nl.addAddress(p.path, 'eth0', { cidr: 'fd00:10:16::1/64' }); // the node end already has it
    const dup = await pod.waitIPv6Dad(p.path, 'eth0', { timeoutMs: 5000 });
    assert.equal(dup.ok, false);
    assert.deepEqual(dup.dadFailed, ['fd00:10:16::1']);
    // bounded: a wait shorter than DAD returns at its bound and reports the tentative address. The failed duplicate
    // goes first (a dadfailed address ends the wait at once), and 50 probes 100 ms apart keep DAD going for 5 s
    assert.equal(await nl.deleteAddress(p.path, 'eth0', 'fd00:10:16::1/64'), true);
    await pod.setSysctl(p.path, 'net/ipv6/conf/eth0/dad_transmits', '50');
    await nl.addAddress(p.path, 'eth0', { cidr: 'fd00:10:16::6/64' });
    const short = await pod.waitIPv6Dad(p.path, 'eth0', { timeoutMs: 10 });
    assert.deepEqual(short, { ok: false, tentative: ['fd00:10:16::6'], dadFailed: [] });
  });
});

test('TX checksum offload off on the pod end (ethtool -k agrees), errors for a missing link', async () => {
  await withNs(2, async (host, p) => {
    await pair(host, p);
    assert.equal(await pod.getTxChecksum(p.path, 'eth0'), true);
    await pod.setTxChecksum(p.path, 'eth0', false);
    assert.equal(await pod.getTxChecksum(p.path, 'eth0'), false);
    assert.match(sh(['ip', 'netns', 'exec', p.name, 'ethtool', '-k', 'eth0']), /tx-checksumming: off/);
    assert.match(sh(['ip', 'netns', 'exec', host.name, 'ethtool', '-k', 'koah0']), /tx-checksumming: on/, 'the node end is untouched');
    await assert.rejects(pod.setTxChecksum(p.path, 'nope0', false), (e) => isNetlinkError(e, 'ENODEV'));
    await assert.rejects(pod.probeIPv4(p.path, 'nope0', '10.16.0.5', FAST), (e) => isNetlinkError(e, 'ENODEV'));
    await assert.rejects(pod.ping('/run/netns/koan-missing', '10.16.0.1'), (e) => isNetlinkError(e, 'ENOENT'));
  });
});

test('a gratuitous ARP does not wait for the packet socket close (the close runs on the libuv pool)', async () => {
  await withNs(2, async (host, p) => {
    await pair(host, p);
    await nl.addAddress(p.path, 'eth0', { cidr: '10.16.0.5/16' });
    // order, not time: the announce has answered while its socket's close (an RCU grace period in the kernel) is still
    // in flight on the pool; the time it takes is `npm run bench -- podside.announce`
    let pendingAfter = 0;
    for (let i = 0; i < 5; i++) {
      await pod.announceIPv4(p.path, 'eth0', '10.16.0.5', { count: 1 });
      pendingAfter = Math.max(pendingAfter, closesInFlight());
      await settled();
    }
    assert.ok(pendingAfter >= 1, 'the close was handed to the pool, not done on the event loop');
    assert.equal(closesInFlight(), 0);
  });
});

test('pod-side helpers leak no fds', async () => {
  await withNs(2, async (host, p) => {
    await pair(host, p);
    await nl.addAddress(p.path, 'eth0', { cidr: '10.16.0.5/16' });
    const start = fdCount();
    for (let i = 0; i < 50; i++) {
      await pod.ping(p.path, '10.16.0.1', { timeoutMs: 500, tries: 1 });
      await pod.announceIPv4(p.path, 'eth0', '10.16.0.5', { count: 1 });
      await pod.setTxChecksum(p.path, 'eth0', false);
      await assert.rejects(pod.ping('/run/netns/koan-missing', '10.16.0.1'));
    }
    await settled(); // packet sockets are closed on the libuv pool (the kernel waits for an RCU grace period)
    assert.equal(fdCount(), start);
  });
});
