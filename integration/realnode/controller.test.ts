// The real kube-ovn-controller v1.16.2 with the real node (no stand-in): OVN NB/SB from its own schemas, its CRDs
// and ClusterRole. The kubelet registers the Node, our agent (started as the DaemonSet does) writes the Node's
// ovn.kubernetes.io/chassis annotation, the controller then allocates the node's join address and every pod's
// address; busybox pods come up with those addresses, ping each other and the gateway, and their deletion (the
// controller removes the LSPs, containerd calls DEL) leaves nothing. Generous bounds: a loaded 2-core machine.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Bed, BedNode } from '../bed/bed.ts';
import { newPrefix } from '../bed/netns.ts';
import { downRealNode, upRealCluster, type RealCluster } from './cluster.ts';
import { upstreamMissing } from './controller.ts';
import { cniRequestCounts, countOf, type DaemonSetAgent } from './daemonset.ts';
import { waitDels, waitLspsRemoved, waitNoPodPorts } from './deletion.ts';
import { createBusyboxPod, deleteAndWait, podLog, waitFinished, waitRunning } from './pods.ts';
import { lspUpState } from '../bed/ovn.ts';

let bed: Bed;
let node: BedNode;
let agent: DaemonSetAgent;
let cluster: RealCluster | undefined;
let prefix: string;
// built by `npm run setup` unless KOA_BUILD_UPSTREAM=0: without it every test here is reported as skipped, with this reason
const skip = upstreamMissing();

before(async () => {
  if (skip) return;
  prefix = newPrefix('koarn');
  cluster = await upRealCluster(prefix);
  ({ bed, node, agent } = cluster);
}, { timeout: 900_000 });

after(async () => {
  await downRealNode(prefix, cluster);
}, { timeout: 300_000 });

const names = ['web', 'db'];
const ips = new Map<string, string>();

test('the real controller annotates the node and the pods; the pods get those addresses from the agent and ping', { timeout: 900_000, skip }, async () => {
  const api = bed.kube!.api;
  const n = await api.get(`/api/v1/nodes/${node.name}`);
  assert.equal(n.metadata.annotations['ovn.kubernetes.io/logical_switch'], 'join');
  assert.match(n.metadata.annotations['ovn.kubernetes.io/ip_address'], /^100\.64\./);
  // the chassis survived the controller's start-up garbage collection
  assert.equal(await bed.central.sbctl(['--bare', '--columns=name', 'find', 'chassis', `name=${node.name}`]), node.name);

  for (const name of names) await createBusyboxPod(api, { name, nodeName: node.name });
  for (const name of names) {
    const s = await waitRunning(api, name);
    const pod = await api.get(`/api/v1/namespaces/default/pods/${name}`);
    const ann = pod.metadata.annotations ?? {};
    assert.equal(ann['ovn.kubernetes.io/logical_switch'], 'ovn-default');
    assert.equal(s.podIP, ann['ovn.kubernetes.io/ip_address'], `${name}: the pod IP is the controller's allocation`);
    ips.set(name, s.podIP!);
    assert.equal(await lspUpState(bed.central, `${name}.default`), 'up');
  }
  const script = [...ips.values(), '10.16.0.1'].map((t) => `ping -c 3 -W 5 ${t}`).join(' && ');
  await createBusyboxPod(api, { name: 'pinger', nodeName: node.name, restartPolicy: 'Never', command: ['sh', '-c', script] });
  const done = await waitFinished(api, 'pinger');
  const logs = podLog(cluster!.rn.podLogsDir, 'pinger');
  assert.deepEqual(done, { phase: 'Succeeded', exitCode: 0 }, `pinger: ${script}\n${logs}`);
  const c = await cniRequestCounts(agent);
  assert.equal(countOf(c, 'ADD', false), 0, `no failed ADD: ${JSON.stringify([...c])}`);
  assert.ok(countOf(c, 'ADD', true) >= 3, 'an ADD per sandbox');
});

test('deleting the pods: the controller removes their LSPs, every DEL succeeds, no port is left', { timeout: 900_000, skip }, async () => {
  const api = bed.kube!.api;
  const pods = [...names, 'pinger'];
  assert.equal(ips.size, 2, 'the first test ran');
  for (const name of pods) await deleteAndWait(api, name);
  await waitLspsRemoved(bed.central, pods);
  const c = await waitDels(agent, pods.length);
  assert.equal(countOf(c, 'DEL', false), 0, `every DEL answered ok: ${JSON.stringify([...c])}`);
  await waitNoPodPorts(node.ovs);
});
