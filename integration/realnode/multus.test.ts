// Multus v4.3.0 (thin plugin) on the real node (kubelet + containerd, the agent as the DaemonSet runs it, the
// stand-in controller): 00-multus.conf in front of 01-kube-ovn.conflist, a NetworkAttachmentDefinition whose config
// is a Kube-OVN attachment (provider attach.default.ovn). A pod annotated with it gets eth0 and net1 from our agent
// (two ADDs through Multus), reaches both gateways through OVN, and Multus' network-status lists net1; deleting it
// DELs both. Bounds are generous: a loaded 2-core machine.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Bed, BedNode } from '../bed/bed.ts';
import { waitFor } from '../bed/exec.ts';
import { newPrefix } from '../bed/netns.ts';
import { downRealNode, upStandInNode, type StandInNode } from './cluster.ts';
import { cniRequestCounts, countOf, type DaemonSetAgent } from './daemonset.ts';
import { createKubeOvnNad, diagnosePod, installMultus, installNadCrd, multusMissing } from './multus.ts';
import type { RealNode } from './node.ts';
import { createBusyboxPod, deleteAndWait, podLog, waitFinished } from './pods.ts';

let bed: Bed;
let node: BedNode;
let rn: RealNode;
let agent: DaemonSetAgent;
let real: StandInNode | undefined;
let prefix: string;
// built by `npm run setup` unless KOA_BUILD_UPSTREAM=0: without it the test is reported as skipped, with this reason
const skip = multusMissing();

before(async () => {
  if (skip) return;
  prefix = newPrefix('koarn');
  real = await upStandInNode(prefix, async (b) => {
    await installNadCrd(b.kube!);
    await b.controller!.createSubnet({ name: 'attach', cidrBlock: '172.18.0.0/16', provider: 'attach.default.ovn' });
  });
  ({ bed, node, rn, agent } = real);
}, { timeout: 900_000 });

after(async () => {
  await downRealNode(prefix, real);
}, { timeout: 300_000 });

test('Multus with a Kube-OVN NetworkAttachmentDefinition: the pod gets eth0 and net1 from the agent, both reach their gateways', { timeout: 900_000, skip }, async () => {
  const api = bed.kube!.api;
  await installMultus(bed.kube!, rn);
  const provider = await createKubeOvnNad(bed.kube!, 'attach');
  const before = await cniRequestCounts(agent);
  // the stand-in allocates both NICs once the pod exists (the real controller does the same from the NAD's subnet)
  const name = 'multi';
  const gw = ['10.16.0.1', '172.18.0.1'];
  await createBusyboxPod(api, {
    name, nodeName: node.name, restartPolicy: 'Never', annotations: { 'k8s.v1.cni.cncf.io/networks': 'attach' },
    command: ['sh', '-c', 'ip -4 -o addr show dev net1 && ip -4 -o addr show dev eth0 && ' + gw.map((g) => `ping -c 3 -W 5 ${g}`).join(' && ')],
  });
  const eth0 = await bed.controller!.allocatePod('default', name);
  const net1 = await bed.controller!.allocatePod('default', name, { provider });
  const done = await waitFinished(api, name).catch(async (e: unknown) => {
    throw new Error(`${String(e)}\n${await diagnosePod(api, rn, agent, name)}`);
  });
  const logs = podLog(rn.podLogsDir, name);
  assert.deepEqual(done, { phase: 'Succeeded', exitCode: 0 }, logs);
  assert.match(logs, new RegExp(`net1\\s+inet ${net1.ips[0]!.replaceAll('.', '\\.')}/16`), `net1 has the attachment address: ${logs}`);
  assert.match(logs, new RegExp(`eth0\\s+inet ${eth0.ips[0]!.replaceAll('.', '\\.')}/16`), `eth0 has the primary address: ${logs}`);
  // Multus reports both attachments in the pod's network-status annotation
  const pod = await api.get(`/api/v1/namespaces/default/pods/${name}`);
  const status = JSON.parse(pod.metadata.annotations?.['k8s.v1.cni.cncf.io/network-status'] ?? '[]') as { interface?: string; ips?: string[] }[];
  assert.deepEqual(status.find((s) => s.interface === 'net1')?.ips, [net1.ips[0]], JSON.stringify(status));
  const after = await cniRequestCounts(agent);
  assert.ok(countOf(after, 'ADD', true) - countOf(before, 'ADD', true) >= 2, 'two ADDs through Multus: eth0 and net1');
  assert.equal(countOf(after, 'ADD', false), 0);
  await deleteAndWait(api, name);
  await bed.controller!.releasePod('default', name);
  await bed.controller!.releasePod('default', name, provider);
  await waitFor('DELs of both NICs', async () => countOf(await cniRequestCounts(agent), 'DEL', true) - countOf(before, 'DEL', true) >= 2, 120_000, 1000);
  assert.equal(countOf(await cniRequestCounts(agent), 'DEL', false), 0);
});
