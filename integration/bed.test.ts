// Harness self-test: proves the bed is real. kube-apiserver answers and our CRDs are Established; the stand-in
// controller annotates a Pod like upstream; two pod namespaces wired by the harness ping each other and their
// logical-router gateway through OVN flows (and the node reaches them over ovn0); a second node works over
// geneve; after down() nothing is left: no namespace, process or temp dir with the bed's prefix.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { leaks, up, type Bed } from './bed/bed.ts';
import { readFileSync } from 'node:fs';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { addRoute, cleanupAll, newPrefix, ping } from './bed/netns.ts';
import { kubeApi, type KubeApiError } from './bed/kubeapi.ts';
import { CRD_FILE } from './bed/kube.ts';
import { lspUpState } from './bed/ovn.ts';

// Reads a kubeconfig (JSON) and GETs /readyz with its client certificate; runs inside a namespace.
const READYZ_FROM_KUBECONFIG = `
const fs = require('node:fs'); const https = require('node:https');
const k = JSON.parse(fs.readFileSync(process.argv[1], 'utf8'));
const u = new URL(k.clusters[0].cluster.server);
https.get({ host: u.hostname, port: u.port, path: '/readyz', ca: fs.readFileSync(k.clusters[0].cluster['certificate-authority']),
  cert: fs.readFileSync(k.users[0].user['client-certificate']), key: fs.readFileSync(k.users[0].user['client-key']) },
  (r) => { let b = ''; r.on('data', (d) => (b += d)); r.on('end', () => console.log(r.statusCode, b)); });
`;

after(async () => {
  await cleanupAll();
});

async function addPod(bed: Bed, name: string, nodeName: string, annotations: Record<string, string> = {}) {
  return bed.kube!.api.post('/api/v1/namespaces/default/pods', {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, namespace: 'default', annotations },
    spec: { nodeName, containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] },
  });
}

test('one-node bed: apiserver + CRDs, annotated pods, pods ping each other, the gateway and ovn0; clean down', async () => {
  const prefix = newPrefix('koab');
  let t = Date.now();
  const bed = await up({ prefix });
  const upMs = Date.now() - t;
  try {
    const api = bed.kube!.api;
    assert.equal(await api.get('/readyz'), 'ok');
    const crds = (await api.get('/apis/apiextensions.k8s.io/v1/customresourcedefinitions')).items as any[];
    for (const name of ['subnets.kubeovn.io', 'ips.kubeovn.io', 'vlans.kubeovn.io', 'provider-networks.kubeovn.io', 'vpcs.kubeovn.io']) {
      const crd = crds.find((c) => c.metadata.name === name);
      assert.ok(crd, `${name} exists (from ${CRD_FILE})`);
      assert.ok(crd.status.conditions.some((c: any) => c.type === 'Established' && c.status === 'True'), `${name} Established`);
    }
    // RBAC is really on: a valid client certificate without any binding is refused
    const nobody = await bed.kube!.kubeconfigFor('koa-nobody');
    const cfg = JSON.parse(readFileSync(nobody, 'utf8'));
    const weak = kubeApi({
      server: bed.kube!.server, ca: readFileSync(bed.kube!.caFile, 'utf8'),
      cert: readFileSync(cfg.users[0].user['client-certificate'], 'utf8'), key: readFileSync(cfg.users[0].user['client-key'], 'utf8'),
    });
    await assert.rejects(weak.get('/api/v1/nodes'), (e: KubeApiError) => e.status === 403);
    const node = bed.nodes[0]!;
    // the same kubeconfig works from inside the node namespace (its own loopback, relayed to the apiserver)
    const inside = await node.ns.exec([process.execPath, '-e', READYZ_FROM_KUBECONFIG, bed.kube!.kubeconfig]);
    assert.equal(inside.stdout.trim(), '200 ok');
    const subnet = await api.get('/apis/kubeovn.io/v1/subnets/ovn-default');
    assert.equal(subnet.spec.cidrBlock, '10.16.0.0/16');
    assert.equal(subnet.spec.gateway, '10.16.0.1');

    // the admin kubeconfig is consumable by @kubernetes/client-node, as the agent and tests use it
    const kc = new KubeConfig();
    kc.loadFromFile(bed.kube!.kubeconfig);
    const viaClient = await kc.makeApiClient(CoreV1Api).readNode({ name: node.name });
    assert.equal(viaClient.metadata?.name, node.name);

    // node annotations as upstream's controller writes them (§5.4)
    const nodeObj = await api.get(`/api/v1/nodes/${node.name}`);
    const na = nodeObj.metadata.annotations;
    assert.equal(na['ovn.kubernetes.io/allocated'], 'true');
    assert.equal(na['ovn.kubernetes.io/ip_address'], '100.64.0.2');
    assert.equal(na['ovn.kubernetes.io/cidr'], '100.64.0.0/16');
    assert.equal(na['ovn.kubernetes.io/gateway'], '100.64.0.1');
    assert.equal(na['ovn.kubernetes.io/logical_switch'], 'join');
    assert.equal(na['ovn.kubernetes.io/port_name'], `node-${node.name}`);
    assert.match(na['ovn.kubernetes.io/mac_address'], /^00:00:00(:[0-9A-F]{2}){3}$/);

    // the stand-in controller annotates real Pod objects
    const allocs = [];
    for (const name of ['pod1', 'pod2']) {
      await addPod(bed, name, node.name);
      allocs.push(await bed.controller!.allocatePod('default', name));
    }
    const pod1 = await api.get('/api/v1/namespaces/default/pods/pod1');
    const pa = pod1.metadata.annotations;
    assert.equal(pa['ovn.kubernetes.io/allocated'], 'true');
    assert.equal(pa['ovn.kubernetes.io/routed'], 'true');
    assert.equal(pa['ovn.kubernetes.io/ip_address'], '10.16.0.2');
    assert.equal(pa['ovn.kubernetes.io/cidr'], '10.16.0.0/16');
    assert.equal(pa['ovn.kubernetes.io/gateway'], '10.16.0.1');
    assert.equal(pa['ovn.kubernetes.io/logical_switch'], 'ovn-default');
    assert.equal(pa['ovn.kubernetes.io/logical_router'], 'ovn-cluster');
    assert.equal(pa['ovn.kubernetes.io/pod_nic_type'], 'veth-pair');
    assert.equal(pa['ovn.kubernetes.io/mac_address'], allocs[0]!.mac);
    const ipcr = await api.get('/apis/kubeovn.io/v1/ips/pod1.default');
    assert.equal(ipcr.spec.v4IpAddress, '10.16.0.2');
    assert.equal(ipcr.spec.nodeName, node.name);
    assert.equal(await bed.central.nbctl(['lsp-get-addresses', 'pod1.default']), `${allocs[0]!.mac} 10.16.0.2`);

    // wired by the harness: veth + OVS port with iface-id; traffic flows only through OVN's flows (br-int is secure)
    const p1 = await bed.wirePod(node, 'pod1', allocs[0]!);
    const p2 = await bed.wirePod(node, 'pod2', allocs[1]!);
    assert.equal(await node.ovs.vsctl(['get', 'bridge', 'br-int', 'fail_mode']), 'secure');
    await bed.central.nbctl(['--wait=hv', 'sync']);
    assert.equal(await lspUpState(bed.central, 'pod1.default'), 'up');
    const pp = await ping(p1.ns, '10.16.0.3');
    assert.ok(pp.ok, `pod1 -> pod2: ${pp.output}`);
    const gw = await ping(p2.ns, '10.16.0.1');
    assert.ok(gw.ok, `pod2 -> gateway: ${gw.output}`);
    // an address no LSP owns gets no answer (the logical switch is not a learning bridge)
    const miss = await ping(p1.ns, '10.16.0.99', { count: 1, waitS: 0.5 });
    assert.equal(miss.received, 0);
    await bed.wireOvn0(node);
    await addRoute(node.ns, '10.16.0.0/16', '100.64.0.1', 'ovn0');
    const fromNode = await ping(node.ns, '10.16.0.2', { count: 2 });
    assert.ok(fromNode.ok, `node ovn0 -> pod1 (after a route via the join gateway): ${fromNode.output}`);
  } finally {
    t = Date.now();
    await bed.down();
    await bed.down(); // idempotent
    console.log(`# bed up ${upMs} ms, down ${Date.now() - t} ms`);
  }
  assert.deepEqual(leaks(prefix), { netns: [], tmpDirs: [], processes: [] });
});

test('two-node bed: geneve between nodes, dual-stack subnet, an OVN attachment NIC; clean down', async () => {
  const prefix = newPrefix('koab');
  const bed = await up({ prefix, nodes: 2 });
  try {
    const [n1, n2] = [bed.nodes[0]!, bed.nodes[1]!];
    const c = bed.controller!;
    const api = bed.kube!.api;
    // each node registered its chassis with a geneve encap on its own underlay address
    for (const n of bed.nodes) {
      assert.equal(await bed.central.sbctl(['--bare', '--columns=ip', 'find', 'encap', `chassis_name=${n.name}`, 'type=geneve']), n.encapIp);
    }
    await c.createSubnet({ name: 'dual', cidrBlock: '10.17.0.0/16,fd00:10:17::/64' });
    await c.createSubnet({ name: 'attach', cidrBlock: '172.18.0.0/16', provider: 'attach.default.ovn' });
    await addPod(bed, 'a', n1.name);
    await addPod(bed, 'b', n2.name);
    const a = await c.allocatePod('default', 'a');
    const b = await c.allocatePod('default', 'b', { subnet: 'dual' });
    const att = await c.allocatePod('default', 'a', { provider: 'attach.default.ovn' });

    const bAnn = (await api.get('/api/v1/namespaces/default/pods/b')).metadata.annotations;
    assert.equal(bAnn['ovn.kubernetes.io/ip_address'], '10.17.0.2,fd00:10:17::2');
    assert.equal(bAnn['ovn.kubernetes.io/cidr'], '10.17.0.0/16,fd00:10:17::/64');
    assert.equal(bAnn['ovn.kubernetes.io/gateway'], '10.17.0.1,fd00:10:17::1');
    const aAnn = (await api.get('/api/v1/namespaces/default/pods/a')).metadata.annotations;
    assert.equal(aAnn['attach.default.ovn.kubernetes.io/ip_address'], '172.18.0.2');
    assert.equal(aAnn['attach.default.ovn.kubernetes.io/logical_switch'], 'attach');
    assert.equal(aAnn['attach.default.ovn.kubernetes.io/allocated'], 'true');
    assert.equal(aAnn['ovn.kubernetes.io/ip_address'], '10.16.0.2', 'primary NIC untouched by the attachment');
    assert.equal(att.lsp, 'a.default.attach.default.ovn');
    assert.equal((await api.get('/apis/kubeovn.io/v1/ips/a.default.attach.default.ovn')).spec.subnet, 'attach');

    const pa = await bed.wirePod(n1, 'a', a);
    await bed.wirePod(n1, 'a', att, { ns: pa.ns, ifname: 'net1' });
    const pb = await bed.wirePod(n2, 'b', b);
    await bed.central.nbctl(['--wait=hv', 'sync']);
    // across the geneve tunnel and through the router (different subnets on different nodes)
    const ab = await ping(pa.ns, '10.17.0.2', { count: 3, minReceived: 2 });
    assert.ok(ab.ok, `a(node1) -> b(node2): ${ab.output}`);
    const gw6 = await ping(pb.ns, 'fd00:10:17::1', { count: 3, minReceived: 2 });
    assert.ok(gw6.ok, `b -> IPv6 gateway: ${gw6.output}`);
    const attGw = await ping(pa.ns, '172.18.0.1', { count: 2 });
    assert.ok(attGw.ok, `a net1 -> attachment gateway: ${attGw.output}`);
    assert.match(await n1.ovs.vsctl(['--columns=name', 'find', 'interface', 'type=geneve']), /ovn-/);
  } finally {
    await bed.down();
  }
  assert.deepEqual(leaks(prefix), { netns: [], tmpDirs: [], processes: [] });
});
