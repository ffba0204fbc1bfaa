// NAT outgoing on the real bed (issue 12, "NAT"): pod traffic to an "external" host leaves OVN through the node's
// ovn0 (the stand-in controller's distributed-gateway policy) and the node's iptables. The external namespace is
// reachable only through the node and has no route into the cluster, so what it sees is what the node sent: from
// a `natOutgoing: true` subnet the node's IP (MASQUERADE), from a `natOutgoing: false` subnet the pod's own IP.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { leaks } from '../bed/bed.ts';
import { cleanupAll } from '../bed/netns.ts';
import type { NodeAgent } from '../e2e/agent-harness.ts';
import { agentPod, ipsetList, listen, measure, nodeBed, startAgent, udpUntilSeen, type Listener, type NodeBed, downNodeBed } from './lib.ts';

let nb: NodeBed;
let agent: NodeAgent;
let l: Listener;

before(async () => {
  nb = await nodeBed();
  await nb.bed.controller!.createSubnet({ name: 'nat', cidrBlock: '10.40.0.0/16', extraSpec: { natOutgoing: true } });
  await nb.bed.controller!.createSubnet({ name: 'nonat', cidrBlock: '10.41.0.0/16', extraSpec: { natOutgoing: false } });
  agent = await startAgent(nb.bed, nb.bed.nodes[0]!);
  l = await listen(nb.ext, 'udp', 9000);
});

after(() => downNodeBed(nb, async () => {
  await l?.stop();
  await agent?.stop();
}));

test('natOutgoing: true: the external host sees the node IP', async () => {
  const node = nb.bed.nodes[0]!;
  assert.match(await ipsetList(node, 'ovn40subnets-nat'), /^10\.40\.0\.0\/16$/m);
  const p = await agentPod(nb.bed, agent, 'n1', 'nat');
  const seen = await udpUntilSeen(p.pod.ns, l, nb.uplinks[0]!.extIp, 9000, 'from-nat');
  assert.equal(seen.from, nb.uplinks[0]!.nodeIp);
});

test('natOutgoing: false: the external host sees the pod IP', async () => {
  const node = nb.bed.nodes[0]!;
  assert.doesNotMatch(await ipsetList(node, 'ovn40subnets-nat'), /^10\.41\./m);
  const p = await agentPod(nb.bed, agent, 'n2', 'nonat');
  const seen = await udpUntilSeen(p.pod.ns, l, nb.uplinks[0]!.extIp, 9000, 'from-nonat');
  assert.equal(seen.from, p.ip);
});

test('turning natOutgoing on for the second subnet masquerades its next flow', async () => {
  await nb.bed.controller!.updateSubnet('nonat', { natOutgoing: true });
  const node = nb.bed.nodes[0]!;
  const ms = await measure('10.41.0.0/16 in ovn40subnets-nat', async () => /^10\.41\.0\.0\/16$/m.test(await ipsetList(node, 'ovn40subnets-nat')), 20_000);
  console.log(`# natOutgoing switched on: the subnet is in ovn40subnets-nat after ${ms} ms`);
  // each datagram is a new flow (a new process, a new source port), so no conntrack entry of the earlier test decides
  const p = await agentPod(nb.bed, agent, 'n3', 'nonat');
  const seen = await udpUntilSeen(p.pod.ns, l, nb.uplinks[0]!.extIp, 9000, 'from-nonat-now-nat');
  assert.equal(seen.from, nb.uplinks[0]!.nodeIp);
});
