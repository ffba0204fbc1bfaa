// In-memory `Netlink` and `PodNet` for unit tests of the modules that use them (pod apply, DEL, reconcilers).
// Models namespaces (by path; null = the agent's own), links with indexes, addresses, routes, rules and neighbours,
// and answers with the same errno names as the kernel path (EEXIST, ENODEV, ENOENT, ESRCH, EADDRNOTAVAIL, EINVAL).
// `subscribe` works as on the kernel: each mutation of the fake is announced to the subscribers of its namespace,
// after the call returns (a microtask later), as link/address/route/neighbour events.
import { RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, RTN_UNICAST, RTPROT_BOOT, RTPROT_KERNEL, RT_TABLE_MAIN, IFF_UP, IFF_RUNNING,
  IFA_F_NODAD, IFA_F_NOPREFIXROUTE, IFA_F_PERMANENT } from './constants.ts';
import { NetlinkError, describe, invalid, isNetlinkError } from './errors.ts';
import { formatIp, networkOf, parseCidr, parseIp, parseMac } from './ip.ts';
import { checkAltname, checkIfName, checkVlanId } from './link.ts';
import { addressBroadcast } from './addr.ts';
import type {
  AddressInfo, AddressSpec, DeleteOptions, LinkChanges, LinkInfo, NeighInfo, NeighSpec, Netlink, Netns, PodNet,
  ProbeResult, ProbeTiming, RouteInfo, RouteSpec, RuleInfo, RuleSpec, VethSpec, VlanSpec, EventGroup, NetlinkEvent,
  SubscribeOptions, Subscription,
} from './port.ts';
import { waitIPv6Dad } from './wait.ts';

const OWN = '<own>';
const key = (ns: Netns | undefined): string => ns ?? OWN;
const fail = (errno: string, op: string): NetlinkError => new NetlinkError(errno, op, describe(errno));

interface FakeNs {
  links: Map<number, LinkInfo & { peer?: { ns: string; index: number } }>;
  addrs: AddressInfo[];
  routes: RouteInfo[];
  rules: RuleInfo[];
  neighs: NeighInfo[];
  sysctls: Map<string, string>;
  txCsumOff: Set<string>;
}

let macSeq = 0;
const randomMac = (): string => `02:fa:${((macSeq >> 24) & 0xff).toString(16).padStart(2, '0')}:${((macSeq >> 16) & 0xff).toString(16).padStart(2, '0')}:${((macSeq >> 8) & 0xff).toString(16).padStart(2, '0')}:${(macSeq++ & 0xff).toString(16).padStart(2, '0')}`;

export class FakeNetlink implements Netlink, PodNet {
  readonly namespaces = new Map<string, FakeNs>();
  private nextIndex = 2;
  /** Every mutating call, in order ("createVeth h1/eth0", "addAddress /ns eth0 10.0.0.2/24", ...). */
  readonly calls: string[] = [];
  /** Queue of errors to throw from the next call(s) of a method: `fake.failNext('addRoute', 'ENETUNREACH')`. */
  private failures = new Map<string, string[]>();
  /** IPv4 addresses another host answers for on a link (`${ns}|${dev}|${ip}` -> MAC), for probeIPv4. */
  readonly conflicts = new Map<string, string>();
  /** Reachable addresses per namespace for ping (`${ns}|${ip}`). */
  readonly reachable = new Set<string>();

  private readonly subscribers = new Set<{ ns: string; groups: ReadonlySet<EventGroup>; listener: (e: NetlinkEvent) => void }>();

  constructor() {
    this.addNamespace(null);
  }

  /** Open subscriptions (tests check that waits close theirs). */
  get subscriptions(): number {
    return this.subscribers.size;
  }

  subscribe(opts: SubscribeOptions, listener: (e: NetlinkEvent) => void): Subscription {
    const k = key(opts.netns);
    if (opts.groups.length === 0) throw invalid('subscribe', 'no event groups given');
    const ns = this.enter('subscribe', opts.netns);
    const groups = new Set(opts.groups);
    let held: NetlinkEvent[] | undefined = opts.listExisting ? [] : undefined;
    const sub = { ns: k, groups, listener: (e: NetlinkEvent) => { if (held) held.push(e); else listener(e); } };
    this.subscribers.add(sub);
    let ready = Promise.resolve();
    if (opts.listExisting) {
      const now: NetlinkEvent[] = [
        ...(groups.has('link') ? [...ns.links.values()].map((l): NetlinkEvent => ({ kind: 'link', action: 'new', link: strip(l) })) : []),
        ...(groups.has('address') ? ns.addrs.map((a): NetlinkEvent => ({ kind: 'address', action: 'new', address: { ...a } })) : []),
        ...(groups.has('route') ? ns.routes.map((r): NetlinkEvent => ({ kind: 'route', action: 'new', route: { ...r } })) : []),
        ...(groups.has('neighbour') ? ns.neighs.map((n): NetlinkEvent => ({ kind: 'neighbour', action: 'new', neighbour: { ...n } })) : []),
        ...(groups.has('rule') ? ns.rules.map((r): NetlinkEvent => ({ kind: 'rule', action: 'new', rule: { ...r } })) : []),
      ];
      ready = Promise.resolve().then(() => {
        const later = held ?? [];
        held = undefined;
        if (!this.subscribers.has(sub)) return;
        for (const e of [...now, ...later]) listener(e);
      });
    }
    return { ready, close: () => { this.subscribers.delete(sub); } };
  }

  /** Announces a change to the namespace's subscribers, after the current call (as the kernel's socket would). */
  private emit(ns: Netns | string | undefined, e: NetlinkEvent): void {
    const k = typeof ns === 'string' ? ns : key(ns);
    const group: EventGroup = e.kind === 'resync' ? 'link' : e.kind;
    for (const s of this.subscribers) {
      if (s.ns !== k || (e.kind !== 'resync' && !s.groups.has(group))) continue;
      queueMicrotask(() => { if (this.subscribers.has(s)) s.listener(e); });
    }
  }

  /** Tells the subscribers of `netns` that events were lost (as ENOBUFS does on the kernel path). */
  overflow(netns: Netns): void {
    this.emit(netns, { kind: 'resync', reason: 'injected overflow' });
  }

  /** Sets an address's DAD state (IPv6: tentative, then preferred or dadfailed), announced like the kernel does. */
  setAddressState(netns: Netns, dev: string, ip: string, state: { tentative?: boolean; dadFailed?: boolean }): void {
    const ns = this.enter('setAddressState', netns);
    const l = this.byName(ns, dev, 'address state');
    const want = formatIp(parseIp(ip).bytes);
    const a = ns.addrs.find((x) => x.index === l.index && x.address === want);
    if (!a) throw fail('EADDRNOTAVAIL', `address state ${ip}`);
    if (state.tentative !== undefined) a.tentative = state.tentative;
    if (state.dadFailed !== undefined) a.dadFailed = state.dadFailed;
    this.emit(netns, { kind: 'address', action: 'new', address: { ...a } });
  }

  /** Sets a link's carrier (IFF_RUNNING) as the kernel's linkwatch would, some time after the link went up. */
  setRunning(netns: Netns, name: string, running: boolean): void {
    const ns = this.enter('setRunning', netns);
    const l = this.byName(ns, name, 'carrier');
    l.running = running;
    l.flags = running ? l.flags | IFF_RUNNING : l.flags & ~IFF_RUNNING;
    this.emit(netns, { kind: 'link', action: 'new', link: strip(l) });
  }

  /** When set, links that go up stay without carrier until setRunning (the kernel's linkwatch lag). */
  carrierManual = false;

  /** Creates an empty namespace with `lo` (like `ip netns add`). */
  addNamespace(path: Netns): void {
    const ns: FakeNs = { links: new Map(), addrs: [], routes: [], rules: [], neighs: [], sysctls: new Map(), txCsumOff: new Set() };
    ns.links.set(1, { index: 1, name: 'lo', mtu: 65536, up: false, running: false, flags: 8, operState: 0, mac: '00:00:00:00:00:00' });
    this.namespaces.set(key(path), ns);
  }

  /** Removes a namespace (like `ip netns del`): its veths vanish, and so do their peers elsewhere. */
  removeNamespace(path: string): void {
    const ns = this.namespaces.get(path);
    if (!ns) return;
    for (const l of ns.links.values()) if (l.peer) this.namespaces.get(l.peer.ns)?.links.delete(l.peer.index);
    this.namespaces.delete(path);
  }

  failNext(method: string, errno: string): void {
    const q = this.failures.get(method) ?? [];
    q.push(errno);
    this.failures.set(method, q);
  }

  private enter(method: string, netns: Netns | undefined, detail = ''): FakeNs {
    const q = this.failures.get(method);
    if (q?.length) throw fail(q.shift()!, `${method} (injected)`);
    const ns = this.namespaces.get(key(netns));
    if (!ns) throw fail('ENOENT', `open netns ${netns}`);
    if (detail) this.calls.push(`${method} ${netns ?? '-'} ${detail}`);
    return ns;
  }

  /** The link a name resolves to, as the kernel resolves it: its own name, else an alternative name. */
  private lookup(ns: FakeNs, name: string): (LinkInfo & { peer?: { ns: string; index: number } }) | undefined {
    for (const l of ns.links.values()) if (l.name === name) return l;
    for (const l of ns.links.values()) if (l.altnames?.includes(name)) return l;
    return undefined;
  }

  private byName(ns: FakeNs, name: string, op: string): LinkInfo & { peer?: { ns: string; index: number } } {
    const l = this.lookup(ns, name);
    if (l) return l;
    throw fail('ENODEV', op);
  }

  /** A name in use: a link's name or one of its alternative names (the kernel refuses both to a new or renamed link). */
  private has(ns: FakeNs, name: string): boolean {
    return this.lookup(ns, name) !== undefined;
  }

  /** Tests: gives the link an alternative name, as `ip link property add dev <link> altname <name>` (or udev) does. */
  addAltname(netns: Netns, link: string, altname: string): void {
    checkAltname(altname, 'add altname');
    const ns = this.enter('addAltname', netns);
    if (this.has(ns, altname)) throw fail('EEXIST', `add altname ${altname}`);
    const l = this.byName(ns, link, `add altname ${altname}`);
    l.altnames = [...(l.altnames ?? []), altname];
  }

  async deleteAltname(netns: Netns, link: string, altname: string): Promise<boolean> {
    checkIfName(link, 'delete altname');
    checkAltname(altname, 'delete altname');
    const ns = this.enter('deleteAltname', netns, `${link} ${altname}`);
    const l = this.lookup(ns, link);
    if (!l || l.name !== link || !l.altnames?.includes(altname)) return false;
    const rest = l.altnames.filter((n) => n !== altname);
    if (rest.length) l.altnames = rest; else delete l.altnames;
    return true;
  }

  async createVeth(spec: VethSpec): Promise<void> {
    const op = `create veth ${spec.name}/${spec.peer.name}`;
    checkIfName(spec.name, op);
    checkIfName(spec.peer.name, op);
    for (const m of [spec.mac, spec.peer.mac]) if (m !== undefined) parseMac(m);
    const host = this.enter('createVeth', spec.netns, `${spec.name}/${spec.peer.name}`);
    const peerKey = key(spec.peer.netns ?? spec.netns);
    const pod = this.namespaces.get(peerKey);
    if (!pod) throw fail('ENOENT', `open netns ${spec.peer.netns}`);
    if (this.has(host, spec.name) || this.has(pod, spec.peer.name) || (host === pod && spec.name === spec.peer.name)) throw fail('EEXIST', op);
    const hi = this.nextIndex++, pi = this.nextIndex++;
    const base = { up: false, running: false, flags: 0x1002, operState: 2, kind: 'veth', txQueueLen: 1000 };
    host.links.set(hi, { ...base, index: hi, name: spec.name, mtu: spec.mtu ?? 1500, mac: spec.mac ?? randomMac(), link: pi, peer: { ns: peerKey, index: pi } });
    pod.links.set(pi, { ...base, index: pi, name: spec.peer.name, mtu: spec.peer.mtu ?? spec.mtu ?? 1500, mac: spec.peer.mac ?? randomMac(), link: hi, peer: { ns: key(spec.netns), index: hi } });
    this.emit(spec.netns, { kind: 'link', action: 'new', link: strip(host.links.get(hi)!) });
    this.emit(peerKey, { kind: 'link', action: 'new', link: strip(pod.links.get(pi)!) });
  }

  async createVlan(spec: VlanSpec): Promise<void> {
    const op = `create vlan ${spec.name} on ${spec.parent}`;
    checkIfName(spec.name, op);
    checkIfName(spec.parent, op);
    checkVlanId(spec.id, op);
    const ns = this.enter('createVlan', spec.netns, `${spec.name}@${spec.parent}.${spec.id}`);
    const parent = this.byName(ns, spec.parent, op);
    if (this.has(ns, spec.name)) throw fail('EEXIST', op);
    const index = this.nextIndex++;
    const info: LinkInfo = { index, name: spec.name, kind: 'vlan', vlanId: spec.id, link: parent.index, mtu: parent.mtu,
      up: false, running: false, flags: 0x1002, operState: 2, txQueueLen: 1000, ...(parent.mac !== undefined ? { mac: parent.mac } : {}) };
    ns.links.set(index, info);
    this.emit(spec.netns, { kind: 'link', action: 'new', link: strip(info) });
  }

  /** Adds a plain link (e.g. an OVS internal port: kind "tun", tunType "tap"). */
  addLink(netns: Netns, l: Partial<LinkInfo> & { name: string }): LinkInfo {
    const ns = this.enter('addLink', netns);
    if (this.has(ns, l.name)) throw fail('EEXIST', `add link ${l.name}`);
    const index = this.nextIndex++;
    const info: LinkInfo = { index, mtu: 1500, up: false, running: false, flags: 0x1002, operState: 2, mac: randomMac(), ...l };
    ns.links.set(index, info);
    this.emit(netns, { kind: 'link', action: 'new', link: strip(info) });
    return info;
  }

  async getLink(netns: Netns, name: string): Promise<LinkInfo | null> {
    checkIfName(name, 'get link');
    const l = this.lookup(this.enter('getLink', netns), name);
    return l ? strip(l) : null;
  }

  async getLinkByIndex(netns: Netns, index: number): Promise<LinkInfo | null> {
    const l = this.enter('getLinkByIndex', netns).links.get(index);
    return l ? strip(l) : null;
  }

  async listLinks(netns: Netns, filter: { kind?: string } = {}): Promise<LinkInfo[]> {
    return [...this.enter('listLinks', netns).links.values()].filter((l) => filter.kind === undefined || l.kind === filter.kind).map(strip);
  }

  async setLink(netns: Netns, name: string, c: LinkChanges): Promise<void> {
    const op = `set link ${name}`;
    checkIfName(name, op);
    if (c.name !== undefined) checkIfName(c.name, op);
    if (c.mac !== undefined) parseMac(c.mac);
    if (c.mtu !== undefined && (c.mtu < 68 || c.mtu > 65535)) throw invalid(op, `MTU ${c.mtu} out of range`);
    const ns = this.enter('setLink', netns, `${name} ${JSON.stringify(c)}`);
    const l = this.byName(ns, name, op);
    if (c.name !== undefined && c.name !== name) {
      if (this.has(ns, c.name)) throw fail('EEXIST', op);
      // kernels before 6.9 refused to rename an up link (EBUSY); this one allows it, and so does the fake
      l.name = c.name;
    }
    if (c.mac !== undefined) l.mac = c.mac.toLowerCase();
    if (c.mtu !== undefined) l.mtu = c.mtu;
    if (c.alias !== undefined) l.alias = c.alias;
    if (c.txQueueLen !== undefined) l.txQueueLen = c.txQueueLen;
    if (c.up !== undefined) {
      const running = c.up && !this.carrierManual;
      l.up = c.up;
      l.flags = (c.up ? l.flags | IFF_UP : l.flags & ~IFF_UP) & ~IFF_RUNNING | (running ? IFF_RUNNING : 0);
      l.running = running;
      if (c.up) this.connectedRoutes(ns, l.index, netns);
    }
    if (c.moveTo !== undefined) {
      const to = this.namespaces.get(c.moveTo);
      if (!to) throw fail('ENOENT', `open netns ${c.moveTo}`);
      if (this.has(to, l.name)) throw fail('EEXIST', op);
      this.drop(ns, l.index, netns);
      l.up = false; l.running = false;
      to.links.set(l.index, l);
      this.emit(c.moveTo, { kind: 'link', action: 'new', link: strip(l) });
      if (l.peer) {
        const p = this.namespaces.get(l.peer.ns)?.links.get(l.peer.index) as (LinkInfo & { peer?: { ns: string; index: number } }) | undefined;
        if (p?.peer) p.peer.ns = c.moveTo;
      }
      return;
    }
    this.emit(netns, { kind: 'link', action: 'new', link: strip(l) });
  }

  async renameLink(netns: Netns, from: string, to: string): Promise<void> {
    this.enter('renameLink', netns); // failNext('renameLink') fails here, before the setLink it makes
    return this.setLink(netns, from, { name: to });
  }

  async deleteLink(netns: Netns, name: string, opts: DeleteOptions = {}): Promise<boolean> {
    checkIfName(name, 'delete link');
    return this.deleting(opts, () => {
      const ns = this.enter('deleteLink', netns, name);
      const l = this.byName(ns, name, `delete link ${name}`);
      this.drop(ns, l.index, netns);
      if (l.peer) {
        const pns = this.namespaces.get(l.peer.ns);
        if (pns) this.drop(pns, l.peer.index, l.peer.ns);
      }
    });
  }

  /** Removes a link and what hangs on it, announcing each removal (as the kernel does). */
  private drop(ns: FakeNs, index: number, where: Netns | string | undefined): void {
    const l = ns.links.get(index);
    for (const a of ns.addrs.filter((x) => x.index === index)) this.emit(where, { kind: 'address', action: 'del', address: { ...a } });
    for (const r of ns.routes.filter((x) => x.oif === index)) this.emit(where, { kind: 'route', action: 'del', route: { ...r } });
    for (const n of ns.neighs.filter((x) => x.index === index)) this.emit(where, { kind: 'neighbour', action: 'del', neighbour: { ...n } });
    ns.links.delete(index);
    ns.addrs = ns.addrs.filter((a) => a.index !== index);
    ns.routes = ns.routes.filter((r) => r.oif !== index);
    ns.neighs = ns.neighs.filter((n) => n.index !== index);
    if (l) this.emit(where, { kind: 'link', action: 'del', link: strip(l) });
  }

  private deleting(opts: DeleteOptions, fn: () => void): boolean {
    try {
      fn();
      return true;
    } catch (e) {
      if (opts.ignoreMissing && isNetlinkError(e, 'ENOENT', 'ENODEV', 'ESRCH', 'EADDRNOTAVAIL')) return false;
      throw e;
    }
  }

  /** The kernel adds a connected route for each address of an up link. */
  private connectedRoutes(ns: FakeNs, index: number, where: Netns | undefined): void {
    const l = ns.links.get(index);
    if (!l?.up) return;
    for (const a of ns.addrs.filter((x) => x.index === index)) {
      const c = parseCidr(`${a.address}/${a.prefixLen}`);
      if ((c.family === 4 && c.prefixLen === 32) || (c.family === 6 && c.prefixLen === 128)) continue;
      if (a.flags & IFA_F_NOPREFIXROUTE) continue;
      const dst = `${formatIp(networkOf(c))}/${c.prefixLen}`;
      if (ns.routes.some((r) => r.dst === dst && r.oif === index && r.table === RT_TABLE_MAIN)) continue;
      const r: RouteInfo = { family: c.family, dst, oif: index, table: RT_TABLE_MAIN, protocol: RTPROT_KERNEL, scope: RT_SCOPE_LINK, type: RTN_UNICAST, onlink: false,
        ...(c.family === 4 ? { prefSrc: a.address } : {}), ...(a.metric ? { metric: a.metric } : {}) };
      ns.routes.push(r);
      this.emit(where, { kind: 'route', action: 'new', route: { ...r } });
    }
  }

  async addAddress(netns: Netns, dev: string, spec: AddressSpec, opts: { replace?: boolean } = {}): Promise<void> {
    const c = parseCidr(spec.cidr, 'address');
    if (spec.nodad && c.family !== 6) throw invalid('add address', 'nodad applies to IPv6 only');
    const ns = this.enter('addAddress', netns, `${dev} ${spec.cidr}`);
    const l = this.byName(ns, dev, `add address ${spec.cidr}`);
    const address = formatIp(c.bytes);
    const existing = ns.addrs.findIndex((a) => a.index === l.index && a.address === address);
    if (existing >= 0 && !opts.replace) throw fail('EEXIST', `add address ${spec.cidr}`);
    const flags = IFA_F_PERMANENT | (spec.nodad ? IFA_F_NODAD : 0) | (spec.noprefixroute ? IFA_F_NOPREFIXROUTE : 0);
    const info: AddressInfo = { index: l.index, family: c.family, address, prefixLen: c.prefixLen, flags, scope: 0, tentative: false, dadFailed: false, deprecated: false, permanent: true };
    // as the kernel: a replace keeps the broadcast the address was created with
    const brd = existing >= 0 ? ns.addrs[existing]!.broadcast : addressBroadcast(c, spec);
    if (brd !== undefined) info.broadcast = typeof brd === 'string' ? brd : formatIp(brd);
    if (spec.metric !== undefined) info.metric = spec.metric;
    if (existing >= 0) ns.addrs[existing] = info;
    else ns.addrs.push(info);
    this.emit(netns, { kind: 'address', action: 'new', address: { ...info } });
    this.connectedRoutes(ns, l.index, netns);
  }

  async deleteAddress(netns: Netns, dev: string, cidr: string, opts: DeleteOptions = {}): Promise<boolean> {
    const c = parseCidr(cidr, 'address');
    return this.deleting(opts, () => {
      const ns = this.enter('deleteAddress', netns, `${dev} ${cidr}`);
      const l = this.byName(ns, dev, `delete address ${cidr}`);
      const address = formatIp(c.bytes);
      const i = ns.addrs.findIndex((a) => a.index === l.index && a.address === address && a.prefixLen === c.prefixLen);
      if (i < 0) throw fail('EADDRNOTAVAIL', `delete address ${cidr}`);
      const [gone] = ns.addrs.splice(i, 1);
      this.emit(netns, { kind: 'address', action: 'del', address: { ...gone! } });
    });
  }

  async listAddresses(netns: Netns, filter: { dev?: string; family?: 4 | 6 } = {}): Promise<AddressInfo[]> {
    const ns = this.enter('listAddresses', netns);
    const index = filter.dev !== undefined ? this.byName(ns, filter.dev, `list addresses ${filter.dev}`).index : undefined;
    return ns.addrs.filter((a) => (index === undefined || a.index === index) && (!filter.family || a.family === filter.family)).map((a) => ({ ...a }));
  }

  private routeOf(ns: FakeNs, r: RouteSpec, op: string): RouteInfo {
    const gw = r.gateway !== undefined ? parseIp(r.gateway, 'gateway') : undefined;
    let family = r.family ?? gw?.family;
    let dst: string | null = null;
    if (r.dst !== undefined && r.dst !== 'default') {
      const c = parseCidr(r.dst, 'route destination');
      family = c.family;
      dst = c.prefixLen === 0 ? null : `${formatIp(networkOf(c))}/${c.prefixLen}`;
    }
    if (!family) throw invalid(op, 'a default route needs a gateway or a family');
    const oif = r.dev !== undefined ? this.byName(ns, r.dev, op).index : undefined;
    const out: RouteInfo = { family, dst, table: r.table ?? RT_TABLE_MAIN, protocol: r.protocol ?? RTPROT_BOOT,
      scope: r.scope ?? (gw || oif === undefined ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK), type: r.type ?? RTN_UNICAST, onlink: !!r.onlink };
    if (gw) out.gateway = formatIp(gw.bytes);
    if (oif !== undefined) out.oif = oif;
    if (r.metric !== undefined) out.metric = r.metric;
    // the kernel reports `src` back as RTA_PREFSRC; a reconciler comparing it must see it, or it never converges
    if (r.src !== undefined) out.prefSrc = formatIp(parseIp(r.src, 'route source').bytes);
    return out;
  }

  async addRoute(netns: Netns, r: RouteSpec, opts: { replace?: boolean } = {}): Promise<void> {
    const op = `add route ${r.dst ?? 'default'}`;
    const ns = this.enter('addRoute', netns, `${JSON.stringify(r)}${opts.replace ? ' replace' : ''}`);
    const route = this.routeOf(ns, r, op);
    if (!route.gateway && route.oif === undefined) throw invalid(op, 'a unicast route needs a gateway or a device');
    if (route.oif !== undefined && !ns.links.get(route.oif)?.up) throw fail('ENETDOWN', op);
    if (route.gateway && !route.onlink && route.oif !== undefined) {
      const reachable = ns.routes.some((x) => x.oif === route.oif && x.dst !== null && x.family === route.family && inPrefix(route.gateway!, x.dst));
      if (!reachable) throw fail('ENETUNREACH', op);
    }
    const i = ns.routes.findIndex((x) => x.family === route.family && x.dst === route.dst && x.table === route.table && (x.metric ?? 0) === (route.metric ?? 0));
    if (i >= 0 && !opts.replace) throw fail('EEXIST', op);
    if (i >= 0) ns.routes[i] = route;
    else ns.routes.push(route);
    this.emit(netns, { kind: 'route', action: 'new', route: { ...route } });
  }

  async deleteRoute(netns: Netns, r: RouteSpec, opts: DeleteOptions = {}): Promise<boolean> {
    return this.deleting(opts, () => {
      const ns = this.enter('deleteRoute', netns, JSON.stringify(r));
      const want = this.routeOf(ns, r, 'delete route');
      const i = ns.routes.findIndex((x) => x.family === want.family && x.dst === want.dst && x.table === want.table
        && (r.gateway === undefined || x.gateway === want.gateway) && (r.dev === undefined || x.oif === want.oif));
      if (i < 0) throw fail('ESRCH', `delete route ${r.dst ?? 'default'}`);
      const [gone] = ns.routes.splice(i, 1);
      this.emit(netns, { kind: 'route', action: 'del', route: { ...gone! } });
    });
  }

  async listRoutes(netns: Netns, filter: { family?: 4 | 6; table?: number; dev?: string } = {}): Promise<RouteInfo[]> {
    const ns = this.enter('listRoutes', netns);
    const table = filter.table ?? RT_TABLE_MAIN;
    const oif = filter.dev !== undefined ? this.byName(ns, filter.dev, 'list routes').index : undefined;
    return ns.routes.filter((r) => (!filter.family || r.family === filter.family) && (table === 0 || r.table === table)
      && (oif === undefined || r.oif === oif)).map((r) => ({ ...r }));
  }

  async addRule(netns: Netns, rule: RuleSpec): Promise<void> {
    const ns = this.enter('addRule', netns, JSON.stringify(rule));
    if (ns.rules.some((x) => sameRule(x, rule) && x.protocol === (rule.protocol ?? 0))) throw fail('EEXIST', 'add rule');
    // after the last rule of the same or a lower priority, as the kernel inserts
    const info: RuleInfo = { ...rule, action: 1, protocol: rule.protocol ?? 0 };
    let at = ns.rules.length;
    while (at > 0 && (ns.rules[at - 1]!.priority ?? 0) > (rule.priority ?? 0)) at--;
    ns.rules.splice(at, 0, info);
    this.emit(netns, { kind: 'rule', action: 'new', rule: { ...info } });
  }

  async deleteRule(netns: Netns, rule: RuleSpec, opts: DeleteOptions = {}): Promise<boolean> {
    return this.deleting(opts, () => {
      const ns = this.enter('deleteRule', netns, JSON.stringify(rule));
      // a protocol narrows the match, none matches any (the kernel's rule lookup for RTM_DELRULE)
      const i = ns.rules.findIndex((x) => sameRule(x, rule) && (!rule.protocol || x.protocol === rule.protocol));
      if (i < 0) throw fail('ENOENT', 'delete rule');
      const [gone] = ns.rules.splice(i, 1);
      this.emit(netns, { kind: 'rule', action: 'del', rule: { ...gone! } });
    });
  }

  async listRules(netns: Netns, family: 4 | 6): Promise<RuleInfo[]> {
    return this.enter('listRules', netns).rules.filter((r) => r.family === family).map((r) => ({ ...r }));
  }

  async setNeighbor(netns: Netns, n: NeighSpec): Promise<void> {
    const ip = parseIp(n.ip, 'neighbour');
    parseMac(n.mac);
    const ns = this.enter('setNeighbor', netns, `${n.dev} ${n.ip} ${n.mac}`);
    const l = this.byName(ns, n.dev, 'set neighbour');
    const text = formatIp(ip.bytes);
    ns.neighs = ns.neighs.filter((x) => !(x.index === l.index && x.ip === text));
    const entry: NeighInfo = { index: l.index, family: ip.family, ip: text, mac: n.mac.toLowerCase(), state: n.state ?? 0x80, flags: 0 };
    ns.neighs.push(entry);
    this.emit(netns, { kind: 'neighbour', action: 'new', neighbour: { ...entry } });
  }

  async deleteNeighbor(netns: Netns, dev: string, ipText: string, opts: DeleteOptions = {}): Promise<boolean> {
    const ip = formatIp(parseIp(ipText, 'neighbour').bytes);
    return this.deleting(opts, () => {
      const ns = this.enter('deleteNeighbor', netns, `${dev} ${ipText}`);
      const l = this.byName(ns, dev, 'delete neighbour');
      const i = ns.neighs.findIndex((x) => x.index === l.index && x.ip === ip);
      if (i < 0) throw fail('ENOENT', 'delete neighbour');
      const [gone] = ns.neighs.splice(i, 1);
      this.emit(netns, { kind: 'neighbour', action: 'del', neighbour: { ...gone! } });
    });
  }

  async listNeighbors(netns: Netns, filter: { dev?: string; family?: 4 | 6 } = {}): Promise<NeighInfo[]> {
    const ns = this.enter('listNeighbors', netns);
    const index = filter.dev !== undefined ? this.byName(ns, filter.dev, 'list neighbours').index : undefined;
    return ns.neighs.filter((n) => (index === undefined || n.index === index) && (!filter.family || n.family === filter.family)).map((n) => ({ ...n }));
  }

  close(): void {}

  // ---- PodNet ----

  async probeIPv4(netns: Netns, dev: string, ip: string, _timing?: Partial<ProbeTiming>): Promise<ProbeResult> {
    const ns = this.enter('probeIPv4', netns, `${dev} ${ip}`);
    this.byName(ns, dev, 'probe');
    const mac = this.conflicts.get(`${key(netns)}|${dev}|${ip}`);
    return mac ? { conflict: true, mac } : { conflict: false };
  }

  async announceIPv4(netns: Netns, dev: string, ip: string): Promise<void> {
    this.byName(this.enter('announceIPv4', netns, `${dev} ${ip}`), dev, 'gratuitous ARP');
  }

  async announceIPv6(netns: Netns, dev: string, ip: string): Promise<void> {
    this.byName(this.enter('announceIPv6', netns, `${dev} ${ip}`), dev, 'neighbour advertisement');
  }

  /** The same event-driven wait as the kernel path (wait.ts), over this fake's events. */
  async waitIPv6Dad(netns: Netns, dev: string, opts: { timeoutMs?: number } = {}): Promise<{ ok: boolean; tentative: string[]; dadFailed: string[] }> {
    this.enter('waitIPv6Dad', netns);
    return waitIPv6Dad(this, netns, dev, opts);
  }

  /** IPv4 addresses that answer ARP (`${ns}|${ip}` -> MAC) though not necessarily ping; an address in `reachable`
   *  answers ARP too. */
  readonly arpAnswers = new Map<string, string>();

  async arping(netns: Netns, dev: string, ip: string, opts: { src: string }): Promise<{ mac: string; rttMs: number; tries: number } | null> {
    const ns = this.enter('arping', netns, `${dev} ${ip} from ${opts.src}`);
    this.byName(ns, dev, 'arping');
    if (parseIp(ip).family !== 4 || parseIp(opts.src).family !== 4) throw invalid('arping', 'arping is IPv4 only');
    const k = `${key(netns)}|${formatIp(parseIp(ip).bytes)}`;
    const mac = this.arpAnswers.get(k) ?? (this.reachable.has(k) ? '0a:00:00:00:ff:01' : undefined);
    return mac ? { mac, rttMs: 0.1, tries: 1 } : null;
  }

  async ping(netns: Netns, ip: string): Promise<{ rttMs: number; tries: number } | null> {
    this.enter('ping', netns, ip);
    return this.reachable.has(`${key(netns)}|${formatIp(parseIp(ip).bytes)}`) ? { rttMs: 0.1, tries: 1 } : null;
  }

  async setTxChecksum(netns: Netns, dev: string, on: boolean): Promise<void> {
    const ns = this.enter('setTxChecksum', netns, `${dev} ${on ? 'on' : 'off'}`);
    this.byName(ns, dev, 'ethtool');
    if (on) ns.txCsumOff.delete(dev);
    else ns.txCsumOff.add(dev);
  }

  async getTxChecksum(netns: Netns, dev: string): Promise<boolean> {
    const ns = this.enter('getTxChecksum', netns);
    this.byName(ns, dev, 'ethtool');
    return !ns.txCsumOff.has(dev);
  }

  async setSysctl(netns: Netns, k: string, value: string): Promise<void> {
    this.enter('setSysctl', netns, `${k}=${value}`).sysctls.set(sysctlPath(k), value);
  }

  async getSysctl(netns: Netns, k: string): Promise<string> {
    const v = this.enter('getSysctl', netns).sysctls.get(sysctlPath(k));
    if (v === undefined) throw fail('ENOENT', `sysctl ${k}`);
    return v;
  }
}

/** As the real PodNet: a key with '/' is a path (interface names may hold dots), otherwise dots separate. */
function sysctlPath(k: string): string {
  return k.includes('/') ? k.replace(/^\/?(proc\/sys\/)?/, '') : k.replace(/\./g, '/');
}

function strip(l: LinkInfo & { peer?: unknown }): LinkInfo {
  const { peer: _p, ...rest } = l;
  return { ...rest, ...(rest.altnames ? { altnames: [...rest.altnames] } : {}) };
}

function sameRule(a: RuleSpec, b: RuleSpec): boolean {
  return a.family === b.family && a.table === b.table && a.src === b.src && a.dst === b.dst && a.priority === b.priority
    && a.fwmark === b.fwmark && a.iif === b.iif && a.oif === b.oif;
}

function inPrefix(ip: string, cidr: string): boolean {
  const c = parseCidr(cidr);
  const a = parseIp(ip);
  if (a.family !== c.family) return false;
  const net = networkOf(c);
  const mine = networkOf({ ...a, prefixLen: c.prefixLen });
  return Buffer.from(net).equals(Buffer.from(mine));
}
