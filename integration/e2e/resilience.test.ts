// Issue 14 on the real bed (real agent process, real shim, real OVS/OVN/kube-apiserver): a running pod's QoS
// annotations changed ten times and removed (OVS follows each, from the watch event); SIGTERM during 30 ADDs (every
// one is answered: completed or rolled back, none reset); a DEL queued by the shim while the agent runs is run
// without a restart (inotify).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { leaks, up, type Bed, type BedNode } from '../bed/bed.ts';
import { cleanupAll, newPrefix } from '../bed/netns.ts';
import { waitFor } from '../bed/exec.ts';
import { buildShim, leftovers, newPod, podCall, qosCount, startNodeAgent, type NodeAgent, type TestPod } from './agent-harness.ts';

let bed: Bed;
let node: BedNode;
let agent: NodeAgent;
let prefix: string;

before(async () => {
  buildShim();
  prefix = newPrefix('koar');
  bed = await up({ prefix });
  node = bed.nodes[0]!;
  agent = await startNodeAgent(bed, node, { args: ['--enable-arp-detect-ip-conflict=false'] });
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

async function wired(name: string): Promise<TestPod> {
  const p = await newPod(bed, node, name);
  await bed.controller!.allocatePod(p.namespace, p.name);
  const r = await podCall('ADD', agent, p);
  assert.equal(r.code, 0, r.stdout);
  return p;
}

const vsctlGet = async (iface: string, col: string): Promise<string> => (await node.ovs.vsctl(['get', 'interface', iface, col])).replaceAll('"', '').trim();

test('a running pod\'s egress and ingress rates changed 10 times, then removed: OVS follows every change', async () => {
  const p = await wired('qos1');
  const host = `${p.containerId.slice(0, 12)}_h`;
  for (let i = 1; i <= 10; i++) {
    const t0 = performance.now();
    await bed.kube!.api.mergePatch(`/api/v1/namespaces/${p.namespace}/pods/${p.name}`,
      { metadata: { annotations: { 'ovn.kubernetes.io/egress_rate': String(i * 10), 'ovn.kubernetes.io/ingress_rate': String(i * 5) } } });
    // bound many times the event path's ms: the speed is measured by `npm run bench -- qos`
    await waitFor(`egress rate ${i * 10} Mbit/s on ${host}`, async () => (await vsctlGet(host, 'ingress_policing_rate')) === String(i * 10_000), 30_000, 20);
    await waitFor(`ingress (htb) ${i * 5} Mbit/s`, async () => {
      const qos = await vsctlGet(host, 'external_ids:iface-id');
      const rows = await node.ovs.vsctl(['--format=json', '--columns=other_config,external_ids', 'find', 'queue', `external_ids:iface-id=${qos}`]);
      return rows.includes(`"max-rate","${i * 5 * 1_000_000}"`);
    }, 30_000, 20);
    process.stdout.write(`# QoS change ${i}: seen in OVS after ${Math.round(performance.now() - t0)} ms (incl. polling with ovs-vsctl)\n`);
  }
  await bed.kube!.api.mergePatch(`/api/v1/namespaces/${p.namespace}/pods/${p.name}`,
    { metadata: { annotations: { 'ovn.kubernetes.io/egress_rate': null, 'ovn.kubernetes.io/ingress_rate': null } } });
  await waitFor('policing removed', async () => (await vsctlGet(host, 'ingress_policing_rate')) === '0', 30_000, 20);
  await waitFor('no QoS row left', async () => (await qosCount(node)) === 0, 30_000, 20);
  const metrics = await agent.metrics();
  assert.match(metrics, /kube_ovn_agent_reconcile_runs_total\{reconciler="pod-qos",result="ok"\} \d+/);
  assert.equal((await podCall('DEL', agent, p)).code, 0);
});

test('a DEL the shim queued while the agent runs is run at once (inotify), without a restart', async () => {
  const p = await wired('queued1');
  // what the shim writes when its call timed out under load: the forwarded call, atomically (tmp + rename)
  const env = { CNI_COMMAND: 'DEL', CNI_CONTAINERID: p.containerId, CNI_NETNS: p.ns.path, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${p.namespace};K8S_POD_NAME=${p.name}` };
  const call = { env, stdin: JSON.stringify({ cniVersion: '1.0.0', name: 'kube-ovn', type: 'kube-ovn', server_socket: agent.socket }) };
  mkdirSync(agent.delQueueDir, { recursive: true });
  const tmp = join(agent.delQueueDir, `.tmp-${p.containerId}`);
  writeFileSync(tmp, JSON.stringify(call));
  renameSync(tmp, join(agent.delQueueDir, `${p.containerId}-eth0.json`));
  await agent.waitForLog(/completed queued DEL/, 60_000);
  await waitFor('queue empty', () => readdirSync(agent.delQueueDir).filter((f) => f.endsWith('.json')).length === 0, 30_000);
  assert.deepEqual(await leftovers(node, { containerIds: [p.containerId] }), { ports: [], qos: [], links: [], ifaceIds: [] });
  assert.ok(agent.alive(), 'the same agent, no restart');
});

test('SIGTERM during 30 ADDs: every ADD is answered (wired, or rolled back with code 11); none is reset', async () => {
  const pods: TestPod[] = [];
  for (let i = 0; i < 30; i++) {
    const p = await newPod(bed, node, `term${i}`);
    await bed.controller!.allocatePod(p.namespace, p.name);
    pods.push(p);
  }
  const from = agent.lines.length;
  const adds = pods.map((p) => podCall('ADD', agent, p));
  await agent.waitForLog(/pod NIC configured/, 60_000, from); // some are done, the others under way
  const stopping = agent.stop();
  const results = await Promise.all(adds);
  await stopping;
  for (const [i, r] of results.entries()) {
    const outcome = r.code === 0 ? 'ok' : (r.json as { code?: number } | undefined)?.code;
    assert.ok(outcome === 'ok' || outcome === 11, `ADD ${i}: exit ${r.code}, ${r.stdout} ${r.stderr}`);
  }
  const ok = results.filter((r) => r.code === 0).length;
  process.stdout.write(`# SIGTERM during 30 ADDs: ${ok} completed, ${30 - ok} answered code 11\n`);
  // the agent comes back (as the DaemonSet restarts it); the runtime's DELs clean up whatever exists
  agent = await startNodeAgent(bed, node, { dir: agent.dir, args: ['--enable-arp-detect-ip-conflict=false'] });
  for (const p of pods) assert.equal((await podCall('DEL', agent, p)).code, 0);
  assert.deepEqual(await leftovers(node, { containerIds: pods.map((p) => p.containerId) }), { ports: [], qos: [], links: [], ifaceIds: [] });
});
