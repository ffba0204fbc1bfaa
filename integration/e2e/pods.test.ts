// End to end on the real bed (kube-apiserver + etcd, OVS userspace datapath, OVN, the stand-in controller): the
// real agent process runs in the node's namespace and the real CNI executable wires pods the way a runtime calls
// it. Two pods ping each other and their gateway through OVN; a dual-stack pod reaches both gateways; a Kube-OVN
// attachment NIC (provider <nad>.<ns>.ovn) gets net1 on the second subnet; the Debian macvlan plugin with
// `ipam.type: kube-ovn` gets its address from our agent. One bed and one agent for the whole file.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { leaks, up, type Bed, type BedNode } from '../bed/bed.ts';
import type { Allocation } from '../bed/controller.ts';
import { cleanupAll, newPrefix, ping } from '../bed/netns.ts';
import {
  addressesOf, buildShim, cniCall, ifaceExternalIds, leftovers, newPod, podCall, qosCount, startNodeAgent, type NodeAgent, type TestPod,
} from './agent-harness.ts';
import { lspUpState } from '../bed/ovn.ts';

let bed: Bed;
let node: BedNode;
let agent: NodeAgent;
let prefix: string;

before(async () => {
  buildShim();
  prefix = newPrefix('koae');
  bed = await up({ prefix });
  node = bed.nodes[0]!;
  const c = bed.controller!;
  await c.createSubnet({ name: 'dual', cidrBlock: '10.18.0.0/16,fd00:10:18::/64' });
  await c.createSubnet({ name: 'attach', cidrBlock: '172.18.0.0/16', provider: 'attach.default.ovn' });
  await c.createSubnet({ name: 'mv', cidrBlock: '192.168.50.0/24', provider: 'mv.default' });
  agent = await startNodeAgent(bed, node);
});

after(async () => {
  try {
    await agent?.stop();
    await bed?.down();
  } finally {
    await cleanupAll();
  }
  if (prefix) assert.deepEqual(leaks(prefix), { netns: [], tmpDirs: [], processes: [] });
});

const hostVeth = (p: TestPod, ifName = 'eth0') => (ifName === 'eth0' ? `${p.containerId.slice(0, 12)}_h` : `${p.containerId.slice(0, 12 - ifName.length)}_${ifName}_h`);

async function assertGone(pods: TestPod[], ifaceIds: string[]): Promise<void> {
  const left = await leftovers(node, { containerIds: pods.map((p) => p.containerId), ifaceIds });
  assert.deepEqual(left, { ports: [], qos: [], links: [], ifaceIds: [] }, 'nothing of these pods is left on the node');
  assert.equal(await qosCount(node), 0, 'no QoS row');
}

test('two pods on one node, wired through the real executable, ping each other and their gateway through OVN; CHECK; DEL', async () => {
  const pods = [await newPod(bed, node, 'a1'), await newPod(bed, node, 'a2')];
  const allocs: Allocation[] = [];
  const adds: unknown[] = [];
  for (const p of pods) allocs.push(await bed.controller!.allocatePod(p.namespace, p.name));
  for (const [i, p] of pods.entries()) {
    const r = await podCall('ADD', agent, p);
    assert.equal(r.code, 0, `ADD ${p.name}: ${r.stdout} ${r.stderr}`);
    adds.push(r.json);
    const a = allocs[i]!;
    assert.deepEqual(r.json.ips.map((x: { address: string }) => x.address), [`${a.ips[0]}/16`]);
    assert.equal(r.json.ips[0].gateway, '10.16.0.1');
    assert.equal(r.json.interfaces[0].name, 'eth0');
    assert.equal(r.json.interfaces[0].mac.toLowerCase(), a.mac.toLowerCase());
    assert.equal(r.json.interfaces[0].sandbox, p.ns.path);
    // in the pod: eth0 with the controller's MAC and address, MTU, default route via the gateway
    assert.deepEqual(await addressesOf(p.ns, 'eth0'), [`${a.ips[0]}/16`]);
    const link = JSON.parse((await p.ns.ip(['-j', 'link', 'show', 'eth0'])).stdout)[0];
    assert.equal(link.address.toLowerCase(), a.mac.toLowerCase());
    assert.equal(link.mtu, bed.mtu);
    assert.match((await p.ns.ip(['route', 'show', 'default'])).stdout, /default via 10\.16\.0\.1 dev eth0/);
    // on the node: the OVS port with upstream's external_ids, bound by ovn-controller
    const ids = await ifaceExternalIds(node, hostVeth(p));
    assert.ok(ids, `OVS interface ${hostVeth(p)} exists`);
    assert.equal(ids['iface-id'], `${p.name}.${p.namespace}`);
    assert.equal(ids['vendor'], 'kube-ovn');
    assert.equal(ids['pod_name'], p.name);
    assert.equal(ids['pod_namespace'], p.namespace);
    assert.equal(ids['ovn-installed'], 'true');
    assert.equal(await lspUpState(bed.central, `${p.name}.${p.namespace}`), 'up');
  }
  // the pods really talk through OVN (br-int is fail-mode secure: only OVN's flows forward)
  const p12 = await ping(pods[0]!.ns, allocs[1]!.ips[0]!);
  assert.ok(p12.ok, `a1 -> a2: ${p12.output}`);
  const p21 = await ping(pods[1]!.ns, allocs[0]!.ips[0]!);
  assert.ok(p21.ok, `a2 -> a1: ${p21.output}`);
  for (const p of pods) {
    const gw = await ping(p.ns, '10.16.0.1');
    assert.ok(gw.ok, `${p.name} -> gateway: ${gw.output}`);
  }
  // a second ADD without DEL is refused and leaves the working pod alone
  const again = await podCall('ADD', agent, pods[0]!);
  assert.equal(again.code, 1, again.stdout);
  assert.match(again.json.msg, /already wired/);
  assert.deepEqual(await addressesOf(pods[0]!.ns, 'eth0'), [`${allocs[0]!.ips[0]}/16`]);
  assert.ok((await ping(pods[0]!.ns, '10.16.0.1')).ok, 'a1 still reaches its gateway after the refused ADD');
  // CHECK with the ADD's result as prevResult passes on the live pod, and notices an address removed behind our back
  const ok = await podCall('CHECK', agent, pods[0]!, { netconf: { prevResult: adds[0] } });
  assert.deepEqual([ok.code, ok.stdout], [0, ''], ok.stderr);
  await pods[1]!.ns.ip(['addr', 'del', `${allocs[1]!.ips[0]}/16`, 'dev', 'eth0']);
  const drift = await podCall('CHECK', agent, pods[1]!, { netconf: { prevResult: adds[1] } });
  assert.equal(drift.code, 1, drift.stdout);
  assert.match(drift.json.msg + (drift.json.details ?? ''), /address|10\.16/);
  // DEL removes everything the ADD created
  for (const p of pods) {
    const d = await podCall('DEL', agent, p);
    assert.deepEqual([d.code, d.stdout], [0, ''], d.stderr);
    assert.deepEqual(JSON.parse((await p.ns.ip(['-j', 'link', 'show'])).stdout).map((l: { ifname: string }) => l.ifname), ['lo']);
  }
  await assertGone(pods, pods.map((p) => `${p.name}.${p.namespace}`));
});

test('a dual-stack pod gets both families and reaches both gateways', async () => {
  const p = await newPod(bed, node, 'd1');
  const a = await bed.controller!.allocatePod(p.namespace, p.name, { subnet: 'dual' });
  assert.equal(a.ips.length, 2);
  const r = await podCall('ADD', agent, p);
  assert.equal(r.code, 0, `${r.stdout} ${r.stderr}`);
  assert.deepEqual(r.json.ips.map((x: { address: string }) => x.address), [`${a.ips[0]}/16`, `${a.ips[1]}/64`]);
  assert.deepEqual(r.json.ips.map((x: { gateway: string }) => x.gateway), ['10.18.0.1', 'fd00:10:18::1']);
  assert.deepEqual((await addressesOf(p.ns, 'eth0')).sort(), [`${a.ips[0]}/16`, `${a.ips[1]}/64`].sort());
  assert.match((await p.ns.ip(['-4', 'route', 'show', 'default'])).stdout, /default via 10\.18\.0\.1 dev eth0/);
  assert.match((await p.ns.ip(['-6', 'route', 'show', 'default'])).stdout, /default via fd00:10:18::1 dev eth0/);
  // DAD ran (not NODAD: no "nodad" flag) and started without the kernel's random delay of up to 1 s
  assert.doesNotMatch((await p.ns.ip(['-6', 'addr', 'show', 'dev', 'eth0'])).stdout, /nodad|tentative|dadfailed/);
  assert.equal((await p.ns.exec(['cat', '/proc/sys/net/ipv6/conf/eth0/router_solicitation_delay'])).stdout.trim(), '0');
  const g4 = await ping(p.ns, '10.18.0.1');
  assert.ok(g4.ok, `IPv4 gateway: ${g4.output}`);
  const g6 = await ping(p.ns, 'fd00:10:18::1', { count: 3, minReceived: 2 });
  assert.ok(g6.ok, `IPv6 gateway: ${g6.output}`);
  const d = await podCall('DEL', agent, p);
  assert.equal(d.code, 0, d.stdout);
  await assertGone([p], [`${p.name}.${p.namespace}`]);
});

test('a Kube-OVN attachment NIC (provider attach.default.ovn) gets net1 on the second subnet', async () => {
  const p = await newPod(bed, node, 'm1');
  const primary = await bed.controller!.allocatePod(p.namespace, p.name);
  const att = await bed.controller!.allocatePod(p.namespace, p.name, { provider: 'attach.default.ovn' });
  assert.equal(att.subnet, 'attach');
  const r0 = await podCall('ADD', agent, p);
  assert.equal(r0.code, 0, `eth0: ${r0.stdout}`);
  const r1 = await podCall('ADD', agent, p, { ifName: 'net1', netconf: { provider: 'attach.default.ovn' } });
  assert.equal(r1.code, 0, `net1: ${r1.stdout} ${r1.stderr}`);
  assert.equal(r1.json.interfaces[0].name, 'net1');
  assert.deepEqual(r1.json.ips.map((x: { address: string }) => x.address), [`${att.ips[0]}/16`]);
  assert.deepEqual(await addressesOf(p.ns, 'net1'), [`${att.ips[0]}/16`]);
  assert.deepEqual(await addressesOf(p.ns, 'eth0'), [`${primary.ips[0]}/16`]);
  // the default route stays on eth0 (default_route rule: only eth0 unless annotated)
  const defaults = (await p.ns.ip(['-4', 'route', 'show', 'default'])).stdout.trim().split('\n');
  assert.deepEqual(defaults, ['default via 10.16.0.1 dev eth0']);
  const ids = await ifaceExternalIds(node, hostVeth(p, 'net1'));
  assert.equal(ids?.['iface-id'], `${p.name}.${p.namespace}.attach.default.ovn`);
  const g = await ping(p.ns, '172.18.0.1');
  assert.ok(g.ok, `net1 -> attachment gateway: ${g.output}`);
  const g0 = await ping(p.ns, '10.16.0.1');
  assert.ok(g0.ok, `eth0 -> default gateway: ${g0.output}`);
  for (const ifName of ['net1', 'eth0']) {
    const d = await podCall('DEL', agent, p, ifName === 'net1' ? { ifName, netconf: { provider: 'attach.default.ovn' } } : {});
    assert.equal(d.code, 0, `DEL ${ifName}: ${d.stdout}`);
  }
  await assertGone([p], [`${p.name}.${p.namespace}`, `${p.name}.${p.namespace}.attach.default.ovn`]);
});

test('the Debian macvlan plugin with ipam.type kube-ovn gets its address from our agent', async () => {
  const p = await newPod(bed, node, 'v1');
  const a = await bed.controller!.allocatePod(p.namespace, p.name, { provider: 'mv.default' });
  // a master link of our own inside the node namespace (a veth: this kernel has no dummy module); never the real eth0
  await node.ns.ip(['link', 'add', 'koaem0', 'type', 'veth', 'peer', 'name', 'koaem1']);
  try {
    await node.ns.ip(['link', 'set', 'koaem0', 'up']);
    const conf = { cniVersion: '1.0.0', name: 'mv', type: 'macvlan', master: 'koaem0', mode: 'bridge',
      ipam: { type: 'kube-ovn', server_socket: agent.socket, provider: 'mv.default' } };
    const r = await podCall('ADD', agent, p, { ifName: 'net1', plugin: '/usr/lib/cni/macvlan', rawNetconf: conf });
    assert.equal(r.code, 0, `${r.stdout} ${r.stderr}`);
    assert.equal(r.json.interfaces[0].name, 'net1');
    assert.deepEqual(r.json.ips.map((x: { address: string }) => x.address), [`${a.ips[0]}/24`]);
    assert.deepEqual(await addressesOf(p.ns, 'net1'), [`${a.ips[0]}/24`]);
    const link = JSON.parse((await p.ns.ip(['-d', '-j', 'link', 'show', 'net1'])).stdout)[0];
    assert.equal(link.linkinfo.info_kind, 'macvlan');
    // IPAM only: our agent created no OVS port for it
    assert.equal((await node.ovs.vsctl(['list-ports', 'br-int'])).split('\n').filter((x) => x.startsWith(p.containerId.slice(0, 8))).length, 0);
    const d = await podCall('DEL', agent, p, { ifName: 'net1', plugin: '/usr/lib/cni/macvlan', rawNetconf: conf });
    assert.equal(d.code, 0, `${d.stdout} ${d.stderr}`);
    const gone = await p.ns.ip(['link', 'show', 'net1'], { allowFail: true });
    assert.notEqual(gone.code, 0, 'net1 removed by macvlan DEL');
  } finally {
    await node.ns.ip(['link', 'del', 'koaem0'], { allowFail: true });
  }
});

test('CNI results are stable for the upstream CNI versions (0.3.1 form of the same pod)', async () => {
  const p = await newPod(bed, node, 'o1');
  const a = await bed.controller!.allocatePod(p.namespace, p.name);
  const r = await cniCall('ADD', { agent, netns: p.ns.path, containerId: p.containerId, podName: p.name, podUid: p.uid, netconf: { cniVersion: '0.3.1' } });
  assert.equal(r.code, 0, r.stdout);
  assert.equal(r.json.cniVersion, '0.3.1');
  assert.equal(r.json.ips[0].version, '4');
  assert.equal(r.json.ips[0].address, `${a.ips[0]}/16`);
  const d = await cniCall('DEL', { agent, netns: p.ns.path, containerId: p.containerId, podName: p.name, netconf: { cniVersion: '0.3.1' } });
  assert.equal(d.code, 0, d.stdout);
  await assertGone([p], [`${p.name}.${p.namespace}`]);
});
