// RTM_{NEW,DEL,GET}ROUTE, RTM_{NEW,DEL,GET}RULE, RTM_{NEW,DEL,GET}NEIGH: builders and decoders. Pure.
import { attrString, attrU32, attrU8, buildMessage, parseAttrs, type NlMessage, type NlWriter } from './codec.ts';
import {
  AF_INET, AF_INET6, FIB_RULE_HDR_LEN, FRA_DST, FRA_FWMARK, FRA_FWMASK, FRA_IIFNAME, FRA_OIFNAME, FRA_PRIORITY, FRA_PROTOCOL,
  FRA_SRC, FRA_TABLE, FIB_RULE_INVERT, FR_ACT_TO_TBL, NDA_DST, NDA_IFINDEX, NDA_LLADDR, NDMSG_LEN, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE,
  NLM_F_REQUEST, NUD_PERMANENT, RTA_DST, RTA_GATEWAY, RTA_OIF, RTA_PREFSRC, RTA_PRIORITY, RTA_TABLE, RTMSG_LEN,
  RTM_DELNEIGH, RTM_DELROUTE, RTM_DELRULE, RTM_F_CLONED, RTM_GETNEIGH, RTM_GETROUTE, RTM_GETRULE, RTM_NEWNEIGH,
  RTM_NEWROUTE, RTM_NEWRULE, RTNH_F_ONLINK, RTN_UNICAST, RTN_UNSPEC, RTPROT_BOOT, RTPROT_UNSPEC, RT_SCOPE_LINK,
  RT_SCOPE_NOWHERE, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN, RT_TABLE_UNSPEC,
} from './constants.ts';
import { familyToAf } from './addr.ts';
import { invalid } from './errors.ts';
import { formatIp, formatMac, networkOf, parseCidr, parseIp, parseMac, type Cidr } from './ip.ts';
import type { NeighInfo, NeighSpec, RouteInfo, RouteSpec, RuleInfo, RuleSpec } from './port.ts';
import { checkIfName } from './link.ts';

interface ResolvedDst { family: 4 | 6; dst: Uint8Array | null; dstLen: number }

function resolveDst(r: RouteSpec, op: string): ResolvedDst {
  let family = r.family;
  const gw = r.gateway !== undefined ? parseIp(r.gateway, 'gateway') : undefined;
  if (gw) {
    if (family && family !== gw.family) throw invalid(op, `gateway ${r.gateway} is not IPv${family}`);
    family = gw.family;
  }
  if (r.dst === undefined || r.dst === 'default') {
    if (!family) throw invalid(op, 'a default route needs a gateway or a family');
    return { family, dst: null, dstLen: 0 };
  }
  const c: Cidr = parseCidr(r.dst, 'route destination');
  if (family && family !== c.family) throw invalid(op, `destination ${r.dst} and gateway ${r.gateway} differ in family`);
  const net = networkOf(c);
  if (!Buffer.from(net).equals(Buffer.from(c.bytes))) throw invalid(op, `destination ${r.dst} has host bits set`);
  return { family: c.family, dst: c.prefixLen === 0 ? null : net, dstLen: c.prefixLen };
}

function checkTable(t: number, op: string): void {
  if (!Number.isInteger(t) || t < 0 || t > 0xffffffff) throw invalid(op, `routing table ${t} out of range`);
}

/** RTM_NEWROUTE (EXCL, or REPLACE when `replace`). `oif` is the resolved index of `route.dev`. */
export function newRoute(seq: number, route: RouteSpec, oif: number | undefined, replace = false): Buffer {
  const op = replace ? 'replace route' : 'add route';
  const d = resolveDst(route, op);
  const table = route.table ?? RT_TABLE_MAIN;
  checkTable(table, op);
  const gw = route.gateway !== undefined ? parseIp(route.gateway, 'gateway').bytes : undefined;
  if (!gw && oif === undefined && (route.type ?? RTN_UNICAST) === RTN_UNICAST) throw invalid(op, 'a unicast route needs a gateway or a device');
  const scope = route.scope ?? (gw || oif === undefined ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK);
  const src = route.src !== undefined ? parseIp(route.src, 'source') : undefined;
  if (src && src.family !== d.family) throw invalid(op, `source ${route.src} is not IPv${d.family}`);
  const nlFlags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | (replace ? NLM_F_REPLACE : NLM_F_EXCL);
  return buildMessage({ type: RTM_NEWROUTE, flags: nlFlags, seq }, (w) => {
    w.u8(d.family === 4 ? AF_INET : AF_INET6).u8(d.dstLen).u8(0).u8(0)
      .u8(table < 256 ? table : RT_TABLE_UNSPEC).u8(route.protocol ?? RTPROT_BOOT).u8(scope).u8(route.type ?? RTN_UNICAST)
      .u32(route.onlink ? RTNH_F_ONLINK : 0);
    w.attrU32(RTA_TABLE, table);
    if (d.dst) w.attr(RTA_DST, d.dst);
    if (gw) w.attr(RTA_GATEWAY, gw);
    if (oif !== undefined) w.attrU32(RTA_OIF, oif);
    if (route.metric !== undefined) w.attrU32(RTA_PRIORITY, route.metric);
    if (src) w.attr(RTA_PREFSRC, src.bytes);
  });
}

/** RTM_DELROUTE: unspecified scope/protocol/type match anything (like `ip route del`). */
export function delRoute(seq: number, route: RouteSpec, oif: number | undefined): Buffer {
  const d = resolveDst(route, 'delete route');
  const table = route.table ?? RT_TABLE_MAIN;
  checkTable(table, 'delete route');
  const gw = route.gateway !== undefined ? parseIp(route.gateway, 'gateway').bytes : undefined;
  return buildMessage({ type: RTM_DELROUTE, flags: NLM_F_REQUEST | NLM_F_ACK, seq }, (w) => {
    w.u8(d.family === 4 ? AF_INET : AF_INET6).u8(d.dstLen).u8(0).u8(0)
      .u8(table < 256 ? table : RT_TABLE_UNSPEC).u8(route.protocol ?? RTPROT_UNSPEC).u8(route.scope ?? RT_SCOPE_NOWHERE)
      .u8(route.type ?? RTN_UNSPEC).u32(0);
    w.attrU32(RTA_TABLE, table);
    if (d.dst) w.attr(RTA_DST, d.dst);
    if (gw) w.attr(RTA_GATEWAY, gw);
    if (oif !== undefined) w.attrU32(RTA_OIF, oif);
    if (route.metric !== undefined) w.attrU32(RTA_PRIORITY, route.metric);
  });
}

/** RTM_GETROUTE dump of one family; `table` (non-zero) is passed as a strict-check filter. */
export function getRoutes(seq: number, family: 4 | 6, table?: number): Buffer {
  return buildMessage({ type: RTM_GETROUTE, flags: NLM_F_REQUEST | NLM_F_DUMP, seq }, (w) => {
    w.u8(familyToAf(family)).u8(0).u8(0).u8(0).u8(0).u8(0).u8(0).u8(0).u32(0);
    if (table) w.attrU32(RTA_TABLE, table);
  });
}

/** Decodes a route; null for cached clones and families other than v4/v6. */
export function decodeRoute(m: NlMessage): RouteInfo | null {
  const p = m.payload;
  if (p.length < RTMSG_LEN) throw new Error(`short rtmsg (${p.length} bytes)`);
  const af = p.readUInt8(0);
  if (af !== AF_INET && af !== AF_INET6) return null;
  const flags = p.readUInt32LE(8);
  if (flags & RTM_F_CLONED) return null;
  const a = parseAttrs(p, RTMSG_LEN);
  const dstLen = p.readUInt8(1);
  const dst = a.get(RTA_DST);
  const r: RouteInfo = {
    family: af === AF_INET ? 4 : 6,
    dst: dstLen === 0 ? null : `${formatIp(dst ?? new Uint8Array(af === AF_INET ? 4 : 16))}/${dstLen}`,
    table: attrU32(a.get(RTA_TABLE)) ?? p.readUInt8(4),
    protocol: p.readUInt8(5),
    scope: p.readUInt8(6),
    type: p.readUInt8(7),
    onlink: (flags & RTNH_F_ONLINK) !== 0,
  };
  const gw = a.get(RTA_GATEWAY);
  if (gw) r.gateway = formatIp(gw);
  const oif = attrU32(a.get(RTA_OIF));
  if (oif !== undefined) r.oif = oif;
  const metric = attrU32(a.get(RTA_PRIORITY));
  if (metric !== undefined) r.metric = metric;
  const pref = a.get(RTA_PREFSRC);
  if (pref) r.prefSrc = formatIp(pref);
  return r;
}

// ---- policy rules (fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2, action, flags) ----

function ruleBody(rule: RuleSpec, op: string): (w: NlWriter) => void {
  const src = rule.src !== undefined ? parseCidr(rule.src, 'rule source') : undefined;
  const dst = rule.dst !== undefined ? parseCidr(rule.dst, 'rule destination') : undefined;
  for (const c of [src, dst]) if (c && c.family !== rule.family) throw invalid(op, `rule selector is not IPv${rule.family}`);
  checkTable(rule.table, op);
  if (rule.iif !== undefined) checkIfName(rule.iif, op);
  if (rule.oif !== undefined) checkIfName(rule.oif, op);
  if (rule.protocol !== undefined && (!Number.isInteger(rule.protocol) || rule.protocol < 0 || rule.protocol > 255)) throw invalid(op, `rule protocol ${rule.protocol} out of range`);
  return (w) => {
    w.u8(familyToAf(rule.family)).u8(dst?.prefixLen ?? 0).u8(src?.prefixLen ?? 0).u8(0)
      .u8(rule.table < 256 ? rule.table : RT_TABLE_UNSPEC).u8(0).u8(0).u8(FR_ACT_TO_TBL).u32(0);
    w.attrU32(FRA_TABLE, rule.table);
    if (rule.priority !== undefined) w.attrU32(FRA_PRIORITY, rule.priority);
    if (src) w.attr(FRA_SRC, networkOf(src));
    if (dst) w.attr(FRA_DST, networkOf(dst));
    if (rule.fwmark !== undefined) w.attrU32(FRA_FWMARK, rule.fwmark);
    if (rule.fwmask !== undefined) w.attrU32(FRA_FWMASK, rule.fwmask);
    if (rule.iif !== undefined) w.attrStr(FRA_IIFNAME, rule.iif);
    if (rule.oif !== undefined) w.attrStr(FRA_OIFNAME, rule.oif);
    if (rule.protocol) w.attrU8(FRA_PROTOCOL, rule.protocol);
  };
}

export function newRule(seq: number, rule: RuleSpec): Buffer {
  return buildMessage({ type: RTM_NEWRULE, flags: NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq }, ruleBody(rule, 'add rule'));
}

export function delRule(seq: number, rule: RuleSpec): Buffer {
  return buildMessage({ type: RTM_DELRULE, flags: NLM_F_REQUEST | NLM_F_ACK, seq }, ruleBody(rule, 'delete rule'));
}

export function getRules(seq: number, family: 4 | 6): Buffer {
  return buildMessage({ type: RTM_GETRULE, flags: NLM_F_REQUEST | NLM_F_DUMP, seq }, (w) => {
    w.u8(familyToAf(family)).zeros(7).u32(0);
  });
}

/** The FRA_* types decodeRule turns into fields (FRA_PAD/FRA_UNSPEC carry nothing). */
const MODELLED_FRA: ReadonlySet<number> = new Set([0, FRA_DST, FRA_SRC, FRA_IIFNAME, FRA_PRIORITY, FRA_FWMARK, FRA_TABLE, FRA_FWMASK,
  FRA_OIFNAME, FRA_PROTOCOL, 18 /* FRA_PAD */]);
/** FRA_SUPPRESS_IFGROUP (13), FRA_SUPPRESS_PREFIXLEN (14): u32, all ones = not set */
const UNSET_IF_ALL_ONES: ReadonlySet<number> = new Set([13, 14]);

export function decodeRule(m: NlMessage): RuleInfo | null {
  const p = m.payload;
  if (p.length < FIB_RULE_HDR_LEN) throw new Error(`short fib_rule_hdr (${p.length} bytes)`);
  const af = p.readUInt8(0);
  if (af !== AF_INET && af !== AF_INET6) return null;
  const a = parseAttrs(p, FIB_RULE_HDR_LEN);
  const r: RuleInfo = { family: af === AF_INET ? 4 : 6, table: attrU32(a.get(FRA_TABLE)) ?? p.readUInt8(4), action: p.readUInt8(7),
    protocol: attrU8(a.get(FRA_PROTOCOL)) ?? 0 };
  const tos = p.readUInt8(3);
  if (tos) r.tos = tos;
  if (p.readUInt32LE(8) & FIB_RULE_INVERT) r.invert = true;
  // suppress_prefixlen/suppress_ifgroup are dumped as -1 when unset (current kernels always send the first)
  const other = [...a.keys()].filter((t) => !MODELLED_FRA.has(t) && !(UNSET_IF_ALL_ONES.has(t) && attrU32(a.get(t)) === 0xffffffff))
    .sort((x, y) => x - y);
  if (other.length) r.other = other;
  const src = a.get(FRA_SRC);
  if (src) r.src = `${formatIp(src)}/${p.readUInt8(2)}`;
  const dst = a.get(FRA_DST);
  if (dst) r.dst = `${formatIp(dst)}/${p.readUInt8(1)}`;
  const prio = attrU32(a.get(FRA_PRIORITY));
  if (prio !== undefined) r.priority = prio;
  const mark = attrU32(a.get(FRA_FWMARK));
  if (mark !== undefined) r.fwmark = mark;
  const mask = attrU32(a.get(FRA_FWMASK));
  if (mask !== undefined) r.fwmask = mask;
  const iif = attrString(a.get(FRA_IIFNAME));
  if (iif) r.iif = iif;
  const oif = attrString(a.get(FRA_OIFNAME));
  if (oif) r.oif = oif;
  return r;
}

// ---- neighbours (ndmsg: family, pad1, pad2, ifindex, state, flags, type) ----

/** RTM_NEWNEIGH with CREATE|REPLACE (`ip neigh replace`). */
export function newNeigh(seq: number, index: number, n: NeighSpec): Buffer {
  const ip = parseIp(n.ip, 'neighbour');
  const mac = parseMac(n.mac);
  return buildMessage({ type: RTM_NEWNEIGH, flags: NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, seq }, (w) => {
    w.u8(ip.family === 4 ? AF_INET : AF_INET6).u8(0).u16(0).i32(index).u16(n.state ?? NUD_PERMANENT).u8(0).u8(0);
    w.attr(NDA_DST, ip.bytes);
    w.attr(NDA_LLADDR, mac);
  });
}

export function delNeigh(seq: number, index: number, ipText: string): Buffer {
  const ip = parseIp(ipText, 'neighbour');
  return buildMessage({ type: RTM_DELNEIGH, flags: NLM_F_REQUEST | NLM_F_ACK, seq }, (w) => {
    w.u8(ip.family === 4 ? AF_INET : AF_INET6).u8(0).u16(0).i32(index).u16(0).u8(0).u8(0);
    w.attr(NDA_DST, ip.bytes);
  });
}

/** RTM_GETNEIGH dump; strict checking wants ndm_ifindex 0 and the link filter as NDA_IFINDEX. */
export function getNeighs(seq: number, family?: 4 | 6, index = 0): Buffer {
  return buildMessage({ type: RTM_GETNEIGH, flags: NLM_F_REQUEST | NLM_F_DUMP, seq }, (w) => {
    w.u8(familyToAf(family)).u8(0).u16(0).i32(0).u16(0).u8(0).u8(0);
    if (index) w.attrU32(NDA_IFINDEX, index);
  });
}

export function decodeNeigh(m: NlMessage): NeighInfo | null {
  const p = m.payload;
  if (p.length < NDMSG_LEN) throw new Error(`short ndmsg (${p.length} bytes)`);
  const af = p.readUInt8(0);
  if (af !== AF_INET && af !== AF_INET6) return null;
  const a = parseAttrs(p, NDMSG_LEN);
  const dst = a.get(NDA_DST);
  if (!dst) return null;
  const n: NeighInfo = { index: p.readInt32LE(4), family: af === AF_INET ? 4 : 6, ip: formatIp(dst), state: p.readUInt16LE(8), flags: p.readUInt8(10) };
  const ll = a.get(NDA_LLADDR);
  if (ll && ll.length === 6) n.mac = formatMac(ll);
  return n;
}

