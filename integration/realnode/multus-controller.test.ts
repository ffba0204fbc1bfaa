// Multus v4.3.0 (thick plugin: multus-shim + multus-daemon; KOA_MULTUS_MODE=thin for the thin one) with the real
// kube-ovn-controller v1.16.2 on the real node (no stand-in at all): the NAD CRD from
// the Multus release, a Subnet `attach` whose provider is the NAD's (`attach.default.ovn`), created through the API
// and set up by the controller, and a NAD whose config is a Kube-OVN attachment. A pod annotated with it: the
// controller allocates eth0 (ovn-default) and net1 (attach) from the NAD, Multus runs our `kube-ovn` twice, the
// pod's NICs carry the controller's addresses and reach both gateways; deleting the pod DELs both NICs and the
// controller removes both LSPs. The NAD CRD is installed before the controller starts (as when Multus is deployed
// first), so the controller's NAD informer runs from its start: without the CRD it would only find it on a check
// every 10 s and refuse the pod's add until then. Bring-up as controller.test.ts (upRealCluster).
// Bounds are generous: a loaded 2-core machine.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Bed, BedNode } from '../bed/bed.ts';
import { waitFor } from '../bed/exec.ts';
import { newPrefix } from '../bed/netns.ts';
import { downRealNode, upRealCluster, type RealCluster } from './cluster.ts';
import { subnetReady, upstreamMissing } from './controller.ts';
import { cniRequestCounts, countOf, type DaemonSetAgent } from './daemonset.ts';
import { createKubeOvnNad, diagnosePod, installMultus, installNadCrd, MULTUS_MODE, multusMissing, shimForwardedAdd, type Multus } from './multus.ts';
import { createBusyboxPod, deleteAndWait, podLog, waitFinished } from './pods.ts';

let bed: Bed;
let node: BedNode;
let agent: DaemonSetAgent;
let cluster: RealCluster | undefined;
let prefix: string;
let multus: Multus | undefined;
// both fixtures are built by `npm run setup` unless KOA_BUILD_UPSTREAM=0: without them the test is reported as skipped, with the reason
const skip = upstreamMissing() ?? multusMissing(MULTUS_MODE);

before(async () => {
  if (skip) return;
  prefix = newPrefix('koamc');
  cluster = await upRealCluster(prefix, (b) => installNadCrd(b.kube!));
  ({ bed, node, agent } = cluster);
}, { timeout: 900_000 });

after(async () => {
  try {
    await multus?.stop();
  } finally {
    await downRealNode(prefix, cluster);
  }
}, { timeout: 300_000 });

test('Multus and the real controller: a pod with a Kube-OVN attachment gets eth0 and net1 with the controller\'s addresses', { timeout: 900_000, skip }, async () => {
  const api = bed.kube!.api;
  // the CRD was there when the controller started: it never had to look for it again
  // (the informer may report its sync a moment after the controller's readiness)
  const ctlLog = await waitFor('the controller\'s NAD informer synced', () => {
    const l = readFileSync(cluster!.controller.log, 'utf8');
    return /Network attachment informer cache synced/.test(l) ? l : undefined;
  }, 60_000, 200);
  assert.doesNotMatch(ctlLog, /Network attachment CRD not found at startup/);
  multus = await installMultus(bed.kube!, cluster!.rn, { mode: MULTUS_MODE });
  const provider = await createKubeOvnNad(bed.kube!, 'attach');
  await api.post('/apis/kubeovn.io/v1/subnets', {
    apiVersion: 'kubeovn.io/v1', kind: 'Subnet', metadata: { name: 'attach' },
    spec: { cidrBlock: '172.18.0.0/16', provider, protocol: 'IPv4' },
  });
  await waitFor('subnet attach Ready (set up by the controller)', () => subnetReady(api, 'attach'), 300_000, 500);
  const before = await cniRequestCounts(agent);
  const name = 'multi';
  const gw = ['10.16.0.1', '172.18.0.1'];
  await createBusyboxPod(api, {
    name, nodeName: node.name, restartPolicy: 'Never', annotations: { 'k8s.v1.cni.cncf.io/networks': 'attach' },
    command: ['sh', '-c', 'ip -4 -o addr show dev net1 && ip -4 -o addr show dev eth0 && ' + gw.map((g) => `ping -c 3 -W 5 ${g}`).join(' && ')],
  });
  const done = await waitFinished(api, name).catch(async (e: unknown) => {
    throw new Error(`${String(e)}\n${await diagnosePod(api, cluster!.rn, agent, name)}`);
  });
  const logs = podLog(cluster!.rn.podLogsDir, name);
  assert.deepEqual(done, { phase: 'Succeeded', exitCode: 0 }, logs);
  const ann = (await api.get(`/api/v1/namespaces/default/pods/${name}`)).metadata.annotations ?? {};
  const eth0 = ann['ovn.kubernetes.io/ip_address'];
  const net1 = ann[`${provider}.kubernetes.io/ip_address`];
  assert.ok(eth0 && net1, `the controller annotated both NICs: ${JSON.stringify(ann)}`);
  assert.equal(ann[`${provider}.kubernetes.io/logical_switch`], 'attach');
  assert.match(logs, new RegExp(`net1\\s+inet ${net1.replaceAll('.', '\\.')}/16`), `net1 has the controller's attachment address: ${logs}`);
  assert.match(logs, new RegExp(`eth0\\s+inet ${eth0.replaceAll('.', '\\.')}/16`), `eth0 has the controller's primary address: ${logs}`);
  // Multus reports both attachments in the pod's network-status annotation
  const status = JSON.parse(ann['k8s.v1.cni.cncf.io/network-status'] ?? '[]') as { interface?: string; ips?: string[] }[];
  assert.deepEqual(status.find((s) => s.interface === 'net1')?.ips, [net1], JSON.stringify(status));
  const after = await cniRequestCounts(agent);
  assert.ok(countOf(after, 'ADD', true) - countOf(before, 'ADD', true) >= 2, 'two ADDs through Multus: eth0 and net1');
  assert.equal(countOf(after, 'ADD', false), 0, `no failed ADD: ${JSON.stringify([...after])}`);
  if (MULTUS_MODE === 'thick') assert.ok(shimForwardedAdd(multus), 'the calls went through multus-shim to the daemon');

  await deleteAndWait(api, name);
  await waitFor('DELs of both NICs', async () => countOf(await cniRequestCounts(agent), 'DEL', true) - countOf(before, 'DEL', true) >= 2, 120_000, 1000);
  assert.equal(countOf(await cniRequestCounts(agent), 'DEL', false), 0);
  await waitFor('both LSPs of the pod removed by the controller', async () => {
    const lsps = (await bed.central.nbctl(['--bare', '--columns=name', 'list', 'logical_switch_port'])).split('\n');
    return !lsps.some((l) => l.startsWith(`${name}.default`));
  }, 120_000, 500);
});
