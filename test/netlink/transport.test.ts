// The request/ACK/dump logic of NlSocket over a scripted wire (no kernel): sequence matching, stale answers,
// errors with extended ACK, multi-part dumps, NLM_F_DUMP_INTR restarts, DONE carrying an error, timeouts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NlSocket, DUMP_RETRIES, type NlWire } from '../../agent/src/datapath/netlink/transport.ts';
import { buildMessage } from '../../agent/src/datapath/netlink/codec.ts';
import * as link from '../../agent/src/datapath/netlink/link.ts';
import { isNetlinkError } from '../../agent/src/datapath/netlink/errors.ts';

/** A wire that answers each request with datagrams built by `reply(seq, requestIndex)`. */
function scripted(reply: (seq: number, n: number) => Buffer[]): NlWire & { sent: Buffer[]; closed: boolean; modes: number[] } {
  const w = {
    sent: [] as Buffer[],
    modes: [] as number[],
    closed: false,
    async exchange(msg: Buffer, seq: number, mode: number) {
      assert.equal(msg.readUInt32LE(8), seq, 'the wire is told the request\'s own sequence number');
      w.sent.push(Buffer.from(msg));
      w.modes.push(mode);
      await new Promise((r) => setImmediate(r)); // answers come back later, as from the pool
      return reply(seq, w.sent.length - 1);
    },
    close() { w.closed = true; },
  };
  return w;
}

const ack = (seq: number, error = 0, extack?: string) => buildMessage({ type: 2, flags: extack ? 0x300 : 0x100, seq }, (w) => {
  w.i32(error).u32(16).u16(16).u16(5).u32(seq).u32(0);
  if (extack) w.attrStr(1, extack);
});
const linkMsg = (seq: number, index: number, name: string, flags = 2) => buildMessage({ type: 16, flags, seq }, (w) => {
  w.u8(0).u8(0).u16(1).i32(index).u32(1).u32(0);
  w.attrStr(3, name);
  w.attrU32(4, 1500);
});
const done = (seq: number, err = 0) => buildMessage({ type: 3, flags: 2, seq }, (w) => w.i32(err));

test('ack: success returns, the request carries our sequence number', async () => {
  const w = scripted((seq) => [ack(seq)]);
  const s = new NlSocket(null, w);
  await s.ack((q) => link.delLink(q, { name: 'x' }), 'delete');
  assert.equal(w.sent.length, 1);
  assert.deepEqual(w.modes, [0]);
  assert.equal(w.sent[0]!.readUInt16LE(4), 17);
});

test('ack: a stale answer with another sequence number is skipped', async () => {
  const w = scripted((seq) => [Buffer.concat([ack(seq - 1, -17), ack(seq)])]);
  await new NlSocket(null, w).ack((q) => link.delLink(q, { name: 'x' }), 'delete');
});

test('ack: kernel error becomes NetlinkError with errno name and extack', async () => {
  const w = scripted((seq) => [ack(seq, -17, 'ipv4: Address already assigned')]);
  await assert.rejects(() => new NlSocket(null, w).ack((q) => link.delLink(q, { name: 'x' }), 'add address'),
    (e) => isNetlinkError(e, 'EEXIST') && e.extack === 'ipv4: Address already assigned' && /add address/.test(e.message));
});

test('ack: no answer -> ETIMEDOUT', async () => {
  const w = scripted(() => []);
  const s = new NlSocket(null, w);
  s.timeoutMs = 5;
  await assert.rejects(() => s.ack((q) => link.delLink(q, { name: 'x' }), 'delete'), (e) => isNetlinkError(e, 'ETIMEDOUT'));
});

test('get: decodes the single answer; an error answer throws (ENODEV)', async () => {
  const ok = new NlSocket(null, scripted((seq) => [linkMsg(seq, 4, 'eth0', 0)]));
  assert.equal((await ok.get((q) => link.getLink(q, { name: 'eth0' }), link.decodeLink, 'get')).name, 'eth0');
  const missing = new NlSocket(null, scripted((seq) => [ack(seq, -19)]));
  await assert.rejects(() => missing.get((q) => link.getLink(q, { name: 'eth0' }), link.decodeLink, 'get'), (e) => isNetlinkError(e, 'ENODEV'));
});

test('dump: collects every part across datagrams until NLMSG_DONE', async () => {
  const w = scripted((seq) => [Buffer.concat([linkMsg(seq, 1, 'lo'), linkMsg(seq, 2, 'eth0')]), Buffer.concat([linkMsg(seq, 3, 'eth1'), done(seq)])]);
  const names = await new NlSocket(null, w).dump((q) => link.getLink(q), (m) => link.decodeLink(m).name, 'dump');
  assert.deepEqual(names, ['lo', 'eth0', 'eth1']);
});

test('dump: NLM_F_DUMP_INTR restarts the dump and returns the consistent second result', async () => {
  const w = scripted((seq, n) => n === 0
    ? [Buffer.concat([linkMsg(seq, 1, 'lo', 2 | 0x10), linkMsg(seq, 2, 'half', 2 | 0x10), done(seq)])]
    : [Buffer.concat([linkMsg(seq, 1, 'lo'), linkMsg(seq, 2, 'eth0'), done(seq)])]);
  const names = await new NlSocket(null, w).dump((q) => link.getLink(q), (m) => link.decodeLink(m).name, 'dump');
  assert.deepEqual(names, ['lo', 'eth0']);
  assert.equal(w.sent.length, 2);
  assert.notEqual(w.sent[0]!.readUInt32LE(8), w.sent[1]!.readUInt32LE(8), 'a new sequence number per attempt');
});

test('dump: always interrupted -> EINTR after the retry budget', async () => {
  const w = scripted((seq) => [Buffer.concat([linkMsg(seq, 1, 'lo', 2 | 0x10), done(seq)])]);
  await assert.rejects(() => new NlSocket(null, w).dump((q) => link.getLink(q), link.decodeLink, 'dump'), (e) => isNetlinkError(e, 'EINTR'));
  assert.equal(w.sent.length, DUMP_RETRIES + 1);
});

test('dump: NLMSG_DONE carrying an error, and an NLMSG_ERROR instead of parts', async () => {
  await assert.rejects(() => new NlSocket(null, scripted((seq) => [done(seq, -22)])).dump((q) => link.getLink(q), link.decodeLink, 'dump'), (e) => isNetlinkError(e, 'EINVAL'));
  await assert.rejects(() => new NlSocket(null, scripted((seq) => [ack(seq, -95)])).dump((q) => link.getLink(q), link.decodeLink, 'dump'), (e) => isNetlinkError(e, 'EOPNOTSUPP'));
});

test('close is idempotent and a closed socket refuses requests (EBADF)', async () => {
  const w = scripted((seq) => [ack(seq)]);
  const s = new NlSocket(null, w);
  s.close();
  s.close();
  assert.equal(w.closed, true);
  await assert.rejects(() => s.ack((q) => link.delLink(q, { name: 'x' }), 'delete'), (e) => isNetlinkError(e, 'EBADF'));
});

test('requests on one socket are serialised: the second starts after the first answered', async () => {
  let inFlight = 0;
  let most = 0;
  const w: NlWire = {
    async exchange(msg, seq) {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, 2));
      inFlight--;
      return [ack(seq)];
    },
    close() {},
  };
  const s = new NlSocket(null, w);
  await Promise.all([1, 2, 3].map((i) => s.ack((q) => link.delLink(q, { name: `x${i}` }), 'delete')));
  assert.equal(most, 1);
});

test('a wire failure becomes a NetlinkError naming the operation; the socket stays usable', async () => {
  let n = 0;
  const w: NlWire = {
    async exchange(_m, seq) {
      if (n++ === 0) throw Object.assign(new Error('sendto: No buffer space'), { code: 'ENOBUFS', errno: 105, syscall: 'sendto' });
      return [ack(seq)];
    },
    close() {},
  };
  const s = new NlSocket(null, w);
  await assert.rejects(s.ack((q) => link.delLink(q, { name: 'x' }), 'delete x'), (e) => isNetlinkError(e, 'ENOBUFS') && /delete x/.test(e.message));
  await s.ack((q) => link.delLink(q, { name: 'x' }), 'delete x');
});
