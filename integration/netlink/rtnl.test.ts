// RtNetlink against the real kernel, each test in fresh namespaces ("host" + "pod", prefix koan) that it deletes.
// What we set is checked both through our own dumps and independently with `ip -j`, and proven with real traffic.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { warmUp, native, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE } from '../../agent/src/native.ts';
import { RtNetlink } from '../../agent/src/datapath/netlink/rtnl.ts';
import { isNetlinkError } from '../../agent/src/datapath/netlink/errors.ts';
import { NlSocket } from '../../agent/src/datapath/netlink/transport.ts';
import { RT_SCOPE_LINK } from '../../agent/src/datapath/netlink/constants.ts';
import { createNs, deleteNs, fdCount, ipJson, sh, shStatus, withNs, type TestNs } from './ns.ts';

const nl = new RtNetlink();
const selfNs = () => statSync('/proc/thread-self/ns/net').ino;
let home = 0;

before(async () => {
  await warmUp();
  home = selfNs();
});

interface IpLink { ifname: string; mtu: number; address: string; operstate: string; flags: string[]; linkinfo?: { info_kind: string } }
interface IpAddr { ifname: string; addr_info: Array<{ family: string; local: string; prefixlen: number; nodad?: boolean }> }
interface IpRoute { dst: string; gateway?: string; dev?: string; flags?: string[]; table?: string }

/** The whole pod side as the ADD flow will do it: pair with the peer born in the pod, then one change message. */
async function wirePod(host: TestNs, pod: TestNs, hostName = 'koah0', tmpName = 'koac0'): Promise<void> {
  await nl.createVeth({ netns: host.path, name: hostName, mtu: 1400, peer: { name: tmpName, netns: pod.path } });
  await nl.setLink(pod.path, tmpName, { name: 'eth0', mac: '0a:58:0a:10:00:05', mtu: 1400, up: true });
  await nl.addAddress(pod.path, 'eth0', { cidr: '10.16.0.5/16' });
  await nl.addAddress(pod.path, 'eth0', { cidr: 'fd00:10:16::5/64', nodad: true });
  await nl.addRoute(pod.path, { gateway: '10.16.0.1', dev: 'eth0' });
  await nl.addRoute(pod.path, { gateway: 'fd00:10:16::1', dev: 'eth0' });
  // the "node" end
  await nl.setLink(host.path, hostName, { up: true });
  await nl.addAddress(host.path, hostName, { cidr: '10.16.0.1/16' });
  await nl.addAddress(host.path, hostName, { cidr: 'fd00:10:16::1/64', nodad: true });
}

test('veth with the peer created in the pod netns, renamed eth0, MAC/MTU, v4+v6, default routes, up: real ping both families', async () => {
  await withNs(2, async (host, pod) => {
    await wirePod(host, pod);
    assert.equal(selfNs(), home, 'the main thread is back in its own namespace');

    // independent view: ip -j
    const [eth0] = ipJson<IpLink[]>(pod, ['-d', 'link', 'show', 'eth0']);
    assert.equal(eth0?.address, '0a:58:0a:10:00:05');
    assert.equal(eth0?.mtu, 1400);
    assert.equal(eth0?.linkinfo?.info_kind, 'veth');
    assert.ok(eth0?.flags.includes('UP'));
    assert.equal(ipJson<IpLink[]>(host, ['link', 'show', 'koah0'])[0]?.mtu, 1400);
    assert.equal(shStatus(['ip', '-n', host.name, 'link', 'show', 'koac0']).status !== 0, true, 'the peer never existed in the host ns');
    const addrs = ipJson<IpAddr[]>(pod, ['addr', 'show', 'eth0'])[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`);
    assert.ok(addrs.includes('10.16.0.5/16') && addrs.includes('fd00:10:16::5/64'), addrs.join(','));
    const routes = ipJson<IpRoute[]>(pod, ['route', 'show', 'default']);
    assert.equal(routes[0]?.gateway, '10.16.0.1');
    assert.equal(ipJson<IpRoute[]>(pod, ['-6', 'route', 'show', 'default'])[0]?.gateway, 'fd00:10:16::1');

    // real traffic
    sh(['ip', 'netns', 'exec', pod.name, 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.16.0.1']);
    sh(['ip', 'netns', 'exec', host.name, 'ping', '-c', '1', '-W', '2', '10.16.0.5']);
    sh(['ip', 'netns', 'exec', pod.name, 'ping', '-6', '-c', '2', '-i', '0.2', '-W', '2', 'fd00:10:16::1']);
  });
});

test('dumps return what was set', async () => {
  await withNs(2, async (host, pod) => {
    await wirePod(host, pod);
    const links = await nl.listLinks(pod.path);
    assert.deepEqual(links.map((l) => l.name).sort(), ['eth0', 'lo']);
    const eth0 = (await nl.getLink(pod.path, 'eth0'))!;
    assert.deepEqual([eth0.mac, eth0.mtu, eth0.up, eth0.kind], ['0a:58:0a:10:00:05', 1400, true, 'veth']);
    const byIndex = await nl.getLinkByIndex(pod.path, eth0.index);
    assert.equal(byIndex?.name, 'eth0');
    const a = await nl.listAddresses(pod.path, { dev: 'eth0' });
    assert.deepEqual(a.filter((x) => x.scope === 0).map((x) => `${x.address}/${x.prefixLen}`).sort(), ['10.16.0.5/16', 'fd00:10:16::5/64']);
    assert.ok(a.find((x) => x.address === 'fd00:10:16::5')!.flags & 0x02, 'nodad kept');
    assert.deepEqual((await nl.listAddresses(pod.path, { family: 4 })).map((x) => x.address), ['10.16.0.5']);
    const r4 = await nl.listRoutes(pod.path, { family: 4 });
    assert.deepEqual(r4.map((r) => [r.dst, r.gateway ?? null, r.oif]).sort(), [['10.16.0.0/16', null, eth0.index], [null, '10.16.0.1', eth0.index]].sort());
    const r6 = await nl.listRoutes(pod.path, { family: 6, dev: 'eth0' });
    assert.ok(r6.some((r) => r.dst === null && r.gateway === 'fd00:10:16::1'));
    assert.ok(r6.some((r) => r.dst === 'fd00:10:16::/64'));
    const hostLink = (await nl.getLink(host.path, 'koah0'))!;
    assert.equal(hostLink.link, eth0.index, 'IFLA_LINK of the host end is the peer index in the pod');
  });
});

test('delete cleans up both ends; deleting again is ENODEV, or false with ignoreMissing', async () => {
  await withNs(2, async (host, pod) => {
    await wirePod(host, pod);
    assert.equal(await nl.deleteLink(host.path, 'koah0'), true);
    assert.equal(await nl.getLink(host.path, 'koah0'), null);
    assert.equal(await nl.getLink(pod.path, 'eth0'), null);
    assert.deepEqual(ipJson<IpLink[]>(pod, ['link']).map((l) => l.ifname), ['lo']);
    await assert.rejects(nl.deleteLink(host.path, 'koah0'), (e) => isNetlinkError(e, 'ENODEV'));
    assert.equal(await nl.deleteLink(host.path, 'koah0', { ignoreMissing: true }), false);
  });
});

test('set/rename/move/alias/txqueuelen, route replace/onlink/table, rules, neighbours, address delete', async () => {
  await withNs(2, async (host, pod) => {
    await wirePod(host, pod);
    await nl.setLink(host.path, 'koah0', { up: false });
    await nl.renameLink(host.path, 'koah0', 'koah1');
    await nl.setLink(host.path, 'koah1', { alias: 'koac0', txQueueLen: 500, mtu: 1300, up: true });
    const h = (await nl.getLink(host.path, 'koah1'))!;
    assert.deepEqual([h.alias, h.txQueueLen, h.mtu, h.up], ['koac0', 500, 1300, true]);

    await nl.addRoute(pod.path, { family: 4, gateway: '10.16.0.254', dev: 'eth0' }, { replace: true });
    assert.equal(ipJson<IpRoute[]>(pod, ['route', 'show', 'default'])[0]?.gateway, '10.16.0.254');
    await assert.rejects(nl.addRoute(pod.path, { family: 4, gateway: '10.16.0.1', dev: 'eth0' }), (e) => isNetlinkError(e, 'EEXIST'));
    await assert.rejects(nl.addRoute(pod.path, { dst: '10.99.0.0/16', gateway: '192.168.7.1', dev: 'eth0' }), (e) => isNetlinkError(e, 'ENETUNREACH'));
    await nl.addRoute(pod.path, { dst: '10.99.0.0/16', gateway: '192.168.7.1', dev: 'eth0', onlink: true });
    const onlink = ipJson<IpRoute[]>(pod, ['route', 'show', '10.99.0.0/16'])[0];
    assert.ok(onlink?.flags?.includes('onlink'));
    await nl.addRoute(pod.path, { dst: '10.98.0.0/16', dev: 'eth0', table: 1000 });
    const t = await nl.listRoutes(pod.path, { table: 1000 });
    assert.deepEqual(t.map((r) => [r.dst, r.scope, r.table]), [['10.98.0.0/16', RT_SCOPE_LINK, 1000]]);
    assert.equal(await nl.deleteRoute(pod.path, { dst: '10.98.0.0/16', table: 1000 }), true);
    assert.equal(await nl.deleteRoute(pod.path, { dst: '10.98.0.0/16', table: 1000 }, { ignoreMissing: true }), false);
    await assert.rejects(nl.deleteRoute(pod.path, { dst: '10.98.0.0/16', table: 1000 }), (e) => isNetlinkError(e, 'ESRCH'));

    const rule = { family: 4 as const, src: '10.16.0.5/32', table: 1000, priority: 1234 };
    await nl.addRule(pod.path, rule);
    assert.match(sh(['ip', '-n', pod.name, 'rule', 'show']), /1234:\s+from 10\.16\.0\.5 lookup 1000/);
    assert.ok((await nl.listRules(pod.path, 4)).some((r) => r.priority === 1234 && r.src === '10.16.0.5/32' && r.table === 1000));
    await assert.rejects(nl.addRule(pod.path, rule), (e) => isNetlinkError(e, 'EEXIST'));
    assert.equal(await nl.deleteRule(pod.path, rule), true);
    assert.equal(await nl.deleteRule(pod.path, rule, { ignoreMissing: true }), false);
    await nl.addRule(pod.path, { family: 6, src: 'fd00:10:16::5/128', table: 1000, priority: 1235 });
    assert.ok((await nl.listRules(pod.path, 6)).some((r) => r.priority === 1235 && r.src === 'fd00:10:16::5/128'));

    await nl.setNeighbor(pod.path, { dev: 'eth0', ip: '10.16.0.77', mac: '0a:58:0a:10:00:4d' });
    await nl.setNeighbor(pod.path, { dev: 'eth0', ip: 'fd00:10:16::77', mac: '0a:58:0a:10:00:4e' });
    const ns = await nl.listNeighbors(pod.path, { dev: 'eth0' });
    assert.ok(ns.some((n) => n.ip === '10.16.0.77' && n.mac === '0a:58:0a:10:00:4d' && n.state === 0x80));
    assert.ok(ns.some((n) => n.ip === 'fd00:10:16::77' && n.family === 6));
    assert.equal(await nl.deleteNeighbor(pod.path, 'eth0', '10.16.0.77'), true);
    assert.equal(await nl.deleteNeighbor(pod.path, 'eth0', '10.16.0.77', { ignoreMissing: true }), false);

    assert.equal(await nl.deleteAddress(pod.path, 'eth0', '10.16.0.5/16'), true);
    await assert.rejects(nl.deleteAddress(pod.path, 'eth0', '10.16.0.5/16'), (e) => isNetlinkError(e, 'EADDRNOTAVAIL'));
    assert.equal(await nl.deleteAddress(pod.path, 'eth0', '10.16.0.5/16', { ignoreMissing: true }), false);
    await nl.addAddress(pod.path, 'eth0', { cidr: '10.16.0.5/16' }, { replace: true });
    await nl.addAddress(pod.path, 'eth0', { cidr: '10.16.0.5/16' }, { replace: true });

    // move a link between namespaces (the slow path the pair-in-pod creation avoids)
    await nl.createVeth({ netns: host.path, name: 'koam0', peer: { name: 'koam1' } });
    await nl.setLink(host.path, 'koam1', { moveTo: pod.path });
    assert.equal(await nl.getLink(host.path, 'koam1'), null);
    assert.equal((await nl.getLink(pod.path, 'koam1'))?.kind, 'veth');
  });
});

test('kind lookups: tap (OVS userspace internal ports), tun, ifb, bridge', async () => {
  await withNs(1, async (ns) => {
    sh(['ip', '-n', ns.name, 'tuntap', 'add', 'mode', 'tap', 'name', 'koat0']);
    sh(['ip', '-n', ns.name, 'tuntap', 'add', 'mode', 'tun', 'name', 'koau0']);
    sh(['ip', '-n', ns.name, 'link', 'add', 'koad0', 'type', 'ifb']);
    sh(['ip', '-n', ns.name, 'link', 'add', 'koab0', 'type', 'bridge']);
    const kinds = Object.fromEntries((await nl.listLinks(ns.path)).map((l) => [l.name, `${l.kind ?? '-'}/${l.tunType ?? '-'}`]));
    assert.deepEqual(kinds, { lo: '-/-', koat0: 'tun/tap', koau0: 'tun/tun', koad0: 'ifb/-', koab0: 'bridge/-' });
  });
});

test('errors: missing netns path, collisions (EEXIST), long names (EINVAL, nothing created), missing links', async () => {
  await withNs(2, async (host, pod) => {
    const missing = `/run/netns/koan-does-not-exist-${process.pid}`;
    await assert.rejects(nl.listLinks(missing), (e) => isNetlinkError(e, 'ENOENT') && e.message.includes(missing));
    await assert.rejects(nl.createVeth({ netns: host.path, name: 'koah0', peer: { name: 'eth0', netns: missing } }), (e) => isNetlinkError(e, 'ENOENT'));
    assert.equal(await nl.getLink(host.path, 'koah0'), null, 'nothing created when the peer netns is missing');
    assert.equal(await nl.deleteLink(missing, 'eth0', { ignoreMissing: true }), false, 'DEL is idempotent when the netns is gone');

    await nl.createVeth({ netns: host.path, name: 'koah0', peer: { name: 'eth0', netns: pod.path } });
    await assert.rejects(nl.createVeth({ netns: host.path, name: 'koah0', peer: { name: 'eth1', netns: pod.path } }), (e) => isNetlinkError(e, 'EEXIST'));
    await assert.rejects(nl.createVeth({ netns: host.path, name: 'koah9', peer: { name: 'eth0', netns: pod.path } }), (e) => isNetlinkError(e, 'EEXIST'));
    assert.equal(await nl.getLink(host.path, 'koah9'), null, 'a failed create leaves no half pair');
    await assert.rejects(nl.renameLink(pod.path, 'nope0', 'eth1'), (e) => isNetlinkError(e, 'ENODEV'));
    await assert.rejects(nl.addAddress(pod.path, 'nope0', { cidr: '10.0.0.1/24' }), (e) => isNetlinkError(e, 'ENODEV'));

    const before = (await nl.listLinks(host.path)).length;
    await assert.rejects(nl.createVeth({ netns: host.path, name: '0123456789abcdef', peer: { name: 'x', netns: pod.path } }), (e) => isNetlinkError(e, 'EINVAL') && /1\.\.15 bytes/.test(e.message));
    await assert.rejects(nl.createVeth({ netns: host.path, name: 'koah5', peer: { name: 'very-long-name-16', netns: pod.path } }), (e) => isNetlinkError(e, 'EINVAL'));
    await assert.rejects(nl.setLink(pod.path, 'eth0', { name: 'eth0-is-too-long' }), (e) => isNetlinkError(e, 'EINVAL'));
    assert.equal((await nl.listLinks(host.path)).length, before);
    // 15 bytes is fine (Kube-OVN's `<cid12>_h` names are 14)
    await nl.createVeth({ netns: host.path, name: '0123456789abc_h', peer: { name: '0123456789abc_c', netns: pod.path } });
    assert.ok(await nl.getLink(pod.path, '0123456789abc_c'));
  });
});

test('a namespace deleted mid-operation: later calls fail with ENOENT, DEL with ignoreMissing succeeds, host end goes away', async () => {
  const host = createNs();
  const pod = createNs();
  try {
    await nl.createVeth({ netns: host.path, name: 'koah0', peer: { name: 'eth0', netns: pod.path } });
    deleteNs(pod);
    await assert.rejects(nl.addAddress(pod.path, 'eth0', { cidr: '10.16.0.5/16' }), (e) => isNetlinkError(e, 'ENOENT'));
    assert.equal(await nl.deleteLink(pod.path, 'eth0', { ignoreMissing: true }), false);
    // the pod netns is destroyed asynchronously once its last reference is gone; the veth goes with it
    const deadline = Date.now() + 5000;
    while ((await nl.getLink(host.path, 'koah0')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await nl.getLink(host.path, 'koah0'), null, 'no socket of ours kept the deleted pod namespace alive');
  } finally {
    deleteNs(pod);
    deleteNs(host);
  }
});

test('sockets are bound to the target namespace and the thread always returns home', async () => {
  await withNs(1, async (ns) => {
    const n = native();
    const target = statSync(ns.path).ino;
    const fd = n.socketInNetns(ns.path, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
    try {
      assert.equal(n.socketNetnsInode(fd), target);
      assert.equal(selfNs(), home);
    } finally {
      n.close(fd);
    }
    assert.throws(() => n.socketInNetns('/proc/self/status', AF_NETLINK, SOCK_RAW, NETLINK_ROUTE), (e: NodeJS.ErrnoException) => e.code === 'EINVAL');
    assert.equal(selfNs(), home);
  });
});

test('no fd leak: thousands of namespace sockets and failures', async () => {
  await withNs(2, async (host, pod) => {
    await wirePod(host, pod);
    const start = fdCount();
    for (let i = 0; i < 3000; i++) new NlSocket(pod.path).close();
    for (let i = 0; i < 500; i++) await nl.getLink(pod.path, 'eth0');
    for (let i = 0; i < 500; i++) await assert.rejects(nl.addAddress(pod.path, 'eth0', { cidr: '10.16.0.5/16' }));
    for (let i = 0; i < 500; i++) await assert.rejects(nl.listLinks('/run/netns/koan-missing'));
    for (let i = 0; i < 200; i++) await assert.rejects(nl.createVeth({ netns: host.path, name: 'koah0', peer: { name: 'x', netns: pod.path } }));
    assert.equal(fdCount(), start);
    assert.equal(selfNs(), home);
  });
});

test('sysctl inside a namespace changes only that namespace', async () => {
  await withNs(1, async (ns) => {
    const n = native();
    const hostValue = n.sysctlRead(null, '/proc/sys/net/ipv4/conf/all/forwarding');
    const next = hostValue === '1' ? '0' : '1';
    n.sysctlWrite(ns.path, '/proc/sys/net/ipv4/conf/all/forwarding', next);
    assert.equal(n.sysctlRead(ns.path, '/proc/sys/net/ipv4/conf/all/forwarding'), next);
    assert.equal(sh(['ip', 'netns', 'exec', ns.name, 'cat', '/proc/sys/net/ipv4/conf/all/forwarding']).trim(), next);
    assert.equal(n.sysctlRead(null, '/proc/sys/net/ipv4/conf/all/forwarding'), hostValue, 'host untouched');
    assert.throws(() => n.sysctlWrite(ns.path, '/etc/passwd', 'x'), /under \/proc\/sys/);
    assert.throws(() => n.sysctlWrite(ns.path, '/proc/sys/net/ipv4/nope', '1'), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
    assert.equal(selfNs(), home);
  });
});

test('libuv pool threads stay in the agent namespace while namespace sockets are opened around them', async () => {
  await withNs(1, async (ns) => {
    const { promises: fsp } = await import('node:fs');
    const n = native();
    const homeLink = await fsp.readlink('/proc/thread-self/ns/net');
    const seen = new Set<string>();
    const pending: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) {
      // an async read is queued to the pool, then the main thread switches and back synchronously
      pending.push(fsp.readlink('/proc/thread-self/ns/net').then((l) => void seen.add(l)));
      n.close(n.socketInNetns(ns.path, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE));
    }
    await Promise.all(pending);
    assert.deepEqual([...seen], [homeLink]);
    assert.equal(selfNs(), home);
  });
});
