// VLAN internal ports with fakes (spec §6.2 steps 6 and 11, §6.3): naming, the pure planner's refusals, the
// reconciler moving a VLAN link's addresses and routes to `br-<pn>-vlan<id>` and back, preserveVlanInterfaces,
// a stale port restored, a crash before every step finished from the journal, and failures that must not cut the
// node off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { agentError } from '../../../agent/src/errors.ts';
import type { MoveRecord } from '../../../agent/src/node/underlay/journal.ts';
import { finishMove } from '../../../agent/src/node/underlay/moves.ts';
import { base32Lower, vlanPortName, vlanPortShape } from '../../../agent/src/node/underlay/plan.ts';
import { transferNic, type TransferDeps } from '../../../agent/src/node/underlay/transfer.ts';
import { planVlanPorts, vlanRestore, vlanTransfer, vlanTransferOrRollBack, type VlanPortObs } from '../../../agent/src/node/underlay/vlan-ports.ts';
import { NIC, NS, linkState, makeNode, setupNetwork } from './helpers.ts';

const V100 = `${NIC}.100`;
const PORT = 'br-phys-vlan100';
const k = (s: string): string => `phys.provider-network.kubernetes.io/${s}`;

class Crash extends Error {}

type Nl = Awaited<ReturnType<typeof makeNode>>['nl'];

/** An 802.1Q link `<NIC>.<id>` with an address and a gateway route, as an operator's VLAN interface has. */
async function vlanLink(nl: Nl, id: number, host = 10): Promise<string> {
  const name = `${NIC}.${id}`;
  await nl.createVlan({ netns: NS, name, parent: NIC, id });
  await nl.setLink(NS, name, { up: true });
  await nl.addAddress(NS, name, { cidr: `172.31.${id % 256}.${host}/24` });
  await nl.addRoute(NS, { dst: `10.${id % 256}.0.0/16`, gateway: `172.31.${id % 256}.1`, dev: name, metric: 50 });
  return name;
}

/** Each address the VLAN link had is on the link or on the port. */
async function vlanAddressesKept(nl: Nl, want: readonly string[], port = PORT): Promise<true | string> {
  const on = new Set<string>();
  for (const dev of [V100, port]) {
    const l = await nl.getLink(NS, dev);
    if (l) for (const a of await nl.listAddresses(NS, { dev })) on.add(`${a.address}/${a.prefixLen}`);
  }
  const lost = want.filter((a) => !on.has(a));
  return lost.length ? `lost ${lost.join(', ')}` : true;
}

test('names: <bridge>-vlan<id> while it fits 15 bytes, else kv<id>- and the base32 of the bridge name\'s SHA-256', () => {
  // RFC 4648 §10 vectors, lower case, unpadded
  assert.deepEqual(['', 'f', 'fo', 'foo', 'foob', 'fooba', 'foobar'].map((x) => base32Lower(Buffer.from(x))), ['', 'my', 'mzxq', 'mzxw6', 'mzxw6yq', 'mzxw6ytb', 'mzxw6ytboi']);
  assert.equal(vlanPortName('br-phys', 100), 'br-phys-vlan100');
  assert.equal(vlanPortName('br-phy', 4094), 'br-phy-vlan4094');
  // sha256("br-phys") in base32 begins zgbo4ucavbyx... (python3 base64.b32encode)
  assert.equal(vlanPortName('br-phys', 4094), 'kv4094-zgbo4uca', 'br-phys-vlan4094 is 16 bytes');
  // sha256("br-averylongname") in base32 begins kng6salfyuxy... (python3 base64.b32encode)
  assert.equal(vlanPortName('br-averylongname', 100), 'kv100-kng6salfy');
  assert.equal(vlanPortName('br-averylongname', 7), 'kv7-kng6salfyux');
  assert.equal(vlanPortShape('br-phys-vlan100'), 100);
  assert.equal(vlanPortShape('kv100-kng6salfy'), 100);
  assert.equal(vlanPortShape('br-phys'), undefined);
  assert.equal(vlanPortShape('patch-localnet.x-to-br-int'), undefined);
});

test('the planner refuses bad names, duplicate ids, a mismatched 802.1Q id, the NIC itself and ports it does not own', () => {
  const base = { bridge: 'br-phys', nic: NIC, port: NIC, trunks: [0], exchangeLinkName: false, preserve: false, named: [] as string[], links: [], ports: [] as VlanPortObs[] };
  const link = (name: string, vlanId?: number) => ({ name, kind: vlanId === undefined ? 'dummy' : 'vlan', vlanId, addresses: 1 });
  assert.match(planVlanPorts({ ...base, named: ['eth1'] }).error ?? '', /"eth1" is not named <interface>.<VLAN id 1-4094>/);
  assert.match(planVlanPorts({ ...base, named: ['eth1.5000'] }).error ?? '', /not named/);
  assert.match(planVlanPorts({ ...base, links: [link('eth1.100', 100), link('bond0.100', 100)] }).error ?? '', /VLAN id 100 is claimed by both eth1.100 and bond0.100/);
  assert.match(planVlanPorts({ ...base, links: [link('eth1.100', 200)] }).error ?? '', /eth1.100 is an 802.1Q link with id 200, not 100/);
  assert.match(planVlanPorts({ ...base, nic: 'eth1.100', port: 'eth1.100', links: [link('eth1.100', 100)] }).error ?? '', /own interface/);
  assert.match(planVlanPorts({ ...base, links: [link('eth1.100', 100)], ports: [{ name: PORT, tag: 100, vlanIf: undefined, ours: false }] }).error ?? '', /not kube-ovn's: not adopted/);
  assert.match(planVlanPorts({ ...base, links: [link('eth1.100', 100)], ports: [{ name: PORT, tag: 100, vlanIf: 'bond0.100', ours: true }] }).error ?? '', /holds the state of bond0.100/);
  assert.match(planVlanPorts({ ...base, links: [{ ...link('bond0.100', 100), onNic: false }] }).error ?? '', /bond0.100 is an 802.1Q link on another interface than eth1/);
  assert.match(planVlanPorts({ ...base, exchangeLinkName: true, links: [link('eth1.100', 100)] }).error ?? '', /cannot be used with exchangeLinkName/);
  assert.equal(planVlanPorts({ ...base, exchangeLinkName: true }).error, undefined, 'exchangeLinkName alone is fine');
  // a port whose interface the spec still names stays, even with the link gone; an untagged one of ours is known by its name
  const kept = planVlanPorts({ ...base, named: ['eth1.100'], ports: [{ name: PORT, tag: 100, vlanIf: 'eth1.100', ours: true }] });
  assert.deepEqual(kept.error === undefined ? kept.restores : kept.error, []);
  const kept2 = planVlanPorts({ ...base, preserve: true, ports: [{ name: 'br-phys-vlan200', tag: 200, vlanIf: 'eth1.200', ours: true }] });
  assert.deepEqual(kept2.error === undefined ? kept2.restores : kept2.error, [], 'preserveVlanInterfaces still asks for <nic>.<id>');
  const untagged = planVlanPorts({ ...base, ports: [{ name: 'br-phys-vlan9', tag: undefined, vlanIf: undefined, ours: true }] });
  assert.deepEqual(untagged.error === undefined ? untagged.restores : untagged.error, [{ vlanIf: 'eth1.9', id: 9, port: 'br-phys-vlan9', parent: NIC }]);
  // a good plan: the trunks gain the ids, one move per link, a port nobody wants is restored to what it recorded
  const p = planVlanPorts({ ...base, trunks: [0, 20], links: [link('eth1.100', 100), { ...link('eth1.30'), addresses: 0 }],
    ports: [{ name: 'br-phys-vlan30', tag: 30, vlanIf: 'eth1.30', ours: true }, { name: 'br-phys-vlan7', tag: 7, vlanIf: undefined, ours: true }] });
  assert.equal(p.error, undefined);
  if (p.error === undefined) {
    assert.deepEqual(p.trunks, [0, 20, 30, 100]);
    assert.deepEqual(p.moves, [{ vlanIf: 'eth1.100', id: 100, port: PORT }]);
    assert.deepEqual(p.restores, [{ vlanIf: 'eth1.7', id: 7, port: 'br-phys-vlan7', parent: NIC }]);
    assert.equal(p.count, 2);
  }
});

test('vlanInterfaces: the VLAN link\'s addresses and routes move to a tagged internal port; removal gives them back exactly', async () => {
  const { nl, vs, state, r } = await setupNetwork({ defaultInterface: NIC, vlanInterfaces: [V100] });
  await vlanLink(nl, 100);
  const nicBefore = await linkState(nl, NIC);
  const vBefore = await linkState(nl, V100);
  await r.runNow();
  const port = vs.getPort(PORT);
  assert.equal(port?.bridge, 'br-phys');
  assert.equal(port?.tag, 100);
  assert.equal(port?.externalIds.vendor, 'kube-ovn');
  assert.equal(port?.externalIds['provider-vlan-interface'], V100);
  assert.equal(vs.getInterface(PORT)?.type, 'internal');
  const onPort = await linkState(nl, PORT);
  assert.deepEqual({ ...onPort, routes: onPort.routes.length }, { ...vBefore, routes: vBefore.routes.length });
  assert.deepEqual(onPort.routes.map((x) => x.replace(/"oif":\d+,?/, '')), vBefore.routes.map((x) => x.replace(/"oif":\d+,?/, '')));
  assert.deepEqual((await linkState(nl, V100)).addrs, []);
  assert.deepEqual(vs.getPort(NIC)?.trunks, [0, 100]);
  assert.equal(state.labels[k('vlan_interfaces')], 'true');
  assert.equal((await r.runNow()).changes, 0, 'converged');

  state.pn = undefined;
  await r.runNow();
  assert.deepEqual(await linkState(nl, V100), vBefore);
  assert.deepEqual(await linkState(nl, NIC), nicBefore);
  assert.equal(vs.getPort(PORT), undefined);
  assert.equal(vs.getBridge('br-phys'), undefined);
  assert.deepEqual(state.labels, {});
});

test('preserveVlanInterfaces takes every 802.1Q link named <nic>.<id> on the NIC, and nothing else', async () => {
  const { nl, vs, state, r } = await setupNetwork({ defaultInterface: NIC, preserveVlanInterfaces: true });
  await vlanLink(nl, 100);
  await vlanLink(nl, 200);
  nl.addLink(NS, { name: `${NIC}.300`, kind: 'dummy' }); // named like one, not 802.1Q
  await r.runNow();
  assert.equal(vs.getPort('br-phys-vlan100')?.tag, 100);
  assert.equal(vs.getPort('br-phys-vlan200')?.tag, 200);
  assert.equal(vs.getPort('br-phys-vlan300'), undefined);
  assert.deepEqual(vs.getPort(NIC)?.trunks, [0, 100, 200]);
  assert.deepEqual((await linkState(nl, 'br-phys-vlan200')).addrs.map((a) => a.split(' ')[0]), ['172.31.200.10/24']);
  assert.equal(state.labels[k('vlan_interfaces')], 'true');
});

test('an entry this node lacks is skipped and named in the success Event; a bad entry fails the network with a clear error', async () => {
  const s = await setupNetwork({ defaultInterface: NIC, vlanInterfaces: [`${NIC}.42`] });
  await s.r.runNow();
  assert.equal(s.state.labels[k('ready')], 'true');
  assert.equal(s.state.labels[k('vlan_interfaces')], undefined);
  assert.match(s.state.events[0]!, /InitOVSBridgeSucceeded .* is ready \(vlanInterfaces not on this node: eth1.42\)$/);

  const bad = await setupNetwork({ defaultInterface: NIC, vlanInterfaces: ['vlan100'] });
  await assert.rejects(bad.r.runNow(), /"vlan100" is not named/);
  assert.match(bad.state.annotations[k('err_mesg')] ?? '', /"vlan100" is not named/);
  assert.equal(bad.vs.getBridge('br-phys'), undefined, 'nothing changed');
});

test('an entry dropped from vlanInterfaces: its port\'s state goes back to the kernel link and the port goes', async () => {
  const { nl, vs, state, r } = await setupNetwork({ defaultInterface: NIC, vlanInterfaces: [V100] });
  await vlanLink(nl, 100);
  const vBefore = await linkState(nl, V100);
  await r.runNow();
  state.pn!.spec = { defaultInterface: NIC };
  await r.runNow();
  assert.deepEqual(await linkState(nl, V100), vBefore);
  assert.equal(vs.getPort(PORT), undefined);
  assert.deepEqual(vs.getPort(NIC)?.trunks, [0]);
  assert.equal(state.labels[k('vlan_interfaces')], undefined);
  assert.equal(state.labels[k('ready')], 'true');
});

test('the VLAN link deleted while the network stays: its port keeps the addresses, and nothing is moved back and forth', async () => {
  const { nl, vs, state, r } = await setupNetwork({ defaultInterface: NIC, vlanInterfaces: [V100] });
  await vlanLink(nl, 100);
  const vBefore = await linkState(nl, V100);
  await r.runNow();
  await nl.deleteLink(NS, V100);
  assert.equal((await r.runNow()).changes, 0);
  assert.deepEqual((await linkState(nl, PORT)).addrs, vBefore.addrs);
  assert.equal(await nl.getLink(NS, V100), null, 'not made again');
  assert.equal(state.labels[k('ready')], 'true');
});

test('removal with the kernel VLAN link gone: it is made again on the NIC; when the kernel cannot, the port and the bridge keep everything', async () => {
  const { nl, vs, state, r } = await setupNetwork({ defaultInterface: NIC, vlanInterfaces: [V100] });
  await vlanLink(nl, 100);
  const vBefore = await linkState(nl, V100);
  await r.runNow();
  await nl.deleteLink(NS, V100);
  nl.failNext('createVlan', 'EOPNOTSUPP');
  state.pn = undefined;
  await assert.rejects(r.runNow(), /br-phys-vlan100 keeps its addresses: eth1.100 is gone and cannot be made again as VLAN 100 on eth1/);
  assert.deepEqual((await linkState(nl, PORT)).addrs, vBefore.addrs, 'nothing lost');
  assert.ok(vs.getBridge('br-phys'), 'the bridge (and the node\'s addresses on it) stays');
  assert.equal((await linkState(nl, 'br-phys')).addrs.length, 2);
  // the next passes finish the journaled restore (the link is made) and then remove the rest
  for (let n = 0; n < 4 && (await r.runNow()).changes > 0;) n++;
  const again = await linkState(nl, V100);
  assert.deepEqual(again.addrs, vBefore.addrs);
  assert.equal((await nl.getLink(NS, V100))?.vlanId, 100);
  assert.equal(vs.getBridge('br-phys'), undefined);
});

/** A node whose NIC is already on br-phys, and the deps of a move with a crash before step `k`. */
async function movedNode(k: number) {
  const node = await makeNode();
  const { nl, vs, journal } = node;
  await vs.ensureBridge({ name: 'br-phys' });
  await transferNic({ netlink: nl, vswitch: vs, journal, netns: NS }, 'phys', NIC, 'br-phys', [0, 100]);
  await vlanLink(nl, 100);
  const want = (await nl.listAddresses(NS, { dev: V100 })).map((a) => `${a.address}/${a.prefixLen}`);
  const seen: string[] = [];
  let n = 0;
  const crashing: TransferDeps = {
    netlink: nl, vswitch: vs, journal, netns: NS,
    beforeStep: async (rec: MoveRecord) => {
      seen.push(rec.step);
      assert.equal(await vlanAddressesKept(nl, want), true, `before ${rec.step}`);
      if (n++ === k) throw new Crash(`crash before ${rec.step}`);
    },
  };
  const checked: TransferDeps = { netlink: nl, vswitch: vs, journal, netns: NS, beforeStep: async (rec) => assert.equal(await vlanAddressesKept(nl, want), true, `finish ${rec.step}`) };
  return { ...node, want, seen, crashing, checked };
}

test('a crash before any step of a VLAN move or its restore is finished from the journal; no address is ever on neither link', async () => {
  const move = { vlanIf: V100, id: 100, port: PORT };
  for (let k = 0; k < 4; k++) {
    const { nl, vs, journal, seen, crashing, checked } = await movedNode(k);
    const vBefore = await linkState(nl, V100);
    await assert.rejects(vlanTransfer(crashing, 'phys', 'br-phys', move), Crash);
    const [rec] = await journal.list();
    assert.equal(rec?.op, 'vlan-transfer');
    await finishMove(checked, rec!);
    assert.deepEqual((await linkState(nl, PORT)).addrs, vBefore.addrs, `transfer, crash before ${seen.at(-1)}`);
    assert.deepEqual((await linkState(nl, V100)).addrs, []);
    assert.equal(vs.getPort(PORT)?.tag, 100);
    assert.equal(journal.records.size, 0);
  }
  for (let k = 0; k < 5; k++) {
    const { nl, vs, journal, seen, crashing, checked } = await movedNode(100);
    const vBefore = await linkState(nl, V100);
    await vlanTransfer(checked, 'phys', 'br-phys', move);
    let n = 0;
    const d = { ...crashing, beforeStep: async (r: MoveRecord) => { seen.push(r.step); await checked.beforeStep!(r); if (n++ === k) throw new Crash(r.step); } };
    await assert.rejects(vlanRestore(d, 'phys', 'br-phys', { ...move, parent: NIC }), Crash);
    const [rec] = await journal.list();
    assert.equal(rec?.op, 'vlan-restore');
    await finishMove(checked, rec!);
    assert.deepEqual(await linkState(nl, V100), vBefore, `restore, crash before ${seen.at(-1)}`);
    assert.equal(vs.getPort(PORT), undefined);
    assert.equal(journal.records.size, 0);
  }
});

test('a VLAN move that fails is rolled back: the link as before, no port; a port that was there before is kept', async () => {
  const { nl, vs, journal, checked } = await movedNode(100);
  const vBefore = await linkState(nl, V100);
  nl.failNext('addRoute', 'ENETUNREACH');
  await assert.rejects(vlanTransferOrRollBack(checked, 'phys', 'br-phys', { vlanIf: V100, id: 100, port: PORT }), /ENETUNREACH/);
  assert.deepEqual(await linkState(nl, V100), vBefore);
  assert.equal(vs.getPort(PORT), undefined);
  assert.equal(journal.records.size, 0);

  // the port holds state already (an address of its own): a failed move must not delete it
  await vlanTransfer(checked, 'phys', 'br-phys', { vlanIf: V100, id: 100, port: PORT });
  await nl.addAddress(NS, V100, { cidr: '172.31.100.11/24' });
  nl.failNext('addAddress', 'ENOSPC');
  await assert.rejects(vlanTransferOrRollBack(checked, 'phys', 'br-phys', { vlanIf: V100, id: 100, port: PORT }), /ENOSPC/);
  assert.ok(vs.getPort(PORT));
  assert.ok((await linkState(nl, PORT)).addrs.some((a) => a.startsWith('172.31.100.10/24')));
  assert.equal(journal.records.size, 0);
});

test('a NIC already on the bridge that got an address back: a failed re-move leaves the bridge and its addresses alone', async () => {
  const { nl, vs, r } = await setupNetwork();
  await r.runNow();
  const onBridge = (await linkState(nl, 'br-phys')).addrs;
  await nl.addAddress(NS, NIC, { cidr: '172.30.70.10/24' }); // DHCP, or an operator
  vs.failNext('addBridgePort', agentError('KOA_OVSDB', 'add port', 'injected'));
  await assert.rejects(r.runNow(), /injected/);
  assert.ok(vs.getBridge('br-phys'), 'the bridge stays');
  assert.deepEqual((await linkState(nl, 'br-phys')).addrs.filter((a) => !a.startsWith('172.30.70.')), onBridge);
  assert.equal(vs.getPort(NIC)?.bridge, 'br-phys');
  await r.runNow();
  assert.ok((await linkState(nl, 'br-phys')).addrs.some((a) => a.startsWith('172.30.70.10/24')), 'the next pass moves the new address');
  assert.deepEqual((await linkState(nl, NIC)).addrs, []);
});
