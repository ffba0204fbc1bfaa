// vlanInterfaces on a real kernel and a real OVS (userspace datapath), through the provider-network reconciler
// (underlay-bed.ts; prefix koauv): the VLAN interface's addresses and routes move to the access port
// `br-phys-vlan100` (tag 100), whose traffic leaves the NIC tagged 100; removal gives the interface back byte for byte.
//
// What this kernel cannot show: it has no 802.1Q (`ip link add ... type vlan` answers "Unknown device type"), so
// the VLAN interface here is one end of a veth pair named eth1.100 (nor has it dummy links; the other end stays
// up and unused). vlanInterfaces reads from it exactly what it reads from an
// 802.1Q link (its name, addresses and routes); preserveVlanInterfaces, which looks for 802.1Q links, is covered by
// the unit tests only. The tagging on the wire is real: it is OVS's, and the router's capture sees it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupAll, newPrefix, settledAddr } from '../bed/netns.ts';
import { firstFrame } from '../bed/capture.ts';
import { warmUp } from '../../agent/src/native.ts';
import { RtNetlink } from '../../agent/src/datapath/netlink/rtnl.ts';
import { NIC, REMOTE, bedNetwork, inet, journalDir, routes, underlayBed, type UnderlayBed } from './underlay-bed.ts';

const prefix = newPrefix('koauv');
const VIF = `${NIC}.100`;
const PORT = 'br-phys-vlan100';
const VLAN_IP = '172.30.100.10';
const VLAN_GW = '172.30.100.1';
let bed: UnderlayBed;
let nl: RtNetlink;
let dir: string;

before(async () => {
  await warmUp();
  bed = await underlayBed(prefix);
  nl = new RtNetlink();
  dir = journalDir(prefix);
});
after(async () => {
  bed?.vs.close();
  nl?.close();
  await cleanupAll();
});

/** The stand-in VLAN interface: an address (no broadcast, to check none is added), a gateway route with a metric. */
async function vlanInterface(): Promise<void> {
  await standIn();
  await bed.node.ip(['link', 'set', VIF, 'up']);
  await bed.node.ip(['addr', 'add', `${VLAN_IP}/24`, 'dev', VIF]);
  await bed.node.ip(['route', 'add', '10.210.0.0/16', 'via', VLAN_GW, 'dev', VIF, 'metric', '50']);
}

async function standIn(): Promise<void> {
  await bed.node.ip(['link', 'del', VIF], { allowFail: true }); // what a failed test before this one left
  await bed.node.ip(['link', 'add', VIF, 'type', 'veth', 'peer', 'name', 'v100peer']);
  await bed.node.ip(['link', 'set', 'v100peer', 'up']); // a carrier, as a VLAN link on a live NIC has
}

const settled = (dev: string): Promise<string> => settledAddr(bed.node, dev);

/** The first ARP request for VLAN_GW that the router sees on its wire, with its link-level header (tcpdump -e); each
 *  ping's ARP request goes out until one is captured (nothing answers for VLAN_GW: the request is the proof). */
const arpOnTheWire = (send: () => Promise<unknown>): Promise<string> => firstFrame(bed.router, 'eth0', 'vlan and arp and arp[24:4] = 0xac1e6401', send);

test('vlanInterfaces: the interface\'s addresses and routes move to br-phys-vlan100, which sends tagged 100; removal restores it exactly', async () => {
  await vlanInterface();
  const before = { vif: await settled(VIF), inet: await inet(bed.node, VIF), routes: await routes(bed.node, VIF), nic: await settled(NIC), nicRoutes: await routes(bed.node, NIC) };
  const { state, settle } = bedNetwork(bed, nl, dir, { defaultInterface: NIC, vlanInterfaces: [VIF] });

  await settle();
  assert.equal(await bed.ovs.vsctl(['port-to-br', PORT]), 'br-phys');
  assert.equal(await bed.ovs.vsctl(['get', 'Port', PORT, 'tag']), '100');
  assert.equal(await bed.ovs.vsctl(['get', 'Port', PORT, 'external_ids:provider-vlan-interface']), VIF);
  assert.equal(await bed.ovs.vsctl(['get', 'Interface', PORT, 'type']), 'internal');
  assert.equal(await bed.ovs.vsctl(['get', 'Port', NIC, 'trunks']), '[0, 100]');
  assert.deepEqual(await inet(bed.node, PORT, VIF), before.inet);
  assert.deepEqual(await routes(bed.node, PORT, VIF), before.routes);
  assert.deepEqual(await inet(bed.node, VIF), [], 'the VLAN interface keeps no address');
  assert.equal(state.labels['phys.provider-network.kubernetes.io/vlan_interfaces'], 'true');

  // the port's traffic reaches the wire through the NIC's trunk, tagged 100; the node's own address still works
  const line = await arpOnTheWire(() => bed.node.exec(['ping', '-n', '-q', '-c', '1', '-W', '1', VLAN_GW], { allowFail: true }));
  assert.match(line, /vlan 100, p 0, ethertype ARP/, line);
  assert.match(line, new RegExp(`Request who-has ${VLAN_GW.replaceAll('.', '\\.')} tell ${VLAN_IP.replaceAll('.', '\\.')}`), line);
  const r = await bed.node.exec(['ping', '-n', '-q', '-c', '2', '-i', '0.2', '-W', '2', REMOTE], { allowFail: true });
  assert.match(r.stdout, /\b[12] received/, 'the node reaches the remote host through the bridge');

  state.pn = undefined;
  await settle();
  assert.equal(await settled(VIF), before.vif, '`ip -d addr show dev eth1.100` as before');
  assert.deepEqual(await routes(bed.node, VIF), before.routes);
  assert.equal(await settled(NIC), before.nic, '`ip -d addr show dev eth1` as before');
  assert.deepEqual(await routes(bed.node, NIC), before.nicRoutes);
  assert.equal((await bed.ovs.vsctl(['--if-exists', 'get', 'Port', PORT, 'tag'])), '');
  await bed.node.ip(['link', 'del', VIF]);
});

test('removal after the VLAN interface was deleted: this kernel cannot make it again, so the port keeps its addresses and the bridge stays, until the interface is back', async () => {
  await vlanInterface();
  const before = { inet: await inet(bed.node, VIF), routes: await routes(bed.node, VIF), nic: await settled(NIC) };
  const { state, r, settle } = bedNetwork(bed, nl, dir, { defaultInterface: NIC, vlanInterfaces: [VIF] });
  await settle();
  await bed.node.ip(['link', 'del', VIF]);
  state.pn = undefined;
  await assert.rejects(r.runNow(), new RegExp(`${PORT} keeps its addresses: ${VIF.replace('.', '\\.')} is gone and cannot be made again as VLAN 100 on ${NIC}`));
  assert.match(state.annotations['phys.provider-network.kubernetes.io/err_mesg'] ?? '', /keeps its addresses/);
  assert.deepEqual((await inet(bed.node, PORT)).filter((l) => l.startsWith('inet ')).map((l) => l.split(' ')[1]), [`${VLAN_IP}/24`]);
  assert.equal(await bed.ovs.vsctl(['br-exists', 'br-phys']).then(() => 'yes', () => 'no'), 'yes');
  // the operator makes the interface again (here: the stand-in); the journaled restore then finishes
  await standIn();
  await settle();
  assert.deepEqual(await inet(bed.node, VIF), before.inet, 'the addresses are back on the new link');
  assert.deepEqual(await routes(bed.node, VIF), before.routes);
  assert.equal(await settled(NIC), before.nic);
  await bed.node.ip(['link', 'del', VIF]);
});
