// Host routes on the real bed (issue 12, "Routes"): a subnet created after start-up gets its route on ovn0 after its
// Subnet event; a route deleted with `ip route del` comes back; a deleted subnet loses its route. The bounds are
// generous (20 s) because this machine is shared and slow; a deleted route comes back on the kernel's route event
// (node/kernel-feed.ts), else at the resync (`--node-resync-period`, 2 s here); the measured latency is printed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type BedNode } from '../bed/bed.ts';
import { ping } from '../bed/netns.ts';
import type { NodeAgent } from '../e2e/agent-harness.ts';
import { agentPod, measure, nodeBed, RESYNC_S, routeTo, startAgent, type NodeBed, downNodeBed } from './lib.ts';

let nb: NodeBed;
let node: BedNode;
let agent: NodeAgent;
let podIp = '';
const BOUND_MS = 20_000;

before(async () => {
  nb = await nodeBed();
  node = nb.bed.nodes[0]!;
  agent = await startAgent(nb.bed, node);
});

after(() => downNodeBed(nb, async () => {
  await agent?.stop();
}));

const want = (cidr: string) => new RegExp(`^${cidr.replaceAll('.', '\\.')} via 100\\.64\\.0\\.1 dev ovn0 proto static src 192\\.168\\.77\\.1`);

test('the default subnet has its route at start-up: via the join gateway, src the node IP, proto static', async () => {
  assert.match(await routeTo(node, '10.16.0.0/16'), want('10.16.0.0/16'));
  assert.equal(await routeTo(node, '100.64.0.0/16'), '100.64.0.0/16 dev ovn0 proto kernel scope link src 100.64.0.2', 'the join CIDR is the link route of ovn0');
});

test('a second subnet gets its route after its Subnet event; a pod in it answers the node', async () => {
  await nb.bed.controller!.createSubnet({ name: 'second', cidrBlock: '10.17.0.0/16' }); // returns once Validated is set
  const ms = await measure('route to 10.17.0.0/16', async () => want('10.17.0.0/16').test(await routeTo(node, '10.17.0.0/16')), BOUND_MS);
  console.log(`# second subnet: route present ${ms} ms after its Subnet became Validated`);
  podIp = (await agentPod(nb.bed, agent, 'r1', 'second')).ip;
  const r = await ping(node.ns, podIp, { count: 2, minReceived: 1 });
  assert.ok(r.ok, r.output);
});

test('a route deleted with `ip route del` comes back (on the kernel route event, or at the latest the resync), and works', async () => {
  // `ip route del` succeeding is the deletion; the kernel feed may put the route back before anything could look
  await node.ns.ip(['route', 'del', '10.17.0.0/16']);
  const ms = await measure('route to 10.17.0.0/16 back', async () => want('10.17.0.0/16').test(await routeTo(node, '10.17.0.0/16')), BOUND_MS);
  console.log(`# deleted route back after ${ms} ms (resync period ${RESYNC_S} s)`);
  const r = await ping(node.ns, podIp, { count: 2, minReceived: 1 });
  assert.ok(r.ok, r.output);
});

test('a deleted subnet loses its route; the other subnets keep theirs', async () => {
  await nb.bed.controller!.deleteSubnet('second');
  const ms = await measure('route to 10.17.0.0/16 gone', async () => (await routeTo(node, '10.17.0.0/16')) === '', BOUND_MS);
  console.log(`# route removed ${ms} ms after the Subnet was deleted`);
  assert.match(await routeTo(node, '10.16.0.0/16'), want('10.16.0.0/16'));
});
