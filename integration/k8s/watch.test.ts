// The k8s layer against a real kube-apiserver + etcd (integration/bed/kube.ts): selectors, the annotation wait
// resolving from the watch event, the IP CR update, and watches that survive an apiserver restart.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startKube, type Kube } from '../bed/kube.ts';
import { onCleanup } from '../bed/cleanup.ts';
import { isAlive, killPidSync, stopPid } from '../bed/daemon.ts';
import { sleep } from '../bed/exec.ts';
import { createWatchSet, loadKubeConfig, type WatchSet } from '../../agent/src/k8s/client.ts';
import { waitForPodAnnotations } from '../../agent/src/pod/wait.ts';
import { updateIpCr } from '../../agent/src/k8s/ipcr.ts';
import { AgentError } from '../../agent/src/errors.ts';

const NODE = 'koa-k8s-node';
const annotations = {
  'ovn.kubernetes.io/allocated': 'true', 'ovn.kubernetes.io/ip_address': '10.16.0.9', 'ovn.kubernetes.io/mac_address': '00:00:00:ab:cd:ef',
  'ovn.kubernetes.io/cidr': '10.16.0.0/16', 'ovn.kubernetes.io/gateway': '10.16.0.1', 'ovn.kubernetes.io/logical_switch': 'ovn-default',
  'ovn.kubernetes.io/routed': 'true',
};

let kube: Kube;
let watches: WatchSet;
const restarts: string[] = [];
const healthLog: string[] = [];

async function waitUntil(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

const pod = (name: string, nodeName = NODE) => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default' },
  spec: { nodeName, containers: [{ name: 'c', image: 'registry.invalid/none' }] },
});
const createPod = (name: string, nodeName = NODE) => kube.api.post('/api/v1/namespaces/default/pods', pod(name, nodeName));
const annotate = (name: string, a: Record<string, string>) =>
  kube.api.mergePatch(`/api/v1/namespaces/default/pods/${name}`, { metadata: { annotations: a } });

before(async () => {
  kube = await startKube({ prefix: 'koa-k8s-' });
  await kube.api.post('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: NODE } });
  await kube.api.post('/apis/kubeovn.io/v1/subnets', { apiVersion: 'kubeovn.io/v1', kind: 'Subnet', metadata: { name: 'ovn-default' },
    spec: { provider: 'ovn', protocol: 'IPv4', cidrBlock: '10.16.0.0/16', gateway: '10.16.0.1' } });
  const kc = loadKubeConfig(kube.kubeconfig);
  watches = createWatchSet(kc, { nodeName: NODE, watchIdleTimeoutMs: 60_000 }, {
    backoff: { baseMs: 200, maxMs: 2000, factor: 2, jitter: 0.2, minIntervalMs: 300, stableMs: 10_000 },
    onRestart: (r, why) => restarts.push(`${r}: ${why}`),
    onHealth: (r, ok) => healthLog.push(`${r}=${ok}`),
  });
  for (const w of watches.all()) w.start();
  await watches.waitSynced();
}, { timeout: 120_000 });

after(async () => {
  await watches?.stop();
  await kube?.stop();
}, { timeout: 60_000 });

describe('k8s layer on a real kube-apiserver', { timeout: 120_000 }, () => {
  it('syncs this Node and the Subnets; pods only of this node', async () => {
    assert.deepEqual(watches.node.store.keys(), [NODE]);
    assert.ok(watches.subnets.store.get('ovn-default'));
    await createPod('elsewhere', 'other-node');
    await createPod('here-1');
    await waitUntil('here-1 in the pod cache', () => watches.podSource.get('default', 'here-1') !== undefined, 10_000);
    assert.equal(watches.podSource.get('default', 'elsewhere'), undefined);
    assert.ok(watches.health().every((h) => h.synced && h.healthy), JSON.stringify(watches.health()));
  });

  it('the annotation wait resolves from the watch event right after the patch', async () => {
    await createPod('wait-1');
    let resolvedAt = 0;
    const p = waitForPodAnnotations(watches.podSource, 'default', 'wait-1', 'ovn', 'eth0', { timeoutMs: 20_000 })
      .then((r) => { resolvedAt = performance.now(); return r; });
    await sleep(300);
    await annotate('wait-1', { ...annotations, 'ovn.kubernetes.io/routed': 'false' });
    await sleep(200);
    assert.equal(resolvedAt, 0, 'routed=false must keep the wait going');
    const sent = performance.now();
    await annotate('wait-1', { 'ovn.kubernetes.io/routed': 'true' });
    const r = await p;
    const lag = resolvedAt - sent;
    console.log(`# annotation wait resolved ${lag.toFixed(1)} ms after the patch was sent (waited ${r.waitedMs} ms in all)`);
    // order, not speed: resolved after the patch was sent, by the watch event (not from the cache), well inside the wait bound
    assert.ok(lag > 0 && lag < 10_000, `resolved ${lag} ms after the patch`);
    assert.equal(r.via, 'event');
    assert.equal(r.nic.addresses[0]!.ip, '10.16.0.9');
    assert.equal(r.nic.routed, true);
  });

  it('times out with code 11 naming the missing annotation', async () => {
    await createPod('never-1');
    await annotate('never-1', { 'ovn.kubernetes.io/allocated': 'true', 'ovn.kubernetes.io/ip_address': '10.16.0.10',
      'ovn.kubernetes.io/cidr': '10.16.0.0/16', 'ovn.kubernetes.io/mac_address': '00:00:00:00:00:10' });
    await assert.rejects(waitForPodAnnotations(watches.podSource, 'default', 'never-1', 'ovn', 'eth0', { timeoutMs: 1500 }),
      (e: unknown) => e instanceof AgentError && e.cniCode === 11 && /ovn\.kubernetes\.io\/routed/.test(e.message));
  });

  it('updates the IP CR as upstream', async () => {
    await kube.api.post('/apis/kubeovn.io/v1/ips', { apiVersion: 'kubeovn.io/v1', kind: 'IP', metadata: { name: 'wait-1.default' },
      spec: { podName: 'wait-1', namespace: 'default', subnet: 'ovn-default', nodeName: '', ipAddress: '10.16.0.9', v4IpAddress: '10.16.0.9',
        v6IpAddress: '', macAddress: '00:00:00:ab:cd:ef', containerID: '', podType: '', attachIps: ['10.9.9.9'], attachMacs: [], attachSubnets: [] } });
    const out = await updateIpCr(watches.ipApi, 'wait-1.default', 'ovn-default', NODE, { attempts: 3, delayMs: 200 });
    assert.deepEqual(out, { result: 'updated', attempts: 1 });
    const ip = await kube.api.get('/apis/kubeovn.io/v1/ips/wait-1.default');
    assert.equal(ip.spec.nodeName, NODE);
    assert.deepEqual(ip.spec.attachIps ?? [], []);
    assert.equal(ip.metadata.labels['ovn.kubernetes.io/node-name'], NODE);
    assert.equal(ip.metadata.labels['ovn-default'], '');
    assert.deepEqual(await updateIpCr(watches.ipApi, 'wait-1.default', 'ovn-default', NODE), { result: 'unchanged', attempts: 1 });
    const missing = await updateIpCr(watches.ipApi, 'nope.default', 'ovn-default', NODE, { attempts: 2, delayMs: 50 });
    assert.equal(missing.result, 'missing');
  });

  it('watches survive a kube-apiserver restart and deliver changes afterwards', async () => {
    const apiPid = kube.pids().find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0')[0]!.endsWith('kube-apiserver'));
    assert.ok(apiPid, 'kube-apiserver pid');
    const argv = readFileSync(`/proc/${apiPid}/cmdline`, 'utf8').split('\0').filter((s) => s !== '');
    const before = watches.pods.health().restarts;
    await stopPid(apiPid, 10_000);
    await waitUntil('the pod watch to notice the outage', () => !watches.pods.health().healthy, 20_000);

    // the same apiserver again (same etcd, same port), as our own child, stopped by its PID at the end
    const log = createWriteStream(join(kube.dir, 'kube-apiserver-restarted.log'));
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.pipe(log);
    child.stderr!.pipe(log);
    const stopChild = onCleanup({ label: 'restarted kube-apiserver', run: () => stopPid(child.pid!, 10_000), runSync: () => killPidSync(child.pid!) });
    try {
      await waitUntil('the restarted apiserver to be ready', async () =>
        (await kube.api.get<string>('/readyz').catch(() => undefined)) === 'ok', 60_000);
      await waitUntil('all watches healthy again', () => watches.health().every((h) => h.healthy), 30_000);
      assert.ok(watches.pods.health().restarts > before, `restarts: ${JSON.stringify(restarts)}`);
      assert.ok(healthLog.includes('pods=false') && healthLog.lastIndexOf('pods=true') > healthLog.indexOf('pods=false'));

      // events flow again: a new pod and its annotations arrive through the restarted watch
      await createPod('after-restart');
      const p = waitForPodAnnotations(watches.podSource, 'default', 'after-restart', 'ovn', 'eth0', { timeoutMs: 20_000 });
      await annotate('after-restart', annotations);
      const r = await p;
      assert.equal(r.pod.metadata?.name, 'after-restart');
      // the old objects are still there after the relist
      assert.ok(watches.podSource.get('default', 'here-1'));
    } finally {
      await stopChild();
      assert.equal(isAlive(child.pid!), false);
    }
  });
});
