// Issue 15: upstream's `kube-ovn` CNI executable (v1.16.2, built from the release by scripts/build-fixtures.sh) as the
// node's `kube-ovn` binary, in the conflist our install-cni.sh path wrote (`kube-ovn` then `portmap`), talking to our
// agent over its socket with upstream's own /api/v1 protocol (spec §1.6, §2.3, §2.4). The bed is pods.test.ts's:
// one real node (kubelet + containerd) with the stand-in controller. The stand-in is enough here because what is
// under test is the executable <-> agent contract on a real node, not address allocation; it also lets the test
// address each pod itself, so the expected IP and MAC of every CNI result are known exactly.
// - A reference pod first goes through our own shim (what install-cni.sh installed); then upstream's executable
//   replaces the shim in the node's CNI bin dir, and every later call (pods' ADDs, all DELs) goes through it.
// - Pods reach Running with the annotated IPs and ping each other and the gateway (containerd task exec).
// - The result containerd got back, as libcni cached it on the node (cni-cache.ts), has the 0.3.1 shape §2.3.4 says
//   upstream's executable prints, and equals the reference pod's result through our shim once the per-pod values
//   (IP, MAC, netns path) are normalised.
// - Deleting the pods: containerd's DEL and its later DEL rounds with an empty CNI_NETNS all succeed through upstream's
//   executable, no OVS port or veth is left; a DEL sent again by hand with containerd's stdin and CNI_ARGS succeeds.
// Bounds are generous: this runs on a loaded 2-core machine.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, chmodSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { Bed, BedNode } from '../bed/bed.ts';
import type { Allocation } from '../bed/controller.ts';
import { waitFor } from '../bed/exec.ts';
import { newPrefix } from '../bed/netns.ts';
import { nodeLeaks } from '../load/lib.ts';
import { UPSTREAM_CNI, upstreamCniMissing } from '../upstream/daemon.ts';
import { cachedFor, cniArgsEnv, delStdin, type CachedAttachment } from './cni-cache.ts';
import { downRealNode, upStandInNode, type StandInNode } from './cluster.ts';
import { cniRequestCounts, countOf, type DaemonSetAgent } from './daemonset.ts';
import { waitNoPodPorts } from './deletion.ts';
import type { RealNode } from './node.ts';
import { createBusyboxPod, deleteAndWait, waitRunning } from './pods.ts';

let bed: Bed;
let node: BedNode;
let rn: RealNode;
let agent: DaemonSetAgent;
let real: StandInNode | undefined;
let prefix: string;
// built by `npm run setup` unless KOA_BUILD_UPSTREAM=0: without it every test here is reported as skipped, with this reason
const skip = upstreamCniMissing();

before(async () => {
  if (skip) return;
  prefix = newPrefix('kup');
  real = await upStandInNode(prefix);
  ({ bed, node, rn, agent } = real);
}, { timeout: 900_000 });

after(async () => {
  await downRealNode(prefix, real);
  assert.deepEqual(rn?.processes() ?? [], [], 'no process of the node is left');
}, { timeout: 300_000 });

const allocs = new Map<string, Allocation>();
/** each pod's cached attachment, read while it runs (libcni removes the file after the DEL) */
const cached = new Map<string, CachedAttachment>();
const REF = 'ref';
const UP_PODS = ['web', 'db'];
const nodeBinary = () => join(rn.cniBinDir, 'kube-ovn');
const sameBytes = (a: string, b: string) => readFileSync(a).equals(readFileSync(b));

async function startPod(name: string): Promise<void> {
  await createBusyboxPod(bed.kube!.api, { name, nodeName: node.name });
  allocs.set(name, await bed.controller!.allocatePod('default', name));
}

/** Waits for Running; the kubelet's pod IP is the annotated one; returns the cached attachment of its sandbox. */
async function runningWithAnnotatedIp(name: string): Promise<CachedAttachment> {
  const s = await waitRunning(bed.kube!.api, name);
  const pod = await bed.kube!.api.get(`/api/v1/namespaces/default/pods/${name}`);
  assert.equal(pod.metadata.annotations?.['ovn.kubernetes.io/ip_address'], allocs.get(name)!.ips[0]);
  assert.equal(s.podIP, allocs.get(name)!.ips[0], `${name}: the kubelet reports the annotated address (from the CNI result)`);
  const a = cachedFor(rn.varUpper, name);
  assert.ok(a, `${name}: libcni cached its ADD result under ${rn.varUpper}/lib/cni/results`);
  cached.set(name, a);
  return a;
}

/** Runs argv inside the pod's container (containerd task exec, as the kubelet does for `kubectl exec`). */
async function execInPod(pod: string, argv: string[]): Promise<{ code: number; out: string }> {
  const s = await bed.kube!.api.get(`/api/v1/namespaces/default/pods/${pod}`);
  const id = String(s.status?.containerStatuses?.[0]?.containerID ?? '').replace(/^containerd:\/\//, '');
  assert.ok(id, `${pod}: a container id`);
  const r = await rn.exec(['ctr', '-a', '/run/containerd/containerd.sock', '-n', 'k8s.io', 'tasks', 'exec', '--exec-id', `kup-${Date.now()}-${Math.floor(Math.random() * 1e6)}`, id, ...argv],
    { allowFail: true, timeoutMs: 120_000 });
  return { code: r.code, out: `${r.stdout}${r.stderr}` };
}

/** The cached result with the per-pod values (its IP, MAC, netns path) replaced by placeholders. */
function normalised(a: CachedAttachment, alloc: Allocation): unknown {
  const r = structuredClone(a.result) as { interfaces?: { mac?: string; sandbox?: string }[]; ips?: { address?: string }[] };
  for (const i of r.interfaces ?? []) {
    if (i.mac === alloc.mac) i.mac = '<mac>';
    if (typeof i.sandbox === 'string' && /^\/var\/run\/netns\/cni-[0-9a-f-]+$/.test(i.sandbox)) i.sandbox = '<netns>';
  }
  for (const ip of r.ips ?? []) if (ip.address?.startsWith(`${alloc.ips[0]}/`)) ip.address = ip.address.replace(alloc.ips[0]!, '<ip>');
  return r;
}

test('the conflist chains portmap after kube-ovn; a reference pod through our shim; then upstream\'s executable replaces the shim', { timeout: 900_000, skip }, async () => {
  const conflist = JSON.parse(readFileSync(join(rn.cniConfDir, '01-kube-ovn.conflist'), 'utf8'));
  assert.equal(conflist.cniVersion, '0.3.1');
  assert.deepEqual(conflist.plugins.map((p: { type: string }) => p.type), ['kube-ovn', 'portmap']);
  assert.equal(conflist.plugins[0].server_socket, '/run/openvswitch/kube-ovn-daemon.sock', 'the agent\'s socket (start-cniserver.sh default)');
  assert.equal(sameBytes(nodeBinary(), UPSTREAM_CNI), false, 'install-cni.sh installed our shim, not upstream\'s executable');

  await startPod(REF);
  await runningWithAnnotatedIp(REF);

  // as an image update would: a new file renamed over the old one (a running exec keeps its inode)
  const tmp = `${nodeBinary()}.kup-new`;
  copyFileSync(UPSTREAM_CNI, tmp);
  chmodSync(tmp, 0o755);
  renameSync(tmp, nodeBinary());
  assert.ok(sameBytes(nodeBinary(), UPSTREAM_CNI));
  const about = await rn.exec([nodeBinary()], { allowFail: true, env: { PATH: process.env.PATH } });
  assert.match(about.stderr, /^CNI kube-ovn plugin /m, `upstream's executable answers without CNI_COMMAND with its about string: ${about.stderr}`);
});

test('pods through upstream\'s executable reach Running with the annotated IPs and ping each other and the gateway', { timeout: 900_000, skip }, async () => {
  assert.equal(allocs.size, 1, 'the first test ran');
  const before = await cniRequestCounts(agent);
  for (const name of UP_PODS) await startPod(name);
  for (const name of UP_PODS) await runningWithAnnotatedIp(name);
  assert.ok(sameBytes(nodeBinary(), UPSTREAM_CNI), 'the node\'s kube-ovn is still upstream\'s executable');
  const c = await cniRequestCounts(agent);
  assert.ok(countOf(c, 'ADD', true) - countOf(before, 'ADD', true) >= UP_PODS.length, `an ADD per pod answered ok: ${JSON.stringify([...c])}`);
  assert.equal(countOf(c, 'ADD', false), 0, `no failed ADD: ${JSON.stringify([...c])}`);
  for (const name of [...UP_PODS, REF]) {
    const iface = await node.ovs.vsctl(['--bare', '--columns=name', 'find', 'interface', `external_ids:iface-id=${name}.default`]);
    assert.equal(iface, `${cached.get(name)!.containerId.slice(0, 12)}_h`, `${name}: its OVS port is the sandbox's host veth`);
  }

  const [web, db] = UP_PODS.map((n) => allocs.get(n)!.ips[0]!);
  const pings: [string, string][] = [['web', db!], ['db', web!], ['web', allocs.get('web')!.gateway], ['ref', web!], ['web', allocs.get(REF)!.ips[0]!]];
  for (const [from, to] of pings) {
    const r = await execInPod(from, ['ping', '-c', '3', '-W', '5', to]);
    assert.equal(r.code, 0, `${from} pings ${to}: ${r.out}`);
    assert.match(r.out, / 0% packet loss/, `${from} -> ${to}`);
  }
});

test('the result containerd cached: §2.3.4\'s 0.3.1 shape, the annotated values, and the same as through our shim', { timeout: 120_000, skip }, (t) => {
  assert.equal(cached.size, 3, 'the earlier tests ran');
  t.diagnostic(`web's cached result: ${JSON.stringify(cached.get('web')!.result)}`);
  for (const name of [...UP_PODS, REF]) {
    const a = cached.get(name)!;
    const alloc = allocs.get(name)!;
    const prefixLen = alloc.cidr.split('/')[1];
    assert.equal(a.networkName, 'kube-ovn');
    assert.equal(a.ifName, 'eth0');
    assert.match(a.containerId, /^[0-9a-f]{64}$/);
    const r = a.result as {
      cniVersion: string; interfaces: { name: string; mac: string; sandbox: string; mtu?: number }[];
      ips: { version: string; address: string; gateway: string; interface: number }[]; routes: { dst: string; gw: string }[]; dns: unknown;
    };
    assert.equal(r.cniVersion, '0.3.1', `${name}: the conflist's version`);
    // exactly one interface, the pod's eth0 with the annotated MAC, in the sandbox's netns; no `mtu` in the 0.3.1/0.4 shape
    assert.equal(r.interfaces.length, 1, `${name}: ${JSON.stringify(r)}`);
    assert.deepEqual(Object.keys(r.interfaces[0]!).sort(), ['mac', 'name', 'sandbox']);
    assert.equal(r.interfaces[0]!.name, 'eth0');
    assert.equal(r.interfaces[0]!.mac, alloc.mac);
    assert.match(r.interfaces[0]!.sandbox, /^\/var\/run\/netns\/cni-[0-9a-f-]+$/);
    // one IP: address with the subnet's prefix length, the gateway, `version` "4", interface index 0
    assert.deepEqual(r.ips, [{ version: '4', address: `${alloc.ips[0]}/${prefixLen}`, gateway: alloc.gateway, interface: 0 }]);
    // the response's routes are the link's routes after wiring (§3.8 step 8): the default route via the gateway and
    // the kernel's connected-subnet route (no gw); with routes in the response the executable synthesises none
    assert.deepEqual(r.routes, [{ dst: '0.0.0.0/0', gw: alloc.gateway }, { dst: alloc.cidr }], `${name}: default route and connected subnet`);
    assert.deepEqual(r.dns, {}, `${name}: dns copied from the response, which the daemon never fills`);
  }
  const ref = normalised(cached.get(REF)!, allocs.get(REF)!);
  for (const name of UP_PODS) {
    assert.deepEqual(normalised(cached.get(name)!, allocs.get(name)!), ref, `${name} through upstream's executable vs ${REF} through our shim`);
  }
});

test('deleting the pods: every DEL through upstream\'s executable succeeds, nothing is left, and a DEL sent again by hand succeeds', { timeout: 900_000, skip }, async () => {
  const pods = [...allocs.keys()];
  assert.equal(pods.length, 3, 'the earlier tests ran');
  const before = await cniRequestCounts(agent);
  for (const name of pods) await deleteAndWait(bed.kube!.api, name);
  for (const name of pods) await bed.controller!.releasePod('default', name);
  // per sandbox containerd calls the chain's DEL once with the netns, then (about 40 s later) twice with CNI_NETNS=""
  const c = await waitFor('3 DELs per pod', async () => {
    const c = await cniRequestCounts(agent);
    return countOf(c, 'DEL') - countOf(before, 'DEL') >= 3 * pods.length ? c : undefined;
  }, 240_000, 1000);
  assert.equal(countOf(c, 'DEL', false), 0, `every DEL answered ok: ${JSON.stringify([...c])}`);
  assert.ok(sameBytes(nodeBinary(), UPSTREAM_CNI), 'the DELs went through upstream\'s executable');
  const ctrd = readFileSync(rn.containerdLog, 'utf8');
  assert.doesNotMatch(ctrd, /failed to destroy network|failed to teardown/i, 'containerd logged no failed CNI DEL');
  // libcni drops an attachment's cache file only after the chain's DEL succeeded
  for (const name of pods) assert.equal(cachedFor(rn.varUpper, name), undefined, `${name}: libcni's cache entry removed`);
  await waitNoPodPorts(node.ovs);
  const leaks = await nodeLeaks(node);
  assert.deepEqual([leaks.podInterfaces, leaks.hostVeths], [[], []], 'no OVS interface or host veth of a pod left');

  // DEL again, by hand, as containerd sent it: its stdin for the first plugin, its CNI_ARGS, with the sandbox's netns
  // path (gone now) and with the empty CNI_NETNS of its later rounds
  for (const name of pods) {
    const a = cached.get(name)!;
    for (const netns of [String((a.result.interfaces as { sandbox: string }[])[0]!.sandbox), '']) {
      const env = [`CNI_COMMAND=DEL`, `CNI_CONTAINERID=${a.containerId}`, `CNI_NETNS=${netns}`, `CNI_IFNAME=${a.ifName}`,
        `CNI_ARGS=${cniArgsEnv(a)}`, `CNI_PATH=${rn.cniBinDir}`];
      const r = await rn.exec(['env', '-i', ...env, nodeBinary()], { input: delStdin(a), allowFail: true, timeoutMs: 60_000 });
      assert.equal(r.code, 0, `${name}: DEL again (CNI_NETNS=${JSON.stringify(netns)}): ${r.stdout} ${r.stderr}`);
      assert.equal(r.stdout, '', `${name}: a successful DEL prints nothing`);
    }
  }
  const after = await cniRequestCounts(agent);
  assert.ok(countOf(after, 'DEL', true) - countOf(c, 'DEL', true) >= 2 * pods.length, `the agent answered the DELs sent by hand: ${JSON.stringify([...after])}`);
  assert.equal(countOf(after, 'DEL', false), 0);
  const still = await nodeLeaks(node);
  assert.deepEqual([still.podInterfaces, still.hostVeths], [[], []]);
});
