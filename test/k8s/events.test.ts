// The event recorder: upstream's event shape, and the rate limit that keeps a failing pod from flooding the API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventRecorder, podTarget } from '../../agent/src/k8s/events.ts';

test('events carry the pod reference and reason; a failing pod is limited to a burst, then one per interval', async () => {
  const sent: Record<string, unknown>[] = [];
  let now = 1_000_000;
  const r = new EventRecorder({ create: async (_ns, body) => { sent.push(body); } }, { component: 'kube-ovn-cni', host: 'n1', burst: 3, refillMs: 60_000, now: () => now });
  const ev = { target: podTarget('default', 'p1', 'uid-1'), type: 'Warning' as const, reason: 'PodNetworkConfigureFailed', message: 'boom' };
  const results = Array.from({ length: 10 }, () => r.record(ev));
  assert.deepEqual(results, [true, true, true, false, false, false, false, false, false, false]);
  assert.equal(r.dropped, 7);
  // another reason of the same pod has its own bucket
  assert.equal(r.record({ ...ev, reason: 'PodNetworkRemoved', type: 'Normal' }), true);
  now += 59_999;
  assert.equal(r.record(ev), false);
  now += 1;
  assert.equal(r.record(ev), true, 'one more after the interval');
  assert.equal(r.record(ev), false);
  await new Promise((res) => setImmediate(res));
  assert.equal(sent.length, 5);
  const b = sent[0] as { involvedObject: Record<string, string>; reason: string; type: string; source: Record<string, string>; metadata: { namespace: string } };
  assert.deepEqual(b.involvedObject, { kind: 'Pod', apiVersion: 'v1', name: 'p1', namespace: 'default', uid: 'uid-1' });
  assert.deepEqual([b.reason, b.type, b.source.component, b.source.host, b.metadata.namespace], ['PodNetworkConfigureFailed', 'Warning', 'kube-ovn-cni', 'n1', 'default']);
});

test('a failing API never throws into the caller', async () => {
  const errors: unknown[] = [];
  const r = new EventRecorder({ create: async () => { throw new Error('HTTP 403'); } }, { component: 'c', host: 'h', onError: (e) => errors.push(e) });
  assert.equal(r.record({ target: podTarget('ns', 'p'), type: 'Normal', reason: 'X', message: 'm' }), true);
  await new Promise((res) => setImmediate(res));
  assert.equal(errors.length, 1);
});

test('a burst of events is sent a few at a time, in order; a full queue drops the new event', async () => {
  const started: string[] = [];
  const finish: (() => void)[] = [];
  const r = new EventRecorder({ create: (_ns, body) => { started.push(String(body.message)); return new Promise<void>((res) => finish.push(res)); } },
    { component: 'c', host: 'h', inFlight: 2, maxQueued: 3 });
  const ev = (i: number) => ({ target: podTarget('ns', `p${i}`), type: 'Normal' as const, reason: 'PodNetworkConfigured', message: `m${i}` });
  const accepted = Array.from({ length: 6 }, (_, i) => r.record(ev(i)));
  assert.deepEqual(accepted, [true, true, true, true, true, false], '2 in flight + 3 queued; the 6th is dropped');
  await new Promise((res) => setImmediate(res));
  assert.deepEqual(started, ['m0', 'm1']);
  assert.equal(r.queued, 3);
  assert.equal(r.dropped, 1);
  finish.shift()!();
  await new Promise((res) => setImmediate(res));
  assert.deepEqual(started, ['m0', 'm1', 'm2'], 'one finished: the next one starts');
  while (finish.length > 0) { finish.shift()!(); await new Promise((res) => setImmediate(res)); }
  assert.deepEqual(started, ['m0', 'm1', 'm2', 'm3', 'm4']);
  assert.equal(r.queued, 0);
});

test('a sink that throws, rejects, or whose error handler throws never stalls the queue nor reaches the caller', async () => {
  for (const how of ['throw', 'reject'] as const) {
    const tried: string[] = [];
    const errors: unknown[] = [];
    const r = new EventRecorder({
      create: (_ns, body) => {
        tried.push(String(body.message));
        if (how === 'throw') throw new Error('sync');
        return Promise.reject(new Error('HTTP 500'));
      },
    }, { component: 'c', host: 'h', inFlight: 2, onError: (e) => { errors.push(e); throw new Error('handler fails too'); } });
    for (let i = 0; i < 6; i++) assert.equal(r.record({ target: podTarget('ns', `p${i}`), type: 'Normal', reason: 'X', message: `m${i}` }), true);
    for (let i = 0; i < 20; i++) await new Promise((res) => setImmediate(res));
    assert.deepEqual(tried, ['m0', 'm1', 'm2', 'm3', 'm4', 'm5'], `${how}: every event was tried, 2 at a time`);
    assert.equal(errors.length, 6);
    assert.equal(r.queued, 0);
  }
});

test('an event dropped for a full queue does not use up its object\'s rate-limit allowance', async () => {
  const finish: (() => void)[] = [];
  const r = new EventRecorder({ create: () => new Promise<void>((res) => finish.push(res)) }, { component: 'c', host: 'h', burst: 1, inFlight: 1, maxQueued: 1 });
  const ev = (name: string) => ({ target: podTarget('ns', name), type: 'Normal' as const, reason: 'X', message: name });
  assert.equal(r.record(ev('a')), true);
  await new Promise((res) => setImmediate(res)); // a in flight
  assert.equal(r.record(ev('b')), true); // queued
  assert.equal(r.record(ev('c')), false, 'queue full');
  while (finish.length > 0 || r.queued > 0) { finish.shift()?.(); await new Promise((res) => setImmediate(res)); }
  assert.equal(r.record(ev('c')), true, "c's one token was not spent on the drop");
});
