// IP/CIDR/MAC text <-> bytes (strict), RFC 5952 formatting, network/broadcast.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { broadcastOf, formatIPv6, formatIp, formatMac, networkOf, parseCidr, parseIPv4, parseIPv6, parseIp, parseMac } from '../../agent/src/datapath/netlink/ip.ts';
import { isNetlinkError } from '../../agent/src/datapath/netlink/errors.ts';

const hexOf = (b: Uint8Array | null) => (b ? Buffer.from(b).toString('hex') : null);

const v4: Array<[string, string | null]> = [
  ['10.16.0.5', '0a100005'], ['0.0.0.0', '00000000'], ['255.255.255.255', 'ffffffff'],
  ['256.0.0.1', null], ['10.0.0', null], ['010.0.0.1', null], ['1.2.3.4 ', null], ['a.b.c.d', null],
];
for (const [s, h] of v4) test(`parseIPv4 ${JSON.stringify(s)}`, () => assert.equal(hexOf(parseIPv4(s)), h));

const v6: Array<[string, string | null]> = [
  ['::', '00000000000000000000000000000000'],
  ['::1', '00000000000000000000000000000001'],
  ['fd00::5', 'fd000000000000000000000000000005'],
  ['FE80::1:2', 'fe800000000000000000000000010002'],
  ['2001:db8:0:0:1:0:0:1', '20010db8000000000001000000000001'],
  ['::ffff:10.16.0.5', '00000000000000000000ffff0a100005'],
  ['1:2:3:4:5:6:7:8', '00010002000300040005000600070008'],
  ['1:2:3:4:5:6:7:8:9', null], ['1::2::3', null], ['12345::', null], ['fe80::1%eth0', null], ['1:2:3:4:5:6:7::8', null], [':', null],
];
for (const [s, h] of v6) test(`parseIPv6 ${JSON.stringify(s)}`, () => assert.equal(hexOf(parseIPv6(s)), h));

const rfc5952: Array<[string, string]> = [
  ['2001:0db8:0000:0000:0001:0000:0000:0001', '2001:db8::1:0:0:1'], // first of two equal runs
  ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not compressed
  ['fd00:0:0:0:0:0:0:5', 'fd00::5'], ['0:0:0:0:0:0:0:0', '::'], ['0:0:0:0:0:0:0:1', '::1'], ['1:0:0:0:0:0:0:0', '1::'],
  ['2001:db8:0:0:0:1:0:0', '2001:db8::1:0:0'],
];
for (const [i, o] of rfc5952) test(`RFC 5952 ${i} -> ${o}`, () => assert.equal(formatIPv6(parseIPv6(i)!), o));

test('parseCidr / networkOf / broadcastOf', () => {
  const c = parseCidr('10.16.0.5/16');
  assert.deepEqual([c.family, c.prefixLen, formatIp(c.bytes)], [4, 16, '10.16.0.5']);
  assert.equal(formatIp(networkOf(c)), '10.16.0.0');
  assert.equal(formatIp(broadcastOf(c)), '10.16.255.255');
  assert.equal(formatIp(networkOf(parseCidr('fd00:10:16::5/44'))), 'fd00:10:10::');
  assert.equal(formatIp(networkOf(parseCidr('10.1.2.3/0'))), '0.0.0.0');
  assert.equal(formatIp(broadcastOf(parseCidr('192.168.1.77/27'))), '192.168.1.95');
});

for (const bad of ['10.0.0.1', '10.0.0.1/33', 'fd00::1/129', '10.0.0.1/-1', '10.0.0.1/1a', 'x/24', '/24']) {
  test(`parseCidr rejects ${JSON.stringify(bad)} with EINVAL`, () => assert.throws(() => parseCidr(bad), (e) => isNetlinkError(e, 'EINVAL')));
}

test('parseIp tells the family', () => {
  assert.equal(parseIp('10.0.0.1').family, 4);
  assert.equal(parseIp('::1').family, 6);
  assert.throws(() => parseIp('nope'), (e) => isNetlinkError(e, 'EINVAL'));
});

test('MAC parse/format', () => {
  assert.equal(formatMac(parseMac('0A:58:0a:10:00:05')), '0a:58:0a:10:00:05');
  assert.equal(formatMac(parseMac('0a-58-0a-10-00-05')), '0a:58:0a:10:00:05');
  for (const bad of ['0a:58:0a:10:00', '0a:58:0a:10:00:05:06', 'zz:58:0a:10:00:05', '0a5:8:0a:10:00:05']) {
    assert.throws(() => parseMac(bad), (e) => isNetlinkError(e, 'EINVAL'), bad);
  }
});
