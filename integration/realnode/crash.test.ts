// A crash of the agent during pod creation, on the real node with the real kube-ovn-controller (issue 15): 10 busybox
// pods are created at once; as soon as one ADD has reached the agent (a pod port of ours in OVS, or an ADD logged as
// done) and before all are Running, the agent is SIGKILLed by its PID. The ADDs in flight lose their connection, the
// kubelet's later attempts find no agent (containerd's DEL after each failed ADD is queued by the CNI executable
// under /run/openvswitch/kube-ovn-del-queue). After the kubelet's restart back-off the container's entrypoint runs
// again (start-cniserver.sh, as the kubelet restarts the cni-server container); the kubelet's retries bring every pod
// to Running with the controller's address, each pod has exactly one OVS port (no two interfaces claim one LSP), and
// deleting the pods leaves no OVS port, `_h` veth, QoS/Queue row, pod netns or queued DEL behind.
// Every third pod carries ingress/egress rates, so QoS and Queue rows exist and must go too.
// Generous bounds and no speed asserts: a loaded 2-core machine.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Bed, BedNode } from '../bed/bed.ts';
import { run, sleep, waitFor } from '../bed/exec.ts';
import { newPrefix } from '../bed/netns.ts';
import { nodeLeaks } from '../load/lib.ts';
import { downRealNode, upRealCluster, type RealCluster } from './cluster.ts';
import { upstreamMissing } from './controller.ts';
import { cniRequestCounts, countOf, type DaemonSetAgent } from './daemonset.ts';
import { waitLspsRemoved } from './deletion.ts';
import { diagnosePod } from './multus.ts';
import { createBusyboxPod, deleteAndWait, podStatus, waitRunning } from './pods.ts';
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
  prefix = newPrefix('koacr');
  cluster = await upRealCluster(prefix);
  ({ bed, node, agent } = cluster);
}, { timeout: 900_000 });

after(async () => {
  const rn = cluster?.rn;
  await downRealNode(prefix, cluster);
  assert.deepEqual(rn?.processes() ?? [], [], 'no process of the node is left');
}, { timeout: 300_000 });

const N = 10;
const names = Array.from({ length: N }, (_, i) => `crash${i}`);
const RATES = { 'ovn.kubernetes.io/ingress_rate': '50', 'ovn.kubernetes.io/egress_rate': '100' };
const withRates = (i: number): boolean => i % 3 === 0;
/** the kubelet's first back-off before it restarts a container that exited */
const RESTART_BACKOFF_MS = 10_000;

interface OvsIface { name: string; ids: Record<string, string>; ofport: number; error: string }

/** Interfaces on the node's OVS with our external_ids (vendor=kube-ovn) and a pod_name: the pod ports. */
async function podIfaces(): Promise<OvsIface[]> {
  const out = JSON.parse(await node.ovs.vsctl(['--format=json', '--columns=name,external_ids,ofport,error', 'find', 'interface', 'external_ids:vendor=kube-ovn'])) as
    { data: [string, [string, [string, string][]], unknown, unknown][] };
  const scalar = <T>(v: unknown, none: T): T => (Array.isArray(v) && v[0] === 'set' ? none : v as T);
  return out.data.map(([name, [, kv], ofport, error]) => ({ name, ids: Object.fromEntries(kv), ofport: scalar(ofport, -1), error: scalar(error, '') }))
    .filter((i) => i.ids.pod_name);
}

/** iface-ids more than one OVS interface claims: the hazard a crashed ADD could leave (two ports for one LSP). */
function sharedIfaceIds(ifaces: OvsIface[]): [string, string[]][] {
  const byId = new Map<string, string[]>();
  for (const i of ifaces) if (i.ids['iface-id']) byId.set(i.ids['iface-id'], [...(byId.get(i.ids['iface-id']) ?? []), i.name]);
  return [...byId].filter(([, v]) => v.length > 1);
}

const sinceOffset = (file: string, offset: number): string => {
  try { return readFileSync(file, 'utf8').slice(offset); } catch { return ''; }
};
const count = (text: string, re: RegExp): number => (text.match(re) ?? []).length;
/** Pod netns files containerd made (cni-<uuid>) in the node's private /run/netns. */
const podNetns = async (): Promise<string[]> =>
  (await cluster!.rn.exec(['ls', '-A', '/run/netns'], { allowFail: true })).stdout.split('\n').filter((l) => l.startsWith('cni-'));
const delQueue = (): string[] => {
  const dir = join(node.ovs.rundir, 'kube-ovn-del-queue');
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json')) : [];
};

const uids = new Map<string, string>();
/** the pods' OVS ports (`<first 12 characters of the sandbox ID>_h`) once all were Running */
const finalPorts: string[] = [];
let killedPid = 0;

test('SIGKILL of the agent while the kubelet creates 10 pods: after its restart all are Running with the controller\'s addresses, one OVS port each', { timeout: 1_500_000, skip }, async (t) => {
  const api = bed.kube!.api;
  const rn = cluster!.rn;
  const agentLog = agent.proc.log;
  const logFrom = statSync(agentLog).size;
  const ctrdFrom = statSync(rn.containerdLog).size;
  const oldPid = agent.proc.pid;

  await Promise.all(names.map(async (name, i) => {
    const { uid } = await createBusyboxPod(api, { name, nodeName: node.name, ...(withRates(i) ? { annotations: RATES } : {}) });
    uids.set(name, uid);
  }));
  const created = performance.now();

  // the first ADD that reached the agent: its port in OVS (an ADD in flight or done) or an ADD logged as done
  const atKill = await waitFor('an ADD reaching the agent', async () => {
    const text = sinceOffset(agentLog, logFrom);
    const done = count(text, /"msg":"pod NIC configured"/g);
    const ports = (await podIfaces()).length;
    return done + ports > 0 ? { done, ports } : undefined;
  }, 600_000, 100);
  await agent.kill();
  killedPid = oldPid;
  const killedAt = performance.now();
  const doneAtKill = count(sinceOffset(agentLog, logFrom), /"msg":"pod NIC configured"/g);
  const running = (await Promise.all(names.map((n) => podStatus(api, n)))).filter((s) => s.phase === 'Running').length;
  t.diagnostic(`killed pid ${oldPid} ${((killedAt - created) / 1000).toFixed(1)} s after the creates: ${doneAtKill} ADDs done, ${atKill.ports} pod ports in OVS, ${running}/${N} pods Running`);
  assert.ok(running < N, `the kill came before all pods were Running (${running}/${N})`);
  assert.deepEqual(sharedIfaceIds(await podIfaces()), [], 'right after the kill: no iface-id claimed by two OVS interfaces');

  // the kubelet restarts the exited container after its back-off; meanwhile its ADDs find no agent
  await sleep(RESTART_BACKOFF_MS);
  await agent.restart();
  assert.notEqual(agent.proc.pid, oldPid);
  await agent.ready();
  t.diagnostic(`agent restarted (pid ${agent.proc.pid}), ready ${((performance.now() - killedAt) / 1000).toFixed(1)} s after the kill`);

  await Promise.all(names.map(async (name) => {
    try {
      await waitRunning(api, name, 900_000);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${await diagnosePod(api, rn, agent, name)}`);
    }
  }));
  t.diagnostic(`all ${N} Running ${((performance.now() - killedAt) / 1000).toFixed(1)} s after the kill, ${((performance.now() - created) / 1000).toFixed(1)} s after the creates`);

  const ips: string[] = [];
  for (const name of names) {
    const pod = await api.get(`/api/v1/namespaces/default/pods/${name}`);
    const ann = pod.metadata.annotations ?? {};
    assert.equal(ann['ovn.kubernetes.io/logical_switch'], 'ovn-default', name);
    assert.ok(ann['ovn.kubernetes.io/ip_address'], `${name}: the controller allocated an address`);
    assert.equal(pod.status.podIP, ann['ovn.kubernetes.io/ip_address'], `${name}: the pod IP is the controller's allocation`);
    ips.push(pod.status.podIP);
  }
  assert.equal(new Set(ips).size, N, `ten distinct addresses: ${ips.join(' ')}`);

  // OVS: exactly one port per pod (a port left by an interrupted ADD of an earlier sandbox goes with its queued DEL
  // or the agent's GC), never two interfaces with one iface-id
  let firstLook: OvsIface[] | undefined;
  let lastLook: OvsIface[] | undefined;
  const shared: [string, string[]][] = [];
  const ifaces = await waitFor('exactly one OVS port per pod', async () => {
    const all = (lastLook = await podIfaces());
    firstLook ??= all;
    shared.push(...sharedIfaceIds(all));
    return names.every((n) => all.filter((i) => i.ids.pod_name === n).length === 1) && all.length === N ? all : undefined;
  }, 240_000, 1000).catch((e: unknown) => { throw new Error(`${(e as Error).message}; last look: ${JSON.stringify(lastLook)}`); });
  assert.deepEqual(shared, [], 'no iface-id claimed by two OVS interfaces at any look');
  if (firstLook && firstLook.length !== N) t.diagnostic(`first look after all Running: ${firstLook.length} pod interfaces (${firstLook.map((i) => `${i.name}:${i.ids.pod_name}${i.error ? ` [${i.error}]` : ''}`).join(', ')})`);
  const brInt = (await node.ovs.vsctl(['list-ports', 'br-int'])).split('\n').filter((p) => p.endsWith('_h')).sort();
  assert.deepEqual(brInt, ifaces.map((i) => i.name).sort(), 'br-int holds exactly the pods\' ports');
  const leaksNow = await nodeLeaks(node);
  assert.deepEqual(leaksNow.hostVeths.sort(), ifaces.map((i) => i.name).sort(), 'one host veth per pod port, none other');

  for (const name of names) {
    const i = ifaces.find((x) => x.ids.pod_name === name)!;
    assert.equal(i.ids['iface-id'], `${name}.default`, `${name}: iface-id`);
    assert.equal(i.ids.pod_namespace, 'default');
    assert.ok(i.name.endsWith('_h') && i.ofport > 0 && !i.error, `${name}: a live port ${JSON.stringify(i)}`);
    assert.equal(await lspUpState(bed.central, `${name}.default`), 'up', `${name}: LSP up`);
    // the port's veth is the pod's eth0 (its peer), which carries the pod IP
    const pid = rn.podPid(uids.get(name)!);
    assert.ok(pid, `${name}: a process of the pod`);
    const eth0 = JSON.parse((await run(['nsenter', '-t', String(pid), '-n', 'ip', '-j', 'addr', 'show', 'dev', 'eth0'])).stdout) as
      { link_index?: number; addr_info: { family: string; local: string }[] }[];
    const host = JSON.parse((await node.ns.ip(['-j', 'link', 'show', 'dev', i.name])).stdout) as { ifindex: number }[];
    assert.equal(eth0[0]?.link_index, host[0]?.ifindex, `${name}: eth0's peer is the OVS port ${i.name}`);
    const podIp = (await podStatus(api, name)).podIP;
    assert.ok(eth0[0]?.addr_info.some((a) => a.local === podIp), `${name}: eth0 carries ${podIp}`);
  }
  finalPorts.push(...ifaces.map((i) => i.name));
  // QoS of the pods with rates came through the restart too
  assert.ok(leaksNow.qos >= names.filter((_, i) => withRates(i)).length, `QoS rows for the pods with rates: ${JSON.stringify(leaksNow)}`);

  const ctrd = sinceOffset(rn.containerdLog, ctrdFrom);
  // an ADD cut off by the kill is "did not answer" (reset, or closed before an answer), never a malformed answer
  assert.doesNotMatch(ctrd, /gave an unexpected answer/, 'the CNI executable reported the cut-off calls as unanswered');
  const failedAdds = count(ctrd, /failed to setup network for sandbox[^\n]*kube-ovn agent/g);
  assert.ok(failedAdds > 0, 'the crash failed sandbox ADDs that the kubelet then retried');
  const agentText = sinceOffset(agentLog, logFrom);
  const c = await cniRequestCounts(agent);
  const gc = /^kube_ovn_agent_gc_removed_total\{kind="port"\} (\d+)/m.exec(await agent.metrics());
  t.diagnostic(`containerd: ${count(ctrd, /did not answer/g)} ADDs cut off by the kill, ${count(ctrd, /cannot reach the kube-ovn agent/g)} refused while it was down; `
    + `restarted agent: ${JSON.stringify(Object.fromEntries(c))}, queued DELs completed ${count(agentText, /"msg":"completed queued DEL"/g)}, GC removed ${gc?.[1] ?? 0} ports`);
});

test('deleting the pods after the crash: every DEL succeeds, no OVS port, veth, QoS row, netns or queued DEL is left', { timeout: 900_000, skip }, async () => {
  const api = bed.kube!.api;
  const rn = cluster!.rn;
  assert.equal(uids.size, N, 'the first test ran');
  assert.ok(killedPid > 0);
  const ctrdFrom = statSync(rn.containerdLog).size;
  await Promise.all(names.map((n) => deleteAndWait(api, n, 300_000)));
  await waitLspsRemoved(bed.central, names, 180_000);
  // per sandbox containerd 1.6 calls DEL once with the netns (StopPodSandbox), then later rounds with CNI_NETNS=""
  // (the kubelet's StopPodSandbox again and RemovePodSandbox): wait for the last one of every pod's sandbox (the
  // DEL counter alone cannot tell: it also counts DELs of the sandboxes that failed during the crash)
  const sandboxes = finalPorts.map((p) => p.slice(0, -2));
  assert.equal(sandboxes.length, N, 'the first test recorded the ports');
  await waitFor('RemovePodSandbox of every pod\'s sandbox', () => {
    const text = sinceOffset(rn.containerdLog, ctrdFrom);
    return sandboxes.every((id) => new RegExp(`RemovePodSandbox \\\\"${id}[0-9a-f]*\\\\" returns successfully`).test(text));
  }, 300_000, 1000);
  const c = await cniRequestCounts(agent);
  assert.equal(countOf(c, 'DEL', false), 0, `every DEL answered ok: ${JSON.stringify([...c])}`);
  assert.ok(countOf(c, 'DEL') >= 3 * N, `at least 3 DELs per pod: ${JSON.stringify([...c])}`);
  const left = async () => ({ ...(await nodeLeaks(node)), podNetns: await podNetns(), delQueue: delQueue() });
  const empty = { podInterfaces: [], hostVeths: [], qos: 0, queues: 0, podNetns: [], delQueue: [] };
  await waitFor('nothing of the pods left on the node', async () => JSON.stringify(await left()) === JSON.stringify(empty), 120_000, 1000).catch(() => undefined);
  assert.deepEqual(await left(), empty, 'no pod port, host veth, QoS/Queue row, pod netns or queued DEL left');
  assert.deepEqual((await node.ovs.vsctl(['list-ports', 'br-int'])).split('\n').filter((p) => p.endsWith('_h')), [], 'no pod port on br-int');
  assert.doesNotMatch(sinceOffset(rn.containerdLog, ctrdFrom), /failed to destroy network|failed to teardown/i, 'containerd logged no failed CNI DEL');
  assert.ok(agent.proc.alive(), 'the restarted agent still runs');
});
