import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { storePodSource } from '../../agent/src/k8s/pods.ts';
import { waitForPodAnnotations } from '../../agent/src/pod/wait.ts';
import { InMemoryPodSource } from '../../agent/src/k8s/fake-pod-source.ts';
import { ObjectStore } from '../../agent/src/k8s/store.ts';
import type { Pod } from '../../agent/src/k8s/types.ts';
import { AgentError } from '../../agent/src/errors.ts';

const full = {
  'ovn.kubernetes.io/allocated': 'true', 'ovn.kubernetes.io/ip_address': '10.16.0.9', 'ovn.kubernetes.io/mac_address': '00:00:00:ab:cd:ef',
  'ovn.kubernetes.io/cidr': '10.16.0.0/16', 'ovn.kubernetes.io/gateway': '10.16.0.1', 'ovn.kubernetes.io/logical_switch': 'ovn-default',
  'ovn.kubernetes.io/routed': 'true',
};
const { 'ovn.kubernetes.io/routed': _routed, ...notRouted } = full;

async function rejection(p: Promise<unknown>): Promise<AgentError> {
  try { await p; } catch (e) { assert.ok(e instanceof AgentError, String(e)); return e; }
  assert.fail('expected a rejection');
}

describe('waitForPodAnnotations', () => {
  it('resolves at once from the cache', async () => {
    const src = new InMemoryPodSource();
    src.annotate('default', 'p1', full);
    const r = await waitForPodAnnotations(src, 'default', 'p1', 'ovn', 'eth0', { timeoutMs: 1000 });
    assert.equal(r.nic.addresses[0]!.ip, '10.16.0.9');
    assert.equal(r.via, 'cache', 'answered from the cache without waiting');
    assert.equal(src.listenerCount, 0);
  });
  it('resolves in the same tick as the event that completes the annotations', async () => {
    const src = new InMemoryPodSource();
    const p = waitForPodAnnotations(src, 'default', 'p1', 'ovn', 'eth0', { timeoutMs: 5000 });
    let resolved = false;
    void p.then(() => { resolved = true; });
    src.annotate('default', 'p1', {});
    src.annotate('default', 'other', full);
    src.annotate('default', 'p1', notRouted);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(resolved, false);
    // no polling: the wait settles on the event itself, before any timer or I/O callback runs after it
    src.annotate('default', 'p1', { 'ovn.kubernetes.io/routed': 'true' });
    await new Promise((r) => setImmediate(r));
    assert.equal(resolved, true, 'resolved by the event, before the next turn of the event loop');
    const r = await p;
    assert.equal(r.nic.routed, true);
    assert.ok(r.waitedMs >= 15);
    assert.equal(r.via, 'event');
    assert.equal(src.listenerCount, 0);
  });
  it('times out with CNI code 11 naming the missing annotation', async () => {
    const src = new InMemoryPodSource();
    src.annotate('default', 'p1', notRouted);
    const e = await rejection(waitForPodAnnotations(src, 'default', 'p1', 'ovn', 'eth0', { timeoutMs: 50 }));
    assert.equal(e.code, 'KOA_TRY_AGAIN');
    assert.equal(e.cniCode, 11);
    assert.equal(e.message, 'timed out after 50 ms waiting for pod default/p1: missing or invalid annotation ovn.kubernetes.io/routed: ' +
      'ovn.kubernetes.io/routed is not "true" yet (the controller has not finished the routes)');
    assert.equal(src.listenerCount, 0);
  });
  it('says when the pod never reached the cache, and names attachment keys', async () => {
    const src = new InMemoryPodSource();
    const e = await rejection(waitForPodAnnotations(src, 'ns', 'ghost', 'ovn', 'eth0', { timeoutMs: 20 }));
    assert.match(e.message, /pod ns\/ghost is not in this node's pod cache yet/);
    src.annotate('ns', 'p', full);
    const e2 = await rejection(waitForPodAnnotations(src, 'ns', 'p', 'attachnet.default.ovn', 'net1', { timeoutMs: 20 }));
    assert.match(e2.message, /annotation attachnet\.default\.ovn\.kubernetes\.io\/ip_address: no address allocated yet/);
  });
  it('rejects at once for annotations waiting cannot fix', async () => {
    const src = new InMemoryPodSource();
    src.annotate('default', 'p1', { ...full, 'ovn.kubernetes.io/routes': 'not json' });
    const e = await rejection(waitForPodAnnotations(src, 'default', 'p1', 'ovn', 'eth0', { timeoutMs: 5000 }));
    assert.equal(e.code, 'KOA_BAD_ANNOTATION');
    assert.match(e.message, /^pod default\/p1: invalid annotation ovn.kubernetes.io\/routes: not JSON/);
  });
  it('rejects when the pod is deleted while waiting', async () => {
    const src = new InMemoryPodSource();
    src.annotate('default', 'p1', {});
    const p = waitForPodAnnotations(src, 'default', 'p1', 'ovn', 'eth0', { timeoutMs: 5000 });
    src.delete('default', 'p1');
    const e = await rejection(p);
    assert.equal(e.code, 'KOA_K8S');
    assert.match(e.message, /deleted while waiting/);
  });
  it('aborts on the signal (before and during the wait)', async () => {
    const src = new InMemoryPodSource();
    const ac = new AbortController();
    const p = waitForPodAnnotations(src, 'default', 'p1', 'ovn', 'eth0', { timeoutMs: 5000, signal: ac.signal });
    ac.abort(new Error('CNI request cancelled'));
    const e = await rejection(p);
    assert.equal(e.code, 'KOA_TRY_AGAIN');
    assert.match(e.message, /gave up waiting for pod default\/p1 \(CNI request cancelled\)/);
    assert.equal(src.listenerCount, 0);
    const e2 = await rejection(waitForPodAnnotations(src, 'default', 'p1', 'ovn', 'eth0', { timeoutMs: 5000, signal: AbortSignal.abort() }));
    assert.equal(e2.code, 'KOA_TRY_AGAIN');
  });
  it('with a UID, a stale namesake neither resolves nor fails the wait', async () => {
    const src = new InMemoryPodSource();
    src.set({ metadata: { namespace: 'default', name: 'sts-0', uid: 'old', annotations: full } });
    const p = waitForPodAnnotations(src, 'default', 'sts-0', 'ovn', 'eth0', { timeoutMs: 2000, uid: 'new' });
    src.delete('default', 'sts-0');
    src.set({ metadata: { namespace: 'default', name: 'sts-0', uid: 'new', annotations: full } });
    assert.equal((await p).pod.metadata!.uid, 'new');
    src.set({ metadata: { namespace: 'default', name: 'x', uid: 'old', annotations: full } });
    const e = await rejection(waitForPodAnnotations(src, 'default', 'x', 'ovn', 'eth0', { timeoutMs: 20, uid: 'new' }));
    assert.match(e.message, /has UID old, the request is for UID new/);
  });
  it('works over the watch-fed store', async () => {
    const store = new ObjectStore<Pod>();
    const src = storePodSource(store);
    const p = waitForPodAnnotations(src, 'default', 'p1', 'ovn', 'eth0', { timeoutMs: 2000 });
    store.upsert({ metadata: { name: 'p1', namespace: 'default', resourceVersion: '1', annotations: {} } });
    store.upsert({ metadata: { name: 'p1', namespace: 'default', resourceVersion: '2', annotations: full } });
    assert.equal((await p).pod.metadata!.resourceVersion, '2');
    assert.equal(src.get('default', 'p1')?.metadata?.name, 'p1');
  });
});
