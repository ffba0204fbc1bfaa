// Centralized gateway on a two-node bed (issue 12, "Centralized gateway"): a `gatewayType: centralized` subnet with
// `gatewayNode: <node>:<ip>` and natOutgoing. The stand-in controller reroutes the subnet's traffic to the gateway
// node's ovn0 (as kube-ovn-controller does); the gateway node's agent SNATs it to the given IP, the other node's
// agent installs no SNAT for it. An external namespace linked to both nodes shows what each node sent. Moving the
// gateway to the other node moves the SNAT with it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type BedNode } from '../bed/bed.ts';
import { addAddress } from '../bed/netns.ts';
import type { NodeAgent } from '../e2e/agent-harness.ts';
import { agentPod, iptablesSave, listen, measure, nodeBed, startAgent, udpUntilSeen, type Listener, type NodeBed, type Pod, downNodeBed } from './lib.ts';

let nb: NodeBed;
let n1: BedNode;
let n2: BedNode;
const agents: NodeAgent[] = [];
let l: Listener;
const pods: Pod[] = [];
// the SNAT IPs given in gatewayNode: a second address on each node's link to the external host
const SNAT1 = '192.168.77.11';
const SNAT2 = '192.168.78.11';
const snatRule = (ip: string) => new RegExp(`^-A OVN-POSTROUTING -s 10\\.50\\.0\\.0/16 -m set ! --match-set ovn40subnets dst -j SNAT --to-source ${ip.replaceAll('.', '\\.')} --random-fully$`, 'm');
const anySnat = /^-A OVN-POSTROUTING -s 10\.50\.0\.0\/16 .*-j SNAT/m;

before(async () => {
  nb = await nodeBed({ nodes: 2 });
  [n1, n2] = nb.bed.nodes as [BedNode, BedNode];
  await addAddress(n1.ns, 'koand-ext', `${SNAT1}/24`);
  await addAddress(n2.ns, 'koand-ext', `${SNAT2}/24`);
  await nb.bed.controller!.createSubnet({ name: 'central', cidrBlock: '10.50.0.0/16',
    extraSpec: { gatewayType: 'centralized', gatewayNode: `${n1.name}:${SNAT1}`, natOutgoing: true } });
  agents.push(...await Promise.all([startAgent(nb.bed, n1), startAgent(nb.bed, n2)]));
  l = await listen(nb.ext, 'udp', 9000);
  pods.push(await agentPod(nb.bed, agents[0]!, 'g1', 'central'), await agentPod(nb.bed, agents[1]!, 'g2', 'central'));
});

after(() => downNodeBed(nb, async () => {
  await l?.stop();
  await Promise.all(agents.map((a) => a.stop()));
}));

test('the gateway node SNATs the subnet to the given IP, for pods of both nodes; the other node has no SNAT for it', async () => {
  assert.match(await iptablesSave(n1), snatRule(SNAT1));
  assert.doesNotMatch(await iptablesSave(n2), anySnat);
  for (const [i, p] of pods.entries()) {
    const seen = await udpUntilSeen(p.pod.ns, l, nb.uplinks[0]!.extIp, 9000, `central-${i}`);
    assert.equal(seen.from, SNAT1, `pod on node${i + 1} leaves through node1 with the gateway IP`);
  }
});

test('moving the gateway to the other node moves the SNAT: node2 SNATs to its IP, node1 drops its rule', async () => {
  await nb.bed.controller!.updateSubnet('central', { gatewayNode: `${n2.name}:${SNAT2}` });
  const ms = await measure('SNAT moved to node2', async () =>
    snatRule(SNAT2).test(await iptablesSave(n2)) && !anySnat.test(await iptablesSave(n1)), 20_000);
  console.log(`# gateway moved: SNAT rules in place on both nodes ${ms} ms after the Subnet update`);
  for (const [i, p] of pods.entries()) {
    const seen = await udpUntilSeen(p.pod.ns, l, nb.uplinks[1]!.extIp, 9000, `moved-${i}`);
    assert.equal(seen.from, SNAT2, `pod on node${i + 1} now leaves through node2 with its gateway IP`);
  }
});
