import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ResilientListWatch } from '../../agent/src/k8s/watch.ts';
import type { KubeList, Pod } from '../../agent/src/k8s/types.ts';
import { FakeInformer, ManualTimers, flush } from './fakes.ts';

const pod = (name: string, rv: string): Pod => ({ metadata: { name, namespace: 'ns', resourceVersion: rv } });
const backoff = { baseMs: 500, maxMs: 8000, factor: 2, jitter: 0, minIntervalMs: 1000, stableMs: 60_000 };

function setup(lists: (KubeList<Pod> | Error)[]) {
  const timers = new ManualTimers();
  const informers: FakeInformer<Pod>[] = [];
  const restarts: string[] = [];
  const health: string[] = [];
  let listCalls = 0;
  const w = new ResilientListWatch<Pod>({
    resource: 'pods',
    list: async () => {
      const l = lists[Math.min(listCalls++, lists.length - 1)]!;
      if (l instanceof Error) throw l;
      return l;
    },
    informer: (list) => { const f = new FakeInformer(list); informers.push(f); return f; },
    idleTimeoutMs: 300_000,
    backoff,
    timers,
    random: () => 0.5,
    onRestart: (r, why) => restarts.push(`${r}:${why}`),
    onHealth: (r, ok) => health.push(`${r}:${ok}`),
  });
  return { w, timers, informers, restarts, health, listCalls: () => listCalls };
}

describe('ResilientListWatch', () => {
  it('lists, syncs and feeds the store from events', async () => {
    const { w, informers, health } = setup([{ items: [pod('a', '1')] }]);
    w.start();
    await w.waitSynced();
    assert.deepEqual(w.store.keys(), ['ns/a']);
    informers[0]!.emit('add', pod('b', '2'));
    informers[0]!.emit('update', pod('a', '3'));
    informers[0]!.emit('delete', pod('b', '2'));
    assert.deepEqual(w.store.list().map((p) => p.metadata!.resourceVersion), ['3']);
    const h = w.health();
    assert.deepEqual([h.synced, h.healthy, h.restarts, h.objects, h.lastError], [true, true, 0, 1, undefined]);
    assert.deepEqual(health, ['pods:true']);
    await w.stop();
    assert.equal(informers[0]!.stopped, true);
  });

  it('restarts after an error on the backoff schedule, relisting (resync) each time', async () => {
    const { w, timers, informers, restarts, health } = setup([{ items: [pod('a', '1'), pod('b', '1')] }, { items: [pod('a', '2')] }]);
    w.start();
    await w.waitSynced();
    const events: string[] = [];
    w.store.subscribe((e, o) => events.push(`${e}:${o.metadata!.name}`));
    informers[0]!.emit('error', Object.assign(new Error('Internal Server Error'), { statusCode: 500 }));
    assert.equal(w.health().healthy, false);
    assert.equal(w.health().lastError, 'Internal Server Error (500)');
    assert.deepEqual(timers.pending().slice(0, 1), [1000]);
    await timers.advance(999);
    assert.equal(informers.length, 1);
    await timers.advance(1);
    assert.equal(informers.length, 2);
    assert.equal(informers[0]!.stopped, true);
    assert.deepEqual(restarts, ['pods:Internal Server Error (500)']);
    assert.deepEqual(events, ['delete:b', 'update:a']);
    assert.equal(w.health().healthy, true);
    assert.deepEqual(health, ['pods:true', 'pods:false', 'pods:true']);
    assert.equal(w.health().restarts, 1);
    await w.stop();
  });

  it('backs off exponentially while the list keeps failing, then resets after a stable run', async () => {
    const fail = new Error('connect ECONNREFUSED');
    const { w, timers, informers } = setup([fail, fail, fail, fail, fail, { items: [] }]);
    w.start();
    await flush();
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      delays.push(timers.pending()[0]!);
      await timers.advance(timers.pending()[0]!);
    }
    assert.deepEqual(delays, [1000, 1000, 2000, 4000, 8000]);
    assert.equal(informers.length, 6);
    assert.equal(w.health().synced, true);
    // a long healthy run: the next failure starts from the base again
    await timers.advance(120_000);
    informers[5]!.emit('error', new Error('reset'));
    assert.equal(timers.pending()[0], 1000);
    await w.stop();
    assert.deepEqual(timers.pending(), []);
  });

  it('the watchdog restarts a watch that shows no sign of life', async () => {
    const { w, timers, informers, restarts } = setup([{ items: [] }]);
    w.start();
    await w.waitSynced();
    await timers.advance(200_000);
    informers[0]!.emit('connect');
    await timers.advance(299_000);
    assert.equal(informers.length, 1, 'a reconnect counts as a sign of life');
    await timers.advance(1000);
    assert.match(w.health().lastError ?? '', /no sign of life for 300000 ms/);
    assert.equal(w.health().healthy, false);
    await timers.advance(1000);
    assert.equal(informers.length, 2);
    assert.match(restarts[0] ?? '', /watchdog/);
    await w.stop();
  });

  it('ignores events and errors from a replaced informer, and one restart per burst of errors', async () => {
    const { w, timers, informers } = setup([{ items: [] }]);
    w.start();
    await w.waitSynced();
    informers[0]!.emit('error', new Error('e1'));
    informers[0]!.emit('error', new Error('e2'));
    assert.equal(timers.pending().length, 2, 'one restart timer (plus the watchdog)');
    await timers.advance(1000);
    informers[0]!.emit('add', pod('ghost', '1'));
    informers[0]!.emit('error', new Error('late'));
    assert.equal(w.store.size, 0);
    assert.equal(w.health().healthy, true);
    assert.equal(w.health().restarts, 1);
    await w.stop();
  });

  it('resync() forces a paced relist; stop() prevents any further restart', async () => {
    const { w, timers, informers, restarts } = setup([{ items: [pod('a', '1')] }, { items: [] }]);
    w.start();
    await w.waitSynced();
    w.resync();
    await timers.advance(1000);
    assert.equal(informers.length, 2);
    assert.equal(w.store.size, 0);
    assert.deepEqual(restarts, ['pods:resync requested']);
    informers[1]!.emit('error', new Error('x'));
    await w.stop();
    await timers.advance(60_000);
    assert.equal(informers.length, 2);
  });
});
