// ARP probe/announce (RFC 5227), unsolicited NA (RFC 4861), ICMP echo, checksums and sockaddr layouts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  arpAnnounceFrame, arpConflict, arpProbeFrame, icmpEcho, icmpv6Checksum, inetChecksum, parseArpFrame, parseEchoReply,
  parseNaFrame, sockaddrIn, sockaddrIn6, sockaddrIp, sockaddrLl, unsolicitedNaFrame, arpPayload, ethernet,
} from '../../agent/src/datapath/podnet/packets.ts';
import { hex } from '../../agent/src/datapath/netlink/codec.ts';
import { parseIp, parseMac } from '../../agent/src/datapath/netlink/ip.ts';

const MAC = parseMac('0a:58:0a:10:00:05');
const IP = parseIp('10.16.0.5').bytes;
const H = (s: string) => hex(s).toString('hex');

test('RFC 5227 probe: broadcast ARP request from 0.0.0.0 for the probed address, padded to 60 bytes', () => {
  assert.equal(arpProbeFrame(MAC, IP).toString('hex'), H(`ffffffffffff 0a580a100005 0806
    0001 0800 06 04 0001 0a580a100005 00000000 000000000000 0a100005 ${'00'.repeat(18)}`));
});

test('RFC 5227 announcement: ARP request with sender IP = target IP = ours', () => {
  assert.equal(arpAnnounceFrame(MAC, IP).toString('hex'), H(`ffffffffffff 0a580a100005 0806
    0001 0800 06 04 0001 0a580a100005 0a100005 000000000000 0a100005 ${'00'.repeat(18)}`));
});

test('parseArpFrame reads a reply and ignores non-ARP frames', () => {
  const other = parseMac('02:00:00:00:00:99');
  const reply = ethernet(MAC, other, 0x0806, arpPayload({ op: 2, sha: other, spa: IP, tha: MAC, tpa: new Uint8Array(4) }));
  const a = parseArpFrame(reply);
  assert.ok(a);
  assert.equal(a.op, 2);
  assert.equal(a.srcMac, '02:00:00:00:00:99');
  assert.equal(parseArpFrame(ethernet(MAC, other, 0x0800, new Uint8Array(28))), null);
  assert.equal(parseArpFrame(new Uint8Array(20)), null);
});

const other = parseMac('02:00:00:00:00:99');
const ip = (s: string) => parseIp(s).bytes;
const conflictCases: Array<[string, Parameters<typeof arpPayload>[0], string | null]> = [
  ['reply from the owner of the address', { op: 2, sha: other, spa: IP, tha: MAC, tpa: ip('0.0.0.0') }, '02:00:00:00:00:99'],
  ['request (announcement) by another host using it', { op: 1, sha: other, spa: IP, tha: new Uint8Array(6), tpa: IP }, '02:00:00:00:00:99'],
  ['another host probing the same address', { op: 1, sha: other, spa: ip('0.0.0.0'), tha: new Uint8Array(6), tpa: IP }, '02:00:00:00:00:99'],
  ['our own probe echoed back', { op: 1, sha: MAC, spa: ip('0.0.0.0'), tha: new Uint8Array(6), tpa: IP }, null],
  ['unrelated ARP traffic', { op: 1, sha: other, spa: ip('10.16.0.9'), tha: new Uint8Array(6), tpa: ip('10.16.0.1') }, null],
  ['reply about another address', { op: 2, sha: other, spa: ip('10.16.0.9'), tha: MAC, tpa: IP }, null],
];
for (const [name, arp, want] of conflictCases) test(`ARP conflict rule: ${name}`, () => assert.equal(arpConflict(arp, IP, MAC), want));

test('internet checksum: RFC 1071 example and odd length', () => {
  // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2 -> checksum 220d
  assert.equal(inetChecksum(hex('0001f203f4f5f6f7')), 0x220d);
  assert.equal(inetChecksum(hex('01')), 0xfeff);
  assert.equal(inetChecksum(hex('00')), 0xffff);
});

test('ICMP echo request: type 8, id/seq, checksum', () => {
  assert.equal(icmpEcho(false, 1, 1).toString('hex'), '0800f7fd00010001');
  const withData = icmpEcho(false, 0x1234, 7, Buffer.from('abc'));
  assert.equal(inetChecksum(withData), 0, 'a correct checksum sums to zero');
  assert.equal(icmpEcho(true, 1, 2).toString('hex'), '8000000000010002', 'ICMPv6: checksum left to the kernel');
});

test('parseEchoReply: IPv4 with IP header, IPv6 ICMP only', () => {
  const v4 = hex('45000024 0000 4000 40 01 0000 0a100001 0a100005  00 00 0000 1234 0007 616263');
  assert.deepEqual(parseEchoReply(false, v4), { id: 0x1234, seq: 7, src: '10.16.0.1' });
  assert.equal(parseEchoReply(false, hex('45000024 0000 4000 40 01 0000 0a100001 0a100005  08 00 0000 1234 0007')), null);
  assert.deepEqual(parseEchoReply(true, hex('81 00 0000 1234 0007')), { id: 0x1234, seq: 7 });
  assert.equal(parseEchoReply(true, hex('80 00 0000 1234 0007')), null);
});

/** Naive ICMPv6 checksum written independently: 16-bit words of pseudo-header + message. */
function naiveIcmpv6(src: Uint8Array, dst: Uint8Array, msg: Uint8Array): number {
  const data = Buffer.concat([Buffer.from(src), Buffer.from(dst), Buffer.from([0, 0, msg.length >> 8, msg.length & 0xff, 0, 0, 0, 58]), Buffer.from(msg), Buffer.alloc(msg.length % 2)]);
  let s = 0;
  for (let i = 0; i < data.length; i += 2) s += data.readUInt16BE(i);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

test('unsolicited NA frame: all-nodes MAC/IP, hop limit 255, override flag, target LLA, valid checksum', () => {
  const v6 = parseIp('fd00:10:16::5').bytes;
  const f = unsolicitedNaFrame(MAC, v6);
  assert.equal(f.subarray(0, 14).toString('hex'), H('333300000001 0a580a100005 86dd'));
  assert.equal(f.subarray(14, 22).toString('hex'), H('60000000 0020 3a ff'));
  const icmp = f.subarray(54, 86);
  assert.equal(icmp.subarray(4, 8).toString('hex'), '20000000');
  const stored = icmp.readUInt16BE(2);
  const zeroed = Buffer.from(icmp);
  zeroed.writeUInt16BE(0, 2);
  assert.equal(stored, naiveIcmpv6(v6, f.subarray(38, 54), zeroed));
  assert.equal(icmpv6Checksum(v6, f.subarray(38, 54), zeroed), stored);
  const p = parseNaFrame(f);
  assert.deepEqual(p, { srcMac: '0a:58:0a:10:00:05', src: 'fd00:10:16::5', dst: 'ff02::1', hopLimit: 255, flags: 0x20000000,
    target: 'fd00:10:16::5', tlla: '0a:58:0a:10:00:05', checksumOk: true });
});

test('sockaddr layouts', () => {
  assert.equal(sockaddrLl(0x0806, 5, hex('ffffffffffff')).toString('hex'), H('1100 0806 05000000 0000 00 06 ffffffffffff 0000'));
  assert.equal(sockaddrLl(0x86dd, 2).toString('hex'), H('1100 86dd 02000000 0000 00 00 0000000000000000'));
  assert.equal(sockaddrIn(IP).toString('hex'), H('0200 0000 0a100005 0000000000000000'));
  const s6 = sockaddrIn6(parseIp('fe80::1').bytes, 3);
  assert.equal(s6.toString('hex'), H('0a00 0000 00000000 fe800000000000000000000000000001 03000000'));
  assert.equal(sockaddrIp(s6), 'fe80::1');
  assert.equal(sockaddrIp(sockaddrIn(IP)), '10.16.0.5');
  assert.equal(sockaddrIp(sockaddrLl(1, 1)), null);
});
