// Event-driven waits (wait.ts) and the fake's change feed: DAD and carrier waits wake on events, are bounded, and
// close their subscriptions; a resync wakes a wait too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeNetlink } from '../../agent/src/datapath/netlink/fake.ts';
import { groupMask } from '../../agent/src/datapath/netlink/events.ts';
import { waitForState, waitIPv6Dad } from '../../agent/src/datapath/netlink/wait.ts';
import type { NetlinkEvent } from '../../agent/src/datapath/netlink/port.ts';

const NS = '/var/run/netns/koanl-w';

async function world(): Promise<FakeNetlink> {
  const nl = new FakeNetlink();
  nl.addNamespace(NS);
  await nl.createVeth({ name: 'h', peer: { name: 'eth0', netns: NS } });
  await nl.setLink(NS, 'eth0', { up: true });
  await nl.addAddress(NS, 'eth0', { cidr: 'fd00::5/64' });
  nl.setAddressState(NS, 'eth0', 'fd00::5', { tentative: true });
  return nl;
}

test('groupMask: RTNLGRP bits of link, address (v4+v6), route (v4+v6), neighbour', () => {
  assert.equal(groupMask(['link']), 0x1);
  assert.equal(groupMask(['address']), (1 << 4) | (1 << 8));
  assert.equal(groupMask(['route', 'neighbour']), (1 << 6) | (1 << 10) | (1 << 2));
});

test('DAD wait: resolves on the address event that clears the tentative flag', async () => {
  const nl = await world();
  setTimeout(() => nl.setAddressState(NS, 'eth0', 'fd00::5', { tentative: false }), 20);
  const lists0 = nl.calls.length;
  assert.deepEqual(await waitIPv6Dad(nl, NS, 'eth0', { timeoutMs: 4000 }), { ok: true, tentative: [], dadFailed: [] });
  assert.equal(nl.calls.length, lists0, 'no mutation');
  assert.equal(nl.subscriptions, 0);
});

test('DAD wait: dadfailed is reported as soon as its event arrives', async () => {
  const nl = await world();
  setTimeout(() => nl.setAddressState(NS, 'eth0', 'fd00::5', { dadFailed: true }), 10);
  assert.deepEqual(await waitIPv6Dad(nl, NS, 'eth0', { timeoutMs: 4000 }), { ok: false, tentative: [], dadFailed: ['fd00::5'] });
});

test('DAD wait: bounded; reports what is still tentative', async () => {
  const nl = await world();
  assert.deepEqual(await waitIPv6Dad(nl, NS, 'eth0', { timeoutMs: 30 }), { ok: false, tentative: ['fd00::5'], dadFailed: [] });
  assert.equal(nl.subscriptions, 0);
});

test('waitForState: probes once per burst of events, and a resync wakes it', async () => {
  const nl = await world();
  let probes = 0;
  let done = false;
  const p = waitForState(nl, [{ netns: NS, groups: ['route'] }], async () => { probes++; return done ? 'yes' : null; }, 4000);
  await new Promise((r) => setTimeout(r, 5));
  assert.equal(probes, 1);
  done = true;
  nl.overflow(NS);
  assert.equal(await p, 'yes');
  assert.equal(probes, 2);
});

test('fake subscribe: listExisting first, then the changes in order; other namespaces and groups stay out', async () => {
  const nl = await world();
  const seen: NetlinkEvent[] = [];
  const sub = nl.subscribe({ netns: NS, groups: ['link', 'address'], listExisting: true }, (e) => seen.push(e));
  await nl.setLink(NS, 'eth0', { mtu: 1400 });
  await nl.addRoute(NS, { dst: 'fd00:1::/64', dev: 'eth0' });
  await nl.setLink(null, 'h', { up: true });
  await sub.ready;
  await new Promise((r) => setImmediate(r));
  const brief = seen.map((e) => e.kind === 'link' ? `${e.action} link ${e.link.name} ${e.link.mtu}` : e.kind === 'address' ? `${e.action} addr ${e.address.address}` : e.kind);
  assert.deepEqual(brief, ['new link lo 65536', 'new link eth0 1500', 'new addr fd00::5', 'new link eth0 1400']);
  sub.close();
  await nl.deleteLink(null, 'h');
  await new Promise((r) => setImmediate(r));
  assert.equal(seen.length, 4, 'nothing after close');
});
