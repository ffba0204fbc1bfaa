// A real node: kubelet + containerd + runc in the bed node's namespaces (node.ts), the agent installed and started
// the way the DaemonSet does it (daemonset.ts: install-cni.sh, start-cniserver.sh), the stand-in controller
// allocating addresses. Busybox pods scheduled on the node get eth0 from containerd -> `kube-ovn` -> the agent, the
// kubelet reports the controller's address as the pod IP, and a pod pings the others and the gateway through OVN.
// Deleting the pods: containerd's DEL with the netns, then (about 40 s later) its extra DEL rounds with an empty
// CNI_NETNS, all answered successfully. Then Multus (thin) in front of the kube-ovn conflist: a pod with a Kube-OVN
// NetworkAttachmentDefinition gets net1 on the attachment subnet from our agent as well.
// Bounds are generous: this runs on a loaded 2-core machine.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { leaks, up, type Bed, type BedNode } from '../bed/bed.ts';
import type { Allocation } from '../bed/controller.ts';
import { waitFor } from '../bed/exec.ts';
import { cleanupAll, newPrefix } from '../bed/netns.ts';
import { assembleRootfs, cniRequestCounts, countOf, installCni, startDaemonSetAgent, type DaemonSetAgent } from './daemonset.ts';
import { startRealNode, type RealNode } from './node.ts';
import { createKubeOvnNad, installMultus } from './multus.ts';
import { createBusyboxPod, deleteAndWait, podLog, waitFinished, waitRunning } from './pods.ts';

let bed: Bed;
let node: BedNode;
let rn: RealNode;
let agent: DaemonSetAgent;
let prefix: string;
let rootfsDir = '';

before(async () => {
  prefix = newPrefix('koarn');
  rootfsDir = mkdtempSync(`/tmp/${prefix}rootfs-`);
  assembleRootfs(join(rootfsDir, 'rootfs'));
  bed = await up({ prefix });
  node = bed.nodes[0]!;
  await bed.controller!.createSubnet({ name: 'attach', cidrBlock: '172.18.0.0/16', provider: 'attach.default.ovn' });
  rn = await startRealNode(bed, node);
  await installCni(rn, join(rootfsDir, 'rootfs'));
  agent = await startDaemonSetAgent(bed, rn, join(rootfsDir, 'rootfs'));
  await rn.startRuntime();
}, { timeout: 600_000 });

after(async () => {
  try {
    await agent?.stop();
    await rn?.stop();
    await bed?.down();
  } finally {
    await cleanupAll();
    if (rootfsDir) rmSync(rootfsDir, { recursive: true, force: true });
  }
  if (prefix) assert.deepEqual(leaks(prefix), { netns: [], tmpDirs: [], processes: [] });
  assert.deepEqual(rn?.processes() ?? [], [], 'no process of the node is left');
}, { timeout: 300_000 });

const allocs = new Map<string, Allocation>();
const names = ['web', 'db'];

test('busybox pods on the real node get eth0 from the agent, the kubelet reports their IPs, and they ping through OVN', { timeout: 600_000 }, async () => {
  for (const name of names) {
    await createBusyboxPod(bed.kube!.api, { name, nodeName: node.name });
    allocs.set(name, await bed.controller!.allocatePod('default', name));
  }
  for (const name of names) {
    const s = await waitRunning(bed.kube!.api, name);
    assert.equal(s.podIP, allocs.get(name)!.ips[0], `${name}: the kubelet reports the controller's address (from the CNI result)`);
  }
  // the node's OVS: one port per pod, bound to the pod's logical switch port by ovn-controller
  for (const name of names) {
    const iface = await node.ovs.vsctl(['--bare', '--columns=name', 'find', 'interface', `external_ids:iface-id=${name}.default`]);
    assert.ok(iface.endsWith('_h'), `OVS port for ${name}: ${iface}`);
    assert.equal(await bed.central.nbctl(['lsp-get-up', `${name}.default`]), 'up');
  }
  const targets = [...names.map((n) => allocs.get(n)!.ips[0]!), allocs.get('web')!.gateway];
  const script = targets.map((t) => `ping -c 3 -W 5 ${t}`).join(' && ');
  await createBusyboxPod(bed.kube!.api, { name: 'pinger', nodeName: node.name, restartPolicy: 'Never', command: ['sh', '-c', script] });
  allocs.set('pinger', await bed.controller!.allocatePod('default', 'pinger'));
  const done = await waitFinished(bed.kube!.api, 'pinger');
  const logs = podLog(rn.podLogsDir, 'pinger');
  assert.deepEqual(done, { phase: 'Succeeded', exitCode: 0 }, `pinger: ${script}\n${logs}`);
  const c = await cniRequestCounts(agent);
  // one per sandbox (a sandbox the kubelet had to recreate would add one more, never a failed one)
  assert.ok(countOf(c, 'ADD', true) >= 3, `three ADDs answered ok: ${JSON.stringify([...c])}`);
  assert.equal(countOf(c, 'ADD', false), 0);
});

test('deleting the pods: containerd\'s DEL and its later DELs with an empty CNI_NETNS all succeed, nothing is left', { timeout: 600_000 }, async () => {
  const pods = [...allocs.keys()];
  assert.equal(pods.length, 3, 'the first test ran');
  for (const name of pods) await deleteAndWait(bed.kube!.api, name);
  for (const name of pods) await bed.controller!.releasePod('default', name);
  // per sandbox containerd 1.6 calls the chain's DEL once with the netns, then ~40 s later two rounds with CNI_NETNS=""
  const c = await waitFor('3 DELs per pod', async () => {
    const c = await cniRequestCounts(agent);
    return countOf(c, 'DEL') >= 3 * pods.length ? c : undefined;
  }, 240_000, 1000);
  assert.equal(countOf(c, 'DEL', false), 0, `every DEL answered ok: ${JSON.stringify([...c])}`);
  const ctrd = readFileSync(rn.containerdLog, 'utf8');
  assert.doesNotMatch(ctrd, /failed to destroy network|failed to teardown/i, 'containerd logged no failed CNI DEL');
  const ports = (await node.ovs.vsctl(['list-ports', 'br-int'])).split('\n').filter((p) => p.endsWith('_h'));
  assert.deepEqual(ports, [], 'no pod port left on br-int');
});

test('Multus with a Kube-OVN NetworkAttachmentDefinition: the pod gets eth0 and net1 from the agent, both reach their gateways', { timeout: 600_000 }, async () => {
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
  const done = await waitFinished(api, name);
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
