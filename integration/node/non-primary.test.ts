// Non-primary CNI mode on the real bed (issue 12, "Non-primary mode"): the agent runs in primary mode first (its
// chains, jumps and sets are there), then restarts with --non-primary-cni-mode on the same node. What the first run
// left is removed once: no OVN-* chain or jump, no ovn40*/ovn60* set, and iptables-save shows no rule of ours (IPv4
// and IPv6). A foreign rule stays. A Kube-OVN attachment NIC (provider <nad>.<ns>.ovn, what Multus asks for when
// Flannel or Calico is the primary CNI) is still wired and reaches its gateway.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type BedNode } from '../bed/bed.ts';
import { ping } from '../bed/netns.ts';
import { newPod, podCall, type NodeAgent } from '../e2e/agent-harness.ts';
import { iptablesSave, nodeBed, startAgent, type NodeBed, downNodeBed } from './lib.ts';

let nb: NodeBed;
let node: BedNode;
let agent: NodeAgent | undefined;
const OURS = /OVN-|ovn40|ovn60|kube-ovn|ovn-subnet-gateway|0x4000|0x90001|0x90002|dport 6081|dport 4789/;

before(async () => {
  nb = await nodeBed();
  node = nb.bed.nodes[0]!;
  await nb.bed.controller!.createSubnet({ name: 'attach', cidrBlock: '172.18.0.0/16', provider: 'attach.default.ovn' });
});

after(() => downNodeBed(nb, async () => {
  await agent?.stop();
}));

test('primary mode, then non-primary: nothing of ours is left in iptables or ipset; a foreign rule stays', async () => {
  agent = await startAgent(nb.bed, node);
  assert.match(await iptablesSave(node), /^-A POSTROUTING -m comment --comment "kube-ovn postrouting rules" -j OVN-POSTROUTING$/m);
  assert.match((await node.ns.exec(['ipset', 'list', '-n'])).stdout, /^ovn40subnets$/m);
  await node.ns.exec(['iptables', '-w', '5', '-t', 'nat', '-A', 'POSTROUTING', '-s', '192.0.2.0/24', '-j', 'RETURN']);
  const dir = agent.dir;
  await agent.stop();
  agent = await startAgent(nb.bed, node, { dir, args: ['--non-primary-cni-mode'] });
  await agent.waitForLog(/non-primary CNI mode/);
  for (const family of [4, 6] as const) {
    const save = await iptablesSave(node, family);
    const left = save.split('\n').filter((l) => OURS.test(l));
    assert.deepEqual(left, [], `IPv${family}: no chain, jump or rule of ours`);
  }
  assert.doesNotMatch((await node.ns.exec(['ipset', 'list', '-n'])).stdout, /^ovn[46]0/m);
  assert.match(await iptablesSave(node), /^-A POSTROUTING -s 192\.0\.2\.0\/24 -j RETURN$/m, 'the foreign rule is still there');
  // and it stays so: the resync (2 s) puts nothing back
  await new Promise((r) => setTimeout(r, 5000));
  assert.deepEqual((await iptablesSave(node)).split('\n').filter((l) => OURS.test(l)), []);
});

test('non-primary mode: a Kube-OVN attachment NIC is wired and reaches its gateway', async () => {
  assert.ok(agent, 'the non-primary agent runs');
  const p = await newPod(nb.bed, node, 'np1');
  const a = await nb.bed.controller!.allocatePod(p.namespace, p.name, { provider: 'attach.default.ovn' });
  const r = await podCall('ADD', agent, p, { ifName: 'net1', netconf: { provider: 'attach.default.ovn' } });
  assert.equal(r.code, 0, `${r.stdout} ${r.stderr}`);
  assert.deepEqual(r.json.ips.map((x: { address: string }) => x.address), [`${a.ips[0]}/16`]);
  const g = await ping(p.ns, '172.18.0.1');
  assert.ok(g.ok, g.output);
  const d = await podCall('DEL', agent, p, { ifName: 'net1', netconf: { provider: 'attach.default.ovn' } });
  assert.equal(d.code, 0, d.stdout);
});
