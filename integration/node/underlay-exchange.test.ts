// exchangeLinkName on a real kernel and a real OVS (userspace datapath), through the provider-network reconciler
// (underlay-bed.ts; prefix koaux): the NIC eth1 becomes the bridge's port `br-phys` with its addresses and routes
// back on it, the OVS bridge takes the name eth1 and then carries everything the NIC had; removal gives both names
// back and the NIC its addresses, routes and MAC. The Kubernetes side (labels, events) is recorded in memory: this
// test is about the kernel and OVS.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupAll, newPrefix, settledAddr } from '../bed/netns.ts';
import { warmUp } from '../../agent/src/native.ts';
import { RtNetlink } from '../../agent/src/datapath/netlink/rtnl.ts';
import { GW, NIC, REMOTE, bedNetwork, inet, journalDir, linkJson, routes, underlayBed, type UnderlayBed } from './underlay-bed.ts';

const prefix = newPrefix('koaux');
const PORT = 'br-phys';
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

async function nodePing(addr: string): Promise<boolean> {
  const r = await bed.node.exec(['ping', '-n', '-q', '-c', '2', '-i', '0.2', '-W', '2', addr], { allowFail: true });
  return /\b[12] received/.test(r.stdout);
}

const settled = (dev: string): Promise<string> => settledAddr(bed.node, dev);

const exchangeNetwork = () => bedNetwork(bed, nl, dir, { defaultInterface: NIC, exchangeLinkName: true });

test('exchangeLinkName: the bridge carries the NIC\'s name, addresses, routes and MAC; removal restores both names exactly', async () => {
  const before = { detail: await settled(NIC), inet: await inet(bed.node, NIC), routes: await routes(bed.node, NIC), link: await linkJson(bed.node, NIC) };
  const { state, settle } = exchangeNetwork();

  await settle();
  // OVS: a bridge named like the NIC, ours, with the renamed NIC as its port
  assert.equal(await bed.ovs.vsctl(['get', 'Bridge', NIC, 'external_ids:exchange-link-name']), '"true"');
  assert.equal(await bed.ovs.vsctl(['port-to-br', PORT]), NIC);
  assert.equal(await bed.ovs.vsctl(['get', 'Open_vSwitch', '.', 'external_ids:ovn-bridge-mappings']), `"phys:${NIC}"`);
  // kernel: eth1 is now the bridge's device (a tap with the userspace datapath), br-phys is the veth
  assert.match((await bed.node.ip(['-d', 'link', 'show', 'dev', PORT])).stdout, /\bveth\b/);
  assert.doesNotMatch((await bed.node.ip(['-d', 'link', 'show', 'dev', NIC])).stdout, /\bveth\b/);
  assert.deepEqual(await inet(bed.node, NIC), before.inet);
  assert.deepEqual(await routes(bed.node, NIC), before.routes);
  assert.equal((await linkJson(bed.node, NIC))?.address, before.link?.address);
  assert.equal((await linkJson(bed.node, NIC))?.mtu, before.link?.mtu);
  assert.deepEqual(await inet(bed.node, PORT), [], 'the renamed NIC keeps no address once on the bridge');
  assert.deepEqual(state.labels, {
    'phys.provider-network.kubernetes.io/ready': 'true', 'phys.provider-network.kubernetes.io/interface': NIC,
    'phys.provider-network.kubernetes.io/mtu': String(before.link?.mtu),
  });
  assert.ok(await nodePing(GW), 'the node reaches the gateway through the bridge');
  assert.ok(await nodePing(REMOTE), 'and the remote host');

  state.pn = undefined;
  await settle();
  assert.equal(await linkJson(bed.node, PORT), undefined, 'br-phys is gone: the NIC has its name back');
  assert.match((await bed.node.ip(['-d', 'link', 'show', 'dev', NIC])).stdout, /\bveth\b/);
  assert.equal(await settled(NIC), before.detail, '`ip -d addr show dev eth1` as before');
  assert.deepEqual(await routes(bed.node, NIC), before.routes);
  assert.doesNotMatch(await bed.ovs.vsctl(['list-br']), new RegExp(`^${NIC}$`, 'm'));
  assert.deepEqual(state.labels, {});
  assert.ok(await nodePing(REMOTE));
});

test('exchangeLinkName: an altname eth1 on the renamed NIC (as udev keeps old names) is dropped, and the bridge takes the name', async () => {
  const before = { detail: await settled(NIC), routes: await routes(bed.node, NIC) };
  const { state, r, settle } = exchangeNetwork();
  assert.equal((await r.runNow()).changes, 1); // the rename
  await bed.node.ip(['link', 'property', 'add', 'dev', PORT, 'altname', NIC]);
  assert.match((await bed.node.ip(['link', 'show', 'dev', NIC])).stdout, new RegExp(`^\\d+: ${PORT}[@:]`), 'eth1 answers for br-phys');
  await settle();
  assert.doesNotMatch((await bed.node.ip(['link', 'show', 'dev', PORT])).stdout, /altname/);
  assert.equal(await bed.ovs.vsctl(['port-to-br', PORT]), NIC);
  assert.deepEqual(await routes(bed.node, NIC), before.routes);
  assert.ok(await nodePing(REMOTE), 'the node reaches the remote host through the bridge');
  state.pn = undefined;
  await settle();
  assert.equal(await linkJson(bed.node, PORT), undefined);
  assert.equal(await settled(NIC), before.detail, '`ip -d addr show dev eth1` as before');
});
