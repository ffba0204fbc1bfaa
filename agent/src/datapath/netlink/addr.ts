// RTM_NEWADDR / RTM_DELADDR / RTM_GETADDR: builders and decoder. Pure.
import { attrString, attrU32, buildMessage, parseAttrs, type NlMessage } from './codec.ts';
import {
  AF_INET, AF_INET6, AF_UNSPEC, IFADDRMSG_LEN, IFA_ADDRESS, IFA_BROADCAST, IFA_FLAGS, IFA_F_DADFAILED, IFA_F_DEPRECATED, IFA_RT_PRIORITY,
  IFA_F_NODAD, IFA_F_NOPREFIXROUTE, IFA_F_PERMANENT, IFA_F_TENTATIVE, IFA_LABEL, IFA_LOCAL, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
  NLM_F_REPLACE, NLM_F_REQUEST, RTM_DELADDR, RTM_GETADDR, RTM_NEWADDR,
} from './constants.ts';
import { invalid } from './errors.ts';
import { broadcastOf, formatIp, parseCidr, parseIp, type Cidr } from './ip.ts';
import type { AddressInfo, AddressSpec } from './port.ts';

export const familyToAf = (f: 4 | 6 | undefined): number => (f === 4 ? AF_INET : f === 6 ? AF_INET6 : AF_UNSPEC);

/** The IFA_BROADCAST an add sends: the given one, none (`false`, and always for IPv6), else computed for /0../30. */
export function addressBroadcast(c: Cidr, spec: AddressSpec): Uint8Array | undefined {
  if (c.family !== 4 || spec.broadcast === false) return undefined;
  if (typeof spec.broadcast === 'string') {
    const b = parseIp(spec.broadcast, 'broadcast');
    if (b.family !== 4) throw invalid('add address', `broadcast ${spec.broadcast} is not IPv4`);
    return b.bytes;
  }
  return c.prefixLen < 31 ? broadcastOf(c) : undefined;
}

/** RTM_NEWADDR (EXCL, or REPLACE when `replace`). IPv4 gets IFA_LOCAL+IFA_ADDRESS and a broadcast for prefixes < 31. */
export function newAddr(seq: number, index: number, spec: AddressSpec, replace = false): Buffer {
  const c = parseCidr(spec.cidr, 'address');
  if (spec.nodad && c.family !== 6) throw invalid('add address', `nodad applies to IPv6 only (${spec.cidr})`);
  const brd = addressBroadcast(c, spec);
  const flags = (spec.nodad ? IFA_F_NODAD : 0) | (spec.noprefixroute ? IFA_F_NOPREFIXROUTE : 0);
  const nlFlags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | (replace ? NLM_F_REPLACE : NLM_F_EXCL);
  return buildMessage({ type: RTM_NEWADDR, flags: nlFlags, seq }, (w) => {
    // ifa_flags is 8 bits wide: the flags above it exist only in IFA_FLAGS, which wins when present
    w.u8(c.family === 4 ? AF_INET : AF_INET6).u8(c.prefixLen).u8(flags & 0xff).u8(0).u32(index);
    w.attr(IFA_LOCAL, c.bytes);
    w.attr(IFA_ADDRESS, c.bytes);
    if (brd) w.attr(IFA_BROADCAST, brd);
    if (flags) w.attrU32(IFA_FLAGS, flags);
    if (spec.metric !== undefined) w.attrU32(IFA_RT_PRIORITY, spec.metric);
  });
}

/** RTM_DELADDR of `cidr` on link `index`. */
export function delAddr(seq: number, index: number, cidr: string): Buffer {
  const c = parseCidr(cidr, 'address');
  return buildMessage({ type: RTM_DELADDR, flags: NLM_F_REQUEST | NLM_F_ACK, seq }, (w) => {
    w.u8(c.family === 4 ? AF_INET : AF_INET6).u8(c.prefixLen).u8(0).u8(0).u32(index);
    w.attr(IFA_LOCAL, c.bytes);
    w.attr(IFA_ADDRESS, c.bytes);
  });
}

/** RTM_GETADDR dump; with strict checking the kernel filters by ifa_index itself. */
export function getAddrs(seq: number, family?: 4 | 6, index = 0): Buffer {
  return buildMessage({ type: RTM_GETADDR, flags: NLM_F_REQUEST | NLM_F_DUMP, seq }, (w) => {
    w.u8(familyToAf(family)).u8(0).u8(0).u8(0).u32(index);
  });
}

export function decodeAddr(m: NlMessage): AddressInfo | null {
  const p = m.payload;
  if (p.length < IFADDRMSG_LEN) throw new Error(`short ifaddrmsg (${p.length} bytes)`);
  const af = p.readUInt8(0);
  if (af !== AF_INET && af !== AF_INET6) return null;
  const a = parseAttrs(p, IFADDRMSG_LEN);
  // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer on point-to-point links).
  const bytes = a.get(IFA_LOCAL) ?? a.get(IFA_ADDRESS);
  if (!bytes) return null;
  const flags = attrU32(a.get(IFA_FLAGS)) ?? p.readUInt8(2);
  const info: AddressInfo = {
    index: p.readUInt32LE(4),
    family: af === AF_INET ? 4 : 6,
    address: formatIp(bytes),
    prefixLen: p.readUInt8(1),
    flags,
    scope: p.readUInt8(3),
    tentative: (flags & IFA_F_TENTATIVE) !== 0,
    dadFailed: (flags & IFA_F_DADFAILED) !== 0,
    deprecated: (flags & IFA_F_DEPRECATED) !== 0,
    permanent: (flags & IFA_F_PERMANENT) !== 0,
  };
  const label = attrString(a.get(IFA_LABEL));
  if (label) info.label = label;
  const brd = af === AF_INET ? a.get(IFA_BROADCAST) : undefined;
  if (brd?.length === 4) info.broadcast = formatIp(brd);
  const metric = attrU32(a.get(IFA_RT_PRIORITY));
  if (metric !== undefined) info.metric = metric;
  return info;
}
