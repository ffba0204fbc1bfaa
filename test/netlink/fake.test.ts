// The in-memory Netlink/PodNet behaves like the kernel path where other modules' tests depend on it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeNetlink } from '../../agent/src/datapath/netlink/fake.ts';
import { isNetlinkError } from '../../agent/src/datapath/netlink/errors.ts';
import type { Netlink, PodNet } from '../../agent/src/datapath/ports.ts';

const POD = '/var/run/netns/cni-fake';

async function wired(): Promise<FakeNetlink> {
  const f = new FakeNetlink();
  f.addNamespace(POD);
  await f.createVeth({ name: 'abc_h', mtu: 1400, peer: { name: 'abc_c', netns: POD } });
  await f.setLink(POD, 'abc_c', { name: 'eth0', mac: '0a:58:0a:10:00:05', mtu: 1400, up: true });
  await f.addAddress(POD, 'eth0', { cidr: '10.16.0.5/16' });
  await f.addAddress(POD, 'eth0', { cidr: 'fd00::5/64', nodad: true });
  await f.addRoute(POD, { gateway: '10.16.0.1', dev: 'eth0' });
  return f;
}

test('fake implements both ports', () => {
  const f: Netlink & PodNet = new FakeNetlink();
  assert.equal(typeof f.createVeth, 'function');
  assert.equal(typeof f.probeIPv4, 'function');
});

test('pod wiring: links, addresses, connected + default routes are visible through the dumps', async () => {
  const f = await wired();
  const eth0 = await f.getLink(POD, 'eth0');
  assert.deepEqual(eth0 && [eth0.mac, eth0.mtu, eth0.up, eth0.kind], ['0a:58:0a:10:00:05', 1400, true, 'veth']);
  assert.equal((await f.getLink(null, 'abc_h'))?.mtu, 1400);
  assert.deepEqual((await f.listAddresses(POD, { dev: 'eth0' })).map((a) => `${a.address}/${a.prefixLen}`), ['10.16.0.5/16', 'fd00::5/64']);
  const routes = await f.listRoutes(POD);
  assert.deepEqual(routes.map((r) => [r.dst, r.gateway ?? null]).sort(), [['10.16.0.0/16', null], ['fd00::/64', null], [null, '10.16.0.1']].sort());
  assert.ok(f.calls.some((c) => c.startsWith('createVeth')));
});

test('errors have the kernel errno names', async () => {
  const f = await wired();
  await assert.rejects(f.createVeth({ name: 'abc_h', peer: { name: 'x', netns: POD } }), (e) => isNetlinkError(e, 'EEXIST'));
  await assert.rejects(f.createVeth({ name: 'new_h', peer: { name: 'eth0', netns: POD } }), (e) => isNetlinkError(e, 'EEXIST'));
  await assert.rejects(f.addAddress(POD, 'eth0', { cidr: '10.16.0.5/16' }), (e) => isNetlinkError(e, 'EEXIST'));
  await assert.rejects(f.addRoute(POD, { gateway: '10.16.0.1', dev: 'eth0' }), (e) => isNetlinkError(e, 'EEXIST'));
  await assert.rejects(f.addRoute(POD, { dst: '10.99.0.0/16', gateway: '10.98.0.1', dev: 'eth0' }), (e) => isNetlinkError(e, 'ENETUNREACH'));
  await assert.rejects(f.setLink(POD, 'nope', { up: true }), (e) => isNetlinkError(e, 'ENODEV'));
  await assert.rejects(f.listLinks('/var/run/netns/missing'), (e) => isNetlinkError(e, 'ENOENT'));
  await assert.rejects(f.createVeth({ name: 'a234567890123456', peer: { name: 'b' } }), (e) => isNetlinkError(e, 'EINVAL'));
  await assert.rejects(f.deleteAddress(POD, 'eth0', '10.16.0.6/16'), (e) => isNetlinkError(e, 'EADDRNOTAVAIL'));
  await assert.rejects(f.deleteRoute(POD, { dst: '10.77.0.0/16' }), (e) => isNetlinkError(e, 'ESRCH'));
});

test('replace variants overwrite instead of EEXIST', async () => {
  const f = await wired();
  await f.addRoute(POD, { family: 4, gateway: '10.16.0.254', dev: 'eth0' }, { replace: true });
  const def = (await f.listRoutes(POD, { family: 4 })).filter((r) => r.dst === null);
  assert.deepEqual(def.map((r) => r.gateway), ['10.16.0.254']);
  await f.addAddress(POD, 'eth0', { cidr: '10.16.0.5/16' }, { replace: true });
});

test('delete is idempotent with ignoreMissing (also when the namespace is gone); deleting one end removes the peer', async () => {
  const f = await wired();
  assert.equal(await f.deleteLink(null, 'abc_h'), true);
  assert.equal(await f.getLink(POD, 'eth0'), null, 'peer went with it');
  assert.equal(await f.deleteLink(null, 'abc_h', { ignoreMissing: true }), false);
  await assert.rejects(f.deleteLink(null, 'abc_h'), (e) => isNetlinkError(e, 'ENODEV'));
  assert.equal(await f.deleteLink('/var/run/netns/gone', 'eth0', { ignoreMissing: true }), false);
});

test('removing the pod namespace removes the host end of its veth', async () => {
  const f = await wired();
  f.removeNamespace(POD);
  assert.equal(await f.getLink(null, 'abc_h'), null);
});

test('moveTo moves the link (addresses dropped, down)', async () => {
  const f = new FakeNetlink();
  f.addNamespace(POD);
  await f.createVeth({ name: 'h', peer: { name: 'c' } });
  await f.setLink(null, 'c', { moveTo: POD });
  assert.equal(await f.getLink(null, 'c'), null);
  assert.equal((await f.getLink(POD, 'c'))?.up, false);
  await f.deleteLink(POD, 'c');
  assert.equal(await f.getLink(null, 'h'), null);
});

test('rules and neighbours', async () => {
  const f = await wired();
  await f.addRule(null, { family: 4, src: '10.16.0.5/32', table: 100, priority: 1000 });
  await assert.rejects(f.addRule(null, { family: 4, src: '10.16.0.5/32', table: 100, priority: 1000 }), (e) => isNetlinkError(e, 'EEXIST'));
  assert.equal((await f.listRules(null, 4)).length, 1);
  assert.equal(await f.deleteRule(null, { family: 4, src: '10.16.0.5/32', table: 100, priority: 1000 }), true);
  assert.equal(await f.deleteRule(null, { family: 4, src: '10.16.0.5/32', table: 100, priority: 1000 }, { ignoreMissing: true }), false);
  await f.setNeighbor(POD, { dev: 'eth0', ip: '10.16.0.1', mac: '0A:58:0a:10:00:01' });
  assert.deepEqual((await f.listNeighbors(POD)).map((n) => [n.ip, n.mac]), [['10.16.0.1', '0a:58:0a:10:00:01']]);
});

test('failNext injects one failure for rollback tests', async () => {
  const f = await wired();
  f.failNext('addRoute', 'ENETUNREACH');
  await assert.rejects(f.addRoute(POD, { dst: '10.1.0.0/16', gateway: '10.16.0.1', dev: 'eth0' }), (e) => isNetlinkError(e, 'ENETUNREACH'));
  await f.addRoute(POD, { dst: '10.1.0.0/16', gateway: '10.16.0.1', dev: 'eth0' });
});

test('pod side: conflicts, ping reachability, tx checksum, sysctl', async () => {
  const f = await wired();
  assert.deepEqual(await f.probeIPv4(POD, 'eth0', '10.16.0.5'), { conflict: false });
  f.conflicts.set(`${POD}|eth0|10.16.0.5`, '02:00:00:00:00:99');
  assert.deepEqual(await f.probeIPv4(POD, 'eth0', '10.16.0.5'), { conflict: true, mac: '02:00:00:00:00:99' });
  assert.equal(await f.ping(POD, '10.16.0.1'), null);
  f.reachable.add(`${POD}|10.16.0.1`);
  assert.equal((await f.ping(POD, '10.16.0.1'))?.tries, 1);
  assert.equal(await f.getTxChecksum(POD, 'eth0'), true);
  await f.setTxChecksum(POD, 'eth0', false);
  assert.equal(await f.getTxChecksum(POD, 'eth0'), false);
  await f.setSysctl(POD, 'net.ipv6.conf.eth0.accept_dad', '0');
  assert.equal(await f.getSysctl(POD, 'net/ipv6/conf/eth0/accept_dad'), '0');
  assert.deepEqual(await f.waitIPv6Dad(POD, 'eth0'), { ok: true, tentative: [], dadFailed: [] });
});
