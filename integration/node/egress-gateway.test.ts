// External egress gateway policy routing on the real bed (issue 12, "Host routes and policy routing"; spec §5.5):
// the agent's ip rules and table routes in the node namespace, driven by Subnet, Pod and OVS port events, repaired
// from netlink rule/route events, removed when no subnet or pod wants them, and never touching a rule not ours.
//
// The node is linked to an "egw" namespace (192.168.90.2, the external egress gateway) that also holds 198.51.100.7:
// the node has no route to that address, so a pod's datagram to it arrives there only through the policy rule and the
// table's default route. Bounds are generous (20 s) because the machine is shared; the latencies are printed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type BedNode } from '../bed/bed.ts';
import { addAddress, createNetns, type Netns } from '../bed/netns.ts';
import { podCall, type NodeAgent } from '../e2e/agent-harness.ts';
import { agentPod, listen, measure, nodeBed, RESYNC_S, startAgent, udpUntilSeen, type Listener, type NodeBed, type Pod, downNodeBed } from './lib.ts';

let nb: NodeBed;
let node: BedNode;
let agent: NodeAgent;
let egw: Netns;
let l: Listener;
let pod: Pod;
const BOUND_MS = 20_000;
const EGW = '192.168.90.2';
const FAR = '198.51.100.7';
// rules another party left before the agent started: one with an extra selector (never ours), one of a plain shape no
// subnet wants (not ours either), one of exactly the shape the centralized subnet will want (adopted then)
const FOREIGN = ['1500:\tfrom 10.42.0.0/16 iif lo lookup 1000', '1500:\tfrom 10.99.0.0/16 lookup 1000'];

const rules = async (): Promise<string[]> => (await node.ns.ip(['rule', 'show'])).stdout.trim().split('\n');
const table = async (id: number): Promise<string[]> => (await node.ns.ip(['route', 'show', 'table', String(id)])).stdout.split('\n').map((x) => x.trim()).filter(Boolean);
const has = async (line: string): Promise<boolean> => (await rules()).includes(line);

before(async () => {
  nb = await nodeBed();
  node = nb.bed.nodes[0]!;
  egw = await createNetns(`${nb.bed.prefix}egw`);
  await node.ns.ip(['link', 'add', 'koand-egw', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', egw.name]);
  await addAddress(node.ns, 'koand-egw', '192.168.90.1/24');
  await node.ns.ip(['link', 'set', 'koand-egw', 'up']);
  await addAddress(egw, 'eth0', `${EGW}/24`);
  await addAddress(egw, 'lo', `${FAR}/32`);
  await egw.ip(['link', 'set', 'eth0', 'up']);
  await egw.ip(['link', 'set', 'lo', 'up']);
  await egw.ip(['route', 'add', '10.42.0.0/16', 'via', '192.168.90.1']);
  await node.ns.ip(['rule', 'add', 'from', '10.42.0.0/16', 'iif', 'lo', 'lookup', '1000', 'priority', '1500']);
  await node.ns.ip(['rule', 'add', 'from', '10.99.0.0/16', 'lookup', '1000', 'priority', '1500']);
  await node.ns.ip(['rule', 'add', 'from', '10.43.0.0/16', 'lookup', '1001', 'priority', '1400']);
  await node.ns.ip(['route', 'add', '203.0.113.0/24', 'via', EGW, 'table', '1000']); // not a default route: not ours
  await nb.bed.controller!.createSubnet({ name: 'egwd', cidrBlock: '10.42.0.0/16',
    extraSpec: { natOutgoing: false, externalEgressGateway: EGW, policyRoutingTableID: 1000, policyRoutingPriority: 1500 } });
  await nb.bed.controller!.createSubnet({ name: 'egwc', cidrBlock: '10.43.0.0/16',
    extraSpec: { natOutgoing: false, gatewayType: 'centralized', gatewayNode: 'elsewhere', externalEgressGateway: EGW,
      policyRoutingTableID: 1001, policyRoutingPriority: 1400 } });
  agent = await startAgent(nb.bed, node);
  l = await listen(egw, 'udp', 9000);
});

after(() => downNodeBed(nb, async () => {
  await l?.stop();
  await agent?.stop();
}));

test('distributed: the pod wired here gets `from <pod IP> lookup 1000` (proto 107) and table 1000 its default route; its traffic reaches the egress gateway', async () => {
  pod = await agentPod(nb.bed, agent, 'e1', 'egwd');
  const want = `1500:\tfrom ${pod.ip} lookup 1000 proto 107`;
  const ms = await measure('pod rule', () => has(want), BOUND_MS);
  console.log(`# pod rule present ${ms} ms after the ADD returned`);
  assert.ok((await table(1000)).includes(`default via ${EGW} dev koand-egw proto static`), (await table(1000)).join('\n'));
  const seen = await udpUntilSeen(pod.pod.ns, l, FAR, 9000, 'via-egw');
  assert.equal(seen.from, pod.ip, 'the egress gateway sees the pod IP: the node routed it by the policy rule');
});

test('centralized: no rule while another node is the gateway; the CIDR rule once this node is (the untagged twin adopted)', async () => {
  assert.equal((await rules()).some((x) => x.includes('10.43.0.0/16') && x.includes('proto 107')), false);
  assert.ok(await has('1400:\tfrom 10.43.0.0/16 lookup 1001'), 'the untagged rule is not touched while nothing wants it');
  await nb.bed.controller!.updateSubnet('egwc', { gatewayNode: node.name });
  const ms = await measure('centralized rule', async () => (await rules()).filter((x) => x.includes('10.43.0.0/16')).join('|') === '1400:\tfrom 10.43.0.0/16 lookup 1001 proto 107', BOUND_MS);
  console.log(`# centralized rule (adopted) ${ms} ms after the Subnet update`);
  assert.ok((await table(1001)).includes(`default via ${EGW} dev koand-egw proto static`));
});

test('`ip rule del` of our rule and `ip route del` of the table route are repaired (netlink events, else the resync)', async () => {
  const want = `1500:\tfrom ${pod.ip} lookup 1000 proto 107`;
  await node.ns.ip(['rule', 'del', 'from', `${pod.ip}/32`, 'lookup', '1000', 'priority', '1500', 'protocol', '107']);
  const ms = await measure('rule back', () => has(want), BOUND_MS);
  console.log(`# deleted rule back after ${ms} ms (resync period ${RESYNC_S} s)`);
  await node.ns.ip(['route', 'del', 'default', 'table', '1000']);
  const ms2 = await measure('table route back', async () => (await table(1000)).includes(`default via ${EGW} dev koand-egw proto static`), BOUND_MS);
  console.log(`# deleted table route back after ${ms2} ms`);
});

test('the pod\'s DEL removes its rule; removing the gateway from a subnet and deleting the other remove rules and table routes; foreign rules and routes stay', async () => {
  const del = await podCall('DEL', agent, pod.pod);
  assert.equal(del.code, 0, del.stderr);
  const ms = await measure('pod rule gone', async () => !(await rules()).some((x) => x.includes(pod.ip)), BOUND_MS);
  console.log(`# pod rule removed ${ms} ms after the DEL returned`);
  await nb.bed.controller!.updateSubnet('egwc', { externalEgressGateway: null });
  await nb.bed.controller!.deleteSubnet('egwd');
  await measure('no rule of ours, no table default route', async () => !(await rules()).some((x) => x.includes('proto 107'))
    && !(await table(1000)).some((x) => x.startsWith('default')) && !(await table(1001)).some((x) => x.startsWith('default')), BOUND_MS);
  const now = await rules();
  for (const f of FOREIGN) assert.ok(now.includes(f), `foreign rule kept: ${f}\n${now.join('\n')}`);
  assert.deepEqual(await table(1000), [`203.0.113.0/24 via ${EGW} dev koand-egw`], 'the foreign route in table 1000 stays');
});
