// The drop-in claim end to end: the image `npm run image` builds, imported into the real node's containerd, and
// deploy/rbac.yaml + deploy/kube-ovn-cni-ds.yaml applied as they are but for the image reference and the node-local
// hostPaths (image-ds.ts). The real kubelet runs the DaemonSet's pod: hostpath-init, then install-cni (the CNI
// executables and the conflist into the node's CNI dirs; containerd then reports the network ready), then cni-server
// (start-cniserver.sh, hostNetwork, in-cluster config through the pod's ServiceAccount token, its socket in the node's
// /run/openvswitch). Busybox pods created through the kubelet get eth0 from it and ping each other. Deleting the
// agent pod (the controller creates the next one), then a rollout restart (the DaemonSet's rolling update) lose no
// ping between two pods pinging every 0.2 s across both. What a cluster has and the bed stands in for: image-ds.ts.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { leaks, up, type Bed, type BedNode } from '../bed/bed.ts';
import type { Allocation } from '../bed/controller.ts';
import { sleep, trace, waitFor } from '../bed/exec.ts';
import { cleanupAll, newPrefix } from '../bed/netns.ts';
import { ROOT } from '../e2e/agent-harness.ts';
import { buildImage, type ImageSummary } from '../image/build.ts';
import { cniRequestCounts, countOf, type DaemonSetAgent } from './daemonset.ts';
import {
  adaptDaemonSet, applyObjects, clusterPrereqs, daemonSetPods, manifest, nodePaths, serviceProxyStandIn,
  standInDaemonSetController, type StandInDaemonSetController,
} from './image-ds.ts';
import { cgroupLeaks, startRealNode, type RealNode } from './node.ts';
import { createBusyboxPod, podLog, podStatus, waitFinished, waitRunning } from './pods.ts';
import { lspUpState } from '../bed/ovn.ts';

const NS = 'kube-system';
const DS = 'kube-ovn-cni';
let prefix = '';
let bed: Bed | undefined;
let node: BedNode;
let rn: RealNode | undefined;
let image: ImageSummary;
let dsc: StandInDaemonSetController | undefined;
let changes: string[] = [];

/** The agent's /metrics and health server: hostNetwork, bound to the pod IP (ENABLE_BIND_LOCAL_IP=true) = node IP. */
const agentHttp = async (path: string) => {
  const r = await node.ns.exec(['curl', '-sS', '-m', '5', '-o', '-', '-w', '\n%{http_code}', `http://${rn!.nodeIp}:10665${path}`], { allowFail: true, timeoutMs: 10_000 });
  const cut = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(cut + 1)) || 0, body: r.stdout.slice(0, Math.max(0, cut)) };
};
const agent = { metrics: async () => (await agentHttp('/metrics')).body } as DaemonSetAgent;

/** The one agent pod that is not terminating, once kubelet reports it Ready (its readinessProbe: /readyz). */
async function readyAgentPod(notUid?: string, timeoutMs = 600_000) {
  return waitFor('agent pod Ready', async () => {
    const live = (await daemonSetPods(bed!.kube!.api, NS, DS)).filter((p) => !p.deleting && p.uid !== notUid);
    return live.length === 1 && live[0]!.ready ? live[0]! : undefined;
  }, timeoutMs, 500);
}

before(async () => {
  const t0 = Date.now();
  image = await buildImage();
  console.log(`# npm run image: ${((Date.now() - t0) / 1000).toFixed(1)} s (${JSON.stringify(image)})`);
  prefix = newPrefix('koards');
  bed = await up({ prefix, serviceAccounts: true });
  node = bed.nodes[0]!;
  rn = await startRealNode(bed, node);
  // no CNI yet: the kubelet registers the node, which stays NotReady until install-cni has run
  await rn.startRuntime({ waitReady: false });
  const t1 = Date.now();
  await rn.exec(['ctr', '-a', '/run/containerd/containerd.sock', '-n', 'k8s.io', 'images', 'import', '--snapshotter', 'overlayfs', image.archive], { timeoutMs: 600_000 });
  console.log(`# ctr -n k8s.io images import: ${((Date.now() - t1) / 1000).toFixed(1)} s`);
  await clusterPrereqs(bed.kube!);
  const svc = await serviceProxyStandIn(bed.kube!, node);
  trace(`daemonset: kubernetes Service ${svc} -> apiserver`);
  const { objects, changes: c } = adaptDaemonSet(manifest('kube-ovn-cni-ds.yaml'), image.tag, nodePaths(rn));
  changes = c;
  await applyObjects(bed.kube!.api, [...manifest('rbac.yaml'), ...objects]);
  dsc = standInDaemonSetController(bed.kube!.api, NS, DS, node.name);
}, { timeout: 60 * 60_000 });

after(async () => {
  try {
    await dsc?.stop().catch((e: unknown) => console.log(`# stand-in DaemonSet controller: ${String(e)}`));
    await rn?.stop();
    await bed?.down();
  } finally {
    await cleanupAll();
  }
  if (prefix) assert.deepEqual({ ...leaks(prefix), cgroups: cgroupLeaks(prefix) }, { netns: [], tmpDirs: [], processes: [], cgroups: [] });
  assert.deepEqual(rn?.processes() ?? [], [], 'no process of the node is left');
}, { timeout: 300_000 });

test('the manifest changes only in the image and the node-local hostPaths', () => {
  const images = changes.filter((c) => c.includes('.image: '));
  assert.deepEqual(images.map((c) => c.split(':')[0]), ['hostpath-init.image', 'install-cni.image', 'cni-server.image']);
  const paths = changes.filter((c) => !c.includes('.image: ')).map((c) => c.split(' -> ')[0]);
  assert.deepEqual(paths.sort(), [
    'volume cni-bin.hostPath.path: /opt/cni/bin', 'volume cni-conf.hostPath.path: /etc/cni/net.d',
    'volume local-bin.hostPath.path: /usr/local/bin', 'volume shared-dir.hostPath.path: /var/lib/kubelet/pods',
    'volume systemid.hostPath.path: /etc/origin/openvswitch',
  ]);
});

test('kubelet runs the DaemonSet pod: install-cni puts the executables and the conflist on the node, cni-server serves the socket', { timeout: 900_000 }, async () => {
  const t0 = Date.now();
  const pod = await readyAgentPod();
  console.log(`# agent pod ${pod.name} Ready ${((Date.now() - t0) / 1000).toFixed(1)} s after the DaemonSet was applied`);
  for (const f of ['kube-ovn', 'loopback', 'portmap', 'macvlan', 'ipvlan']) {
    const st = statSync(join(rn!.cniBinDir, f));
    assert.ok(st.isFile() && (st.mode & 0o111) !== 0, `${f} installed executable`);
  }
  const version = JSON.parse(execFileSync(join(rn!.cniBinDir, 'kube-ovn'), { env: { CNI_COMMAND: 'VERSION' } }).toString());
  assert.ok(version.supportedVersions.includes('1.0.0'), JSON.stringify(version));
  const conflist = join(rn!.cniConfDir, '01-kube-ovn.conflist');
  assert.deepEqual(JSON.parse(readFileSync(conflist, 'utf8')), JSON.parse(readFileSync(join(ROOT, 'deploy/image/01-kube-ovn.conflist'), 'utf8')));
  assert.equal(statSync(conflist).mode & 0o777, 0o600);
  // the conflist's server_socket /run/openvswitch/kube-ovn-daemon.sock is, on this node, the bed OVS's run dir
  assert.ok(statSync(join(node.ovs.rundir, 'kube-ovn-daemon.sock')).isSocket(), 'the agent socket');
  const ss = await node.ns.exec(['ss', '-xlpn']);
  const owner = ss.stdout.split('\n').find((l) => l.includes('kube-ovn-daemon.sock'));
  const pid = Number(/pid=(\d+)/.exec(owner ?? '')?.[1]);
  assert.ok(rn!.podPids(pod.uid).includes(pid), `the socket's listener (pid ${pid}) is a process of ${pod.name}: ${owner}`);
  assert.equal((await agentHttp('/readyz')).status, 200);
  // containerd found the conflist: the network is ready and so is the node
  await waitFor('node Ready', async () => {
    const n = await bed!.kube!.api.get(`/api/v1/nodes/${node.name}`);
    return n.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True');
  }, 300_000, 500);
});

const allocs = new Map<string, Allocation>();

async function startPod(name: string, command?: string[]) {
  const { uid } = await createBusyboxPod(bed!.kube!.api, { name, nodeName: node.name, ...(command ? { command, restartPolicy: 'Never' as const } : {}) });
  allocs.set(name, await bed!.controller!.allocatePod('default', name));
  return uid;
}

test('busybox pods get eth0 from the DaemonSet\'s agent and ping each other and the gateway', { timeout: 900_000 }, async () => {
  for (const name of ['web', 'db']) await startPod(name);
  for (const name of ['web', 'db']) {
    const s = await waitRunning(bed!.kube!.api, name);
    assert.equal(s.podIP, allocs.get(name)!.ips[0], `${name}: the kubelet reports the address from the CNI result`);
    assert.equal(await lspUpState(bed!.central, `${name}.default`), 'up');
  }
  const targets = [allocs.get('web')!.ips[0]!, allocs.get('db')!.ips[0]!, allocs.get('web')!.gateway];
  const script = targets.map((t) => `ping -c 3 -W 5 ${t}`).join(' && ');
  await startPod('pinger', ['sh', '-c', script]);
  const done = await waitFinished(bed!.kube!.api, 'pinger');
  assert.deepEqual(done, { phase: 'Succeeded', exitCode: 0 }, `pinger: ${script}\n${podLog(rn!.podLogsDir, 'pinger')}`);
  const c = await cniRequestCounts(agent);
  assert.ok(countOf(c, 'ADD', true) >= 3, `three ADDs answered ok: ${JSON.stringify([...c])}`);
  assert.equal(countOf(c, 'ADD', false), 0);
  // rbac.yaml is enough for what the agent does: the API server refused it nothing
  const pod = await readyAgentPod();
  const log = podLog(rn!.podLogsDir, pod.name, NS, 'cni-server');
  // (a JSON field `"ms":403` is a duration, not a refusal)
  const refused = log.split('\n').filter((l) => /forbidden|"(?:code|status|statusCode)":\s*403\b|\bHTTP 403\b/i.test(l));
  console.log(`# cni-server log: ${log.split('\n').length} lines, ${refused.length} refused by the API server`);
  assert.deepEqual(refused.slice(0, 5), [], 'requests the API server refused under rbac.yaml');
});

test('deleting the agent pod, then a rollout restart: each next agent takes over and not one ping (every 0.2 s) between two pods is lost', { timeout: 900_000 }, async () => {
  const api = bed!.kube!.api;
  const target = allocs.get('db')!.ips[0]!;
  const uid = await startPod('steady', ['ping', '-i', '0.2', '-w', '1800', target]);
  await waitRunning(api, 'steady');
  await waitFor('steady: replies', () => /seq=10 /.test(podLog(rn!.podLogsDir, 'steady')), 120_000, 250);
  const lastSeq = () => Math.max(-1, ...[...podLog(rn!.podLogsDir, 'steady').matchAll(/seq=(\d+) /g)].map((x) => Number(x[1])));
  const restarts: { how: string; old: string; next: string; s: number; seqs: [number, number]; containerRestarts?: string }[] = [];
  const restart = async (how: string, act: (old: { name: string }) => Promise<unknown>) => {
    const old = await readyAgentPod();
    const t0 = Date.now();
    const seqAtStart = lastSeq();
    await act(old);
    const next = await readyAgentPod(old.uid);
    const s = (Date.now() - t0) / 1000;
    const seqAtReady = lastSeq();
    await waitFor(`old agent pod ${old.name} gone`, async () => !(await daemonSetPods(api, NS, DS)).some((p) => p.uid === old.uid), 300_000, 500);
    const containerRestarts = (await podStatus(api, next.name, NS)).containerStatuses?.map((c) => c.restartCount ?? 0).join(',');
    restarts.push({ how, old: old.name, next: next.name, s, seqs: [seqAtStart, seqAtReady], ...(containerRestarts ? { containerRestarts } : {}) });
  };
  await restart('pod deleted', (old) => api.delete(`/api/v1/namespaces/${NS}/pods/${old.name}`));
  // what `kubectl rollout restart ds/kube-ovn-cni` sends
  await restart('rollout restart', () => api.request('PATCH', `/apis/apps/v1/namespaces/${NS}/daemonsets/${DS}`,
    Buffer.from(JSON.stringify({ spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': new Date().toISOString() } } } } })),
    'application/strategic-merge-patch+json'));
  // the last agent serves: a pod created now gets its network from it
  await startPod('late');
  assert.equal((await waitRunning(api, 'late')).podIP, allocs.get('late')!.ips[0]);
  await sleep(3000);
  // SIGINT makes ping print its statistics and exit (restartPolicy Never: the pod then finishes)
  const ping = rn!.podPids(uid).filter((p) => readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'ping');
  assert.equal(ping.length, 1, `one ping process in steady: ${ping}`);
  process.kill(ping[0]!, 'SIGINT');
  await waitFinished(api, 'steady');
  const log = podLog(rn!.podLogsDir, 'steady');
  const m = /(\d+) packets transmitted, (\d+) packets received/.exec(log);
  assert.ok(m, log.slice(-500));
  const [sent, received] = [Number(m[1]), Number(m[2])];
  const seqs = [...log.matchAll(/seq=(\d+) /g)].map((x) => Number(x[1]));
  // the last echo may still have been in flight when ping was interrupted: it is not counted as lost
  const missing = [...Array(sent).keys()].filter((s) => !seqs.includes(s));
  const lost = missing.filter((s) => s !== sent - 1);
  for (const r of restarts) {
    console.log(`# ${r.how}: ${r.old} -> ${r.next} Ready in ${r.s.toFixed(1)} s (its container restarts: ${r.containerRestarts}); ping seq ${r.seqs[0]}..${r.seqs[1]} meanwhile`);
    assert.ok(r.seqs[0] >= 10 && r.seqs[1] > r.seqs[0], `the pings span the ${r.how} (${JSON.stringify(r)})`);
  }
  console.log(`# pings sent ${sent}, received ${received}, lost ${lost.length} (missing seq ${missing.join(',') || 'none'})`);
  assert.ok(sent > restarts.at(-1)!.seqs[1]);
  assert.deepEqual(lost, [], `no ping lost (sent ${sent}, received ${received})`);
  assert.ok(existsSync(join(node.ovs.rundir, 'kube-ovn-daemon.sock')));
});
