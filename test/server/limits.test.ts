// Admission limits: the byte budget of request bodies and the ADD slots, FIFO and never refusing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteBudget, Slots } from '../../agent/src/limits.ts';

test('ByteBudget: takes what fits, queues the rest in arrival order, never more than the budget at once', async () => {
  const b = new ByteBudget(10);
  const order: string[] = [];
  assert.equal(await b.acquire(6), 6);
  const p1 = b.acquire(6).then(() => order.push('a'));
  const p2 = b.acquire(1).then(() => order.push('b')); // fits, but waits behind a: arrival order
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, []);
  assert.equal(b.waiting, 2);
  b.release(6);
  await Promise.all([p1, p2]);
  assert.deepEqual(order, ['a', 'b']);
  assert.equal(b.free, 3);
  // a request larger than the whole budget takes all of it (it cannot wait for more than exists)
  b.release(7);
  assert.equal(await b.acquire(100), 10);
  assert.equal(b.free, 0);
});

test('Slots: at most N at once, the rest in arrival order; a failing task frees its slot', async () => {
  const s = new Slots(2);
  let running = 0;
  let peak = 0;
  const log: string[] = [];
  const gates = new Map<string, () => void>();
  const task = (name: string, fail = false) => s.run(async () => {
    running++; peak = Math.max(peak, running); log.push(`start ${name}`);
    await new Promise<void>((r) => gates.set(name, r));
    running--; log.push(`end ${name}`);
    if (fail) throw new Error(name);
    return name;
  });
  const all = [task('a', true).catch((e: Error) => `failed ${e.message}`), task('b'), task('c'), task('d')];
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(log, ['start a', 'start b']);
  gates.get('a')!();
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(log, ['start a', 'start b', 'end a', 'start c']);
  gates.get('b')!(); await new Promise((r) => setImmediate(r)); await new Promise((r) => setImmediate(r));
  gates.get('c')!(); await new Promise((r) => setImmediate(r)); await new Promise((r) => setImmediate(r));
  gates.get('d')!();
  assert.deepEqual(await Promise.all(all), ['failed a', 'b', 'c', 'd']);
  assert.equal(peak, 2);
  assert.equal(s.busy, 0);
});

test('Slots: a waiter whose signal aborts leaves the queue with the reason; the others keep their order', async () => {
  const s = new Slots(1);
  const first = await s.acquire();
  const ctl = new AbortController();
  const gone = s.acquire(ctl.signal);
  const next = s.acquire();
  assert.equal(s.waiting, 2);
  ctl.abort(new Error('bound'));
  await assert.rejects(gone, /bound/);
  assert.equal(s.waiting, 1);
  await assert.rejects(s.acquire(ctl.signal), /bound/, 'an aborted signal is refused at once');
  first();
  first(); // gives back once only
  const second = await next;
  assert.equal(s.busy, 1);
  second();
  assert.equal(s.busy, 0);
});
