// Provider networks end to end: two bed nodes (kube-apiserver, OVS userspace datapath, OVN) whose third NIC eth2 (eth1 is the bed's tunnel underlay)
// is a veth into a "switch" namespace (a Linux bridge that also owns the physical gateway 172.30.50.1/24), and the
// real agent on each node. A ProviderNetwork is applied, one node is excluded, the network is deleted; the NICs,
// the node labels, the mappings and the Events are checked at each stage. On the underlay subnet, a LoadBalancer
// Service annotated with it gets its external-LB flows on the provider bridge, and wire traffic passes them. Two more
// VLAN subnets route through the OVN router: one with logicalGateway (the gateway is the router port) and one with
// u2oInterconnection (the u2o IP on the router port is the pods' gateway to overlay pods).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { leaks, up, type Bed, type BedNode } from '../bed/bed.ts';
import { cleanupAll, createNetns, newPrefix, onCleanup, ping, settledAddr, type Netns } from '../bed/netns.ts';
import { waitFor } from '../bed/exec.ts';
import { firstFrame } from '../bed/capture.ts';
import { buildShim, newPod, podCall, startNodeAgent, type NodeAgent } from './agent-harness.ts';
import { parseFdbShow } from '../../agent/src/node/underlay/fdb.ts';

const PN = '/apis/kubeovn.io/v1/provider-networks';
const label = (k: string): string => `phys.provider-network.kubernetes.io/${k}`;
let bed: Bed;
let sw: Netns;
let prefix = '';
const agents: NodeAgent[] = [];
const nodeIp = (i: number): string => `172.30.50.1${i}`;

interface NicState { detail: string; routes: string; mac: string }
const before0: NicState[] = [];

/** The NIC once its addresses have settled: a link that went down and up has a `tentative` link-local for a while. */
async function nicState(n: BedNode, dev = 'eth2'): Promise<NicState> {
  const detail = await settledAddr(n.ns, dev);
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
    // the kernel's link-local IPv6 address is tentative for a while after the link comes up: nicState waits for DAD
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

/** The default VPC's router, as the stand-in controller names it. */
const LR = 'ovn-cluster';
const podPath = (p: { namespace: string; name: string }): string => `/api/v1/namespaces/${p.namespace}/pods/${p.name}`;
/** what upstream's controller writes on a pod of a VLAN subnet besides the addresses (pod.go: the Vlan's id and provider) */
const vlanAnnotations = { 'ovn.kubernetes.io/provider_network': 'phys', 'ovn.kubernetes.io/vlan_id': '0' };
const hostRoute = async (n: BedNode, cidr: string): Promise<string> => (await n.ns.ip(['-4', 'route', 'show', cidr])).stdout.trim();
const neighMac = async (ns: Netns, ip: string): Promise<string | undefined> =>
  (JSON.parse((await ns.ip(['-j', 'neigh', 'show', ip, 'dev', 'eth0'])).stdout) as { lladdr?: string }[])[0]?.lladdr?.toLowerCase();
/** The first frame matching `filter` that tcpdump (-e: with the MACs) sees on the switch's port `port`; `send` runs until one is seen. */
const onTheWire = (port: string, filter: string, send: () => Promise<unknown>): Promise<string> => firstFrame(sw, port, filter, send);
const ifaceGone = async (n: BedNode, p: { namespace: string; name: string }): Promise<boolean> =>
  (await n.ovs.vsctl(['--columns=name', 'find', 'Interface', `external_ids:iface-id=${p.name}.${p.namespace}`])).trim() === '';

test('logicalGateway: a pod on a VLAN subnet whose gateway is the OVN router port pings it through OVN; the gateway check is ICMP; the node routes the subnet through ovn0', async () => {
  const c = bed.controller!;
  const api = bed.kube!.api;
  const n = bed.nodes[0]!;
  const CIDR = '172.30.60.0/24';
  const GW = '172.30.60.1';
  await api.post('/apis/kubeovn.io/v1/vlans', { apiVersion: 'kubeovn.io/v1', kind: 'Vlan', metadata: { name: 'vllg' }, spec: { id: 0, provider: 'phys' } });
  // as upstream's controller for a VLAN subnet with logicalGateway (handleAddOrUpdateSubnet: needRouter; CreateLogicalSwitch):
  // the router port ovn-cluster-lg with <gateway>/<prefix> and its peer lg-ovn-cluster, and, in the default VPC, the
  // overlay branch of reconcileOvnDefaultVpcRoute (addCommonRoutesForSubnet: 31000 allow ip4.dst == <cidr>; the
  // distributed gateway's 29000 reroute to the pod's node, per node upstream, per pod in the stand-in); the stand-in
  // makes all of these. Plus what reconcileVlan adds to every VLAN subnet: the localnet
  // port localnet.lg (CreateLocalnetLogicalSwitchPort: addresses unknown, network_name=<provider>, no tag for id 0).
  // Nothing on the physical side owns the gateway address.
  await c.createSubnet({ name: 'lg', cidrBlock: CIDR, gateway: GW, extraSpec: { vlan: 'vllg', logicalGateway: true } });
  await bed.central.nbctl(['lsp-add', 'lg', 'localnet.lg', '--', 'lsp-set-type', 'localnet.lg', 'localnet', '--', 'lsp-set-addresses', 'localnet.lg', 'unknown',
    '--', 'lsp-set-options', 'localnet.lg', 'network_name=phys', '--', 'set', 'logical_switch_port', 'localnet.lg', `external_ids:ipv4_network="${CIDR}"`]);
  const lrpMac = (await bed.central.nbctl(['get', 'Logical_Router_Port', `${LR}-lg`, 'mac'])).replaceAll('"', '').toLowerCase();
  // the node routes a logical-gateway subnet through ovn0 (spec §5.5: only underlay subnets without it are skipped)
  const route = await waitFor('the host route of lg on ovn0', async () => { const r = await hostRoute(n, CIDR); return r.includes('dev ovn0') && r; }, 30_000);
  assert.match(route, /^172\.30\.60\.0\/24 via 100\.64\.0\.1 dev ovn0 proto static src /);

  const withAddress = async (name: string) => {
    const p = await newPod(bed, n, name);
    const a = await c.allocatePod(p.namespace, p.name, { subnet: 'lg' });
    await api.mergePatch(podPath(p), { metadata: { annotations: vlanAnnotations } });
    return { p, ip: a.ips[0]! };
  };
  const { p, ip } = await withAddress('lg0');
  const r = await podCall('ADD', agents[0]!, p);
  assert.equal(r.code, 0, `ADD ${p.name}: ${r.stdout} ${r.stderr}`);
  const link = JSON.parse((await p.ns.ip(['-j', 'link', 'show', 'eth0'])).stdout)[0];
  assert.equal(link.mtu, bed.mtu, 'the node MTU: a logical-gateway subnet ignores the provider network\'s mtu label (1500)');
  assert.match((await p.ns.ip(['route', 'show', 'default'])).stdout, /default via 172\.30\.60\.1 dev eth0/);
  assert.ok((await ping(p.ns, GW, { count: 3, intervalS: 0.2, minReceived: 2 })).ok, 'the pod pings its OVN gateway');
  assert.equal(await neighMac(p.ns, GW), lrpMac, 'the gateway\'s MAC is the router port\'s');
  assert.ok((await ping(n.ns, ip, { count: 3, intervalS: 0.2, minReceived: 2 })).ok, 'the node reaches the pod through ovn0');

  // the gateway check is ICMP echo, not ARP: with echo requests to the router port dropped by an ACL (ARP still
  // answered), the pod's own ping fails and so does the next pod's ADD, at its gateway check
  const match = `ip4.dst == ${GW} && icmp4.type == 8`;
  // (--wait=hv: until every ovn-controller has the flows; the datapath's cached flows follow a moment later)
  await bed.central.nbctl(['--wait=hv', 'acl-add', 'lg', 'from-lport', '1001', match, 'drop']);
  try {
    await waitFor('the ACL to drop the pod\'s echo requests', async () => !(await ping(p.ns, GW, { count: 1, waitS: 1 })).ok, 30_000);
    const q = (await withAddress('lgicmp')).p;
    const rq = await podCall('ADD', agents[0]!, q);
    assert.notEqual(rq.code, 0, 'the ADD fails');
    assert.match(rq.stdout, /gateway 172\.30\.60\.1 to answer from 172\.30\.60\.\d+ \(gateway check\)/);
    assert.ok(await ifaceGone(n, q), 'rolled back');
    assert.equal((await podCall('DEL', agents[0]!, q)).code, 0);
    await c.releasePod(q.namespace, q.name);
  } finally {
    await bed.central.nbctl(['acl-del', 'lg', 'from-lport', '1001', match]);
  }
  assert.equal((await podCall('DEL', agents[0]!, p)).code, 0);
  await c.releasePod(p.namespace, p.name);
  await c.deleteSubnet('lg');
  await waitFor('the host route of lg gone', async () => !(await hostRoute(n, CIDR)).includes('ovn0'), 30_000);
  await api.delete('/apis/kubeovn.io/v1/vlans/vllg');
});

test('u2o: a pod on a VLAN subnet with u2oInterconnection fails its ADD until the subnet\'s status names the u2o IP; then its default route is via that IP and it pings an overlay pod on the other node, whose reply crosses the switch', async () => {
  const c = bed.controller!;
  const api = bed.kube!.api;
  const nb = (args: string[]) => bed.central.nbctl(args);
  const [n0, n1] = [bed.nodes[0]!, bed.nodes[1]!];
  const CIDR = '172.30.70.0/24';
  const GW = '172.30.70.1';
  const U2O_IP = '172.30.70.2';
  const U2O_MAC = '0a:00:00:46:00:02';
  const EXCLUDE_AS = 'u2o.u2o_exclude_ip';
  // the subnet's physical gateway, on the switch
  await sw.ip(['addr', 'add', `${GW}/24`, 'dev', 'br0']);
  await api.post('/apis/kubeovn.io/v1/vlans', { apiVersion: 'kubeovn.io/v1', kind: 'Vlan', metadata: { name: 'vlu2o' }, spec: { id: 0, provider: 'phys' } });
  // the stand-in's own IPAM holds the u2o IP (upstream's acquireU2OIP takes the subnet's first free address before any
  // pod), while the CR keeps upstream's default excludeIps, the gateway
  await c.createSubnet({ name: 'u2o', cidrBlock: CIDR, gateway: GW, excludeIps: [U2O_IP], extraSpec: { vlan: 'vlu2o', u2oInterconnection: true, excludeIps: [GW] } });
  // upstream's pass over the subnet (handleAddOrUpdateSubnet), in the default VPC:
  // - the router port exists because u2o is on and the IP allocated (needRouter); CreateLogicalSwitch gives it the u2o
  //   IP with the subnet's prefix and the u2o MAC, in place of the gateway (the stand-in made it with the gateway);
  await nb(['set', 'Logical_Router_Port', `${LR}-u2o`, `networks="${U2O_IP}/24"`, `mac="${U2O_MAC}"`]);
  // - reconcileOvnDefaultVpcRoute takes the underlay branch: no common 31000 allow (the stand-in added one), but
  //   addPolicyRouteForU2OInterconn: 29400 allow ip4.dst == <cidr> (above the overlay pods' 29000 reroutes to their
  //   node, so replies to u2o pods stay in OVN); the address set <subnet>.u2o_exclude_ip.ip4 of the nodes'
  //   InternalIPs and 31000 reroute from the subnet to them via the physical gateway; 29000 reroute from the subnet
  //   via the physical gateway (traffic leaving the cluster);
  await nb(['--if-exists', 'lr-policy-del', LR, '31000', `ip4.dst == ${CIDR}`]);
  const nodeIps: string[] = [];
  for (const x of bed.nodes) {
    const node = await api.get(`/api/v1/nodes/${x.name}`);
    nodeIps.push(...(node.status.addresses as { type: string; address: string }[]).filter((a) => a.type === 'InternalIP').map((a) => a.address));
  }
  await nb(['create', 'Address_Set', `name=${EXCLUDE_AS}.ip4`, `addresses=[${nodeIps.map((ip) => `"${ip}"`).join(',')}]`, 'external_ids:vendor=kube-ovn', 'external_ids:subnet=u2o']);
  await nb(['create', 'Address_Set', `name=${EXCLUDE_AS}.ip6`, 'external_ids:vendor=kube-ovn', 'external_ids:subnet=u2o']);
  const u2oPolicies: [string, string, ...string[]][] = [
    ['29400', `ip4.dst == ${CIDR}`, 'allow'],
    ['31000', `ip4.dst == $${EXCLUDE_AS}.ip4 && ip4.src == ${CIDR}`, 'reroute', GW],
    ['29000', `ip4.src == ${CIDR}`, 'reroute', GW],
  ];
  for (const [prio, match, ...action] of u2oPolicies) await nb(['lr-policy-add', LR, prio, match, ...action]);
  // - reconcileVlan: the localnet port
  await nb(['lsp-add', 'u2o', 'localnet.u2o', '--', 'lsp-set-type', 'localnet.u2o', 'localnet', '--', 'lsp-set-addresses', 'localnet.u2o', 'unknown',
    '--', 'lsp-set-options', 'localnet.u2o', 'network_name=phys', '--', 'set', 'logical_switch_port', 'localnet.u2o', `external_ids:ipv4_network="${CIDR}"`]);
  // the node routes a u2o subnet through ovn0 (§5.5: enableLb is not true)
  const route = await waitFor('the host route of u2o on ovn0', async () => { const r = await hostRoute(n0, CIDR); return r.includes('dev ovn0') && r; }, 30_000);
  assert.match(route, /^172\.30\.70\.0\/24 via 100\.64\.0\.1 dev ovn0 proto static src /);

  // an overlay pod on the other node
  const ov = await newPod(bed, n1, 'u2oov');
  const ova = await c.allocatePod(ov.namespace, ov.name);
  let r = await podCall('ADD', agents[1]!, ov);
  assert.equal(r.code, 0, `ADD ${ov.name}: ${r.stdout} ${r.stderr}`);
  const ovIp = ova.ips[0]!;

  const p = await newPod(bed, n0, 'u2o0');
  const a = await c.allocatePod(p.namespace, p.name, { subnet: 'u2o' });
  await api.mergePatch(podPath(p), { metadata: { annotations: vlanAnnotations } });
  // upstream puts pods of underlay subnets in no distributed-gateway port group (pod.go: only vlan "" or logicalGateway):
  // the stand-in's per-pod 29000 reroute to the node's ovn0 would compete with the subnet's 29000 u2o policy
  await nb(['--if-exists', 'lr-policy-del', LR, '29000', `ip4.src == ${a.ips[0]}`]);
  // the controller has not written status.u2oInterconnectionIP yet (the agent already has the spec: the route above):
  // the ADD fails, as upstream's handleAdd, and changes nothing; the runtime's retry comes later
  r = await podCall('ADD', agents[0]!, p);
  assert.notEqual(r.code, 0, 'no ADD before the u2o IP');
  assert.match(r.stdout, /subnet u2o .*status\.u2oInterconnectionIP/);
  assert.match(r.stdout, /"code":\s*11\b/, 'CNI code 11: try again later');
  assert.ok(await ifaceGone(n0, p), 'nothing wired');
  assert.equal((await podCall('DEL', agents[0]!, p)).code, 0);

  await api.mergePatch('/apis/kubeovn.io/v1/subnets/u2o/status', { status: { u2oInterconnectionIP: U2O_IP, u2oInterconnectionMAC: U2O_MAC, u2oInterconnectionVPC: LR } });
  // the agent has the status once the FDB reconciler puts the u2o MAC on each node's localnet patch port
  for (const x of bed.nodes) {
    await waitFor(`the u2o MAC in br-phys's FDB on ${x.name}`, async () => {
      const ofport = await x.ovs.vsctl(['get', 'Interface', 'patch-localnet.u2o-to-br-int', 'ofport']).catch(() => '');
      return parseFdbShow(await x.ovs.appctl(['fdb/show', 'br-phys']))
        .some((e) => e.static && e.mac === U2O_MAC && (e.port === ofport || e.port === 'patch-localnet.u2o-to-br-int'));
    }, 30_000);
  }
  r = await podCall('ADD', agents[0]!, p);
  assert.equal(r.code, 0, `ADD ${p.name}: ${r.stdout} ${r.stderr}`);
  const link = JSON.parse((await p.ns.ip(['-j', 'link', 'show', 'eth0'])).stdout)[0];
  assert.equal(link.mtu, bed.mtu, 'the node MTU: a u2o subnet ignores the provider network\'s mtu label (1500)');
  assert.match((await p.ns.ip(['route', 'show', 'default'])).stdout, /default via 172\.30\.70\.2 dev eth0/);
  // the request leaves node 0's router into ovn-default (the tunnel); the reply is routed on node 1 into the VLAN
  // switch and goes out its localnet port: across the physical switch, from node 1's chassis MAC to the pod's MAC
  let pinged = false;
  const reply = await onTheWire('n1', `icmp[icmptype] == icmp-echoreply and src host ${ovIp} and dst host ${a.ips[0]}`, async () => {
    const ok = (await ping(p.ns, ovIp, { count: 3, intervalS: 0.2, minReceived: 2 })).ok;
    pinged ||= ok;
  });
  assert.ok(pinged, `the u2o pod pings the overlay pod ${ovIp}`);
  const chassisMac = /phys:([0-9a-f:]{17})/.exec(await n1.ovs.vsctl(['get', 'Open_vSwitch', '.', 'external_ids:ovn-chassis-mac-mappings']))![1]!;
  assert.match(reply, new RegExp(`^\\S+ ${chassisMac} > ${a.mac.toLowerCase()},`), reply);
  assert.equal(await neighMac(p.ns, U2O_IP), U2O_MAC, 'through the u2o router port');
  assert.ok((await ping(ov.ns, a.ips[0]!, { count: 3, intervalS: 0.2, minReceived: 2 })).ok, 'the overlay pod pings the u2o pod');

  assert.equal((await podCall('DEL', agents[0]!, p)).code, 0);
  assert.equal((await podCall('DEL', agents[1]!, ov)).code, 0);
  await c.releasePod(p.namespace, p.name);
  await c.releasePod(ov.namespace, ov.name);
  await c.deleteSubnet('u2o');
  for (const [prio, match] of u2oPolicies) await nb(['--if-exists', 'lr-policy-del', LR, prio, match]);
  await nb(['destroy', 'Address_Set', `${EXCLUDE_AS}.ip4`, '--', 'destroy', 'Address_Set', `${EXCLUDE_AS}.ip6`]);
  await waitFor('the host route of u2o gone', async () => !(await hostRoute(n0, CIDR)).includes('ovn0'), 30_000);
  await api.delete('/apis/kubeovn.io/v1/vlans/vlu2o');
  await sw.ip(['addr', 'del', `${GW}/24`, 'dev', 'br0']);
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
