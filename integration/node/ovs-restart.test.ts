// OVS restart on the real bed (issue 12, "OVS restart"): ovs-vswitchd and ovsdb-server are killed (SIGKILL, by the
// PIDs the bed started) and started again on the same database. The kernel device ovn0 died with vswitchd (a tap of
// the userspace datapath), and its address and routes with it. The agent, which upstream would exit and leave to the
// container restart, stays up: its OVSDB client reconnects and the ovn0 and host-route reconcilers repair the node
// (OVSDB events, else the resync, 2 s here), and node -> pod ping works again. The bound is generous (60 s) for this
// loaded machine; the measured time is printed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type BedNode } from '../bed/bed.ts';
import { ping } from '../bed/netns.ts';
import { addressesOf, type NodeAgent } from '../e2e/agent-harness.ts';
import { agentPod, measure, nodeBed, routeTo, startAgent, type NodeBed, type Pod, downNodeBed } from './lib.ts';

let nb: NodeBed;
let node: BedNode;
let agent: NodeAgent;
let pod: Pod;

before(async () => {
  nb = await nodeBed();
  node = nb.bed.nodes[0]!;
  agent = await startAgent(nb.bed, node);
  pod = await agentPod(nb.bed, agent, 'o1');
});

after(() => downNodeBed(nb, async () => {
  await agent?.stop();
}));

test('after OVS is killed and restarted on the same database, ovn0 and its routes are back and node -> pod ping works; the agent never exits', async () => {
  assert.ok((await ping(node.ns, pod.ip, { count: 2, minReceived: 1 })).ok, 'ping before the restart');
  const pid = agent.pid;
  const before = [...node.ovs.pids()];
  const t0 = performance.now();
  await node.ovs.restart();
  const restartedMs = Math.round(performance.now() - t0);
  assert.notDeepEqual(node.ovs.pids(), before, 'new OVS processes');
  const ms = await measure('node -> pod ping after the OVS restart', async () => {
    if (!agent.alive()) throw new Error('the agent exited');
    return (await ping(node.ns, pod.ip, { count: 1, waitS: 1 })).ok;
  }, 60_000);
  console.log(`# OVS killed and restarted in ${restartedMs} ms; node -> pod ping works ${ms} ms after the restart returned`);
  assert.deepEqual(await addressesOf(node.ns, 'ovn0'), [`${node.join!.ips[0]}/16`]);
  assert.match(await routeTo(node, '10.16.0.0/16'), /^10\.16\.0\.0\/16 via 100\.64\.0\.1 dev ovn0 proto static src 192\.168\.77\.1/);
  assert.ok(agent.alive(), 'the agent process is still running');
  assert.equal(agent.pid, pid);
  assert.equal(agent.lines.filter((l) => /start-up failed|shutting down/.test(String(l.msg))).length, 0, 'no exit path taken');
  const ready = await agent.http('/readyz');
  assert.equal(ready.status, 200, ready.body);
});
