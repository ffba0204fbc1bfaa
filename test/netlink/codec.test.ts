// Netlink framing: attributes, alignment, nesting, message split, NLMSG_ERROR with and without extended ACK.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  NlWriter, buildMessage, hex, parseAttrList, parseAttrs, parseError, parseMessages, attrString, attrU32, align4,
} from '../../agent/src/datapath/netlink/codec.ts';
import { kernelError, NetlinkError, invalid, isNetlinkError } from '../../agent/src/datapath/netlink/errors.ts';
import { errnoName, errnoNumber } from '../../agent/src/datapath/netlink/errno.ts';
import { AgentError, CniCode } from '../../agent/src/errors.ts';

const fixtures = JSON.parse(readFileSync(new URL('./fixtures/kernel.json', import.meta.url), 'utf8')) as { captured: Record<string, string[]> };
const captured = (name: string, i = 0): Buffer => Buffer.from(fixtures.captured[name]![i]!, 'hex');

test('align4 rounds up to 4-byte boundaries', () => {
  for (const [n, want] of [[0, 0], [1, 4], [4, 4], [5, 8], [7, 8], [8, 8]] as const) assert.equal(align4(n), want);
});

const attrCases: Array<{ name: string; write: (w: NlWriter) => void; hex: string }> = [
  { name: 'u32', write: (w) => w.attrU32(4, 1400), hex: '0800 0400 78050000' },
  { name: 'u8 padded to 8', write: (w) => w.attrU8(16, 6), hex: '0500 1000 06 000000' },
  { name: 'u16 padded to 8', write: (w) => w.attrU16(7, 0x1234), hex: '0600 0700 3412 0000' },
  { name: 'string with NUL, 3+1 bytes, no pad', write: (w) => w.attrStr(3, 'eth'), hex: '0800 0300 657468 00' },
  { name: 'string with NUL and pad', write: (w) => w.attrStr(3, 'eth0'), hex: '0900 0300 65746830 00 000000' },
  { name: 'raw 6-byte MAC, pad 2', write: (w) => w.attr(1, hex('0a0000000005')), hex: '0a00 0100 0a0000000005 0000' },
  { name: 'empty payload', write: (w) => w.attr(9, new Uint8Array(0)), hex: '0400 0900' },
  {
    name: 'nested with NLA_F_NESTED, length covers children',
    write: (w) => w.nest(18, () => { w.attrStr(1, 'veth'); w.attrU32(2, 7); }, true),
    hex: '1800 1280  0900 0100 76657468 00 000000  0800 0200 07000000',
  },
  {
    name: 'nest in nest (lengths patched inside out)',
    write: (w) => w.nest(1, () => w.nest(2, () => w.attrU8(3, 1))),
    hex: '1000 0100 0c00 0200 0500 0300 01 000000',
  },
];

for (const c of attrCases) {
  test(`attribute encoding: ${c.name}`, () => {
    const w = new NlWriter(4); // tiny initial size: exercises growth
    c.write(w);
    assert.equal(w.finish().toString('hex'), hex(c.hex).toString('hex'));
  });
}

test('buildMessage writes nlmsghdr with the total length, type, flags, seq and pid 0', () => {
  const m = buildMessage({ type: 18, flags: 0x301, seq: 0x01020304 }, (w) => w.u8(0).u8(0).u16(0).i32(5).u32(0).u32(0));
  assert.equal(m.toString('hex'), hex('20000000 1200 0103 04030201 00000000  00 00 0000 05000000 00000000 00000000').toString('hex'));
});

test('parseMessages splits a datagram with several messages and keeps payload views', () => {
  const a = buildMessage({ type: 16, flags: 2, seq: 7 }, (w) => w.u32(0xaabbccdd));
  const b = buildMessage({ type: 3, flags: 2, seq: 7 }, (w) => w.i32(0));
  const ms = parseMessages(Buffer.concat([a, b]));
  assert.deepEqual(ms.map((m) => [m.type, m.flags, m.seq, m.payload.length]), [[16, 2, 7, 4], [3, 2, 7, 4]]);
  assert.equal(ms[0]!.payload.readUInt32LE(0), 0xaabbccdd);
});

test('parseMessages rejects a length running past the datagram', () => {
  const bad = hex('40000000 1000 0000 01000000 00000000');
  assert.throws(() => parseMessages(bad), /malformed netlink message/);
  assert.throws(() => parseMessages(hex('08000000 1000 0000 01000000 00000000')), /malformed/);
});

test('parseAttrs masks NLA_F_NESTED/NET_BYTEORDER, later duplicates win, truncated tail is ignored', () => {
  const b = hex('0800 0380 01000000  0800 0340 02000000  0800 0400 05000000  0c00 0500 0000');
  const a = parseAttrs(b);
  assert.equal(attrU32(a.get(3)), 2);
  assert.equal(attrU32(a.get(4)), 5);
  assert.equal(a.has(5), false);
  assert.deepEqual(parseAttrList(b).map(([t]) => t), [3, 3, 4]);
});

test('attrString stops at the first NUL', () => {
  assert.equal(attrString(hex('65746830 00 0000')), 'eth0');
  assert.equal(attrString(hex('657468')), 'eth');
  assert.equal(attrString(undefined), undefined);
});

test('parseError: kernel ENODEV without TLVs (captured, NETLINK_CAP_ACK)', () => {
  const [m] = parseMessages(captured('getlink_missing'));
  assert.equal(m!.type, 2);
  const e = parseError(m!);
  assert.equal(e.error, -19);
  assert.equal(errnoName(e.error), 'ENODEV');
  assert.equal(e.seq, 103);
  assert.equal(e.requestType, 18);
  assert.equal(e.extack, undefined);
});

test('parseError: kernel EEXIST with extended ACK message (captured)', () => {
  const [m] = parseMessages(captured('newaddr_eexist'));
  const e = parseError(m!);
  assert.equal(errnoName(e.error), 'EEXIST');
  assert.equal(e.requestType, 20);
  assert.equal(e.seq, 108);
  assert.match(e.extack ?? '', /Address already assigned/);
});

test('parseError: ACK (error 0), captured delete', () => {
  const [m] = parseMessages(captured('dellink_ok'));
  const e = parseError(m!);
  assert.equal(e.error, 0);
  assert.equal(e.requestType, 17);
  assert.equal(e.seq, 109);
});

test('parseError: uncapped error echoes the whole request before the TLVs', () => {
  const req = buildMessage({ type: 20, flags: 5, seq: 9 }, (w) => w.u32(1).u32(2).u32(3));
  const body = Buffer.concat([hex('efffffff'), req, hex('0a00 0100 6f6f707300 00 00')]);
  const m = buildMessage({ type: 2, flags: 0x200, seq: 9 }, (w) => w.bytes(body));
  const e = parseError(parseMessages(m)[0]!);
  assert.equal(e.error, -17);
  assert.equal(e.extack, 'oops');
  assert.equal(e.seq, 9);
});

const errnoCases: Array<[number, string]> = [[-17, 'EEXIST'], [-2, 'ENOENT'], [-19, 'ENODEV'], [-3, 'ESRCH'], [-99, 'EADDRNOTAVAIL'],
  [-22, 'EINVAL'], [-1, 'EPERM'], [-16, 'EBUSY'], [-101, 'ENETUNREACH'], [-95, 'EOPNOTSUPP'], [-34, 'ERANGE'], [-11, 'EAGAIN'], [-9999, 'E9999']];
for (const [n, name] of errnoCases) {
  test(`errno ${n} -> ${name}`, () => {
    assert.equal(errnoName(n), name);
    const e = kernelError(n, 'op');
    assert.equal(e.errno, name);
    if (!name.startsWith('E9')) assert.equal(errnoNumber(name), -n);
  });
}

test('NetlinkError is an AgentError with code KOA_NETLINK, CNI code 104, errno name, op and extack in the message', () => {
  const e = kernelError(-17, 'add address 10.0.0.5/24 to eth0', 'ipv4: Address already assigned');
  assert.ok(e instanceof AgentError);
  assert.ok(e instanceof NetlinkError);
  assert.equal(e.code, 'KOA_NETLINK');
  assert.equal(e.cniCode, CniCode.Netlink);
  assert.equal(e.errno, 'EEXIST');
  assert.equal(e.message, 'netlink add address 10.0.0.5/24 to eth0: already exists (ipv4: Address already assigned) [EEXIST]');
  assert.ok(isNetlinkError(e, 'EEXIST'));
  assert.ok(!isNetlinkError(e, 'ENOENT'));
  assert.ok(isNetlinkError(invalid('x', 'y'), 'EINVAL'));
  assert.ok(!isNetlinkError(new Error('EEXIST')));
});
