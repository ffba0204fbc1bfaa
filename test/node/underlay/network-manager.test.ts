// NetworkManager and the underlay (spec §6.5), with the in-memory NM: the decision table, how the bus is found, and
// the reconciler's use of it: a managed NIC is set unmanaged while it still holds its addresses, before anything
// moves; removal hands it back; no NM, an unknown device or an exception never stop the move; a bus that fails
// the call fails the pass with nothing moved. The same port against a real NetworkManager:
// integration/node/underlay-nm.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Reconciler } from '../../../agent/src/node/reconciler.ts';
import { planUnderlay } from '../../../agent/src/node/underlay/plan.ts';
import { underlaySpec } from '../../../agent/src/node/underlay/reconciler.ts';
import { handBackRisk, keepManagedReason, NM_DEVICE_TYPE_TEAM, NmMarks, profilesFor, systemBusSocket, versionAtLeast, type NmDeviceFacts, type NmProfile } from '../../../agent/src/node/underlay/network-manager.ts';
import { FakeNetworkManager } from '../../../agent/src/node/underlay/network-manager-fake.ts';
import { socketFromAddress } from '../../../agent/src/datapath/dbus/connection.ts';
import type { ProviderNetwork } from '../../../agent/src/node/underlay/types.ts';
import { NIC, NS, linkState, makeNode } from './helpers.ts';

const facts = (f: Partial<NmDeviceFacts>): NmDeviceFacts => ({ version: '1.42.4', managed: true, deviceType: 1, managedVlanChild: undefined, dnsServers: 0, ...f });

test('keepManagedReason: upstream\'s exceptions, and nothing else', () => {
  assert.equal(keepManagedReason(facts({})), undefined);
  assert.match(keepManagedReason(facts({ version: '1.4.2' }))!, /older than 1\.6\.0/);
  assert.match(keepManagedReason(facts({ managedVlanChild: 'eth1.10' }))!, /eth1\.10 is managed/);
  assert.match(keepManagedReason(facts({ version: '1.18.8', dnsServers: 1 }))!, /1\.18/);
  assert.equal(keepManagedReason(facts({ version: '1.18.8', dnsServers: 0 })), undefined);
  assert.equal(keepManagedReason(facts({ version: '1.20.0', dnsServers: 2 })), undefined);
  assert.match(keepManagedReason(facts({ deviceType: NM_DEVICE_TYPE_TEAM }))!, /team/);
});

test('versionAtLeast compares numerically', () => {
  assert.ok(versionAtLeast('1.42.4', '1.6.0'));
  assert.ok(versionAtLeast('1.6.0', '1.6.0'));
  assert.ok(versionAtLeast('1.10', '1.6.0'));
  assert.ok(!versionAtLeast('1.5.99', '1.6.0'));
  assert.ok(!versionAtLeast('0.9.10', '1.6.0'));
});

test('the system bus: DBUS_SYSTEM_BUS_ADDRESS first, then the host socket mounted into the pod, then the standard path', () => {
  assert.equal(socketFromAddress('unix:path=/host/var/run/dbus/system_bus_socket'), '/host/var/run/dbus/system_bus_socket');
  assert.equal(socketFromAddress('tcp:host=x,port=1;unix:path=/a%20b,guid=1'), '/a b');
  assert.equal(socketFromAddress('unix:abstract=/tmp/dbus-x'), '\0/tmp/dbus-x');
  assert.equal(socketFromAddress('tcp:host=x'), undefined);
  assert.equal(systemBusSocket({ DBUS_SYSTEM_BUS_ADDRESS: 'unix:path=/x' }, () => false), '/x');
  assert.equal(systemBusSocket({}, (p) => p.startsWith('/host/')), '/host/var/run/dbus/system_bus_socket');
  assert.equal(systemBusSocket({}, (p) => p === '/run/dbus/system_bus_socket'), '/run/dbus/system_bus_socket');
  assert.equal(systemBusSocket({}, () => false), '/var/run/dbus/system_bus_socket');
});

async function setup(nm: FakeNetworkManager) {
  const node = await makeNode();
  // a directory that does not exist yet, as the journal's on a node's first move
  const dir = join(mkdtempSync(join(tmpdir(), 'koa-nm-')), 'journal');
  const state = { pn: { metadata: { name: 'phys' }, spec: { defaultInterface: NIC } } as ProviderNetwork | undefined, labels: {} as Record<string, string> };
  const r = new Reconciler(underlaySpec({
    pn: 'phys', nodeName: 'n1', netns: NS, netlink: () => node.nl, vswitch: () => node.vs, journal: node.journal,
    desired: () => planUnderlay({ pnName: 'phys', pn: state.pn, vlans: [], node: { metadata: { name: 'n1' } }, nodeName: 'n1', macLearningFallback: false }),
    nodeMeta: () => ({ labels: state.labels, annotations: {} }),
    patchNode: async (p) => { for (const [k, v] of Object.entries(p.labels ?? {})) { if (v === null) delete state.labels[k]; else state.labels[k] = v; } },
    event: () => undefined,
    datapathType: () => 'netdev',
    randomMac: () => '02:00:00:00:00:01',
    nm: { port: nm, marks: new NmMarks(dir) },
  }), { resyncMs: 0 });
  return { ...node, r, state, dir, marks: new NmMarks(dir), done: () => rmSync(join(dir, '..'), { recursive: true, force: true }) };
}

test('a managed NIC is set unmanaged while it still has its addresses, before the move; removal hands it back', async () => {
  const nm = new FakeNetworkManager();
  nm.devices.set(NIC, { managed: true, deviceType: 1 });
  const s = await setup(nm);
  try {
    const before = await linkState(s.nl, NIC);
    let addrsAtUnmanage: string[] = [];
    nm.onUnmanage = async () => { addrsAtUnmanage = (await linkState(s.nl, NIC)).addrs; };
    assert.ok((await s.r.runNow()).ok);
    assert.deepEqual(addrsAtUnmanage, before.addrs);
    assert.equal(nm.devices.get(NIC)!.managed, false);
    assert.deepEqual(await s.marks.list('phys'), [NIC]);
    assert.deepEqual((await linkState(s.nl, 'br-phys')).addrs, before.addrs);
    // converged: the next pass does not ask NM again
    assert.equal((await s.r.runNow()).changes, 0);
    assert.deepEqual(nm.calls, [`unmanage ${NIC}`]);
    s.state.pn = undefined;
    assert.ok((await s.r.runNow()).ok);
    assert.deepEqual(await linkState(s.nl, NIC), before);
    assert.equal(nm.devices.get(NIC)!.managed, true);
    assert.deepEqual(nm.calls, [`unmanage ${NIC}`, `manage ${NIC}`]);
    assert.deepEqual(await s.marks.list('phys'), []);
  } finally { s.done(); }
});

test('no NetworkManager, a device it does not know, one already unmanaged, or an exception: the move goes on, no marker, nothing handed back', async () => {
  for (const prep of [
    (nm: FakeNetworkManager) => { nm.absent = true; },
    () => undefined, // unknown device
    (nm: FakeNetworkManager) => { nm.devices.set(NIC, { managed: false, deviceType: 1 }); },
    (nm: FakeNetworkManager) => { nm.devices.set(NIC, { managed: true, deviceType: NM_DEVICE_TYPE_TEAM }); },
  ]) {
    const nm = new FakeNetworkManager();
    prep(nm);
    const s = await setup(nm);
    try {
      const before = await linkState(s.nl, NIC);
      assert.ok((await s.r.runNow()).ok);
      assert.deepEqual((await linkState(s.nl, 'br-phys')).addrs, before.addrs);
      assert.deepEqual(await s.marks.list('phys'), []);
      assert.deepEqual(existsSync(s.dir) ? readdirSync(s.dir) : [], []);
      s.state.pn = undefined;
      assert.ok((await s.r.runNow()).ok);
      assert.deepEqual(await linkState(s.nl, NIC), before);
      assert.deepEqual(nm.calls, [`unmanage ${NIC}`]);
    } finally { s.done(); }
  }
});

test('a bus that answers but fails the call fails the pass with nothing moved; the next pass moves', async () => {
  const nm = new FakeNetworkManager();
  nm.devices.set(NIC, { managed: true, deviceType: 1 });
  nm.failNext = new Error('org.freedesktop.DBus.Error.AccessDenied: not allowed');
  const s = await setup(nm);
  try {
    const before = await linkState(s.nl, NIC);
    await assert.rejects(s.r.runNow(), /NetworkManager: setting eth1 unmanaged: .*AccessDenied/);
    assert.deepEqual(await linkState(s.nl, NIC), before);
    assert.equal(s.vs.getPort(NIC), undefined);
    assert.deepEqual(await s.marks.list('phys'), []);
    assert.ok((await s.r.runNow()).ok);
    assert.equal(nm.devices.get(NIC)!.managed, false);
    assert.equal(s.vs.getPort(NIC)?.bridge, 'br-phys');
  } finally { s.done(); }
});

test('a network whose NIC changes: each NIC set unmanaged is marked, and removal hands back both', async () => {
  const nm = new FakeNetworkManager();
  nm.devices.set(NIC, { managed: true, deviceType: 1 });
  nm.devices.set('eth2', { managed: true, deviceType: 1 });
  const s = await setup(nm);
  try {
    s.nl.addLink(NS, { name: 'eth2', kind: 'veth', mtu: 1500 });
    await s.nl.addAddress(NS, 'eth2', { cidr: '172.31.0.10/24' });
    assert.ok((await s.r.runNow()).ok);
    s.state.pn = { metadata: { name: 'phys' }, spec: { defaultInterface: 'eth2' } };
    await s.r.runNow();
    await s.r.runNow();
    assert.deepEqual(await s.marks.list('phys'), [NIC, 'eth2']);
    assert.equal(nm.devices.get('eth2')!.managed, false);
    s.state.pn = undefined;
    await s.r.runNow();
    assert.equal(nm.devices.get(NIC)!.managed, true);
    assert.equal(nm.devices.get('eth2')!.managed, true);
    assert.deepEqual(await s.marks.list('phys'), []);
  } finally { s.done(); }
});

test('handing back a NIC NetworkManager does not know yet keeps the mark, and the next pass hands it back', async () => {
  const nm = new FakeNetworkManager();
  nm.devices.set(NIC, { managed: true, deviceType: 1 });
  const s = await setup(nm);
  try {
    assert.ok((await s.r.runNow()).ok);
    const dev = nm.devices.get(NIC)!;
    nm.devices.delete(NIC); // NM has not seen the NIC under its name again
    s.state.pn = undefined;
    assert.ok((await s.r.runNow()).ok);
    assert.deepEqual(await s.marks.list('phys'), [NIC]);
    const next = await s.r.runNow();
    assert.equal(next.changes, 1, 'the hand-back is still to do');
    nm.devices.set(NIC, dev);
    await s.r.runNow();
    assert.equal(dev.managed, true);
    assert.deepEqual(await s.marks.list('phys'), []);
    assert.equal((await s.r.runNow()).changes, 0);
  } finally { s.done(); }
});

test('hand-back: the profiles NM could put on the NIC (by name, else by MAC, else any ethernet profile); kept unmanaged only when some exist and none connects by itself', () => {
  const p = (id: string, x: Partial<NmProfile> = {}): NmProfile => ({ id, autoconnect: true, type: '802-3-ethernet', ...x });
  const all = [p('byname', { interfaceName: 'eth1', autoconnect: false }), p('other', { interfaceName: 'eth2' }), p('bymac', { mac: '52:54:00:12:34:56' }),
    p('othermac', { mac: '52:54:00:00:00:01' }), p('generic'), p('abond', { type: 'bond' })];
  assert.deepEqual(profilesFor('eth1', '52:54:00:12:34:56', all).map((x) => x.id), ['byname', 'bymac', 'generic']);
  assert.deepEqual(profilesFor('eth1', '52:54:00:12:34:56'.toUpperCase(), all).map((x) => x.id), ['byname', 'bymac', 'generic']);
  assert.deepEqual(profilesFor('bond0', undefined, [p('abond', { type: 'bond', interfaceName: 'bond0' })]).map((x) => x.id), ['abond']);
  assert.equal(handBackRisk([]), undefined, 'no profile: NM assumes the addresses it finds');
  assert.equal(handBackRisk([p('a', { autoconnect: false }), p('b')]), undefined, 'one connects by itself: NM activates it');
  assert.match(handBackRisk([p('dhcp-eth1', { autoconnect: false })])!, /profiles for it \(dhcp-eth1\), none of which connects by itself/);
});

test('removal leaves the NIC unmanaged when NetworkManager would drop its addresses, drops the mark', async () => {
  const nm = new FakeNetworkManager();
  nm.devices.set(NIC, { managed: true, deviceType: 1, profiles: [{ id: 'dhcp-eth1', autoconnect: false, type: '802-3-ethernet', interfaceName: NIC }] });
  const s = await setup(nm);
  try {
    await s.r.runNow();
    assert.equal(nm.devices.get(NIC)!.managed, false);
    s.state.pn = undefined;
    await s.r.runNow();
    assert.equal(nm.devices.get(NIC)!.managed, false, 'not handed back');
    assert.deepEqual(nm.calls, [`unmanage ${NIC}`, `manage ${NIC}`]);
    assert.deepEqual(await s.marks.list('phys'), [], 'not asked again');
    assert.ok((await linkState(s.nl, NIC)).addrs.length > 0, 'the NIC has its addresses back');
    assert.equal((await s.r.runNow()).changes, 0);
  } finally { s.done(); }
});
