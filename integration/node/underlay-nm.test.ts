// NetworkManager and the underlay on a real NetworkManager 1.42 (nm-bed.ts) managing the node namespace's NIC, with
// the provider-network reconciler on a real kernel and OVS (underlay-bed.ts; prefix koanm):
// - the NetworkManagerPort contract, run on the in-memory fake and on the real NM;
// - no bus, a bus without NM, and a bus that never answers are all "absent", within the 200 ms probe;
// - the reconciler sets the NIC unmanaged before the move and hands it back after removal, and the NIC ends byte
//   for byte as it began.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, newPrefix, onCleanup } from '../bed/netns.ts';
import { waitFor } from '../bed/exec.ts';
import { warmUp } from '../../agent/src/native.ts';
import { RtNetlink } from '../../agent/src/datapath/netlink/rtnl.ts';
import { Reconciler } from '../../agent/src/node/reconciler.ts';
import { FileJournal } from '../../agent/src/node/underlay/journal.ts';
import { planUnderlay } from '../../agent/src/node/underlay/plan.ts';
import { underlaySpec } from '../../agent/src/node/underlay/reconciler.ts';
import { DBusNetworkManager, NmMarks, type NetworkManagerPort } from '../../agent/src/node/underlay/network-manager.ts';
import { FakeNetworkManager } from '../../agent/src/node/underlay/network-manager-fake.ts';
import type { ProviderNetwork } from '../../agent/src/node/underlay/types.ts';
import { NIC, detailed, routes, underlayBed, type UnderlayBed } from './underlay-bed.ts';
import { nmMissing, startNm, type NmBed } from './nm-bed.ts';

const prefix = newPrefix('koanm');
const missing = nmMissing();
let bed: UnderlayBed;
let nm: NmBed;
let nl: RtNetlink;
let dir: string;

before(async () => {
  // npm run setup always unpacks NetworkManager (no opt-out): a missing fixture is a broken set-up, and fails
  if (missing) throw new Error(missing);
  await warmUp();
  bed = await underlayBed(prefix);
  // a second NIC that NM does not manage at first (the contract's "already unmanaged" device)
  await bed.node.ip(['link', 'add', 'eth7', 'type', 'veth', 'peer', 'name', 'eth8']); // this kernel has no dummy links
  nm = await startNm(prefix, bed.node, NIC);
  nl = new RtNetlink();
  dir = mkdtempSync(`/tmp/${prefix}journal-`);
  onCleanup({ label: `journal ${dir}`, run: async () => rmSync(dir, { recursive: true, force: true }), runSync: () => rmSync(dir, { recursive: true, force: true }) });
});
after(async () => {
  bed?.vs.close();
  nl?.close();
  await cleanupAll();
});

/**
 * The contract both implementations keep. `managed(name)` reads the device's state from the implementation's side;
 * `make(name, managed)` prepares a device.
 */
async function contract(port: NetworkManagerPort, make: (n: string, managed: boolean) => Promise<void>, managed: (n: string) => Promise<boolean>): Promise<void> {
  await make(NIC, true);
  assert.deepEqual(await port.unmanage(NIC, []), { result: 'changed' });
  assert.equal(await managed(NIC), false);
  assert.deepEqual(await port.unmanage(NIC, []), { result: 'already' });
  assert.deepEqual(await port.manage(NIC), { result: 'changed' });
  assert.equal(await managed(NIC), true);
  assert.deepEqual(await port.manage(NIC), { result: 'already' });
  assert.deepEqual(await port.unmanage('nosuch0', []), { result: 'unknown-device' });
  assert.deepEqual(await port.manage('nosuch0'), { result: 'unknown-device' });
  // a managed VLAN child keeps the parent managed (the child here is any managed device named as one)
  await make('eth7', true);
  const kept = await port.unmanage(NIC, ['eth7']);
  assert.equal(kept.result, 'kept');
  assert.match((kept as { reason: string }).reason, /eth7 is managed/);
  assert.equal(await managed(NIC), true);
  await make('eth7', false);
  assert.deepEqual(await port.unmanage(NIC, ['eth7']), { result: 'changed' });
  await port.manage(NIC);
}

test('the NetworkManagerPort contract on the fake', async () => {
  const fake = new FakeNetworkManager();
  await contract(fake, async (n, m) => { fake.devices.set(n, { managed: m, deviceType: 1 }); }, async (n) => fake.devices.get(n)!.managed);
});

test('the NetworkManagerPort contract on NetworkManager 1.42', async () => {
  const real = new DBusNetworkManager(nm.socket);
  await contract(real, (n, m) => nm.setManaged(n, m), async (n) => (await nm.deviceProp(n, 'Managed')) === true);
});

test('no bus, or a bus that never answers: "absent" within the 200 ms probe, nothing else tried', async () => {
  const gone = await new DBusNetworkManager(`/tmp/${prefix}no-such-bus`).unmanage(NIC, []);
  assert.equal(gone.result, 'absent');
  assert.match((gone as { why: string }).why, /ENOENT/);
  const sock = join(mkdtempSync(`/tmp/${prefix}mute-`), 'bus');
  const accepted: string[] = [];
  const mute = createServer((s) => { accepted.push('conn'); s.on('data', () => undefined); });
  await new Promise<void>((r) => mute.listen(sock, r));
  onCleanup({ label: 'mute bus', run: async () => { mute.close(); rmSync(join(sock, '..'), { recursive: true, force: true }); } });
  const t0 = performance.now();
  const silent = await new DBusNetworkManager(sock).unmanage(NIC, []);
  const ms = performance.now() - t0;
  assert.equal(silent.result, 'absent');
  assert.match((silent as { why: string }).why, /no bus answer within 200 ms/);
  assert.equal(accepted.length, 1);
  // the bound is the probe's: far under the 5 s a call may take (a generous margin for a loaded machine)
  assert.ok(ms < 4000, `took ${ms} ms`);
});

test('NetworkManager manages the NIC: the reconciler sets it unmanaged before the move and hands it back after removal', async () => {
  await nm.setManaged(NIC, true);
  await waitFor('NetworkManager manages eth1', async () => (await nm.deviceProp(NIC, 'Managed')) === true, 30_000, 200);
  const beforeDetail = await detailed(bed.node, NIC);
  const beforeRoutes = await routes(bed.node, NIC);
  const state = { pn: { metadata: { name: 'phys' }, spec: { defaultInterface: NIC } } as ProviderNetwork | undefined, labels: {} as Record<string, string> };
  const r = new Reconciler(underlaySpec({
    pn: 'phys', nodeName: 'n1', netns: bed.node.path, netlink: () => nl, vswitch: () => bed.vs, journal: new FileJournal(dir),
    desired: () => planUnderlay({ pnName: 'phys', pn: state.pn, vlans: [], node: { metadata: { name: 'n1' } }, nodeName: 'n1', macLearningFallback: false }),
    nodeMeta: () => ({ labels: state.labels, annotations: {} }),
    patchNode: async (p) => { for (const [k, v] of Object.entries(p.labels ?? {})) { if (v === null) delete state.labels[k]; else state.labels[k] = v; } },
    event: () => undefined,
    datapathType: () => 'netdev',
    randomMac: () => '02:00:00:00:02:01',
    nm: { port: new DBusNetworkManager(nm.socket), marks: new NmMarks(dir) },
  }), { resyncMs: 0 });
  const settle = async (): Promise<void> => {
    for (let n = 0; n < 8; n++) if ((await r.runNow()).changes === 0) return;
    throw new Error('no fixed point in 8 passes');
  };
  await settle();
  assert.equal(await nm.deviceProp(NIC, 'Managed'), false);
  assert.deepEqual(await new NmMarks(dir).list('phys'), [NIC]);
  assert.deepEqual(await routes(bed.node, 'br-phys', NIC), beforeRoutes);
  assert.match(nm.log(), /audit: op="device-managed" interface="eth1" .*args="false".*result="success"/);

  state.pn = undefined;
  await settle();
  assert.equal(await nm.deviceProp(NIC, 'Managed'), true);
  assert.deepEqual(await new NmMarks(dir).list('phys'), []);
  assert.deepEqual(await routes(bed.node, NIC), beforeRoutes);
  await waitFor('eth1 as it was', async () => (await detailed(bed.node, NIC)) === beforeDetail, 30_000, 200)
    .catch(async () => assert.equal(await detailed(bed.node, NIC), beforeDetail));
});

test('a bus without NetworkManager: "absent" (it stopped; the bus stays)', async () => {
  await nm.stopNm();
  const out = await new DBusNetworkManager(nm.socket).unmanage(NIC, []);
  assert.deepEqual(out, { result: 'absent', why: 'NetworkManager is not running' });
});
