// One provider network's reconciler with fakes: convergence, idempotence, trunk updates, failure reporting (labels,
// Node annotation, Event), removal, exclusion and a journaled move found at start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renameNic, transferNic } from '../../../agent/src/node/underlay/transfer.ts';
import { NIC, NIC_MAC, NS, linkState, setupNetwork as setup } from './helpers.ts';

const k = (s: string): string => `phys.provider-network.kubernetes.io/${s}`;

test('a provider network converges: bridge, NIC moved, mappings, labels, InitOVSBridgeSucceeded; the next pass changes nothing', async () => {
  const { nl, vs, state, r } = await setup();
  const before = await linkState(nl, NIC);
  const out = await r.runNow();
  assert.ok(out.ok && out.changes > 0);
  const b = vs.getBridge('br-phys')!;
  assert.equal(b.externalIds.vendor, 'kube-ovn');
  assert.equal(b.externalIds['exchange-link-name'], 'false');
  assert.equal(b.otherConfig['mac-learning-fallback'], 'false');
  assert.equal(b.otherConfig.hwaddr, NIC_MAC);
  assert.equal(b.datapathType, 'netdev');
  assert.deepEqual((await linkState(nl, 'br-phys')).addrs, before.addrs);
  assert.deepEqual(vs.getPort(NIC)?.trunks, [0]);
  assert.equal(vs.getOvsExternalIds()['ovn-bridge-mappings'], 'phys:br-phys');
  assert.match(vs.getOvsExternalIds()['ovn-chassis-mac-mappings']!, /^phys:02:00:00:00:00:0\d$/);
  assert.deepEqual(state.labels, { [k('ready')]: 'true', [k('interface')]: NIC, [k('mtu')]: '1500' });
  assert.deepEqual(state.events, [`Normal InitOVSBridgeSucceeded node=n1 interface=${NIC} provider network phys is ready`]);
  const again = await r.runNow();
  assert.equal(again.changes, 0);
  assert.equal(state.events.length, 1);
});

test('a Vlan added to status.vlans only changes the NIC port\'s trunks', async () => {
  const { vs, state, r } = await setup();
  await r.runNow();
  state.vlans = [{ metadata: { name: 'v100' }, spec: { id: 100, provider: 'phys' } }];
  state.pn!.status = { vlans: ['v100'] };
  const out = await r.runNow();
  assert.equal(out.changes, 1);
  assert.deepEqual(vs.getPort(NIC)?.trunks, [0, 100]);
});

test('a missing NIC fails the pass: labels removed, error annotation on the Node, InitOVSBridgeFailed; a later success clears it', async () => {
  const { state, r } = await setup({ defaultInterface: 'eth9' });
  state.labels[k('ready')] = 'true';
  await assert.rejects(r.runNow(), /interface eth9 not found/);
  assert.equal(state.labels[k('ready')], undefined);
  assert.equal(state.annotations[k('err_mesg')], 'interface eth9 not found on this node');
  assert.match(state.events[0]!, /^Warning InitOVSBridgeFailed node=n1 interface=eth9 error=interface eth9 not found/);
  state.pn!.spec = { defaultInterface: NIC };
  await r.runNow();
  assert.equal(state.annotations[k('err_mesg')], undefined);
  assert.equal(state.labels[k('ready')], 'true');
});

/** Runs passes until one changes nothing (a pass that renames or creates a link asks for another). */
async function settle(r: { runNow(): Promise<{ changes: number }> }): Promise<number> {
  for (let n = 1; n <= 8; n++) if ((await r.runNow()).changes === 0) return n;
  throw new Error('no fixed point in 8 passes');
}

test('exchangeLinkName: the NIC is renamed br-<pn> with its addresses and routes, the bridge takes its name; removal gives both names back', async () => {
  const { nl, vs, state, journal, r } = await setup({ defaultInterface: NIC, exchangeLinkName: true });
  const before = await linkState(nl, NIC);
  await settle(r);
  const b = vs.getBridge(NIC)!;
  assert.equal(b.externalIds['exchange-link-name'], 'true');
  assert.equal(b.externalIds.vendor, 'kube-ovn');
  assert.equal(vs.getPort('br-phys')?.bridge, NIC, 'the renamed NIC is the bridge\'s port');
  assert.equal((await nl.getLink(NS, 'br-phys'))?.kind, 'veth', 'br-phys is the NIC itself');
  const onBridge = await linkState(nl, NIC);
  assert.deepEqual(onBridge.addrs, before.addrs);
  assert.deepEqual(onBridge.routes, before.routes);
  assert.equal(onBridge.mac, NIC_MAC);
  assert.deepEqual((await linkState(nl, 'br-phys')).addrs, []);
  assert.equal(vs.getOvsExternalIds()['ovn-bridge-mappings'], `phys:${NIC}`);
  assert.deepEqual(state.labels, { [k('ready')]: 'true', [k('interface')]: NIC, [k('mtu')]: '1500' });
  assert.equal(journal.records.size, 0);
  state.pn = undefined;
  await settle(r);
  assert.deepEqual(await linkState(nl, NIC), before, 'the NIC has its name, addresses, routes, MAC and state back');
  assert.equal((await nl.getLink(NS, NIC))?.kind, 'veth');
  assert.equal(await nl.getLink(NS, 'br-phys'), null);
  assert.equal(vs.getBridge(NIC), undefined);
  assert.equal(vs.getOvsExternalIds()['ovn-bridge-mappings'], undefined);
  assert.deepEqual(state.labels, {});
});

test('exchangeLinkName: the renamed NIC keeping its old name as an altname (udev) has it dropped, then the bridge takes the name; removal too', async () => {
  const { nl, vs, state, r } = await setup({ defaultInterface: NIC, exchangeLinkName: true });
  const before = await linkState(nl, NIC);
  assert.equal((await r.runNow()).changes, 1); // the rename
  nl.addAltname(NS, 'br-phys', NIC); // as udev does on some systems after a rename
  assert.equal((await nl.getLink(NS, NIC))?.name, 'br-phys', 'the old name resolves to the renamed NIC');
  await settle(r);
  assert.equal((await nl.getLink(NS, 'br-phys'))?.altnames, undefined);
  assert.equal(vs.getPort('br-phys')?.bridge, NIC);
  assert.deepEqual((await linkState(nl, NIC)).addrs, before.addrs);
  // removal: the bridge goes, and the NIC takes its name back
  state.pn = undefined;
  await settle(r);
  assert.deepEqual(await linkState(nl, NIC), before);
  assert.equal(await nl.getLink(NS, 'br-phys'), null);
});

test('exchangeLinkName: the configured NIC name being an altname of another link is refused with a clear error, nothing changed', async () => {
  const { nl, vs, r } = await setup({ defaultInterface: 'lan0', exchangeLinkName: true });
  nl.addAltname(NS, NIC, 'lan0');
  const before = await linkState(nl, NIC);
  await assert.rejects(r.runNow(), /lan0 is an alternative name of eth1; name the NIC by its own name/);
  assert.deepEqual(await linkState(nl, NIC), before);
  assert.equal(vs.getBridge('lan0'), undefined);
});

test('exchangeLinkName: a rename that fails (EBUSY) puts the NIC back as it was and clears the journal; the next pass succeeds', async () => {
  const { nl, vs, journal, r } = await setup({ defaultInterface: NIC, exchangeLinkName: true });
  const before = await linkState(nl, NIC);
  nl.failNext('renameLink', 'EBUSY');
  await assert.rejects(r.runNow(), /EBUSY|busy/i);
  assert.deepEqual(await linkState(nl, NIC), before, 'name, addresses, routes and up state as before');
  assert.equal(journal.records.size, 0);
  await settle(r);
  assert.equal(vs.getPort('br-phys')?.bridge, NIC);
});

test('exchangeLinkName: refused before anything changes when br-<pn> is taken, or a VLAN link on the NIC has addresses', async () => {
  const { nl, vs, journal, r } = await setup({ defaultInterface: NIC, exchangeLinkName: true });
  const before = await linkState(nl, NIC);
  await nl.createVlan({ netns: NS, name: `${NIC}.10`, parent: NIC, id: 10 });
  await nl.addAddress(NS, `${NIC}.10`, { cidr: '192.168.10.5/24' });
  await assert.rejects(r.runNow(), /would take down eth1\.10, which has 192\.168\.10\.5\/24/);
  assert.deepEqual(await linkState(nl, NIC), before);
  assert.equal(journal.writes.length, 0, 'nothing journaled');
  await nl.deleteLink(NS, `${NIC}.10`);
  nl.addLink(NS, { name: 'br-phys', kind: 'dummy' });
  await assert.rejects(r.runNow(), /cannot take the name eth1/, 'the pass refuses');
  await assert.rejects(renameNic({ netlink: nl, vswitch: vs, journal, netns: NS }, 'phys', NIC, 'br-phys', NIC), /a link named br-phys exists/, 'and so does the rename itself');
  assert.deepEqual(await linkState(nl, NIC), before);
  assert.equal(journal.writes.length, 0);
});

test('exchangeLinkName: a crash at each step of the rename is finished from the journal', async () => {
  for (const at of ['rename-down', 'rename-addresses-off', 'rename', 'rename-up', 'rename-readd']) {
    const { nl, vs, journal, r } = await setup({ defaultInterface: NIC, exchangeLinkName: true });
    const before = await linkState(nl, NIC);
    await assert.rejects(renameNic({ netlink: nl, vswitch: vs, journal, netns: NS, beforeStep: (rec) => { if (rec.step === at) throw new Error('killed'); } },
      'phys', NIC, 'br-phys', NIC), /killed/);
    assert.equal(journal.records.get('phys')?.op, 'rename', at);
    await settle(r);
    assert.equal(journal.records.size, 0, at);
    assert.deepEqual((await linkState(nl, NIC)).addrs, before.addrs, at);
    assert.deepEqual((await linkState(nl, NIC)).routes, before.routes, at);
    assert.equal(vs.getPort('br-phys')?.bridge, NIC, at);
  }
});

test('exchangeLinkName: a NIC left renamed after its bridge went gets its name back from the mapping', async () => {
  const { nl, vs, state, r } = await setup({ defaultInterface: NIC, exchangeLinkName: true });
  const before = await linkState(nl, NIC);
  await settle(r);
  // the bridge is gone (e.g. removed with OVS restarted) but the NIC is still br-phys
  await vs.deletePort('br-phys');
  for (const a of before.addrs) await nl.addAddress(NS, 'br-phys', { cidr: a.split(' ')[0]! }, { replace: true });
  await vs.deleteBridge(NIC);
  // its routes too (the kernel's connected ones come with the addresses)
  for (const rt of before.routes.filter((x) => !x.includes('"protocol":2'))) {
    const { dst, gateway, metric, scope, table, protocol, type, onlink, family } = JSON.parse(rt) as Record<string, never>;
    await nl.addRoute(NS, { ...(dst === null ? { family } : { dst }), ...(gateway ? { gateway } : {}), ...(metric !== undefined ? { metric } : {}), scope, table, protocol, type, ...(onlink ? { onlink } : {}), dev: 'br-phys' }, { replace: true });
  }
  state.pn = undefined;
  await settle(r);
  assert.equal(await nl.getLink(NS, 'br-phys'), null);
  assert.deepEqual((await linkState(nl, NIC)).addrs, before.addrs);
  assert.deepEqual((await linkState(nl, NIC)).routes, before.routes);
});

test('exchangeLinkName: the mapping gone before the bridge (a crash between): removal still finds the bridge through its port br-<pn>', async () => {
  const { nl, vs, state, r } = await setup({ defaultInterface: NIC, exchangeLinkName: true });
  const before = await linkState(nl, NIC);
  await settle(r);
  await vs.setOvsExternalIds({}, ['ovn-bridge-mappings']);
  state.pn = undefined;
  await settle(r);
  assert.equal(vs.getBridge(NIC), undefined);
  assert.equal(await nl.getLink(NS, 'br-phys'), null);
  assert.deepEqual(await linkState(nl, NIC), before);
});

test('exchangeLinkName on a network whose bridge was made without it: a clear error, nothing moved', async () => {
  const { nl, vs, state, r } = await setup();
  await settle(r);
  state.pn!.spec = { defaultInterface: NIC, exchangeLinkName: true };
  const b = await linkState(nl, 'br-phys');
  await assert.rejects(r.runNow(), /cannot take the name eth1/);
  assert.deepEqual(await linkState(nl, 'br-phys'), b);
  assert.equal(vs.getPort(NIC)?.bridge, 'br-phys');
});

test('deleting the provider network puts the NIC back exactly, removes the bridge, the mappings and the labels', async () => {
  const { nl, vs, state, r } = await setup();
  const before = await linkState(nl, NIC);
  await vs.setOvsExternalIds({ 'ovn-bridge-mappings': 'other:br-other' });
  await r.runNow();
  assert.equal(vs.getOvsExternalIds()['ovn-bridge-mappings'], 'other:br-other,phys:br-phys');
  state.pn = undefined;
  await r.runNow();
  assert.deepEqual(await linkState(nl, NIC), before);
  assert.equal(vs.getBridge('br-phys'), undefined);
  assert.equal(vs.getOvsExternalIds()['ovn-bridge-mappings'], 'other:br-other');
  assert.equal(vs.getOvsExternalIds()['ovn-chassis-mac-mappings'], undefined);
  assert.deepEqual(state.labels, {});
  assert.equal((await r.runNow()).changes, 0);
});

test('excluding the node restores the NIC and sets exclude=true', async () => {
  const { nl, state, r } = await setup();
  const before = await linkState(nl, NIC);
  await r.runNow();
  state.pn!.spec = { defaultInterface: NIC, excludeNodes: ['n1'] };
  await r.runNow();
  assert.deepEqual(await linkState(nl, NIC), before);
  assert.deepEqual(state.labels, { [k('exclude')]: 'true' });
});

test('a move found in the journal is finished before anything else', async () => {
  const { nl, vs, journal, r } = await setup();
  await vs.ensureBridge({ name: 'br-phys' });
  await assert.rejects(transferNic({ netlink: nl, vswitch: vs, journal, netns: NS, beforeStep: (rec) => { if (rec.step === 'nic-port') throw new Error('killed'); } },
    'phys', NIC, 'br-phys', [0]), /killed/);
  assert.equal((await journal.list()).length, 1);
  const out = await r.runNow();
  assert.match(String(out.reason), /manual/);
  assert.equal(journal.records.size, 0);
  // the pass asked for another ('again'); run it as the trigger would
  await r.runNow();
  assert.equal(vs.getPort(NIC)?.bridge, 'br-phys');
  assert.deepEqual(await nl.listAddresses(NS, { dev: NIC }), []);
  assert.equal((await r.runNow()).changes, 0);
});

test('autoCreateVlanSubinterfaces: a missing <nic>.<id> is created (marked ours, up) and moved; removal deletes it, the parent stays', async () => {
  const { nl, vs, state, r } = await setup({ defaultInterface: `${NIC}.100`, autoCreateVlanSubinterfaces: true });
  const parentBefore = await linkState(nl, NIC);
  await r.runNow(); // creates the link, asks for another pass
  const v = await nl.getLink(NS, `${NIC}.100`);
  assert.equal(v?.kind, 'vlan');
  assert.equal(v?.vlanId, 100);
  assert.equal(v?.alias, 'kube-ovn:phys');
  assert.equal(v?.up, true);
  await r.runNow();
  assert.equal(vs.getPort(`${NIC}.100`)?.bridge, 'br-phys');
  assert.equal(state.labels[k('interface')], `${NIC}.100`);
  assert.deepEqual(await linkState(nl, NIC), parentBefore, 'the parent keeps its addresses and routes');
  assert.equal((await r.runNow()).changes, 0);
  state.pn = undefined;
  await r.runNow();
  assert.equal(await nl.getLink(NS, `${NIC}.100`), null);
  assert.equal(vs.getBridge('br-phys'), undefined);
  assert.deepEqual(await linkState(nl, NIC), parentBefore);
});

test('autoCreateVlanSubinterfaces: a VLAN link of the operator (no alias of ours) is used, never deleted', async () => {
  const { nl, vs, state, r } = await setup({ defaultInterface: `${NIC}.200`, autoCreateVlanSubinterfaces: true });
  await nl.createVlan({ netns: NS, name: `${NIC}.200`, parent: NIC, id: 200 });
  await r.runNow();
  assert.equal(vs.getPort(`${NIC}.200`)?.bridge, 'br-phys');
  state.pn = undefined;
  await r.runNow();
  assert.ok(await nl.getLink(NS, `${NIC}.200`));
});

test('autoCreateVlanSubinterfaces: setting the new link up fails -> it is deleted again, the pass fails with the reason', async () => {
  const { nl, state, r } = await setup({ defaultInterface: `${NIC}.100`, autoCreateVlanSubinterfaces: true });
  nl.failNext('setLink', 'EBUSY');
  await assert.rejects(r.runNow(), /EBUSY|busy/i);
  assert.equal(await nl.getLink(NS, `${NIC}.100`), null);
  assert.match(state.annotations[k('err_mesg')]!, /busy|EBUSY/i);
});

test('autoCreateVlanSubinterfaces off: a missing <nic>.<id> fails as any missing NIC, nothing is created', async () => {
  const { nl, r } = await setup({ defaultInterface: `${NIC}.100` });
  await assert.rejects(r.runNow(), /interface eth1\.100 not found/);
  assert.equal(await nl.getLink(NS, `${NIC}.100`), null);
});

test('a link auto-created for an earlier NIC choice is deleted once unused; one still a bridge port is left', async () => {
  const { nl, vs, r } = await setup({ defaultInterface: `${NIC}.100`, autoCreateVlanSubinterfaces: true });
  await r.runNow();
  await r.runNow();
  await nl.createVlan({ netns: NS, name: `${NIC}.300`, parent: NIC, id: 300 });
  await nl.setLink(NS, `${NIC}.300`, { alias: 'kube-ovn:phys' });
  await nl.createVlan({ netns: NS, name: `${NIC}.301`, parent: NIC, id: 301 });
  await nl.setLink(NS, `${NIC}.301`, { alias: 'kube-ovn:other' });
  await r.runNow();
  assert.equal(await nl.getLink(NS, `${NIC}.300`), null, 'ours, unused: deleted');
  assert.ok(await nl.getLink(NS, `${NIC}.301`), 'another network\'s: kept');
  assert.ok(await nl.getLink(NS, `${NIC}.100`), 'in use: kept');
  assert.equal(vs.getPort(`${NIC}.100`)?.bridge, 'br-phys');
});
