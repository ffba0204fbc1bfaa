// RTM_NEWLINK / RTM_DELLINK / RTM_GETLINK: request builders and the link decoder. Pure.
import { NlWriter, attrS32, attrString, attrU16, attrU32, attrU8, buildMessage, parseAttrList, parseAttrs, type NlMessage } from './codec.ts';
import {
  AF_UNSPEC, IFF_RUNNING, IFF_TAP, IFF_TUN, IFF_UP, IFINFOMSG_LEN, IFLA_ADDRESS, IFLA_EXT_MASK, IFLA_IFALIAS, IFLA_IFNAME,
  IFLA_INFO_DATA, IFLA_INFO_KIND, IFLA_LINK, IFLA_LINKINFO, IFLA_LINK_NETNSID, IFLA_MASTER, IFLA_MTU, IFLA_NET_NS_FD,
  IFLA_OPERSTATE, IFLA_TUN_TYPE, IFLA_TXQLEN, IFNAMSIZ, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
  RTEXT_FILTER_SKIP_STATS, RTM_DELLINK, RTM_GETLINK, RTM_NEWLINK, VETH_INFO_PEER, IFLA_VLAN_ID, IFLA_PROP_LIST, IFLA_ALT_IFNAME,
  RTM_DELLINKPROP,
} from './constants.ts';
import { invalid } from './errors.ts';
import { formatMac, parseMac } from './ip.ts';
import type { LinkInfo } from './port.ts';

/** Linux accepts 1..15 bytes, no '/', no whitespace, not "." or "..". */
export function checkIfName(name: string, op = 'link'): void {
  const len = Buffer.byteLength(name);
  if (len === 0 || len >= IFNAMSIZ) throw invalid(op, `interface name "${name}" must be 1..${IFNAMSIZ - 1} bytes (got ${len})`);
  if (/[/\s:]/.test(name) || name === '.' || name === '..') throw invalid(op, `interface name "${name}" contains characters Linux rejects`);
}

function checkMtu(mtu: number, op: string): void {
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw invalid(op, `MTU ${mtu} must be an integer in 68..65535`);
}

/** ifinfomsg: family, pad, type, index, flags, change. */
function ifinfomsg(w: NlWriter, index = 0, flags = 0, change = 0): void {
  w.u8(AF_UNSPEC).u8(0).u16(0).i32(index).u32(flags).u32(change);
}

export interface NewVethRequest {
  name: string;
  mtu?: number;
  mac?: string;
  txQueueLen?: number;
  peerName: string;
  /** fd of the namespace the peer is created in (IFLA_NET_NS_FD); omitted = same namespace as the host end. */
  peerNetnsFd?: number;
  peerMac?: string;
  peerMtu?: number;
}

/** RTM_NEWLINK kind veth, the peer in VETH_INFO_PEER (an ifinfomsg + its own attributes, incl. IFLA_NET_NS_FD). */
export function newVeth(seq: number, r: NewVethRequest): Buffer {
  const op = 'create veth';
  checkIfName(r.name, op);
  checkIfName(r.peerName, op);
  if (r.mtu !== undefined) checkMtu(r.mtu, op);
  if (r.peerMtu !== undefined) checkMtu(r.peerMtu, op);
  const mac = r.mac !== undefined ? parseMac(r.mac) : undefined;
  const peerMac = r.peerMac !== undefined ? parseMac(r.peerMac, 'peer MAC') : undefined;
  return buildMessage({ type: RTM_NEWLINK, flags: NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq }, (w) => {
    ifinfomsg(w);
    w.attrStr(IFLA_IFNAME, r.name);
    if (r.mtu !== undefined) w.attrU32(IFLA_MTU, r.mtu);
    if (mac) w.attr(IFLA_ADDRESS, mac);
    if (r.txQueueLen !== undefined) w.attrU32(IFLA_TXQLEN, r.txQueueLen);
    w.nest(IFLA_LINKINFO, () => {
      w.attrStr(IFLA_INFO_KIND, 'veth');
      w.nest(IFLA_INFO_DATA, () => {
        w.nest(VETH_INFO_PEER, () => {
          ifinfomsg(w);
          w.attrStr(IFLA_IFNAME, r.peerName);
          const pm = r.peerMtu ?? r.mtu;
          if (pm !== undefined) w.attrU32(IFLA_MTU, pm);
          if (peerMac) w.attr(IFLA_ADDRESS, peerMac);
          if (r.peerNetnsFd !== undefined) w.attrU32(IFLA_NET_NS_FD, r.peerNetnsFd);
        });
      });
    });
  });
}

export interface NewVlanRequest {
  name: string;
  parentIndex: number;
  id: number;
}

/** RTM_NEWLINK kind vlan on the parent (IFLA_LINK), id in IFLA_INFO_DATA/IFLA_VLAN_ID. */
export function newVlan(seq: number, r: NewVlanRequest): Buffer {
  const op = 'create vlan';
  checkIfName(r.name, op);
  checkVlanId(r.id, op);
  if (!Number.isInteger(r.parentIndex) || r.parentIndex <= 0) throw invalid(op, `parent index ${r.parentIndex} must be a positive integer`);
  return buildMessage({ type: RTM_NEWLINK, flags: NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq }, (w) => {
    ifinfomsg(w);
    w.attrStr(IFLA_IFNAME, r.name);
    w.attrU32(IFLA_LINK, r.parentIndex);
    w.nest(IFLA_LINKINFO, () => {
      w.attrStr(IFLA_INFO_KIND, 'vlan');
      w.nest(IFLA_INFO_DATA, () => { w.attrU16(IFLA_VLAN_ID, r.id); });
    });
  });
}

export function checkVlanId(id: number, op: string): void {
  if (!Number.isInteger(id) || id < 1 || id > 4094) throw invalid(op, `VLAN id ${id} must be an integer in 1..4094`);
}

export interface SetLinkRequest {
  /** Link to change, by index (needed for a rename) or by current name. */
  index?: number;
  name?: string;
  newName?: string;
  up?: boolean;
  mtu?: number;
  mac?: string;
  alias?: string;
  txQueueLen?: number;
  /** Move to the namespace behind this fd. */
  netnsFd?: number;
}

/** RTM_NEWLINK without NLM_F_CREATE: changes an existing link (do_setlink applies rename before flags). */
export function setLink(seq: number, r: SetLinkRequest): Buffer {
  const op = 'set link';
  if (r.index === undefined && r.name === undefined) throw invalid(op, 'link index or name required');
  if (r.name !== undefined) checkIfName(r.name, op);
  if (r.newName !== undefined) {
    checkIfName(r.newName, op);
    if (r.index === undefined) throw invalid(op, 'rename needs the link index');
  }
  if (r.mtu !== undefined) checkMtu(r.mtu, op);
  const mac = r.mac !== undefined ? parseMac(r.mac) : undefined;
  const flags = r.up ? IFF_UP : 0;
  const change = r.up === undefined ? 0 : IFF_UP;
  return buildMessage({ type: RTM_NEWLINK, flags: NLM_F_REQUEST | NLM_F_ACK, seq }, (w) => {
    ifinfomsg(w, r.index ?? 0, flags, change);
    if (r.newName !== undefined) w.attrStr(IFLA_IFNAME, r.newName);
    else if (r.index === undefined) w.attrStr(IFLA_IFNAME, r.name!);
    if (mac) w.attr(IFLA_ADDRESS, mac);
    if (r.mtu !== undefined) w.attrU32(IFLA_MTU, r.mtu);
    if (r.txQueueLen !== undefined) w.attrU32(IFLA_TXQLEN, r.txQueueLen);
    if (r.alias !== undefined) w.attrStr(IFLA_IFALIAS, r.alias);
    if (r.netnsFd !== undefined) w.attrU32(IFLA_NET_NS_FD, r.netnsFd);
  });
}

/** RTM_DELLINK by index or name. */
export function delLink(seq: number, by: { index?: number; name?: string }): Buffer {
  if (by.index === undefined && by.name === undefined) throw invalid('delete link', 'link index or name required');
  if (by.name !== undefined) checkIfName(by.name, 'delete link');
  return buildMessage({ type: RTM_DELLINK, flags: NLM_F_REQUEST | NLM_F_ACK, seq }, (w) => {
    ifinfomsg(w, by.index ?? 0);
    if (by.index === undefined) w.attrStr(IFLA_IFNAME, by.name!);
  });
}

/** An alternative name: 1..127 bytes (ALTIFNAMSIZ 128 with the NUL), no '/', ':' or whitespace, not "." or "..". */
export function checkAltname(name: string, op: string): void {
  const n = Buffer.byteLength(name);
  if (n < 1 || n > 127 || /[/:\s\0]/.test(name) || name === '.' || name === '..') throw invalid(op, `bad alternative name ${JSON.stringify(name)}`);
}

/** RTM_DELLINKPROP: removes one alternative name of the link `index`. */
export function delAltname(seq: number, index: number, altname: string): Buffer {
  checkAltname(altname, 'delete altname');
  return buildMessage({ type: RTM_DELLINKPROP, flags: NLM_F_REQUEST | NLM_F_ACK, seq }, (w) => {
    ifinfomsg(w, index);
    w.nest(IFLA_PROP_LIST, () => { w.attrStr(IFLA_ALT_IFNAME, altname); }, true); // the kernel wants NLA_F_NESTED here
  });
}

/** RTM_GETLINK for one link (by index or name) or a dump (no selector; `kind` asks the kernel for links of that
 *  IFLA_INFO_KIND only); statistics skipped. */
export function getLink(seq: number, by?: { index?: number; name?: string }, kind?: string): Buffer {
  const dump = by === undefined;
  if (by?.name !== undefined) checkIfName(by.name, 'get link');
  if (kind !== undefined && (!dump || !/^[a-z0-9_-]{1,32}$/.test(kind))) throw invalid('get link', `a kind filter (${kind}) applies to a dump, and is a driver name`);
  return buildMessage({ type: RTM_GETLINK, flags: NLM_F_REQUEST | (dump ? NLM_F_DUMP : 0), seq }, (w) => {
    ifinfomsg(w, by?.index ?? 0);
    if (by?.name !== undefined && by.index === undefined) w.attrStr(IFLA_IFNAME, by.name);
    w.attrU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    if (kind !== undefined) w.nest(IFLA_LINKINFO, () => { w.attrStr(IFLA_INFO_KIND, kind); });
  });
}

/** Decodes an RTM_NEWLINK message (answer to a get or an element of a dump). */
export function decodeLink(m: NlMessage): LinkInfo {
  const p = m.payload;
  if (p.length < IFINFOMSG_LEN) throw new Error(`short ifinfomsg (${p.length} bytes)`);
  const index = p.readInt32LE(4);
  const flags = p.readUInt32LE(8);
  const a = parseAttrs(p, IFINFOMSG_LEN);
  const info: LinkInfo = {
    index,
    name: attrString(a.get(IFLA_IFNAME)) ?? '',
    mtu: attrU32(a.get(IFLA_MTU)) ?? 0,
    up: (flags & IFF_UP) !== 0,
    running: (flags & IFF_RUNNING) !== 0,
    flags,
    operState: attrU8(a.get(IFLA_OPERSTATE)) ?? 0,
  };
  const mac = a.get(IFLA_ADDRESS);
  if (mac && mac.length === 6) info.mac = formatMac(mac);
  const txq = attrU32(a.get(IFLA_TXQLEN));
  if (txq !== undefined) info.txQueueLen = txq;
  const alias = attrString(a.get(IFLA_IFALIAS));
  if (alias) info.alias = alias;
  const master = attrU32(a.get(IFLA_MASTER));
  if (master) info.master = master;
  const link = attrS32(a.get(IFLA_LINK));
  if (link !== undefined) info.link = link;
  const nsid = attrS32(a.get(IFLA_LINK_NETNSID));
  if (nsid !== undefined) info.linkNetnsId = nsid;
  const props = a.get(IFLA_PROP_LIST);
  if (props) {
    const names = parseAttrList(props).filter(([t]) => t === IFLA_ALT_IFNAME).map(([, v]) => attrString(v) ?? '').filter(Boolean);
    if (names.length) info.altnames = names;
  }
  const li = a.get(IFLA_LINKINFO);
  if (li) {
    const lia = parseAttrs(li);
    const kind = attrString(lia.get(IFLA_INFO_KIND));
    if (kind) info.kind = kind;
    if (kind === 'tun') {
      const data = lia.get(IFLA_INFO_DATA);
      const t = data ? attrU8(parseAttrs(data).get(IFLA_TUN_TYPE)) : undefined;
      if (t === IFF_TAP) info.tunType = 'tap';
      else if (t === IFF_TUN) info.tunType = 'tun';
    } else if (kind === 'vlan') {
      const data = lia.get(IFLA_INFO_DATA);
      const id = data ? attrU16(parseAttrs(data).get(IFLA_VLAN_ID)) : undefined;
      if (id !== undefined) info.vlanId = id;
    }
  }
  return info;
}
