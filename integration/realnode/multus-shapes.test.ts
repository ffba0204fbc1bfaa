// The seeds' two other Multus shapes on the real node, with Multus v4.3.0 (thick plugin: multus-shim +
// multus-daemon; KOA_MULTUS_MODE=thin for the thin one) and the real
// kube-ovn-controller v1.16.2 (no stand-in), each in a bring-up of its own (upRealCluster, the NAD CRD before the
// controller starts):
// 1. `macvlan` with kube-ovn as its IPAM (seed 003): a NAD of Debian's `macvlan` (mode bridge, master `rn-peer`,
//    the node namespace's side of the node-IP veth pair) whose `ipam` is `{type: kube-ovn, server_socket, provider:
//    <nad>.<ns>}`, and a Subnet with that provider. The controller allocates net1's address (IPAM only: no LSP),
//    the macvlan plugin asks our `kube-ovn` for it; two pods, each net1 carries the controller's address, one pings
//    the other over net1.
// 2. Kube-OVN as the secondary CNI (seed 004): Debian's `bridge` + `host-local` is Multus' cluster network (eth0),
//    a Kube-OVN attachment NAD gives net1; the agent and the controller run with `--non-primary-cni-mode=true` (as
//    the chart passes it to both). eth0 carries the bridge network's address (the pod IP), net1 the controller's,
//    the default route stays on eth0, both networks reach their gateway and the peer pod; the controller allocates
//    no default-network address, and the agent leaves no iptables chain of ours in the node namespace.
// Bounds are generous: a loaded 2-core machine.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeApi } from '../bed/kubeapi.ts';
import { waitFor } from '../bed/exec.ts';
import { newPrefix } from '../bed/netns.ts';
import { downRealNode, upRealCluster, type RealCluster } from './cluster.ts';
import { subnetReady, upstreamMissing } from './controller.ts';
import { cniRequestCounts, countOf } from './daemonset.ts';
import { createKubeOvnNad, createMacvlanIpamNad, diagnosePod, installMultus, installNadCrd, MULTUS_MODE, multusMissing, shimForwardedAdd, type Multus } from './multus.ts';
import { createBusyboxPod, deleteAndWait, podLog, waitFinished, waitRunning } from './pods.ts';

// both fixtures are built by `npm run setup` unless KOA_BUILD_UPSTREAM=0: without them the tests are reported as skipped, with the reason
const skip = upstreamMissing() ?? multusMissing(MULTUS_MODE);
/** Debian's containernetworking-plugins (the image carries macvlan, not bridge/host-local) */
const DEBIAN_CNI = '/usr/lib/cni';
const re = (ip: string) => ip.replaceAll('.', '\\.');

async function waitNadInformer(c: RealCluster): Promise<void> {
  const log = await waitFor('the controller\'s NAD informer synced', () => {
    const l = readFileSync(c.controller.log, 'utf8');
    return /Network attachment informer cache synced/.test(l) ? l : undefined;
  }, 60_000, 200);
  assert.doesNotMatch(log, /Network attachment CRD not found at startup/);
}

async function createSubnet(api: KubeApi, name: string, cidrBlock: string, provider: string): Promise<void> {
  await api.post('/apis/kubeovn.io/v1/subnets', {
    apiVersion: 'kubeovn.io/v1', kind: 'Subnet', metadata: { name }, spec: { cidrBlock, provider, protocol: 'IPv4' },
  });
  await waitFor(`subnet ${name} Ready (set up by the controller)`, () => subnetReady(api, name), 300_000, 500);
}

async function annotations(api: KubeApi, name: string): Promise<Record<string, string>> {
  return (await api.get(`/api/v1/namespaces/default/pods/${name}`)).metadata.annotations ?? {};
}

/** A pod's log once it contains `pattern` (the container prints its addresses first, then sleeps). */
async function logMatching(c: RealCluster, name: string, pattern: RegExp): Promise<string> {
  return waitFor(`pod ${name}'s log matches ${pattern}`, () => {
    const l = podLog(c.rn.podLogsDir, name);
    return pattern.test(l) ? l : undefined;
  }, 60_000, 250).catch((e: unknown) => { throw new Error(`${String(e)}\n${podLog(c.rn.podLogsDir, name)}`); });
}

async function finished(c: RealCluster, name: string): Promise<string> {
  const api = c.bed.kube!.api;
  const done = await waitFinished(api, name).catch(async (e: unknown) => {
    throw new Error(`${String(e)}\n${await diagnosePod(api, c.rn, c.agent, name)}`);
  });
  const logs = podLog(c.rn.podLogsDir, name);
  assert.deepEqual(done, { phase: 'Succeeded', exitCode: 0 }, logs);
  return logs;
}

async function running(c: RealCluster, name: string): Promise<string> {
  const api = c.bed.kube!.api;
  const s = await waitRunning(api, name).catch(async (e: unknown) => {
    throw new Error(`${String(e)}\n${await diagnosePod(api, c.rn, c.agent, name)}`);
  });
  return s.podIP!;
}

/** Deletes the pods; every NIC the agent served gets its DEL (all ok). */
async function deleteAll(c: RealCluster, names: string[], before: Map<string, number>, dels: number): Promise<void> {
  const api = c.bed.kube!.api;
  await Promise.all(names.map((n) => deleteAndWait(api, n)));
  await waitFor(`${dels} DELs through the agent`, async () => countOf(await cniRequestCounts(c.agent), 'DEL', true) - countOf(before, 'DEL', true) >= dels, 120_000, 1000);
  assert.equal(countOf(await cniRequestCounts(c.agent), 'DEL', false), 0);
}

describe('Multus: macvlan with kube-ovn IPAM (real controller)', () => {
  let cluster: RealCluster | undefined;
  let prefix: string | undefined;
  let multus: Multus | undefined;
  before(async () => {
    if (skip) return;
    prefix = newPrefix('koamv');
    cluster = await upRealCluster(prefix, (b) => installNadCrd(b.kube!));
  }, { timeout: 900_000 });
  after(async () => {
    try {
      await multus?.stop();
    } finally {
      await downRealNode(prefix, cluster);
    }
  }, { timeout: 300_000 });

  test('two pods with a macvlan NIC get the controller\'s addresses and reach each other over net1', { timeout: 900_000, skip }, async () => {
    const c = cluster!;
    const api = c.bed.kube!.api;
    await waitNadInformer(c);
    multus = await installMultus(c.bed.kube!, c.rn, { mode: MULTUS_MODE });
    // the master: the node namespace's side of the node-IP veth pair (up, no address); the two macvlan children
    // in bridge mode switch between each other inside the kernel
    const provider = await createMacvlanIpamNad(c.bed.kube!, 'mvlan', 'rn-peer');
    assert.equal(provider, 'mvlan.default');
    await createSubnet(api, 'mvlan', '172.19.0.0/16', provider);
    const before = await cniRequestCounts(c.agent);
    const nets = { 'k8s.v1.cni.cncf.io/networks': 'mvlan' };

    await createBusyboxPod(api, { name: 'mva', nodeName: c.node.name, annotations: nets,
      command: ['sh', '-c', 'ip -4 -o addr show dev net1; exec sleep 3600'] });
    await running(c, 'mva');
    const annA = await annotations(api, 'mva');
    const ipA = annA[`${provider}.kubernetes.io/ip_address`];
    assert.ok(ipA, `the controller annotated mva's macvlan NIC: ${JSON.stringify(annA)}`);
    // a Subnet of a non-OVN provider: the controller writes the address, CIDR and gateway, and no logical switch
    assert.equal(annA[`${provider}.kubernetes.io/cidr`], '172.19.0.0/16');
    assert.equal(annA[`${provider}.kubernetes.io/logical_switch`], undefined);
    const logA = await logMatching(c, 'mva', /net1\s+inet /);
    assert.match(logA, new RegExp(`net1\\s+inet ${re(ipA)}/16`), `mva's net1 has the controller's address: ${logA}`);

    await createBusyboxPod(api, { name: 'mvb', nodeName: c.node.name, annotations: nets, restartPolicy: 'Never',
      command: ['sh', '-c', `ip -4 -o addr show dev net1 && ip route && ping -c 3 -W 5 -I net1 ${ipA}`] });
    const logB = await finished(c, 'mvb');
    const annB = await annotations(api, 'mvb');
    const ipB = annB[`${provider}.kubernetes.io/ip_address`];
    assert.ok(ipB && ipB !== ipA, `the controller annotated mvb's macvlan NIC with another address: ${JSON.stringify(annB)}`);
    assert.match(logB, new RegExp(`net1\\s+inet ${re(ipB)}/16`), `mvb's net1 has the controller's address: ${logB}`);
    assert.match(logB, /3 packets transmitted, 3 packets received/, logB);
    // eth0 keeps the default route (the IPAM answer for net1 adds none)
    assert.match(logB, /^default via 10\.16\.0\.1 dev eth0/m, logB);
    assert.doesNotMatch(logB, /^default .* dev net1/m, logB);
    // IPAM only: the controller creates no LSP for the macvlan NIC
    const lsps = await c.bed.central.nbctl(['--bare', '--columns=name', 'list', 'logical_switch_port']);
    assert.doesNotMatch(lsps, new RegExp(`\\.${re(provider)}$`, 'm'), lsps);
    const status = JSON.parse(annB['k8s.v1.cni.cncf.io/network-status'] ?? '[]') as { interface?: string; ips?: string[] }[];
    assert.deepEqual(status.find((s) => s.interface === 'net1')?.ips, [ipB], JSON.stringify(status));
    const afterAdd = await cniRequestCounts(c.agent);
    // eth0 (kube-ovn) and net1 (kube-ovn IPAM under macvlan) of each pod
    assert.ok(countOf(afterAdd, 'ADD', true) - countOf(before, 'ADD', true) >= 4, JSON.stringify([...afterAdd]));
    assert.equal(countOf(afterAdd, 'ADD', false), 0, `no failed ADD: ${JSON.stringify([...afterAdd])}`);
    if (MULTUS_MODE === 'thick') assert.ok(shimForwardedAdd(multus!), 'the calls went through multus-shim to the daemon');

    await deleteAll(c, ['mva', 'mvb'], before, 4);
  });
});

describe('Multus: Kube-OVN as the secondary CNI, bridge as the primary (--non-primary-cni-mode)', () => {
  let cluster: RealCluster | undefined;
  let prefix: string | undefined;
  let multus: Multus | undefined;
  before(async () => {
    if (skip) return;
    prefix = newPrefix('koamv');
    cluster = await upRealCluster(prefix, (b) => installNadCrd(b.kube!), {
      agent: { args: ['--non-primary-cni-mode=true'] }, controllerFlags: ['--non-primary-cni-mode=true'],
    });
  }, { timeout: 900_000 });
  after(async () => {
    try {
      await multus?.stop();
    } finally {
      await downRealNode(prefix, cluster);
    }
  }, { timeout: 300_000 });

  test('eth0 from the bridge plugin, net1 from Kube-OVN: both carry their addresses and reach their gateway and peer', { timeout: 900_000, skip }, async () => {
    const c = cluster!;
    const api = c.bed.kube!.api;
    await waitNadInformer(c);
    assert.match(readFileSync(c.agent.proc.log, 'utf8'), /non-primary CNI mode/);
    // the primary network: Debian's bridge + host-local, the bridge (its gateway) in the node namespace
    for (const p of ['bridge', 'host-local']) copyFileSync(join(DEBIAN_CNI, p), join(c.rn.cniBinDir, p));
    // Multus' clusterNetwork is a directory holding the conflist, not the conflist's path: from a `.conflist` path
    // Multus v4.3.0 keeps for DEL a copy re-encoded through libcni's generic plugin struct (LoadDelegateNetConfFromConfList
    // marshals types.NetConfList), which drops every plugin-specific key; the bridge plugin's DEL then fails in
    // host-local with "no IP ranges specified", and kubelet retries it for ever (the pod never finishes). From a
    // directory it keeps the file's bytes as they are. The thick daemon runs the same code; the directory goes into
    // its daemon config, which it lays over every call's config (its generated 00-multus.conf names our conflist).
    const bridgeDir = join(c.rn.dir, 'primary-net.d');
    mkdirSync(bridgeDir);
    writeFileSync(join(bridgeDir, '10-bridge.conflist'), JSON.stringify({
      cniVersion: '0.3.1', name: 'koamv-bridge',
      plugins: [{ type: 'bridge', bridge: 'koamvbr0', isGateway: true, ipMasq: false,
        ipam: { type: 'host-local', ranges: [[{ subnet: '10.244.0.0/24', gateway: '10.244.0.1' }]], routes: [{ dst: '0.0.0.0/0' }] } }],
    }, null, 2));
    multus = await installMultus(c.bed.kube!, c.rn, { mode: MULTUS_MODE, clusterNetwork: bridgeDir });
    const provider = await createKubeOvnNad(c.bed.kube!, 'attach');
    await createSubnet(api, 'attach', '172.18.0.0/16', provider);
    const before = await cniRequestCounts(c.agent);
    const nets = { 'k8s.v1.cni.cncf.io/networks': 'attach' };

    await createBusyboxPod(api, { name: 'sca', nodeName: c.node.name, annotations: nets,
      command: ['sh', '-c', 'ip -4 -o addr show dev eth0; ip -4 -o addr show dev net1; exec sleep 3600'] });
    const podIpA = await running(c, 'sca');
    assert.match(podIpA, /^10\.244\.0\.\d+$/, 'the pod IP comes from the primary (bridge) network');
    const annA = await annotations(api, 'sca');
    const net1A = annA[`${provider}.kubernetes.io/ip_address`];
    assert.ok(net1A, `the controller annotated sca's net1: ${JSON.stringify(annA)}`);
    // non-primary: the controller allocates nothing for the default network
    assert.equal(annA['ovn.kubernetes.io/ip_address'], undefined, JSON.stringify(annA));
    const logA = await logMatching(c, 'sca', /net1\s+inet /);
    assert.match(logA, new RegExp(`eth0\\s+inet ${re(podIpA)}/24`), logA);
    assert.match(logA, new RegExp(`net1\\s+inet ${re(net1A)}/16`), logA);

    const pings = ['10.244.0.1', podIpA, '172.18.0.1', net1A].map((ip) => `ping -c 3 -W 5 ${ip}`).join(' && ');
    await createBusyboxPod(api, { name: 'scb', nodeName: c.node.name, annotations: nets, restartPolicy: 'Never',
      command: ['sh', '-c', `ip -4 -o addr show dev eth0 && ip -4 -o addr show dev net1 && ip route && ${pings}`] });
    const logB = await finished(c, 'scb');
    const annB = await annotations(api, 'scb');
    const net1B = annB[`${provider}.kubernetes.io/ip_address`];
    assert.ok(net1B && net1B !== net1A, JSON.stringify(annB));
    assert.equal(annB['ovn.kubernetes.io/ip_address'], undefined, JSON.stringify(annB));
    const podIpB = (await api.get('/api/v1/namespaces/default/pods/scb')).status?.podIP as string;
    assert.match(podIpB, /^10\.244\.0\.\d+$/);
    assert.match(logB, new RegExp(`eth0\\s+inet ${re(podIpB)}/24`), logB);
    assert.match(logB, new RegExp(`net1\\s+inet ${re(net1B)}/16`), logB);
    // the primary network keeps the default route; every ping answered (the pod exited 0)
    assert.match(logB, /^default via 10\.244\.0\.1 dev eth0/m, logB);
    assert.doesNotMatch(logB, /^default .* dev net1/m, logB);
    assert.equal(logB.match(/3 packets transmitted, 3 packets received/g)?.length, 4, logB);
    const status = JSON.parse(annB['k8s.v1.cni.cncf.io/network-status'] ?? '[]') as { interface?: string; ips?: string[] }[];
    assert.deepEqual(status.find((s) => s.interface === 'net1')?.ips, [net1B], JSON.stringify(status));
    // only net1 goes through the agent: one ADD per pod, none failed
    const afterAdd = await cniRequestCounts(c.agent);
    assert.equal(countOf(afterAdd, 'ADD', true) - countOf(before, 'ADD', true), 2, JSON.stringify([...afterAdd]));
    assert.equal(countOf(afterAdd, 'ADD', false), 0, JSON.stringify([...afterAdd]));
    if (MULTUS_MODE === 'thick') assert.ok(shimForwardedAdd(multus!), 'the calls went through multus-shim to the daemon');
    // non-primary: no iptables chain of ours in the node namespace
    const saved = (await c.node.ns.exec(['iptables-save'])).stdout;
    assert.doesNotMatch(saved, /^:OVN-/m, saved);

    await deleteAll(c, ['sca', 'scb'], before, 2);
    // the primary network's DELs (bridge + host-local, through Multus) succeeded too
    const failedDel = readFileSync(c.rn.containerdLog, 'utf8').split('\n').filter((l) => /failed to destroy network/.test(l));
    assert.deepEqual(failedDel, []);
  });
});
