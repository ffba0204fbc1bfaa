// The NIC move with fakes: transfer and restore are exact mirror images, a crash before any step is finished by the
// journal at the next start, and at no step is the node without its addresses or its default route.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mock } from 'node:test';
import { NETWORKD_QUIET_MAX_MS, restoreNic, routesQuiet, transferNic, transferOrRollBack } from '../../../agent/src/node/underlay/transfer.ts';
import { finishMove } from '../../../agent/src/node/underlay/moves.ts';
import type { MoveRecord } from '../../../agent/src/node/underlay/journal.ts';
import { agentError } from '../../../agent/src/errors.ts';
import { NIC, NIC_MAC, NS, linkState, makeNode, nodeReachable } from './helpers.ts';

const BR = 'br-phys';
const TRUNKS = [0, 100];

class Crash extends Error {}

test('transfer: the bridge gets the NIC\'s MAC, MTU, addresses and routes; the NIC becomes a trunk port; the journal is cleared', async () => {
  const { nl, vs, journal } = await makeNode();
  const before = await linkState(nl, NIC);
  await vs.ensureBridge({ name: BR });
  await transferNic({ netlink: nl, vswitch: vs, journal, netns: NS }, 'phys', NIC, BR, TRUNKS);
  const br = await linkState(nl, BR);
  assert.equal(br.mac, NIC_MAC);
  assert.equal(br.mtu, before.mtu);
  assert.deepEqual(br.addrs, before.addrs);
  assert.deepEqual(br.routes, before.routes);
  assert.deepEqual((await nl.listAddresses(NS, { dev: NIC })), []);
  assert.equal(vs.getPort(NIC)?.bridge, BR);
  assert.deepEqual(vs.getPort(NIC)?.trunks, TRUNKS);
  assert.equal(vs.getBridge(BR)?.otherConfig.hwaddr, NIC_MAC);
  assert.equal(journal.records.size, 0);
  assert.deepEqual(journal.writes.map((w) => w.step), ['bridge-link', 'addresses-to-bridge', 'nic-port', 'routes-to-bridge', 'addresses-off-nic', 'nic-up']);
});

test('restore after transfer puts the NIC back exactly as it was and deletes the bridge', async () => {
  const { nl, vs, journal } = await makeNode();
  const before = await linkState(nl, NIC);
  const d = { netlink: nl, vswitch: vs, journal, netns: NS };
  await vs.ensureBridge({ name: BR });
  await transferNic(d, 'phys', NIC, BR, TRUNKS);
  await restoreNic(d, 'phys', NIC, BR);
  assert.deepEqual(await linkState(nl, NIC), before);
  assert.equal(await nl.getLink(NS, BR), null);
  assert.equal(vs.getBridge(BR), undefined);
  assert.equal(vs.getPort(NIC), undefined);
  assert.equal(journal.records.size, 0);
});

async function transferred(): Promise<Awaited<ReturnType<typeof linkState>>> {
  const { nl, vs, journal } = await makeNode();
  await vs.ensureBridge({ name: BR });
  await transferNic({ netlink: nl, vswitch: vs, journal, netns: NS }, 'phys', NIC, BR, TRUNKS);
  return linkState(nl, BR);
}

test('a crash before any step of a transfer is finished from the journal; the node is reachable at every step', async () => {
  const want = await transferred();
  const steps = 6;
  for (let k = 0; k < steps; k++) {
    const { nl, vs, journal } = await makeNode();
    await vs.ensureBridge({ name: BR });
    let n = 0;
    const seen: string[] = [];
    const beforeStep = async (rec: MoveRecord): Promise<void> => {
      seen.push(rec.step);
      assert.equal(await nodeReachable(nl, BR), true, `before step ${rec.step}`);
      if (n++ === k) throw new Crash(`crash before ${rec.step}`);
    };
    await assert.rejects(transferNic({ netlink: nl, vswitch: vs, journal, netns: NS, beforeStep }, 'phys', NIC, BR, TRUNKS), Crash);
    assert.equal(await nodeReachable(nl, BR), true, `after the crash before ${seen.at(-1)}`);
    // "the next start": the journal names the move, which is run again from its snapshot
    const pending = await journal.list();
    assert.equal(pending.length, 1);
    assert.equal(pending[0]!.step, seen.at(-1));
    await finishMove({ netlink: nl, vswitch: vs, journal, netns: NS, beforeStep: async () => assert.equal(await nodeReachable(nl, BR), true) }, pending[0]!);
    assert.deepEqual(await linkState(nl, BR), want, `crash before ${seen.at(-1)}`);
    assert.deepEqual(await nl.listAddresses(NS, { dev: NIC }), []);
    assert.deepEqual(vs.getPort(NIC)?.trunks, TRUNKS);
    assert.equal(journal.records.size, 0);
  }
});

test('a crash before any step of a restore is finished from the journal; the NIC ends exactly as it began', async () => {
  for (let k = 0; k < 6; k++) {
    const { nl, vs, journal } = await makeNode();
    const before = await linkState(nl, NIC);
    await vs.ensureBridge({ name: BR });
    await transferNic({ netlink: nl, vswitch: vs, journal, netns: NS }, 'phys', NIC, BR, TRUNKS);
    let n = 0;
    const beforeStep = async (rec: MoveRecord): Promise<void> => {
      assert.equal(await nodeReachable(nl, BR), true, `before step ${rec.step}`);
      if (n++ === k) throw new Crash(`crash before ${rec.step}`);
    };
    await assert.rejects(restoreNic({ netlink: nl, vswitch: vs, journal, netns: NS, beforeStep }, 'phys', NIC, BR), Crash);
    const [rec] = await journal.list();
    assert.equal(rec?.op, 'restore');
    await finishMove({ netlink: nl, vswitch: vs, journal, netns: NS }, rec!);
    assert.deepEqual(await linkState(nl, NIC), before, `crash at step ${k}`);
    assert.equal(vs.getBridge(BR), undefined);
    assert.equal(journal.records.size, 0);
  }
});

test('a transfer that fails (OVS refuses the port) is rolled back: the NIC as before, no bridge, no journal', async () => {
  const { nl, vs, journal } = await makeNode();
  const before = await linkState(nl, NIC);
  await vs.ensureBridge({ name: BR });
  vs.failNext('addBridgePort', agentError('KOA_OVSDB', 'add port', 'injected'));
  await assert.rejects(transferOrRollBack({ netlink: nl, vswitch: vs, journal, netns: NS }, 'phys', NIC, BR, TRUNKS), /injected/);
  assert.deepEqual(await linkState(nl, NIC), before);
  assert.equal(vs.getBridge(BR), undefined);
  assert.equal(journal.records.size, 0);
});

test('a failed rollback leaves the restore in the journal for the next pass, which finishes it', async () => {
  const { nl, vs, journal } = await makeNode();
  const before = await linkState(nl, NIC);
  await vs.ensureBridge({ name: BR });
  vs.failNext('addBridgePort', agentError('KOA_OVSDB', 'add port', 'injected'));
  vs.failNext('deleteBridge', agentError('KOA_OVSDB', 'del br', 'injected too'));
  await assert.rejects(transferOrRollBack({ netlink: nl, vswitch: vs, journal, netns: NS }, 'phys', NIC, BR, TRUNKS), /rollback/);
  const [rec] = await journal.list();
  assert.equal(rec?.op, 'restore');
  await finishMove({ netlink: nl, vswitch: vs, journal, netns: NS }, rec!);
  assert.deepEqual(await linkState(nl, NIC), before);
  assert.equal(vs.getBridge(BR), undefined);
});

test('after a rename: the addresses wait until no route event has named the link for 50 ms, and never longer than the bound', async (t) => {
  const { nl } = await makeNode();
  const nic = (await nl.getLink(NS, NIC))!;
  nl.addLink(NS, { name: 'eth9', kind: 'veth', up: true });
  const flush = async (): Promise<void> => { for (let i = 0; i < 5; i++) await Promise.resolve(); };
  mock.timers.enable({ apis: ['setTimeout'] });
  t.after(() => mock.timers.reset());
  // systemd-networkd re-adding a route on the link at 30 and 70 ms; a route on another link does not count
  const q = routesQuiet(nl, NS, nic.index, 50);
  await q.ready;
  let done = false;
  const p = q.settled().then(() => { done = true; });
  mock.timers.tick(30);
  await nl.addRoute(NS, { dst: '10.90.0.0/16', dev: NIC, scope: 253 });
  await flush();
  mock.timers.tick(40);
  await nl.addRoute(NS, { dst: '10.91.0.0/16', dev: NIC, scope: 253 });
  await flush();
  mock.timers.tick(30);
  await nl.addRoute(NS, { dst: '10.92.0.0/16', dev: 'eth9', scope: 253 }); // at 100 ms, on another link: no reset
  await flush();
  mock.timers.tick(19);
  await flush();
  assert.equal(done, false, '49 ms after the last event on the link');
  mock.timers.tick(1);
  await p;
  q.close();

  // a link whose routes never stop changing: the bound ends the wait
  const q2 = routesQuiet(nl, NS, nic.index, 50);
  await q2.ready;
  let done2 = false;
  const p2 = q2.settled().then(() => { done2 = true; });
  for (let ms = 0; ms < NETWORKD_QUIET_MAX_MS - 40; ms += 40) {
    mock.timers.tick(40);
    await nl.addRoute(NS, { dst: `10.93.${ms % 250}.0/24`, dev: NIC, scope: 253 }, { replace: true });
    await flush();
  }
  assert.equal(done2, false);
  mock.timers.tick(40);
  await p2;
  q2.close();
});

test('an address NetworkManager added (noprefixroute, its own prefix route proto kernel metric 100) and one with a prefix-route metric move with their flag, metric and routes, and come back exactly', async () => {
  const { nl, vs, journal } = await makeNode();
  await nl.addAddress(NS, NIC, { cidr: '172.30.50.101/24', noprefixroute: true });
  await nl.addRoute(NS, { dst: '172.30.50.0/24', dev: NIC, protocol: 2, scope: 253, metric: 100, src: '172.30.50.101' });
  // `ip addr add ... metric 300` (systemd-networkd's RouteMetric=): the kernel's prefix route has metric 300, and
  // follows the address (moving it as a route too would leave a second one)
  await nl.addAddress(NS, NIC, { cidr: '172.30.80.10/24', metric: 300 });
  const before = await linkState(nl, NIC);
  assert.ok(before.routes.some((r) => r.includes('"metric":100') && r.includes('"protocol":2')));
  const d = { netlink: nl, vswitch: vs, journal, netns: NS };
  await vs.ensureBridge({ name: BR });
  await transferNic(d, 'phys', NIC, BR, TRUNKS);
  const br = await linkState(nl, BR);
  assert.deepEqual(br.addrs, before.addrs, 'the flags (IFA_F_NOPREFIXROUTE) too');
  assert.deepEqual(br.routes, before.routes, 'NM\'s metric-100 prefix route too');
  assert.equal(br.routes.filter((r) => r.includes('"172.30.80.0/24"')).length, 1, 'one prefix route for the metric-300 address');
  assert.ok(br.routes.some((r) => r.includes('"172.30.80.0/24"') && r.includes('"metric":300')));
  await restoreNic(d, 'phys', NIC, BR);
  assert.deepEqual(await linkState(nl, NIC), before);
});
