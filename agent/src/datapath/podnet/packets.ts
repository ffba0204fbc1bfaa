// Frames and socket addresses for the pod-side helpers: ARP probe/announcement (RFC 5227), IPv6 unsolicited
// neighbour advertisement (RFC 4861 §7.2.6), ICMP/ICMPv6 echo, internet checksums, sockaddr_ll/in/in6 bytes.
// Pure functions; the sockets that carry them are in podside.ts.
import { invalid } from '../netlink/errors.ts';
import { formatIp, formatMac } from '../netlink/ip.ts';

export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_HLEN = 14;
export const ETH_ZLEN = 60;
export const ARPOP_REQUEST = 1;
export const ARPOP_REPLY = 2;
export const ICMP_ECHO_REPLY = 0;
export const ICMP_ECHO_REQUEST = 8;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;
export const ICMPV6_NEIGHBOR_ADVERT = 136;
export const PACKET_OUTGOING = 4;
export const BROADCAST_MAC = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
export const ALL_NODES_V6 = new Uint8Array([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
export const ALL_NODES_MAC = new Uint8Array([0x33, 0x33, 0, 0, 0, 1]);

/** 16-bit ones' complement sum of `parts` (RFC 1071), already complemented. */
export function inetChecksum(...parts: Uint8Array[]): number {
  let sum = 0;
  let odd: number | undefined;
  for (const p of parts) {
    for (let i = 0; i < p.length; i++) {
      if (odd === undefined) odd = p[i]!;
      else { sum += (odd << 8) | p[i]!; odd = undefined; }
    }
  }
  if (odd !== undefined) sum += odd << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function need(b: Uint8Array, n: number, what: string): void {
  if (b.length !== n) throw invalid('packet', `${what} must be ${n} bytes (got ${b.length})`);
}

/** Ethernet II frame, zero-padded to the 60-byte minimum. */
export function ethernet(dst: Uint8Array, src: Uint8Array, type: number, payload: Uint8Array): Buffer {
  need(dst, 6, 'destination MAC');
  need(src, 6, 'source MAC');
  const f = Buffer.alloc(Math.max(ETH_ZLEN, ETH_HLEN + payload.length));
  f.set(dst, 0);
  f.set(src, 6);
  f.writeUInt16BE(type, 12);
  f.set(payload, ETH_HLEN);
  return f;
}

export interface Arp { op: number; sha: Uint8Array; spa: Uint8Array; tha: Uint8Array; tpa: Uint8Array }

/** ARP for Ethernet/IPv4 (28 bytes). */
export function arpPayload(a: Arp): Buffer {
  need(a.sha, 6, 'sender MAC'); need(a.tha, 6, 'target MAC'); need(a.spa, 4, 'sender IP'); need(a.tpa, 4, 'target IP');
  const b = Buffer.alloc(28);
  b.writeUInt16BE(1, 0); // htype Ethernet
  b.writeUInt16BE(0x0800, 2); // ptype IPv4
  b[4] = 6;
  b[5] = 4;
  b.writeUInt16BE(a.op, 6);
  b.set(a.sha, 8);
  b.set(a.spa, 14);
  b.set(a.tha, 18);
  b.set(a.tpa, 24);
  return b;
}

const ZERO4 = new Uint8Array(4);
const ZERO6 = new Uint8Array(6);

/** RFC 5227 probe: broadcast ARP request, sender IP 0.0.0.0, target = the address being probed. */
export function arpProbeFrame(mac: Uint8Array, ip: Uint8Array): Buffer {
  return ethernet(BROADCAST_MAC, mac, ETH_P_ARP, arpPayload({ op: ARPOP_REQUEST, sha: mac, spa: ZERO4, tha: ZERO6, tpa: ip }));
}

/** RFC 5227 announcement (gratuitous ARP): broadcast ARP request with sender IP = target IP = ours. */
export function arpAnnounceFrame(mac: Uint8Array, ip: Uint8Array): Buffer {
  return ethernet(BROADCAST_MAC, mac, ETH_P_ARP, arpPayload({ op: ARPOP_REQUEST, sha: mac, spa: ip, tha: ZERO6, tpa: ip }));
}

/** ARP request for `target` from our address (arping): broadcast, sender = our MAC and IP. */
export function arpRequestFrame(mac: Uint8Array, src: Uint8Array, target: Uint8Array): Buffer {
  return ethernet(BROADCAST_MAC, mac, ETH_P_ARP, arpPayload({ op: ARPOP_REQUEST, sha: mac, spa: src, tha: ZERO6, tpa: target }));
}

/** The MAC that `target` answered an arping with: an ARP reply from `target` to our MAC and IP; else null. */
export function arpReplyFrom(arp: Arp, target: Uint8Array, ourMac: Uint8Array, ourIp: Uint8Array): string | null {
  if (arp.op !== ARPOP_REPLY || !eq(arp.spa, target) || !eq(arp.tha, ourMac) || !eq(arp.tpa, ourIp)) return null;
  return formatMac(arp.sha);
}

/** Parses an Ethernet frame carrying Ethernet/IPv4 ARP; null for anything else. */
export function parseArpFrame(frame: Uint8Array): (Arp & { srcMac: string }) | null {
  if (frame.length < ETH_HLEN + 28) return null;
  const b = Buffer.from(frame.buffer, frame.byteOffset, frame.length);
  if (b.readUInt16BE(12) !== ETH_P_ARP) return null;
  const a = b.subarray(ETH_HLEN);
  if (a.readUInt16BE(0) !== 1 || a.readUInt16BE(2) !== 0x0800 || a[4] !== 6 || a[5] !== 4) return null;
  return {
    srcMac: formatMac(b.subarray(6, 12)),
    op: a.readUInt16BE(6),
    sha: new Uint8Array(a.subarray(8, 14)),
    spa: new Uint8Array(a.subarray(14, 18)),
    tha: new Uint8Array(a.subarray(18, 24)),
    tpa: new Uint8Array(a.subarray(24, 28)),
  };
}

const eq = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * RFC 5227 §2.1.1: while probing `ip`, a received ARP is a conflict when its sender IP is `ip` (someone uses it), or
 * when it is another host's probe for `ip` (sender IP 0, target `ip`). Our own frames (sender MAC = ours) are not.
 * Returns the MAC of the other host, or null.
 */
export function arpConflict(arp: Arp, ip: Uint8Array, ourMac: Uint8Array): string | null {
  if (eq(arp.sha, ourMac)) return null;
  if (eq(arp.spa, ip)) return formatMac(arp.sha);
  if (arp.op === ARPOP_REQUEST && eq(arp.spa, ZERO4) && eq(arp.tpa, ip)) return formatMac(arp.sha);
  return null;
}

/** ICMPv6 checksum over the IPv6 pseudo-header (src, dst, length, next header 58) and the message. */
export function icmpv6Checksum(src: Uint8Array, dst: Uint8Array, msg: Uint8Array): number {
  const ph = Buffer.alloc(40);
  ph.set(src, 0);
  ph.set(dst, 16);
  ph.writeUInt32BE(msg.length, 32);
  ph[39] = 58;
  return inetChecksum(ph, msg);
}

/**
 * Unsolicited neighbour advertisement for `ip` (override flag, not solicited, not router) with the target
 * link-layer address option = `mac`, from `ip` to ff02::1 (33:33:00:00:00:01), hop limit 255: a full frame.
 */
export function unsolicitedNaFrame(mac: Uint8Array, ip: Uint8Array): Buffer {
  need(ip, 16, 'IPv6 address');
  const icmp = Buffer.alloc(32);
  icmp[0] = ICMPV6_NEIGHBOR_ADVERT;
  icmp[1] = 0;
  icmp.writeUInt32BE(0x20000000, 4); // R=0 S=0 O=1
  icmp.set(ip, 8);
  icmp[24] = 2; // option: target link-layer address
  icmp[25] = 1; // length in units of 8 bytes
  icmp.set(mac, 26);
  icmp.writeUInt16BE(icmpv6Checksum(ip, ALL_NODES_V6, icmp), 2);
  const ip6 = Buffer.alloc(40);
  ip6.writeUInt32BE(0x60000000, 0);
  ip6.writeUInt16BE(icmp.length, 4);
  ip6[6] = 58;
  ip6[7] = 255;
  ip6.set(ip, 8);
  ip6.set(ALL_NODES_V6, 24);
  return ethernet(ALL_NODES_MAC, mac, ETH_P_IPV6, Buffer.concat([ip6, icmp]));
}

/** Parses a frame carrying an ICMPv6 neighbour advertisement; null otherwise. */
export function parseNaFrame(frame: Uint8Array): { srcMac: string; src: string; dst: string; hopLimit: number; flags: number; target: string; tlla?: string; checksumOk: boolean } | null {
  const b = Buffer.from(frame.buffer, frame.byteOffset, frame.length);
  if (b.length < ETH_HLEN + 40 + 24 || b.readUInt16BE(12) !== ETH_P_IPV6) return null;
  const ip6 = b.subarray(ETH_HLEN, ETH_HLEN + 40);
  if (ip6[6] !== 58) return null;
  const plen = ip6.readUInt16BE(4);
  const icmp = b.subarray(ETH_HLEN + 40, ETH_HLEN + 40 + plen);
  if (icmp.length < 24 || icmp[0] !== ICMPV6_NEIGHBOR_ADVERT) return null;
  const out: ReturnType<typeof parseNaFrame> = {
    srcMac: formatMac(b.subarray(6, 12)), src: formatIp(ip6.subarray(8, 24)), dst: formatIp(ip6.subarray(24, 40)),
    hopLimit: ip6[7]!, flags: icmp.readUInt32BE(4), target: formatIp(icmp.subarray(8, 24)),
    checksumOk: icmpv6Checksum(ip6.subarray(8, 24), ip6.subarray(24, 40), icmp) === 0,
  };
  if (icmp.length >= 32 && icmp[24] === 2 && icmp[25] === 1) out!.tlla = formatMac(icmp.subarray(26, 32));
  return out;
}

/** ICMP (v4) echo request with checksum. For ICMPv6 the kernel fills the checksum on raw sockets. */
export function icmpEcho(v6: boolean, id: number, seq: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const b = Buffer.alloc(8 + payload.length);
  b[0] = v6 ? ICMPV6_ECHO_REQUEST : ICMP_ECHO_REQUEST;
  b.writeUInt16BE(id & 0xffff, 4);
  b.writeUInt16BE(seq & 0xffff, 6);
  b.set(payload, 8);
  if (!v6) b.writeUInt16BE(inetChecksum(b), 2);
  return b;
}

/** Echo reply from a raw IPv4 socket (IP header included) or a raw ICMPv6 socket (ICMPv6 only); null otherwise. */
export function parseEchoReply(v6: boolean, pkt: Uint8Array): { id: number; seq: number; src?: string } | null {
  const b = Buffer.from(pkt.buffer, pkt.byteOffset, pkt.length);
  if (v6) {
    if (b.length < 8 || b[0] !== ICMPV6_ECHO_REPLY || b[1] !== 0) return null;
    return { id: b.readUInt16BE(4), seq: b.readUInt16BE(6) };
  }
  if (b.length < 20 || b[0]! >> 4 !== 4 || b[9] !== 1) return null;
  const ihl = (b[0]! & 0x0f) * 4;
  if (b.length < ihl + 8 || b[ihl] !== ICMP_ECHO_REPLY || b[ihl + 1] !== 0) return null;
  return { id: b.readUInt16BE(ihl + 4), seq: b.readUInt16BE(ihl + 6), src: formatIp(b.subarray(12, 16)) };
}

// ---- socket addresses (Linux layouts, host byte order except where the kernel wants network order) ----

/** struct sockaddr_ll (20 bytes): family AF_PACKET, protocol (network order), ifindex, halen, addr. */
export function sockaddrLl(protocol: number, ifindex: number, mac?: Uint8Array): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt16LE(17, 0);
  b.writeUInt16BE(protocol, 2);
  b.writeInt32LE(ifindex, 4);
  if (mac) {
    b[11] = mac.length;
    b.set(mac, 12);
  }
  return b;
}

/** struct sockaddr_in (16 bytes). */
export function sockaddrIn(ip: Uint8Array, port = 0): Buffer {
  need(ip, 4, 'IPv4 address');
  const b = Buffer.alloc(16);
  b.writeUInt16LE(2, 0);
  b.writeUInt16BE(port, 2);
  b.set(ip, 4);
  return b;
}

/** struct sockaddr_in6 (28 bytes); scopeId = ifindex for link-local destinations. */
export function sockaddrIn6(ip: Uint8Array, scopeId = 0, port = 0): Buffer {
  need(ip, 16, 'IPv6 address');
  const b = Buffer.alloc(28);
  b.writeUInt16LE(10, 0);
  b.writeUInt16BE(port, 2);
  b.set(ip, 8);
  b.writeUInt32LE(scopeId, 24);
  return b;
}

/** The source address of a received datagram (sockaddr_in or sockaddr_in6 bytes). */
export function sockaddrIp(sa: Uint8Array): string | null {
  const b = Buffer.from(sa.buffer, sa.byteOffset, sa.length);
  const fam = b.readUInt16LE(0);
  if (fam === 2) return formatIp(b.subarray(4, 8));
  if (fam === 10) return formatIp(b.subarray(8, 24));
  return null;
}

/** sll_pkttype of a received sockaddr_ll (PACKET_OUTGOING = our own frame looped back to the tap). */
export const sllPktType = (sa: Uint8Array): number => sa[10]!;
