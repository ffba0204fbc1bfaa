// NetworkManager and the underlay on a real NetworkManager 1.42 (nm-bed.ts) managing the node namespace's NIC, with
// the provider-network reconciler on a real kernel and OVS (underlay-bed.ts; prefix koanm):
// - the NetworkManagerPort contract, run on the in-memory fake and on the real NM;
// - no bus, a bus without NM, and a bus that never answers are all "absent", within the 200 ms probe;
// - the reconciler sets the NIC unmanaged before the move and hands it back after removal, and the NIC ends byte
//   for byte as it began.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addrDetail, cleanupAll, newPrefix, onCleanup, settledAddr } from '../bed/netns.ts';
import { waitFor } from '../bed/exec.ts';
import { warmUp } from '../../agent/src/native.ts';
import { RtNetlink } from '../../agent/src/datapath/netlink/rtnl.ts';
import { DBusNetworkManager, NmMarks, type NetworkManagerPort } from '../../agent/src/node/underlay/network-manager.ts';
import { FakeNetworkManager } from '../../agent/src/node/underlay/network-manager-fake.ts';
import { GW, NIC, REMOTE, bedNetwork, inet, journalDir, routes, underlayBed, type UnderlayBed } from './underlay-bed.ts';
import { nmMissing, startNm, startProcess, type NmBed } from './nm-bed.ts';

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
  dir = journalDir(prefix);
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
  // NM taking the device can restart the link-local address's DAD: compare settled links (seen as `tentative` once)
  const beforeDetail = await settledAddr(bed.node, NIC);
  const beforeRoutes = await routes(bed.node, NIC);
  const { state, settle } = bedNetwork(bed, nl, dir, { defaultInterface: NIC }, { nm: { port: new DBusNetworkManager(nm.socket), marks: new NmMarks(dir) } });
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
  await waitFor('eth1 as it was', async () => (await addrDetail(bed.node, NIC)) === beforeDetail, 30_000, 200)
    .catch(async () => assert.equal(await addrDetail(bed.node, NIC), beforeDetail));
});

let dhcpStarted = false;
/** busybox udhcpd on the router's side of the wire (once per file): leases 172.30.50.100-110 for 120 s, router 172.30.50.1. */
function startDhcpServer(): void {
  if (dhcpStarted) return;
  dhcpStarted = true;
  const d = mkdtempSync(`/tmp/${prefix}dhcp-`);
  onCleanup({ label: `dhcp dir ${d}`, run: async () => rmSync(d, { recursive: true, force: true }), runSync: () => rmSync(d, { recursive: true, force: true }) });
  writeFileSync(join(d, 'udhcpd.conf'), [
    'start 172.30.50.100', 'end 172.30.50.110', 'interface eth0', `lease_file ${join(d, 'leases')}`, `pidfile ${join(d, 'pid')}`,
    'option subnet 255.255.255.0', `option router ${GW}`, 'option lease 120', '',
  ].join('\n'));
  writeFileSync(join(d, 'leases'), '');
  startProcess('udhcpd', ['ip', 'netns', 'exec', bed.router.name, 'busybox', 'udhcpd', '-f', join(d, 'udhcpd.conf')]);
}

/** The NIC's DHCP address as `ip -4 addr` shows it: the address and its valid_lft ("forever" or "<n>sec"). */
async function dhcpAddress(dev: string): Promise<{ cidr: string; validLft: string } | undefined> {
  const lines = await inet(bed.node, dev);
  for (let i = 0; i < lines.length; i++) {
    const m = /^inet (172\.30\.50\.1(?:0[0-9]|10)\/24) /.exec(lines[i]!);
    if (m) return { cidr: m[1]!, validLft: /valid_lft (\S+)/.exec(lines[i + 1] ?? '')?.[1] ?? '' };
  }
  return undefined;
}

/** The NIC managed by NM with the DHCP profile active and a lease (a finite lifetime) from the router. */
async function leasedByNm(autoconnect: boolean): Promise<{ cidr: string; validLft: string }> {
  startDhcpServer();
  await nm.setManaged(NIC, true);
  await waitFor('NetworkManager manages eth1', async () => (await nm.deviceProp(NIC, 'Managed')) === true, 30_000, 200);
  await nm.connectDhcp(NIC, autoconnect);
  // NM_DEVICE_STATE_ACTIVATED = 100
  await waitFor('eth1 activated with a DHCP lease', async () => (await nm.deviceProp(NIC, 'State')) === 100 && (await dhcpAddress(NIC))?.validLft.endsWith('sec') === true, 60_000, 200)
    .catch((e: unknown) => { throw new Error(`${String(e)}\n--- NetworkManager log\n${nm.log().slice(-3000)}`); });
  return (await dhcpAddress(NIC))!;
}

/** Applies the network `phys` on eth1 with NM, checks the move of the lease, deletes the network. */
async function moveAndRestore(leased: { cidr: string }): Promise<void> {
  const leasedRoutes = await routes(bed.node, NIC);
  assert.ok(leasedRoutes.some((l) => l.startsWith(`default via ${GW} `)), `NM's default route from the lease: ${leasedRoutes.join('; ')}`);
  const { state, settle } = bedNetwork(bed, nl, dir, { defaultInterface: NIC }, { nm: { port: new DBusNetworkManager(nm.socket), marks: new NmMarks(dir) } });
  await settle();
  assert.equal(await nm.deviceProp(NIC, 'Managed'), false, 'set unmanaged before the move');
  // NM left the lease in place when it let go of the device, and the move took it with its `noprefixroute` flag and
  // NM's own prefix route (proto kernel, metric 100): on the bridge for good, as nobody renews it there
  assert.deepEqual(await dhcpAddress('br-phys'), { cidr: leased.cidr, validLft: 'forever' });
  assert.equal(await dhcpAddress(NIC), undefined);
  assert.deepEqual(await routes(bed.node, 'br-phys', NIC), leasedRoutes);
  const r = await bed.node.exec(['ping', '-n', '-q', '-c', '2', '-i', '0.2', '-W', '2', REMOTE], { allowFail: true });
  assert.match(r.stdout, /\b[12] received/, 'the node reaches the remote host through the bridge');
  state.pn = undefined;
  await settle();
  assert.deepEqual(await new NmMarks(dir).list('phys'), []);
}

test('NetworkManager with a DHCP profile that does not connect by itself: the lease moves and becomes permanent; removal gives it back and leaves the NIC unmanaged, as NM would drop it', async () => {
  const leased = await leasedByNm(false);
  await moveAndRestore(leased);
  // managed again, NM would leave the device disconnected and remove its addresses (seen with this NM): kept unmanaged
  assert.equal(await nm.deviceProp(NIC, 'Managed'), false);
  assert.deepEqual(await dhcpAddress(NIC), { cidr: leased.cidr, validLft: 'forever' }, 'the address is back on the NIC');
  const r = await bed.node.exec(['ping', '-n', '-q', '-c', '2', '-i', '0.2', '-W', '2', REMOTE], { allowFail: true });
  assert.match(r.stdout, /\b[12] received/, 'the node reaches the remote host through its NIC');
});

test('NetworkManager with a DHCP profile that connects by itself: handed back after removal, NM leases the same address again', async () => {
  const leased = await leasedByNm(true);
  await moveAndRestore(leased);
  assert.equal(await nm.deviceProp(NIC, 'Managed'), true, 'handed back');
  await waitFor('eth1 leased again by NetworkManager', async () => (await nm.deviceProp(NIC, 'State')) === 100 && (await dhcpAddress(NIC))?.validLft.endsWith('sec') === true, 60_000, 200);
  assert.equal((await dhcpAddress(NIC))?.cidr, leased.cidr);
});

test('a bus without NetworkManager: "absent" (it stopped; the bus stays)', async () => {
  await nm.stopNm();
  const out = await new DBusNetworkManager(nm.socket).unmanage(NIC, []);
  assert.deepEqual(out, { result: 'absent', why: 'NetworkManager is not running' });
});
