// NAT-outgoing policy rules on the real bed (issue 12, "NAT"; user guide §7.24: first match wins, `forward` keeps the
// pod IP, `nat` masquerades). A `natOutgoing: true` subnet and an external host with two addresses (.2 and .3 on the
// same link): one test per action, each compared with the other address, which the rule under test does not match.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type BedNode } from '../bed/bed.ts';
import { cleanupAll } from '../bed/netns.ts';
import type { NodeAgent } from '../e2e/agent-harness.ts';
import { agentPod, iptablesSave, listen, measure, nodeBed, startAgent, udpUntilSeen, type Listener, type NodeBed, type Pod, downNodeBed } from './lib.ts';

let nb: NodeBed;
let node: BedNode;
let agent: NodeAgent;
let l: Listener;
let pod: Pod;
const EXT_A = '192.168.77.2';
const EXT_B = '192.168.77.3';

before(async () => {
  nb = await nodeBed();
  node = nb.bed.nodes[0]!;
  await nb.bed.controller!.createSubnet({ name: 'pol', cidrBlock: '10.42.0.0/16', extraSpec: { natOutgoing: true } });
  agent = await startAgent(nb.bed, node);
  l = await listen(nb.ext, 'udp', 9000);
  pod = await agentPod(nb.bed, agent, 'q1', 'pol');
});

after(() => downNodeBed(nb, async () => {
  await l?.stop();
  await agent?.stop();
}));

/** The marks of the subnet's OVN-NAT-PSUBNET-* chain, in order, once the agent applied them. */
async function waitForPolicy(marks: string[]): Promise<void> {
  const ms = await measure(`policy chain with marks ${marks.join(',')}`, async () => {
    const save = await iptablesSave(node);
    const got = [...save.matchAll(/^-A OVN-NAT-PSUBNET-\S+ .*--set-xmark (0x9000[12])\/0x9000[12]$/gm)].map((m) => m[1]);
    return JSON.stringify(got) === JSON.stringify(marks);
  }, 20_000).catch(async (e) => {
    console.log(await iptablesSave(node));
    console.log(agent.lines.filter((x) => (x.level as number) >= 40 || /reconcil/.test(String(x.msg))).slice(-10).map((x) => JSON.stringify(x)).join('\n'));
    console.log(JSON.stringify(await nb.bed.kube!.api.get('/apis/kubeovn.io/v1/subnets/pol')));
    throw e;
  });
  console.log(`# NAT policy rules applied ${ms} ms after the subnet status changed`);
}

test('a `forward` rule keeps the pod IP for what it matches; the rest is still masqueraded', async () => {
  await nb.bed.controller!.setNatOutgoingPolicyRules('pol', [{ action: 'forward', match: { dstIPs: EXT_A } }]);
  await waitForPolicy(['0x90002']);
  assert.equal((await udpUntilSeen(pod.pod.ns, l, EXT_A, 9000, 'fwd-a')).from, pod.ip, 'matched by forward: pod IP');
  assert.equal((await udpUntilSeen(pod.pod.ns, l, EXT_B, 9000, 'fwd-b')).from, nb.uplinks[0]!.nodeIp, 'no rule: natOutgoing');
});

test('a `nat` rule masquerades what it matches, even when a later `forward` rule matches too (first match wins)', async () => {
  await nb.bed.controller!.setNatOutgoingPolicyRules('pol', [
    { action: 'nat', match: { dstIPs: EXT_B } },
    { action: 'forward', match: { srcIPs: '10.42.0.0/16' } },
  ]);
  await waitForPolicy(['0x90001', '0x90002']);
  assert.equal((await udpUntilSeen(pod.pod.ns, l, EXT_B, 9000, 'nat-b')).from, nb.uplinks[0]!.nodeIp, 'matched by nat first: masqueraded');
  assert.equal((await udpUntilSeen(pod.pod.ns, l, EXT_A, 9000, 'nat-a')).from, pod.ip, 'only the forward rule matches: pod IP');
});
