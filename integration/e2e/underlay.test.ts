// Provider networks end to end: two bed nodes (kube-apiserver, OVS userspace datapath, OVN) whose third NIC eth2 (eth1 is the bed's tunnel underlay)
// is a veth into a "switch" namespace (a Linux bridge that also owns the physical gateway 172.30.50.1/24), and the
// real agent on each node. A ProviderNetwork is applied, one node is excluded, the network is deleted; the NICs,
// the node labels, the mappings and the Events are checked at each stage. On the underlay subnet, a LoadBalancer
// Service annotated with it gets its external-LB flows on the provider bridge, and wire traffic passes them.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { leaks, up, type Bed, type BedNode } from '../bed/bed.ts';
import { cleanupAll, createNetns, newPrefix, onCleanup, ping, type Netns } from '../bed/netns.ts';
import { waitFor } from '../bed/exec.ts';
import { buildShim, newPod, podCall, startNodeAgent, type NodeAgent } from './agent-harness.ts';

const PN = '/apis/kubeovn.io/v1/provider-networks';
const label = (k: string): string => `phys.provider-network.kubernetes.io/${k}`;
let bed: Bed;
let sw: Netns;
let prefix = '';
const agents: NodeAgent[] = [];
const nodeIp = (i: number): string => `172.30.50.1${i}`;

interface NicState { detail: string; routes: string; mac: string }
const before0: NicState[] = [];

async function nicState(n: BedNode, dev = 'eth2'): Promise<NicState> {
  const detail = (await n.ns.ip(['-d', 'addr', 'show', 'dev', dev])).stdout;
  const routes = (await n.ns.ip(['-4', 'route', 'show', 'table', 'all'])).stdout.split('\n').filter((l) => / dev eth2\b/.test(l)).sort().join('\n');
  const mac = JSON.parse((await n.ns.ip(['-j', 'link', 'show', dev])).stdout)[0].address as string;
  return { detail, routes, mac };
}

const labelsOf = async (n: BedNode): Promise<Record<string, string>> => {
  const node = await bed.kube!.api.get(`/api/v1/nodes/${n.name}`);
  return Object.fromEntries(Object.entries(node.metadata.labels ?? {}).filter(([k]) => k.startsWith('phys.'))) as Record<string, string>;
};

before(async () => {
  buildShim();
  prefix = newPrefix('koaul');
  bed = await up({ prefix, nodes: 2 });
  sw = await createNetns(`${prefix}sw`);
  await sw.ip(['link', 'add', 'br0', 'type', 'bridge']);
  await sw.ip(['link', 'set', 'br0', 'up']);
  await sw.ip(['addr', 'add', '172.30.50.1/24', 'brd', '+', 'dev', 'br0']);
  await sw.ip(['addr', 'add', '10.200.0.1/32', 'dev', 'lo']);
  for (const [i, n] of bed.nodes.entries()) {
    await n.ns.ip(['link', 'add', 'eth2', 'type', 'veth', 'peer', 'name', `n${i}`, 'netns', sw.name]);
    await sw.ip(['link', 'set', `n${i}`, 'master', 'br0', 'up']);
    await sw.exec(['ethtool', '-K', `n${i}`, 'tx', 'off']);
    await n.ns.ip(['link', 'set', 'eth2', 'up']);
    await n.ns.ip(['addr', 'add', `${nodeIp(i)}/24`, 'brd', '+', 'dev', 'eth2']);
    // a default route of its own metric (the bed's namespaces keep theirs), a gateway route and a link route
    await n.ns.ip(['route', 'add', 'default', 'via', '172.30.50.1', 'dev', 'eth2', 'metric', '1000']);
    await n.ns.ip(['route', 'add', '10.200.0.0/16', 'via', '172.30.50.1', 'dev', 'eth2', 'metric', '100']);
    await n.ns.ip(['route', 'add', '10.201.0.0/16', 'dev', 'eth2', 'scope', 'link']);
    // the kernel's link-local IPv6 address is tentative for a while after the link comes up: compare after DAD
    await waitFor(`DAD on ${n.name} eth2`, async () => !(await n.ns.ip(['-6', 'addr', 'show', 'dev', 'eth2'])).stdout.includes('tentative'), 10_000);
    before0.push(await nicState(n));
    const dir = mkdtempSync(`/tmp/${prefix}ul-${i}-`);
    onCleanup({ label: `journal dir ${dir}`, run: async () => rmSync(dir, { recursive: true, force: true }), runSync: () => rmSync(dir, { recursive: true, force: true }) });
    agents.push(await startNodeAgent(bed, n, { args: [`--underlay-journal-dir=${join(dir, 'journal')}`] }));
  }
});

after(async () => {
  try {
    for (const a of agents) await a.stop();
    await bed?.down();
  } finally {
    await cleanupAll();
  }
  if (prefix) assert.deepEqual(leaks(prefix), { netns: [], tmpDirs: [], processes: [] });
});

test('apply a ProviderNetwork: both NICs move onto br-phys with their addresses, routes and MAC; labels, mappings, Events', async () => {
  await bed.kube!.api.post(PN, { apiVersion: 'kubeovn.io/v1', kind: 'ProviderNetwork', metadata: { name: 'phys' }, spec: { defaultInterface: 'eth2' } });
  for (const [i, n] of bed.nodes.entries()) {
    const labels = await waitFor(`ready label on ${n.name}`, async () => { const l = await labelsOf(n); return l[label('ready')] === 'true' && l; }, 30_000);
    assert.deepEqual(labels, { [label('ready')]: 'true', [label('interface')]: 'eth2', [label('mtu')]: '1500' });
    const br = await nicState(n, 'br-phys');
    assert.equal(br.mac, before0[i]!.mac);
    assert.match(br.detail, new RegExp(`inet ${nodeIp(i).replaceAll('.', '\\.')}/24 brd 172\\.30\\.50\\.255 scope global br-phys`));
    const brRoutes = (await n.ns.ip(['-4', 'route', 'show', 'table', 'all'])).stdout.split('\n').filter((l) => / dev br-phys\b/.test(l))
      .map((l) => l.replaceAll('br-phys', 'eth2')).sort().join('\n');
    assert.equal(brRoutes, before0[i]!.routes);
    assert.doesNotMatch((await n.ns.ip(['-4', 'addr', 'show', 'dev', 'eth2'])).stdout, /inet /);
    assert.equal(await n.ovs.vsctl(['port-to-br', 'eth2']), 'br-phys');
    assert.equal(await n.ovs.vsctl(['get', 'Port', 'eth2', 'trunks']), '[0]');
    assert.equal(await n.ovs.vsctl(['get', 'Bridge', 'br-phys', 'external_ids:vendor']), 'kube-ovn');
    assert.match(await n.ovs.vsctl(['get', 'Open_vSwitch', '.', 'external_ids:ovn-bridge-mappings']), /phys:br-phys/);
    assert.match(await n.ovs.vsctl(['get', 'Open_vSwitch', '.', 'external_ids:ovn-chassis-mac-mappings']), /phys:[0-9a-f:]{17}/);
    assert.ok((await ping(sw, nodeIp(i), { count: 3, intervalS: 0.2 })).ok, `the switch pings ${nodeIp(i)}`);
  }
  const events = await waitFor('InitOVSBridgeSucceeded events', async () => {
    const ev = (await bed.kube!.api.get('/api/v1/namespaces/default/events')).items as { reason: string; involvedObject: { kind: string; name: string }; source: { host: string } }[];
    const ok = ev.filter((e) => e.reason === 'InitOVSBridgeSucceeded' && e.involvedObject.kind === 'ProviderNetwork' && e.involvedObject.name === 'phys');
    return ok.length >= 2 && ok;
  }, 10_000);
  assert.deepEqual(new Set(events.map((e) => e.source.host)), new Set(bed.nodes.map((n) => n.name)));
});

test('an underlay pod on each node (subnet with vlan, OVN localnet) pings the physical gateway, a host behind it and the other pod', async () => {
  const c = bed.controller!;
  await c.createSubnet({ name: 'ul', cidrBlock: '172.30.50.0/24', gateway: '172.30.50.1', extraSpec: { vlan: 'vl0' },
    excludeIps: ['172.30.50.1', nodeIp(0), nodeIp(1)] });
  // as upstream's controller for an underlay subnet without a logical gateway: no router port, a localnet port instead
  await bed.central.nbctl(['--if-exists', 'lrp-del', 'ovn-cluster-ul', '--', '--if-exists', 'lsp-del', 'ul-ovn-cluster']);
  await bed.central.nbctl(['lsp-add', 'ul', 'localnet.ul', '--', 'lsp-set-type', 'localnet.ul', 'localnet', '--', 'lsp-set-addresses', 'localnet.ul', 'unknown',
    '--', 'lsp-set-options', 'localnet.ul', 'network_name=phys']);
  const pods = [];
  for (const [i, n] of bed.nodes.entries()) {
    const p = await newPod(bed, n, `ul${i}`);
    const a = await c.allocatePod(p.namespace, p.name, { subnet: 'ul' });
    await bed.kube!.api.mergePatch(`/api/v1/namespaces/${p.namespace}/pods/${p.name}`, { metadata: { annotations: { 'ovn.kubernetes.io/provider_network': 'phys' } } });
    const r = await podCall('ADD', agents[i]!, p);
    assert.equal(r.code, 0, `ADD ${p.name}: ${r.stdout} ${r.stderr}`);
    const link = JSON.parse((await p.ns.ip(['-j', 'link', 'show', 'eth0'])).stdout)[0];
    assert.equal(link.mtu, 1500, 'MTU from the provider network label');
    assert.match((await p.ns.ip(['route', 'show', 'default'])).stdout, /default via 172\.30\.50\.1 dev eth0/);
    assert.equal(await n.ovs.vsctl(['port-to-br', 'patch-localnet.ul-to-br-int']), 'br-phys');
    pods.push({ p, ip: a.ips[0]! });
  }
  for (const [i, { p }] of pods.entries()) {
    for (const dst of ['172.30.50.1', '10.200.0.1', pods[1 - i]!.ip]) {
      assert.ok((await ping(p.ns, dst, { count: 3, intervalS: 0.2, minReceived: 2 })).ok, `${p.name} pings ${dst}`);
    }
  }
  for (const [i, { p }] of pods.entries()) assert.equal((await podCall('DEL', agents[i]!, p)).code, 0);
});

test('external LB address: a Service annotated with the subnet gets its flows on br-phys; a SYN from the wire hits them; deleting the Service removes them', async () => {
  const c = bed.controller!;
  const n = bed.nodes[0]!;
  const api = bed.kube!.api;
  // the Vlan the subnet names (the planner resolves subnet -> Vlan -> provider network), and a pod, so that
  // ovn-controller makes the localnet patch port on this node
  await api.post('/apis/kubeovn.io/v1/vlans', { apiVersion: 'kubeovn.io/v1', kind: 'Vlan', metadata: { name: 'vl0' }, spec: { id: 0, provider: 'phys' } });
  const p = await newPod(bed, n, 'ullb');
  await c.allocatePod(p.namespace, p.name, { subnet: 'ul' });
  await api.mergePatch(`/api/v1/namespaces/${p.namespace}/pods/${p.name}`, { metadata: { annotations: { 'ovn.kubernetes.io/provider_network': 'phys' } } });
  assert.equal((await podCall('ADD', agents[0]!, p)).code, 0);
  const ofport = async (iface: string) => Number(await n.ovs.vsctl(['get', 'Interface', iface, 'ofport']));
  const nic = await ofport('eth2');
  const patch = await waitFor('the localnet patch port', async () => { const x = await ofport('patch-localnet.ul-to-br-int').catch(() => 0); return x > 0 && x; }, 30_000);
  await api.mergePatch('/apis/kubeovn.io/v1/subnets/ul', { spec: { enableExternalLBAddress: true } });
  const svc = '/api/v1/namespaces/default/services';
  await api.post(svc, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'lb1', annotations: { 'ovn.kubernetes.io/service_external_ip_from_subnet': 'ul' } },
    spec: { type: 'LoadBalancer', allocateLoadBalancerNodePorts: false, ports: [{ name: 'http', port: 80, protocol: 'TCP' }, { name: 'dns', port: 53, protocol: 'UDP' }] } });
  await api.mergePatch(`${svc}/lb1/status`, { status: { loadBalancer: { ingress: [{ ip: '172.30.50.200' }] } } });
  const ours = async (stats = false) => (await n.ovs.ofctl([...(stats ? [] : ['--no-stats']), '--no-names', 'dump-flows', 'br-phys', 'cookie=0x1000/-1']))
    .split('\n').map((l) => l.trim()).filter((l) => l.includes('cookie=0x1000')).sort();
  const want = [
    `cookie=0x1000, priority=10000,tcp,in_port=${nic},nw_dst=172.30.50.200,tp_dst=80 actions=mod_dl_dst:00:00:00:01:00:01,output:${patch}`,
    `cookie=0x1000, priority=10000,udp,in_port=${nic},nw_dst=172.30.50.200,tp_dst=53 actions=mod_dl_dst:00:00:00:01:00:01,output:${patch}`,
  ];
  await waitFor('the two flows on br-phys', async () => JSON.stringify(await ours()) === JSON.stringify(want), 30_000);
  // a TCP SYN to the address from the wire (the switch's MAC table does not know the address's MAC: flooded to the
  // NICs) passes the flow
  await sw.ip(['neigh', 'replace', '172.30.50.200', 'lladdr', '02:00:00:00:00:c8', 'dev', 'br0', 'nud', 'permanent']);
  try {
    await sw.exec(['timeout', '2', 'bash', '-c', 'echo > /dev/tcp/172.30.50.200/80'], { allowFail: true });
    const tcp = (await ours(true)).find((l) => l.includes(',tcp,'))!;
    assert.ok(Number(/n_packets=(\d+)/.exec(tcp)?.[1]) > 0, tcp);
  } finally {
    await sw.ip(['neigh', 'del', '172.30.50.200', 'dev', 'br0']);
  }
  await api.delete(`${svc}/lb1`);
  await waitFor('the flows gone with the Service', async () => (await ours()).length === 0, 30_000);
  assert.equal((await podCall('DEL', agents[0]!, p)).code, 0);
  await api.mergePatch('/apis/kubeovn.io/v1/subnets/ul', { spec: { enableExternalLBAddress: null } });
  await api.delete('/apis/kubeovn.io/v1/vlans/vl0');
});

test('the physical gateway drops ICMP to itself: the ARP gateway check passes; an address a host on the wire holds fails the ADD naming its MAC', async () => {
  const c = bed.controller!;
  const n = bed.nodes[0]!;
  const withAnnotation = async (name: string) => {
    const p = await newPod(bed, n, name);
    const a = await c.allocatePod(p.namespace, p.name, { subnet: 'ul' });
    await bed.kube!.api.mergePatch(`/api/v1/namespaces/${p.namespace}/pods/${p.name}`, { metadata: { annotations: { 'ovn.kubernetes.io/provider_network': 'phys' } } });
    return { p, ip: a.ips[0]! };
  };
  await sw.exec(['iptables', '-w', '-I', 'INPUT', '-p', 'icmp', '-d', '172.30.50.1', '-j', 'DROP']);
  try {
    const { p } = await withAnnotation('ularp');
    const r = await podCall('ADD', agents[0]!, p);
    assert.equal(r.code, 0, `ADD ${p.name}: ${r.stdout} ${r.stderr}`);
    assert.equal((await ping(p.ns, '172.30.50.1', { count: 2, intervalS: 0.2, minReceived: 1 })).ok, false, 'the gateway does drop ICMP');
    assert.equal((await podCall('DEL', agents[0]!, p)).code, 0);
  } finally {
    await sw.exec(['iptables', '-w', '-D', 'INPUT', '-p', 'icmp', '-d', '172.30.50.1', '-j', 'DROP']);
  }
  // a host on the physical network already uses the address the pod was given
  const { p, ip } = await withAnnotation('ulconf');
  const swMac = JSON.parse((await sw.ip(['-j', 'link', 'show', 'br0'])).stdout)[0].address as string;
  await sw.ip(['addr', 'add', `${ip}/32`, 'dev', 'br0']);
  try {
    const r = await podCall('ADD', agents[0]!, p);
    assert.notEqual(r.code, 0, 'the ADD fails');
    assert.match(r.stdout, new RegExp(`${ip.replaceAll('.', '\\.')} has already been used by host with MAC ${swMac}`));
    assert.equal((await n.ovs.vsctl(['--columns=name', 'find', 'Interface', `external_ids:iface-id=${p.name}.${p.namespace}`])).trim(), '', 'rolled back');
    assert.equal((await podCall('DEL', agents[0]!, p)).code, 0);
  } finally {
    await sw.ip(['addr', 'del', `${ip}/32`, 'dev', 'br0']);
  }
});

test('VLAN 100: a Vlan in the network\'s status.vlans adds 100 to the trunks; a pod on a VLAN 100 subnet pings its gateway across the switch, tagged', async () => {
  const c = bed.controller!;
  // the physical side: this kernel has no 802.1Q devices (nor bridge VLAN filtering), so the VLAN 100 gateway
  // 172.30.100.1 is a host on the far side of the switch: an OVS access port (tag 100) on the second node's
  // provider bridge. Tagged frames cross the Linux bridge of the switch namespace untouched.
  const n2 = bed.nodes[1]!;
  await n2.ovs.vsctl(['add-port', 'br-phys', 'gw100', '--', 'set', 'interface', 'gw100', 'type=internal', '--', 'set', 'port', 'gw100', 'tag=100']);
  await waitFor('gw100 link', async () => (await n2.ns.ip(['link', 'show', 'gw100'], { allowFail: true })).code === 0, 10_000);
  await n2.ns.ip(['addr', 'add', '172.30.100.1/24', 'dev', 'gw100']);
  await n2.ns.ip(['link', 'set', 'gw100', 'up']);
  await n2.ns.exec(['ethtool', '-K', 'gw100', 'tx', 'off']);
  // what kube-ovn-controller does: the Vlan CR, and its name in the provider network's status
  await bed.kube!.api.post('/apis/kubeovn.io/v1/vlans', { apiVersion: 'kubeovn.io/v1', kind: 'Vlan', metadata: { name: 'vl100' }, spec: { id: 100, provider: 'phys' } });
  await bed.kube!.api.mergePatch(`${PN}/phys/status`, { status: { vlans: ['vl100'] } });
  const n = bed.nodes[0]!;
  for (const x of bed.nodes) await waitFor(`trunks [0, 100] on ${x.name}`, async () => (await x.ovs.vsctl(['get', 'Port', 'eth2', 'trunks'])) === '[0, 100]', 30_000);
  await c.createSubnet({ name: 'ul100', cidrBlock: '172.30.100.0/24', gateway: '172.30.100.1', extraSpec: { vlan: 'vl100' } });
  await bed.central.nbctl(['--if-exists', 'lrp-del', 'ovn-cluster-ul100', '--', '--if-exists', 'lsp-del', 'ul100-ovn-cluster']);
  await bed.central.nbctl(['lsp-add', 'ul100', 'localnet.ul100', '--', 'lsp-set-type', 'localnet.ul100', 'localnet', '--', 'lsp-set-addresses', 'localnet.ul100', 'unknown',
    '--', 'lsp-set-options', 'localnet.ul100', 'network_name=phys', '--', 'set', 'logical_switch_port', 'localnet.ul100', 'tag=100']);
  const p = await newPod(bed, n, 'v100');
  await c.allocatePod(p.namespace, p.name, { subnet: 'ul100' });
  await bed.kube!.api.mergePatch(`/api/v1/namespaces/${p.namespace}/pods/${p.name}`, { metadata: { annotations: { 'ovn.kubernetes.io/provider_network': 'phys', 'ovn.kubernetes.io/vlan_id': '100' } } });
  const r = await podCall('ADD', agents[0]!, p);
  assert.equal(r.code, 0, `ADD ${p.name}: ${r.stdout} ${r.stderr}`);
  assert.ok((await ping(p.ns, '172.30.100.1', { count: 3, intervalS: 0.2, minReceived: 2 })).ok, 'the VLAN 100 pod pings its gateway');
  assert.equal((await podCall('DEL', agents[0]!, p)).code, 0);
  await n2.ovs.vsctl(['del-port', 'br-phys', 'gw100']);
});

test('exclude the second node: its NIC comes back byte for byte and it gets exclude=true; the first node is untouched', async () => {
  const n2 = bed.nodes[1]!;
  await bed.kube!.api.mergePatch(`${PN}/phys`, { spec: { excludeNodes: [n2.name] } });
  await waitFor(`exclude label on ${n2.name}`, async () => (await labelsOf(n2))[label('exclude')] === 'true', 30_000);
  assert.deepEqual(await labelsOf(n2), { [label('exclude')]: 'true' });
  assert.deepEqual(await nicState(n2), before0[1]);
  assert.equal((await n2.ovs.vsctl(['list-br'])).split('\n').includes('br-phys'), false);
  assert.equal((await labelsOf(bed.nodes[0]!))[label('ready')], 'true');
  assert.equal(await bed.nodes[0]!.ovs.vsctl(['port-to-br', 'eth2']), 'br-phys');
});

test('delete the ProviderNetwork: the first node\'s NIC comes back byte for byte; bridge, mappings and labels go', async () => {
  const n1 = bed.nodes[0]!;
  await bed.kube!.api.delete(`${PN}/phys`);
  await waitFor(`labels removed on ${n1.name}`, async () => Object.keys(await labelsOf(n1)).length === 0, 30_000);
  await waitFor('bridge gone', async () => !(await n1.ovs.vsctl(['list-br'])).split('\n').includes('br-phys'), 10_000);
  assert.deepEqual(await nicState(n1), before0[0]);
  const ids = await n1.ovs.vsctl(['get', 'Open_vSwitch', '.', 'external_ids']);
  assert.doesNotMatch(ids, /ovn-bridge-mappings|ovn-chassis-mac-mappings/);
  await waitFor(`labels removed on ${bed.nodes[1]!.name}`, async () => Object.keys(await labelsOf(bed.nodes[1]!)).length === 0, 30_000);
  assert.ok((await ping(sw, nodeIp(0), { count: 3, intervalS: 0.2 })).ok);
});
