// KernelCallRouter: inline by default, the pool for holdMs after one slow inline call (a mock clock, no real time),
// and answerComplete, the rule that ends an inline exchange (the addon's pool job applies the same rule).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KernelCallRouter } from '../../agent/src/datapath/kernel-calls.ts';
import { answerComplete, MODE_ACK, MODE_DUMP, MODE_GET } from '../../agent/src/datapath/netlink/transport.ts';
import { buildMessage } from '../../agent/src/datapath/netlink/codec.ts';

function clocked(): { router: KernelCallRouter; advance: (ms: number) => void } {
  let t = 1000;
  return { router: new KernelCallRouter(2, 1000, () => t), advance: (ms) => { t += ms; } };
}

test('inline while calls are fast; one slow call sends the next calls to the pool for holdMs, then inline again', async () => {
  const { router, advance } = clocked();
  const where: string[] = [];
  const call = (cost = 0) => router.run(() => { where.push('inline'); advance(cost); return 1; }, async () => { where.push('pool'); return 2; });
  assert.equal(await call(0.1), 1);
  assert.equal(await call(5), 1, 'the slow call itself has already run inline');
  assert.equal(await call(), 2);
  advance(999);
  assert.equal(await call(), 2, 'still inside the hold window');
  advance(2);
  assert.equal(await call(), 1, 'the window has passed');
  assert.deepEqual(where, ['inline', 'inline', 'pool', 'pool', 'inline']);
  assert.deepEqual(router.stats, { inline: 3, pooled: 2, slow: 1 });
});

test('an inline call that throws rejects (never throws synchronously) and is still timed', async () => {
  const { router, advance } = clocked();
  await assert.rejects(router.run(() => { advance(3); throw new Error('ENODEV'); }, async () => 0), /ENODEV/);
  assert.equal(router.contended, true);
  assert.equal(router.stats.slow, 1);
});

test('an inline call may hand the rest to a promise: only its synchronous part is timed', async () => {
  const { router, advance } = clocked();
  const rest = router.run(() => new Promise<number>((r) => setImmediate(() => { advance(50); r(7); })), async () => 0);
  assert.equal(router.contended, false);
  assert.equal(await rest, 7);
});

const msg = (type: number, seq: number, body: (w: any) => void = () => {}) => buildMessage({ type, flags: 2, seq }, body);
const cat = (...b: Buffer[]) => Buffer.concat(b);
test('answerComplete: table', () => {
  const rows: [string, Buffer, number, boolean][] = [
    ['ack: our ACK', msg(2, 7, (w) => w.i32(0)), MODE_ACK, true],
    ['ack: an ACK for another request', msg(2, 6, (w) => w.i32(0)), MODE_ACK, false],
    ['ack: a stale answer, then ours', cat(msg(16, 6), msg(2, 7, (w) => w.i32(-19))), MODE_ACK, true],
    ['ack: a message of ours that is not an ACK', msg(16, 7), MODE_ACK, false],
    ['get: any message of ours', msg(16, 7), MODE_GET, true],
    ['get: only another sequence', msg(16, 8), MODE_GET, false],
    ['dump: elements only', cat(msg(16, 7), msg(16, 7)), MODE_DUMP, false],
    ['dump: elements then DONE', cat(msg(16, 7), msg(3, 7, (w) => w.i32(0))), MODE_DUMP, true],
    ['dump: overrun', msg(4, 7), MODE_DUMP, true],
    ['dump: a zero error is not the end', msg(2, 7, (w) => w.i32(0)), MODE_DUMP, false],
    ['dump: a non-zero error ends it', msg(2, 7, (w) => w.i32(-1)), MODE_DUMP, true],
    ['dump: another request\'s DONE', msg(3, 9, (w) => w.i32(0)), MODE_DUMP, false],
    ['malformed length ends it (the parser reports it)', Buffer.from([4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), MODE_DUMP, true],
    ['empty datagram', Buffer.alloc(0), MODE_GET, false],
  ];
  for (const [name, d, mode, want] of rows) assert.equal(answerComplete(d, 7, mode as 0 | 1 | 2), want, name);
});

test('while a call slow by nature runs on the pool, every other call goes there too; inline again after it', async () => {
  const { router } = clocked();
  let finish!: () => void;
  const del = router.onPool(() => new Promise<void>((r) => { finish = r; }));
  assert.equal(router.contended, true);
  const where: string[] = [];
  await router.run(() => { where.push('inline'); }, async () => { where.push('pool'); });
  finish();
  await del;
  assert.equal(router.contended, false);
  await router.run(() => { where.push('inline'); }, async () => { where.push('pool'); });
  assert.deepEqual(where, ['pool', 'inline']);
  await assert.rejects(router.onPool(() => Promise.reject(new Error('ENODEV'))), /ENODEV/);
  assert.equal(router.contended, false, 'a failed call is counted out too');
});
