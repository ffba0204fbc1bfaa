// The D-Bus wire codec: golden messages written by libdbus (dbus-send 1.14, captured from a Unix socket), values of
// every supported type against hand-computed bytes (alignment and padding included), both byte orders, and refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage, encodeMessage, marshal, messageLength, splitSignature, unmarshal, DBusCodecError, type DBusValue } from '../../../agent/src/datapath/dbus/codec.ts';

/** dbus-send's Hello (serial 1) */
const HELLO = '6c01000100000000010000006e00000001016f00150000002f6f72672f667265656465736b746f702f4442757300000006017300140000006f72672e667265656465736b746f702e444275730000000002017300140000006f72672e667265656465736b746f702e4442757300000000030173000500000048656c6c6f000000';
/** dbus-send ... org.freedesktop.DBus.Properties.Set string:org.freedesktop.NetworkManager.Device string:Managed variant:boolean:false */
const SET_MANAGED = '6c0100014000000002000000a100000001016f00290000002f6f72672f667265656465736b746f702f4e6574776f726b4d616e616765722f446576696365732f3200000000000000020173001f0000006f72672e667265656465736b746f702e444275732e50726f706572746965730003017300030000005365740000000000060173001e0000006f72672e667265656465736b746f702e4e6574776f726b4d616e61676572000008016700037373760000000000000000250000006f72672e667265656465736b746f702e4e6574776f726b4d616e616765722e446576696365000000070000004d616e61676564000162000000000000';

test('decodes libdbus messages: Hello, and Properties.Set with a variant', () => {
  const h = decodeMessage(Buffer.from(HELLO, 'hex'));
  assert.equal(h.type, 1);
  assert.equal(h.serial, 1);
  assert.equal(h.path, '/org/freedesktop/DBus');
  assert.equal(h.destination, 'org.freedesktop.DBus');
  assert.equal(h.interface, 'org.freedesktop.DBus');
  assert.equal(h.member, 'Hello');
  assert.deepEqual(h.body, []);
  const s = decodeMessage(Buffer.from(SET_MANAGED, 'hex'));
  assert.equal(s.serial, 2);
  assert.equal(s.path, '/org/freedesktop/NetworkManager/Devices/2');
  assert.equal(s.interface, 'org.freedesktop.DBus.Properties');
  assert.equal(s.member, 'Set');
  assert.equal(s.destination, 'org.freedesktop.NetworkManager');
  assert.equal(s.signature, 'ssv');
  assert.deepEqual(s.body, ['org.freedesktop.NetworkManager.Device', 'Managed', { sig: 'b', value: false }]);
});

test('encodes the Properties.Set call byte for byte as libdbus does', () => {
  const m = encodeMessage({
    type: 1, serial: 2, path: '/org/freedesktop/NetworkManager/Devices/2', interface: 'org.freedesktop.DBus.Properties', member: 'Set',
    destination: 'org.freedesktop.NetworkManager', signature: 'ssv', body: ['org.freedesktop.NetworkManager.Device', 'Managed', { sig: 'b', value: false }],
  });
  assert.equal(m.toString('hex'), SET_MANAGED);
  assert.equal(messageLength(m), m.length);
});

const cases: { sig: string; values: DBusValue[]; hex: string }[] = [
  { sig: 'y', values: [0x7f], hex: '7f' },
  { sig: 'b', values: [true], hex: '01000000' },
  { sig: 'yq', values: [1, 0x0203], hex: '01000302' }, // q aligned to 2
  { sig: 'yu', values: [1, 5], hex: '01000000' + '05000000' }, // u aligned to 4
  { sig: 'yt', values: [1, 5n], hex: '01' + '00'.repeat(7) + '0500000000000000' }, // t aligned to 8
  { sig: 'i', values: [-2], hex: 'feffffff' },
  { sig: 'x', values: [-1n], hex: 'ffffffffffffffff' },
  { sig: 'd', values: [1], hex: '000000000000f03f' },
  { sig: 's', values: ['ab'], hex: '02000000616200' },
  { sig: 'o', values: ['/'], hex: '010000002f00' },
  { sig: 'g', values: ['a{sv}'], hex: '05617b73767d00' },
  { sig: 'v', values: [{ sig: 'u', value: 7 }], hex: '0175000007000000' },
  { sig: 'as', values: [['a', 'b']], hex: '0e000000' + '0100000061000000' + '01000000' + '6200' },
  { sig: 'at', values: [[1n]], hex: '08000000' + '00000000' + '0100000000000000' }, // pad to 8 before the first element, not counted
  { sig: 'au', values: [[]], hex: '00000000' },
  { sig: 'a{sv}', values: [new Map<DBusValue, DBusValue>([['k', { sig: 'b', value: true }]])], hex: '10000000' + '00000000' + '010000006b00' + '016200' + '000000' + '01000000' },
  { sig: '(yu)', values: [[1, 2]], hex: '01000000' + '02000000' },
  { sig: 'aay', values: [[[1, 2], [3]]], hex: '0d000000' + '0200000001020000' + '0100000003' },
];

for (const c of cases) {
  test(`marshal and unmarshal ${c.sig}`, () => {
    assert.equal(marshal(c.sig, c.values).toString('hex'), c.hex);
    assert.deepEqual(unmarshal(c.sig, Buffer.from(c.hex, 'hex')), c.values);
  });
}

test('big-endian messages decode too', () => {
  // the Hello reply ":1.1" as a big-endian bus would send it
  const be = Buffer.from('42020001' + '00000009' + '00000001' + '0000001d' + '05017500' + '00000001' + '08016700' + '01730000' + '07017300' + '00000004' + '3a312e3100' + '000000' + '00000004' + '3a312e3100', 'hex');
  const n = messageLength(be);
  assert.equal(n, be.length - 0); // header 16 + fields 29 + pad 3 + body 9
  const m = decodeMessage(be);
  assert.equal(m.type, 2);
  assert.equal(m.replySerial, 1);
  assert.equal(m.signature, 's');
  assert.deepEqual(m.body, [':1.1']);
});

test('signatures split into complete types; bad ones are refused', () => {
  assert.deepEqual(splitSignature('sa{sv}(ia(yv))v'), ['s', 'a{sv}', '(ia(yv))', 'v']);
  for (const bad of ['a', '(s', 'a{s', 'z', 'h']) assert.throws(() => splitSignature(bad), DBusCodecError, bad);
});

test('refusals: truncated input, wrong value types, trailing bytes, a bad endianness byte, a NUL in a string', () => {
  assert.throws(() => unmarshal('u', Buffer.from('0100', 'hex')), /truncated/);
  assert.throws(() => unmarshal('s', Buffer.from('0500000061', 'hex')), /truncated/);
  assert.throws(() => unmarshal('y', Buffer.from('0102', 'hex')), /left after/);
  assert.throws(() => unmarshal('b', Buffer.from('02000000', 'hex')), /not 0 or 1/);
  assert.throws(() => marshal('u', ['x']), /expected a number/);
  assert.throws(() => marshal('y', [256]), /out of range/);
  assert.throws(() => marshal('u', [-1]), /out of range/);
  assert.throws(() => marshal('n', [1.5]), /out of range/);
  // a dict whose length ends inside an entry
  assert.throws(() => unmarshal('a{yy}', Buffer.from('03000000' + '00000000' + '0102' + '00', 'hex')), DBusCodecError);
  assert.throws(() => marshal('s', ['a\0b']), /NUL/);
  assert.throws(() => marshal('ss', ['a']), /2 types, 1 values/);
  assert.throws(() => marshal('v', [{ sig: 'ss', value: 'x' }]), /not one complete type/);
  assert.throws(() => messageLength(Buffer.alloc(16, 0x41)), /endianness/);
  assert.equal(messageLength(Buffer.alloc(15)), undefined);
});

test('a message round-trips through encode and decode, with reply fields', () => {
  const m = { type: 3, serial: 9, replySerial: 4, errorName: 'org.freedesktop.NetworkManager.UnknownDevice', destination: ':1.7', signature: 's', body: ['No device found'] };
  const d = decodeMessage(encodeMessage(m));
  assert.deepEqual({ type: d.type, serial: d.serial, replySerial: d.replySerial, errorName: d.errorName, destination: d.destination, signature: d.signature, body: d.body },
    { ...m });
});
