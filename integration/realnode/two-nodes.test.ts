// Two real nodes with the real kube-ovn-controller (issue 15, no stand-in): each bed node runs its own kubelet +
// containerd (its own holder, CNI dirs and cgroupRoot) and our agent as the DaemonSet starts it; geneve runs between
// the nodes over the bed's underlay, whose addresses are the nodes' InternalIPs. 10 busybox pods, 5 bound to each
// node, reach Running with the address the controller wrote (ovn.kubernetes.io/ip_address) as their pod IP, their
// LSPs up and bound to their own node's chassis. Inside pods on node 1 (a command run in the container through
// containerd's task exec, the runtime half of `kubectl exec`) ping pods on node 2 and the gateway, and a pinger pod on
// each node (restartPolicy Never) pings every pod of the other node and the gateway. Deleting all pods: the
// controller removes the LSPs, every DEL (containerd's and the kubelet's later rounds) succeeds on both agents, and
// nothing is left (no pod port, veth, QoS row beyond ovn-controller's own or pod netns; after(): no namespace, temp dir, process or cgroup).
// Generous bounds, no speed asserts: a loaded 2-core machine.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import type { Bed } from '../bed/bed.ts';
import { waitFor } from '../bed/exec.ts';
import { newPrefix } from '../bed/netns.ts';
import { nodeLeaks } from '../load/lib.ts';
import { downRealNode, upRealCluster, type RealCluster, type RealClusterNode } from './cluster.ts';
import { upstreamMissing } from './controller.ts';
import { cniRequestCounts, countOf } from './daemonset.ts';
import { waitLspsRemoved } from './deletion.ts';
import { diagnosePod } from './multus.ts';
import { createBusyboxPod, deleteAndWait, podLog, podStatus, waitFinished, waitRunning } from './pods.ts';
import { lspUpState } from '../bed/ovn.ts';

let bed: Bed;
let cluster: RealCluster | undefined;
let prefix: string;
// built by `npm run setup` unless KOA_BUILD_UPSTREAM=0: without it every test here is reported as skipped, with this reason
const skip = upstreamMissing();
const GATEWAY = '10.16.0.1';

before(async () => {
  if (skip) return;
  prefix = newPrefix('koatn');
  cluster = await upRealCluster(prefix, undefined, { nodes: 2 });
  bed = cluster.bed;
}, { timeout: 900_000 });

after(async () => {
  const rns = cluster?.nodes.map((n) => n.rn) ?? [];
  await downRealNode(prefix, cluster);
  for (const rn of rns) assert.deepEqual(rn.processes(), [], `no process of ${rn.node.name} is left`);
}, { timeout: 300_000 });

const N = 10;
/** pod name -> index of its node (the first 5 on node 1, the rest on node 2) */
const placement = new Map<string, number>(Array.from({ length: N }, (_, i) => [`tn${i}`, i < N / 2 ? 0 : 1] as const));
const ips = new Map<string, string>();
/** every pod created (the 10 and the pingers), with its node index */
const created = new Map<string, number>();
/** pods (sandboxes) per node, counted before the deletes */
const sandboxCount = [0, 0];
/**
 * QoS/Queue rows per node before any pod: ovn-controller's own `linux-noop` QoS on br-phy, the bridge that holds its
 * encap IP on the two-node bed (a one-node bed has none); the pods' rows come and go on top of these.
 */
const baseline: { qos: number; queues: number }[] = [];

const nodeOf = (i: number): RealClusterNode => cluster!.nodes[i]!;
const onNode = (i: number): string[] => [...placement].filter(([, n]) => n === i).map(([p]) => p);

async function chassisUuid(name: string): Promise<string> {
  return bed.central.sbctl(['--bare', '--columns=_uuid', 'find', 'chassis', `name=${name}`]);
}

/** Runs argv inside the pod's container (containerd task exec: what the kubelet does for `kubectl exec`). */
async function execInPod(pod: string, argv: string[]): Promise<{ code: number; out: string }> {
  const s = await bed.kube!.api.get(`/api/v1/namespaces/default/pods/${pod}`);
  const id = String(s.status?.containerStatuses?.[0]?.containerID ?? '').replace(/^containerd:\/\//, '');
  assert.ok(id, `${pod}: a container id`);
  const rn = nodeOf(placement.get(pod)!).rn;
  const r = await rn.exec(['ctr', '-a', '/run/containerd/containerd.sock', '-n', 'k8s.io', 'tasks', 'exec', '--exec-id', `koa-${Date.now()}-${Math.floor(Math.random() * 1e6)}`, id, ...argv],
    { allowFail: true, timeoutMs: 120_000 });
  return { code: r.code, out: `${r.stdout}${r.stderr}` };
}

test('two real nodes: each kubelet registered its Node, the controller annotated both, both chassis survived and tunnel over the underlay', { timeout: 900_000, skip }, async () => {
  const api = bed.kube!.api;
  assert.equal(cluster!.nodes.length, 2);
  for (const { node, rn } of cluster!.nodes) {
    const n = await api.get(`/api/v1/nodes/${node.name}`);
    const ann = n.metadata.annotations ?? {};
    assert.equal(ann['ovn.kubernetes.io/logical_switch'], 'join', `${node.name}: join allocation`);
    assert.match(ann['ovn.kubernetes.io/ip_address'] ?? '', /^100\.64\./);
    assert.equal(ann['ovn.kubernetes.io/chassis'], node.name, `${node.name}: the agent's chassis annotation`);
    assert.ok(n.status.addresses.some((a: { type: string; address: string }) => a.type === 'InternalIP' && a.address === node.encapIp),
      `${node.name}: InternalIP ${node.encapIp} (${JSON.stringify(n.status.addresses)})`);
    assert.equal(rn.nodeIp, node.encapIp);
    // the chassis survived the controller's start-up GC, and its geneve endpoint is the node's underlay address
    // (the agent derives ovn-encap-ip from the node IP: a wrong one would cut the tunnel)
    const uuid = await chassisUuid(node.name);
    assert.ok(uuid, `${node.name}: SB chassis`);
    const encaps = await bed.central.sbctl(['--bare', '--columns=type,ip', 'find', 'encap', `chassis_name=${node.name}`]);
    assert.deepEqual(encaps.split('\n').filter(Boolean), ['geneve', node.encapIp], `${node.name}: encap`);
    assert.equal((await node.ovs.vsctl(['get', 'open_vswitch', '.', 'external_ids:ovn-encap-ip'])).replaceAll('"', ''), node.encapIp);
    const l = await nodeLeaks(node);
    assert.deepEqual([l.podInterfaces, l.hostVeths], [[], []], `${node.name}: no pod port yet`);
    baseline.push({ qos: l.qos, queues: l.queues });
  }
});

test('10 busybox pods over both nodes reach Running with the controller\'s address; LSP up on their own node\'s chassis', { timeout: 900_000, skip }, async (t) => {
  const api = bed.kube!.api;
  for (const [name, i] of placement) {
    await createBusyboxPod(api, { name, nodeName: nodeOf(i).node.name });
    created.set(name, i);
  }
  const t0 = Date.now();
  await Promise.all([...placement].map(async ([name, i]) => {
    try {
      await waitRunning(api, name, 600_000);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${await diagnosePod(api, nodeOf(i).rn, nodeOf(i).agent, name)}`);
    }
  }));
  t.diagnostic(`10 pods Running ${((Date.now() - t0) / 1000).toFixed(1)} s after the creates`);
  const chassis = await Promise.all([0, 1].map((i) => chassisUuid(nodeOf(i).node.name)));
  for (const [name, i] of placement) {
    const pod = await api.get(`/api/v1/namespaces/default/pods/${name}`);
    const ann = pod.metadata.annotations ?? {};
    assert.equal(ann['ovn.kubernetes.io/allocated'], 'true', `${name}: allocated by the controller`);
    assert.equal(ann['ovn.kubernetes.io/logical_switch'], 'ovn-default', `${name}: logical switch`);
    assert.equal(pod.status.podIP, ann['ovn.kubernetes.io/ip_address'], `${name}: the pod IP is the controller's allocation`);
    assert.equal(pod.spec.nodeName, nodeOf(i).node.name);
    ips.set(name, pod.status.podIP);
    const lsp = `${name}.default`;
    assert.equal(await lspUpState(bed.central, lsp), 'up', `${name}: LSP up`);
    // bound on its own node: the port is on that node's OVS, and the SB port binding names that node's chassis
    const iface = await nodeOf(i).node.ovs.vsctl(['--bare', '--columns=name', 'find', 'interface', `external_ids:iface-id=${lsp}`]);
    assert.ok(iface.endsWith('_h'), `${name}: OVS port on ${nodeOf(i).node.name}: ${JSON.stringify(iface)}`);
    const other = await nodeOf(1 - i).node.ovs.vsctl(['--bare', '--columns=name', 'find', 'interface', `external_ids:iface-id=${lsp}`]);
    assert.equal(other, '', `${name}: no port on the other node`);
    assert.equal(await bed.central.sbctl(['--bare', '--columns=chassis', 'find', 'port_binding', `logical_port=${lsp}`]), chassis[i], `${name}: bound to ${nodeOf(i).node.name}'s chassis`);
  }
  assert.equal(new Set(ips.values()).size, N, `distinct pod IPs: ${JSON.stringify([...ips])}`);
  for (const i of [0, 1]) {
    const c = await cniRequestCounts(nodeOf(i).agent);
    assert.equal(countOf(c, 'ADD', false), 0, `${nodeOf(i).node.name}: no failed ADD: ${JSON.stringify([...c])}`);
    assert.ok(countOf(c, 'ADD', true) >= N / 2, `${nodeOf(i).node.name}: an ADD per sandbox: ${JSON.stringify([...c])}`);
  }
});

test('inside pods on node 1: ping a pod on node 2 (geneve) and the gateway; pingers on each node ping the other node\'s pods', { timeout: 900_000, skip }, async () => {
  const api = bed.kube!.api;
  assert.equal(ips.size, N, 'the pods test ran');
  const remote = onNode(1);
  // exec in each pod of node 1: a pod of node 2 (a different one each) and the gateway
  for (const [k, pod] of onNode(0).entries()) {
    for (const target of [ips.get(remote[k % remote.length]!)!, GATEWAY]) {
      const r = await execInPod(pod, ['ping', '-c', '3', '-W', '5', target]);
      assert.equal(r.code, 0, `${pod} (node 1) -> ${target}:\n${r.out}`);
      assert.match(r.out, /3 packets transmitted, 3 packets received|, 0% packet loss/, `${pod} -> ${target}:\n${r.out}`);
    }
  }
  // and the way back, from a pod of node 2 to one of node 1
  const back = await execInPod(remote[0]!, ['ping', '-c', '3', '-W', '5', ips.get(onNode(0)[0]!)!]);
  assert.equal(back.code, 0, `${remote[0]} (node 2) -> ${onNode(0)[0]}:\n${back.out}`);

  // a pinger pod per node (restartPolicy Never): every pod of the other node, then the gateway
  const pingers = [0, 1].map((i) => ({ name: `pinger${i + 1}`, i, script: [...onNode(1 - i).map((p) => ips.get(p)!), GATEWAY].map((x) => `ping -c 3 -W 5 ${x}`).join(' && ') }));
  for (const p of pingers) {
    await createBusyboxPod(api, { name: p.name, nodeName: nodeOf(p.i).node.name, restartPolicy: 'Never', command: ['sh', '-c', p.script] });
    created.set(p.name, p.i);
  }
  for (const p of pingers) {
    const done = await waitFinished(api, p.name, 600_000);
    const pod = await api.get(`/api/v1/namespaces/default/pods/${p.name}`);
    assert.equal(pod.status.podIP, pod.metadata.annotations?.['ovn.kubernetes.io/ip_address'], `${p.name}: the controller's address`);
    assert.deepEqual(done, { phase: 'Succeeded', exitCode: 0 }, `${p.name}: ${p.script}\n${podLog(nodeOf(p.i).rn.podLogsDir, p.name)}`);
  }
});

test('deleting all pods: the controller removes the LSPs, every DEL on both nodes succeeds, nothing of the pods is left', { timeout: 900_000, skip }, async (t) => {
  const api = bed.kube!.api;
  const pods = [...created.keys()];
  assert.equal(pods.length, N + 2, 'the earlier tests ran');
  assert.equal(baseline.length, 2, 'the first test took the baseline');
  const offsets = [0, 1].map((i) => statSync(nodeOf(i).rn.containerdLog).size);
  for (const i of [0, 1]) sandboxCount[i] = [...created.values()].filter((n) => n === i).length;
  await Promise.all(pods.map((p) => deleteAndWait(api, p, 300_000)));
  await waitLspsRemoved(bed.central, pods, 180_000);
  const since = (i: number) => readFileSync(nodeOf(i).rn.containerdLog, 'utf8').slice(offsets[i]);
  // per sandbox containerd 1.6 calls DEL once with the netns (StopPodSandbox), then ~40 s later rounds with
  // CNI_NETNS="" (the kubelet's StopPodSandbox again and RemovePodSandbox, the last one): wait for every removal
  await waitFor('RemovePodSandbox of every pod sandbox on both nodes', () =>
    [0, 1].every((i) => (since(i).match(/RemovePodSandbox \\"[0-9a-f]+\\" returns successfully/g) ?? []).length >= sandboxCount[i]!), 400_000, 1000);
  for (const i of [0, 1]) {
    const { node, rn, agent } = nodeOf(i);
    const c = await cniRequestCounts(agent);
    t.diagnostic(`${node.name}: ${sandboxCount[i]} pods, agent answered ${JSON.stringify(Object.fromEntries(c))}`);
    assert.equal(countOf(c, 'DEL', false), 0, `${node.name}: every DEL answered ok: ${JSON.stringify([...c])}`);
    assert.ok(countOf(c, 'DEL') >= 3 * sandboxCount[i]!, `${node.name}: 3 DELs per pod at least: ${JSON.stringify([...c])}`);
    assert.doesNotMatch(since(i), /failed to destroy network|failed to teardown/i, `${node.name}: containerd logged no failed CNI DEL`);
    const empty = { podInterfaces: [], hostVeths: [], ...baseline[i]!, podNetns: [] as string[] };
    const left = async () => ({
      ...(await nodeLeaks(node)),
      podNetns: (await rn.exec(['ls', '-A', '/run/netns'], { allowFail: true })).stdout.split('\n').filter((l) => l.startsWith('cni-')),
    });
    await waitFor(`nothing of the pods left on ${node.name}`, async () => JSON.stringify(await left()) === JSON.stringify(empty), 120_000, 1000).catch(() => undefined);
    assert.deepEqual(await left(), empty, `${node.name}: no pod port, host veth, QoS/Queue row or pod netns left`);
    assert.ok(agent.proc.alive(), `${node.name}: the agent still runs`);
  }
  // the controller released the addresses: no IP CR of the pods is left
  await waitFor('IP CRs of the pods released', async () => {
    const items = (await api.get('/apis/kubeovn.io/v1/ips')).items as { spec?: { podName?: string } }[];
    return !items.some((x) => pods.includes(x.spec?.podName ?? ''));
  }, 180_000, 1000);
  for (const p of pods) await assert.rejects(podStatus(api, p), `${p} gone`);
});
