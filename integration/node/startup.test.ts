// Node start-up on the real bed (issue 12, "What must be shown", first item): after the agent starts with the
// stand-in controller's node annotations, the node namespace has ovn0 with the annotated MAC, IP and MTU, on br-int
// with the node's LSP as iface-id; the node pings a pod and connects to a port the pod listens on (what a kubelet
// probe needs); OVS external_ids:ovn-encap-ip is the node's IP, the Node is annotated with its chassis, and the
// NetworkUnavailable condition says the join gateway answered.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type BedNode } from '../bed/bed.ts';
import { ping } from '../bed/netns.ts';
import { addressesOf, ifaceExternalIds, type NodeAgent } from '../e2e/agent-harness.ts';
import { agentPod, listen, nodeBed, startAgent, tcpConnects, type NodeBed, type Pod, downNodeBed } from './lib.ts';
import { lspUpState } from '../bed/ovn.ts';

let nb: NodeBed;
let node: BedNode;
let agent: NodeAgent;
let pod: Pod;

before(async () => {
  nb = await nodeBed();
  node = nb.bed.nodes[0]!;
  agent = await startAgent(nb.bed, node);
  pod = await agentPod(nb.bed, agent, 's1');
});

after(() => downNodeBed(nb, async () => {
  await agent?.stop();
}));

test('ovn0 has the annotated MAC, IP and MTU, is up, and is an internal port on br-int with the node LSP as iface-id', async () => {
  const j = node.join!;
  const link = JSON.parse((await node.ns.ip(['-j', 'link', 'show', 'ovn0'])).stdout)[0];
  assert.equal(link.address.toLowerCase(), j.mac.toLowerCase());
  assert.equal(link.mtu, nb.bed.mtu);
  assert.ok(link.flags.includes('UP'), `ovn0 flags ${link.flags}`);
  assert.deepEqual(await addressesOf(node.ns, 'ovn0'), [`${j.ips[0]}/16`]);
  assert.equal(await node.ovs.vsctl(['port-to-br', 'ovn0']), 'br-int');
  assert.equal(await node.ovs.vsctl(['get', 'interface', 'ovn0', 'type']), 'internal');
  const ids = await ifaceExternalIds(node, 'ovn0');
  assert.equal(ids?.['iface-id'], `node-${node.name}`);
  assert.equal(ids?.['iface-id'], j.lsp);
  assert.equal(ids?.['ovn-installed'], 'true', 'ovn-controller bound the node LSP');
  assert.equal(await lspUpState(nb.bed.central, j.lsp), 'up');
});

test('from the node namespace: ping to a pod IP, and a TCP connect to a port the pod listens on', async () => {
  const r = await ping(node.ns, pod.ip, { count: 3, minReceived: 2 });
  assert.ok(r.ok, r.output);
  const l = await listen(pod.pod.ns, 'tcp', 8080);
  assert.ok(await tcpConnects(node.ns, pod.ip, 8080), 'TCP connect node -> pod:8080');
  const seen = await l.next((x) => x.proto === 'tcp', 'the pod saw the connection');
  // the host route's src: the node's InternalIP, as upstream (the reply comes back through the node policy)
  assert.equal(seen.from, nb.uplinks[0]!.nodeIp);
  await l.stop();
});

test('ovn-encap-ip is the node IP, the Node carries its chassis, NetworkUnavailable is False (join gateway reachable)', async () => {
  assert.equal((await node.ovs.vsctl(['get', 'open_vswitch', '.', 'external_ids:ovn-encap-ip'])).replaceAll('"', ''), nb.uplinks[0]!.nodeIp);
  assert.equal((await node.ovs.vsctl(['get', 'open_vswitch', '.', 'external_ids:ovn-encap-ip-default'])).replaceAll('"', ''), nb.uplinks[0]!.nodeIp);
  const n = await nb.bed.kube!.api.get(`/api/v1/nodes/${node.name}`);
  assert.equal(n.metadata.annotations['ovn.kubernetes.io/chassis'], node.ovn.chassis);
  assert.equal(await nb.bed.central.sbctl(['--bare', '--columns=name', 'find', 'chassis', `name=${node.ovn.chassis}`]), node.ovn.chassis);
  const c = n.status.conditions.find((x: { type: string }) => x.type === 'NetworkUnavailable');
  assert.equal(c?.status, 'False', JSON.stringify(c));
  assert.equal(c?.reason, 'JoinSubnetGatewayReachable');
});
