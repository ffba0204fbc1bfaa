// The u2o FDB sync (spec §5.17) against a real ovs-vswitchd (userspace datapath, prefix koafd), through its control
// socket: the subnet's u2oInterconnectionMAC becomes a static entry on the localnet patch port of the provider
// bridge; a stale static entry on a localnet port goes, one on another port stays; a new MAC replaces the old; after
// a vswitchd restart (which forgets the table) the next pass puts the entry back. Subnets and Vlans are in memory:
// this test is about vswitchd.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startOvs, type OvsNode } from '../bed/ovs.ts';
import { cleanupAll, newPrefix } from '../bed/netns.ts';
import { waitFor } from '../bed/exec.ts';
import { OvsVswitch } from '../../agent/src/datapath/ovsdb/vswitch.ts';
import { VswitchdControl } from '../../agent/src/datapath/ovsdb/unixctl.ts';
import { Reconciler } from '../../agent/src/node/reconciler.ts';
import { fdbSpec, localnetPort, parseFdbShow } from '../../agent/src/node/underlay/fdb.ts';
import { parseMappings } from '../../agent/src/node/underlay/plan.ts';
import type { Subnet } from '../../agent/src/k8s/types.ts';
import type { Vlan } from '../../agent/src/node/underlay/types.ts';

const PATCH = localnetPort('u2o');
let ovs: OvsNode;
let vs: OvsVswitch;

before(async () => {
  ovs = await startOvs({ prefix: newPrefix('koafd'), name: 'n1' });
  await ovs.addBridge('br-int');
  await ovs.addBridge('br-phys', { standalone: true });
  // what ovn-controller makes for a localnet port: a patch pair between the provider bridge and br-int
  await ovs.vsctl(['add-port', 'br-phys', PATCH, '--', 'set', 'interface', PATCH, 'type=patch', 'options:peer=patch-br-int-to-localnet.u2o',
    '--', 'add-port', 'br-int', 'patch-br-int-to-localnet.u2o', '--', 'set', 'interface', 'patch-br-int-to-localnet.u2o', 'type=patch', `options:peer=${PATCH}`,
    '--', 'add-port', 'br-phys', 'p1', '--', 'set', 'interface', 'p1', 'type=internal',
    '--', 'set', 'Open_vSwitch', '.', 'external_ids:ovn-bridge-mappings=phys:br-phys']);
  vs = await OvsVswitch.connect({ remote: `unix:${ovs.dbSock}`, requestTimeoutMs: 10_000 });
});
after(async () => {
  vs?.close();
  await ovs?.stop();
  await cleanupAll();
});

const shown = async () => parseFdbShow(await ovs.appctl(['fdb/show', 'br-phys'])).filter((e) => e.static);
const ofport = async (name: string) => (await ovs.vsctl(['get', 'Interface', name, 'ofport'])).trim();

test('u2o FDB: the entry lands on the localnet patch port, stale localnet entries go, others stay, a new MAC moves it, a vswitchd restart is healed', async () => {
  const subnets: Subnet[] = [{ metadata: { name: 'u2o' }, spec: { vlan: 'vl100', u2oInterconnection: true }, status: { u2oInterconnectionMAC: '0a:00:00:00:00:fe' } }];
  const vlans: Vlan[] = [{ metadata: { name: 'vl100' }, spec: { id: 100, provider: 'phys' } }];
  const r = new Reconciler(fdbSpec({
    synced: () => true, subnets: () => subnets, vlans: () => vlans, vswitch: () => vs, unixctl: new VswitchdControl(ovs.rundir),
    bridgeMappings: () => parseMappings(vs.getOvsExternalIds()['ovn-bridge-mappings']),
  }), { resyncMs: 0 });
  await waitFor('ofports assigned and seen', async () => (vs.getInterface(PATCH)?.ofport ?? 0) > 0 && (vs.getInterface('p1')?.ofport ?? 0) > 0, 20_000);

  assert.equal((await r.runNow()).changes, 1);
  const patch = await ofport(PATCH);
  assert.deepEqual(await shown(), [{ port: patch, vlan: 100, mac: '0a:00:00:00:00:fe', static: true }]);
  assert.equal((await r.runNow()).changes, 0, 'converged');

  // a static entry on the localnet port that no subnet wants, and one on another port (not ours)
  await ovs.appctl(['fdb/add', 'br-phys', PATCH, '100', '0a:00:00:00:00:aa']);
  await ovs.appctl(['fdb/add', 'br-phys', 'p1', '0', '0a:00:00:00:00:bb']);
  assert.equal((await r.runNow()).changes, 1);
  const p1 = await ofport('p1');
  assert.deepEqual((await shown()).map((e) => `${e.port} ${e.vlan} ${e.mac}`).sort(), [`${p1} 0 0a:00:00:00:00:bb`, `${patch} 100 0a:00:00:00:00:fe`].sort());

  subnets[0] = { ...subnets[0]!, status: { u2oInterconnectionMAC: '0a:00:00:00:00:fd' } };
  await r.runNow();
  assert.deepEqual((await shown()).filter((e) => e.port === patch).map((e) => e.mac), ['0a:00:00:00:00:fd']);

  await ovs.restart();
  await waitFor('vswitchd back with the patch port numbered', async () => {
    try { return (await shown()).length === 0 && Number(await ofport(PATCH)) > 0; } catch { return false; }
  }, 30_000);
  await waitFor('the OVSDB client reconnected', async () => (vs.getInterface(PATCH)?.ofport ?? 0) > 0, 30_000);
  await r.runNow();
  assert.deepEqual((await shown()).filter((e) => e.mac === '0a:00:00:00:00:fd').length, 1, 'the entry is back after the restart');

  subnets.length = 0;
  await r.runNow();
  assert.deepEqual((await shown()).filter((e) => e.mac === '0a:00:00:00:00:fd'), [], 'the subnet is gone: so is its entry');
  await r.stop();
});
