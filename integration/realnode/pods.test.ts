// A real node: kubelet + containerd + runc in the bed node's namespaces (node.ts), the agent installed and started
// the way the DaemonSet does it (daemonset.ts: install-cni.sh, start-cniserver.sh), the stand-in controller
// allocating addresses. Busybox pods scheduled on the node get eth0 from containerd -> `kube-ovn` -> the agent, the
// kubelet reports the controller's address as the pod IP, and a pod pings the others and the gateway through OVN.
// Deleting the pods: containerd's DEL with the netns, then (about 40 s later) its extra DEL rounds with an empty
// CNI_NETNS, all answered successfully. Bounds are generous: this runs on a loaded 2-core machine.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Bed, BedNode } from '../bed/bed.ts';
import type { Allocation } from '../bed/controller.ts';
import { waitFor } from '../bed/exec.ts';
import { newPrefix } from '../bed/netns.ts';
import { downRealNode, upStandInNode, type StandInNode } from './cluster.ts';
import { cniRequestCounts, countOf, type DaemonSetAgent } from './daemonset.ts';
import type { RealNode } from './node.ts';
import { createBusyboxPod, deleteAndWait, podLog, waitFinished, waitRunning } from './pods.ts';
import { lspUpState } from '../bed/ovn.ts';

let bed: Bed;
let node: BedNode;
let rn: RealNode;
let agent: DaemonSetAgent;
let real: StandInNode | undefined;
let prefix: string;

before(async () => {
  prefix = newPrefix('koarn');
  real = await upStandInNode(prefix);
  ({ bed, node, rn, agent } = real);
}, { timeout: 900_000 });

after(async () => {
  await downRealNode(prefix, real);
  assert.deepEqual(rn?.processes() ?? [], [], 'no process of the node is left');
}, { timeout: 300_000 });

const allocs = new Map<string, Allocation>();
const names = ['web', 'db'];

test('busybox pods on the real node get eth0 from the agent, the kubelet reports their IPs, and they ping through OVN', { timeout: 900_000 }, async () => {
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
    assert.equal(await lspUpState(bed.central, `${name}.default`), 'up');
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

test('deleting the pods: containerd\'s DEL and its later DELs with an empty CNI_NETNS all succeed, nothing is left', { timeout: 900_000 }, async () => {
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
