// End to end, the unhappy paths, on the real bed with the real agent process and the real CNI executable:
// an annotation that arrives late (ADD resumes within 100 ms of it) or never (code 11 at the configured timeout),
// an OVN binding that never comes (bounded failure, full rollback), DEL after the netns is gone / twice / for an
// unknown container, and an ADD killed halfway by an injected fault (KOA_FAULT_AFTER_STEP). Every case checks the
// node with ovs-vsctl and ip afterwards: no OVS port, interface row, QoS row or host veth left.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { leaks, up, type Bed, type BedNode } from '../bed/bed.ts';
import { cleanupAll, newPrefix } from '../bed/netns.ts';
import { sleep } from '../bed/exec.ts';
import {
  buildShim, ifaceExternalIds, leftovers, newContainerId, newPod, podCall, qosCount, startNodeAgent, type AgentOptions, type NodeAgent, type TestPod,
} from './agent-harness.ts';

const ANNOTATION_WAIT_MS = 3000;
const OVN_INSTALLED_MS = 2000;
// Short, configured timeouts. The IPv4 conflict probe (RFC 5227, --ip-conflict-probe-time, 300 ms by default) is off
// here so the late-annotation case measures the event-driven path itself; pods.test.ts runs with the probe on.
const AGENT_OPTS: AgentOptions = {
  annotationWaitTimeout: `${ANNOTATION_WAIT_MS}ms`, ovnInstalledTimeout: `${OVN_INSTALLED_MS}ms`, args: ['--enable-arp-detect-ip-conflict=false'],
};

let bed: Bed;
let node: BedNode;
let agent: NodeAgent;
let prefix: string;

before(async () => {
  buildShim();
  prefix = newPrefix('koae');
  bed = await up({ prefix });
  node = bed.nodes[0]!;
  agent = await startNodeAgent(bed, node, AGENT_OPTS);
});

after(async () => {
  try {
    await agent?.stop();
    await bed?.down();
  } finally {
    await cleanupAll();
  }
  if (prefix) assert.deepEqual(leaks(prefix), { netns: [], tmpDirs: [], processes: [] });
});

const hostVeth = (p: TestPod) => `${p.containerId.slice(0, 12)}_h`;
const errOf = (r: { json: any }) => r.json as { code: number; msg: string; details?: string };

async function assertNothingLeft(pods: TestPod[], why: string): Promise<void> {
  const left = await leftovers(node, { containerIds: pods.map((p) => p.containerId), ifaceIds: pods.map((p) => `${p.name}.${p.namespace}`) });
  assert.deepEqual(left, { ports: [], qos: [], links: [], ifaceIds: [] }, `${why}: nothing left on the node`);
  assert.equal(await qosCount(node), 0, `${why}: no QoS row`);
  for (const p of pods) {
    if (!existsSync(p.ns.path)) continue;
    const links = JSON.parse((await p.ns.ip(['-j', 'link', 'show'])).stdout) as { ifname: string }[];
    assert.deepEqual(links.map((l) => l.ifname), ['lo'], `${why}: pod namespace ${p.ns.name} has only lo`);
  }
}

test('the annotation lands 2 s after ADD started: the waiting ADD goes on from the watch event', async () => {
  // one pod of the subnet already on this node (as on any busy node): the first local port of a logical switch makes
  // ovn-controller install that datapath's and the router's flows, a per-node first-pod cost that is not the
  // annotation path measured here
  const warm = await newPod(bed, node, 'warm1');
  await bed.controller!.allocatePod(warm.namespace, warm.name);
  assert.equal((await podCall('ADD', agent, warm)).code, 0);
  const p = await newPod(bed, node, 'late1');
  const from = agent.lines.length;
  const add = podCall('ADD', agent, p);
  await sleep(2000);
  const a = await bed.controller!.allocatePod(p.namespace, p.name); // LSP, IP CR, then the pod annotations (last)
  const annotatedAt = performance.now();
  const r = await add;
  assert.equal(r.code, 0, `${r.stdout} ${r.stderr}`);
  assert.equal(r.json.ips[0].address, `${a.ips[0]}/16`);
  const afterAnnotation = r.endedAt - annotatedAt;
  assert.ok(r.endedAt - r.startedAt >= 2000, `ADD waited for the annotation (${Math.round(r.endedAt - r.startedAt)} ms)`);
  const log = () => agent.lines.slice(from).map((l) => `${l.time} ${l.msg} ${JSON.stringify(l.stepMs ?? l.ms ?? '')}`).join('\n');
  // order, not speed (speed is `npm run bench -- add.after_annotation`): the ADD ended after the patch returned, and the
  // agent's own log shows the wait ended on the watch event that carried the annotations
  assert.ok(r.endedAt >= annotatedAt - 50, `ADD answered before the annotation landed?\nagent log:\n${log()}`);
  const waited = agent.lines.slice(from).find((l) => l.msg === 'pod annotations arrived');
  assert.ok(waited, `no 'pod annotations arrived' line: the wait did not end on a watch event\nagent log:\n${log()}`);
  process.stdout.write(`# late annotation: ADD answered ${afterAnnotation.toFixed(1)} ms after the patch returned, ${Math.round(r.ms)} ms in total\n`);
  for (const x of [p, warm]) {
    const d = await podCall('DEL', agent, x);
    assert.equal(d.code, 0, d.stdout);
  }
  await assertNothingLeft([p, warm], 'after DEL');
});

test('the annotation never arrives: code 11 at the configured timeout, nothing created', async () => {
  const p = await newPod(bed, node, 'never1');
  const r = await podCall('ADD', agent, p);
  assert.equal(r.code, 1);
  assert.equal(errOf(r).code, 11, r.stdout);
  assert.match(`${errOf(r).msg} ${errOf(r).details ?? ''}`, /annotation|timed out/i);
  assert.ok(r.ms >= ANNOTATION_WAIT_MS - 50 && r.ms <= ANNOTATION_WAIT_MS + 20_000, `failed after ${Math.round(r.ms)} ms (timeout ${ANNOTATION_WAIT_MS} ms)`);
  await assertNothingLeft([p], 'after the timeout');
  const d = await podCall('DEL', agent, p); // what the runtime does next
  assert.equal(d.code, 0, d.stdout);
});

test('ovn-installed never arrives (no LSP in OVN for the pod): bounded failure and full rollback', async () => {
  const p = await newPod(bed, node, 'unbound1');
  const a = await bed.controller!.allocatePod(p.namespace, p.name);
  await bed.central.nbctl(['lsp-del', a.lsp]); // annotated, but OVN has no port to bind: ovn-controller never sets ovn-installed
  const r = await podCall('ADD', agent, p);
  assert.equal(r.code, 1, r.stdout);
  assert.ok(errOf(r).code > 0, r.stdout);
  assert.match(`${errOf(r).msg} ${errOf(r).details ?? ''}`, /ovn-installed|ovn|timed out/i);
  assert.ok(r.ms >= OVN_INSTALLED_MS - 50 && r.ms <= OVN_INSTALLED_MS + 20_000, `failed after ${Math.round(r.ms)} ms (ovn-installed timeout ${OVN_INSTALLED_MS} ms)`);
  assert.equal(await ifaceExternalIds(node, hostVeth(p)), undefined, 'OVS interface removed');
  await assertNothingLeft([p], 'after the rollback');
  const d = await podCall('DEL', agent, p);
  assert.equal(d.code, 0, d.stdout);
});

test('an iface-id nobody owns (LSP renamed under the pod) also fails bounded and rolls back', async () => {
  const p = await newPod(bed, node, 'mismatch1');
  const a = await bed.controller!.allocatePod(p.namespace, p.name);
  await bed.central.nbctl(['set', 'logical_switch_port', a.lsp, `name=${a.lsp}-other`]);
  const r = await podCall('ADD', agent, p);
  assert.equal(r.code, 1, r.stdout);
  assert.ok(r.ms <= OVN_INSTALLED_MS + 20_000, `bounded: ${Math.round(r.ms)} ms`);
  await assertNothingLeft([p], 'after the rollback');
  await bed.central.nbctl(['--if-exists', 'lsp-del', `${a.lsp}-other`]);
});

test('DEL after the netns was deleted, DEL twice, DEL for an unknown container: all succeed, nothing leaks', async () => {
  const pods = [await newPod(bed, node, 'del1'), await newPod(bed, node, 'del2')];
  for (const p of pods) {
    await bed.controller!.allocatePod(p.namespace, p.name);
    const r = await podCall('ADD', agent, p);
    assert.equal(r.code, 0, `ADD ${p.name}: ${r.stdout}`);
    assert.ok(await ifaceExternalIds(node, hostVeth(p)));
  }
  // 1. the runtime removed the sandbox's netns first (the kernel deletes both veth ends); the OVS port row remains
  const [gone, twice] = pods as [TestPod, TestPod];
  const path = gone.ns.path;
  await gone.ns.delete();
  assert.ok(!existsSync(path));
  const d1 = await podCall('DEL', agent, gone);
  assert.deepEqual([d1.code, d1.stdout], [0, ''], d1.stderr);
  await assertNothingLeft([gone], 'DEL after the netns was deleted');
  // 2. DEL twice
  for (let i = 0; i < 2; i++) {
    const d = await podCall('DEL', agent, twice);
    assert.deepEqual([d.code, d.stdout], [0, ''], `DEL #${i + 1}: ${d.stderr}`);
  }
  await assertNothingLeft([twice], 'DEL twice');
  // 3. a container the agent never saw: with a netns path that does not exist, and with an empty CNI_NETNS
  const portsBefore = await node.ovs.vsctl(['list-ports', 'br-int']);
  const unknown = { ...twice, containerId: newContainerId(), name: 'never-existed' };
  const u1 = await podCall('DEL', agent, unknown, { netns: `/var/run/netns/${prefix}nope` });
  assert.deepEqual([u1.code, u1.stdout], [0, ''], u1.stderr);
  const u2 = await podCall('DEL', agent, unknown, { netns: '' });
  assert.deepEqual([u2.code, u2.stdout], [0, ''], u2.stderr);
  assert.equal(await node.ovs.vsctl(['list-ports', 'br-int']), portsBefore);
});

test('an ADD killed halfway (fault after the OVS port is added) leaves nothing behind', async () => {
  const p = await newPod(bed, node, 'killed1');
  await bed.controller!.allocatePod(p.namespace, p.name);
  // the same agent, restarted with a fault injected right after the ovsAddPort step: the process dies there
  const dir = agent.dir;
  await agent.stop();
  const faulty = await startNodeAgent(bed, node, { ...AGENT_OPTS, dir, env: { KOA_FAULT_AFTER_STEP: 'ovsAddPort' } });
  const r = await podCall('ADD', faulty, p, { env: { KOA_DEL_QUEUE_DIR: faulty.delQueueDir } });
  assert.equal(r.code, 1, r.stdout);
  assert.equal(errOf(r).code, 11, `agent gone mid-ADD: ${r.stdout}`);
  await faulty.exited;
  const half = await ifaceExternalIds(node, hostVeth(p));
  assert.equal(half?.['iface-id'], `${p.name}.${p.namespace}`, 'the fault hit after the port was added (half-done state exists)');
  // the runtime's answer to a failed ADD is a DEL: the agent is down, so the executable queues it durably
  const d = await podCall('DEL', faulty, p, { env: { KOA_DEL_QUEUE_DIR: faulty.delQueueDir } });
  assert.deepEqual([d.code, d.stdout], [0, ''], d.stderr);
  assert.equal(readdirSync(faulty.delQueueDir).length, 1);
  // the agent comes back (as the DaemonSet restarts it), drains the queue, and nothing is left
  agent = await startNodeAgent(bed, node, { ...AGENT_OPTS, dir });
  assert.deepEqual(readdirSync(agent.delQueueDir), [], 'queued DEL completed at start');
  await assertNothingLeft([p], 'after the killed ADD');
  // and the pod can be wired normally afterwards
  const again = await podCall('ADD', agent, p);
  assert.equal(again.code, 0, again.stdout);
  const d2 = await podCall('DEL', agent, p);
  assert.equal(d2.code, 0, d2.stdout);
  await assertNothingLeft([p], 'after ADD+DEL');
});

test('at the end the node is clean: no pod port on br-int, no QoS row, no host veth', async () => {
  const ports = (await node.ovs.vsctl(['list-ports', 'br-int'])).split('\n').filter(Boolean);
  assert.deepEqual(ports.filter((x) => x.endsWith('_h')), []);
  assert.equal(await qosCount(node), 0);
  const links = JSON.parse((await node.ns.ip(['-j', 'link', 'show'])).stdout) as { ifname: string }[];
  assert.deepEqual(links.map((l) => l.ifname).filter((n) => n.endsWith('_h') || n.endsWith('_c')), []);
});
