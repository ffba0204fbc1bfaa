// The interface the agent sees for links, addresses, routes, rules and neighbours and their change events
// (`Netlink`). Implementations: rtnl.ts + events.ts (real kernel), fake.ts (memory).
//
// Every method names the network namespace it acts in by path (e.g. "/var/run/netns/cni-1234" or
// "/proc/<pid>/ns/net"); `null`/omitted = the agent's own namespace. Errors are `NetlinkError`s (errors.ts) whose
// `code` is the errno name (EEXIST, ENOENT, ENODEV, ...) so callers can branch on it.

/** Namespace path; null = the agent's own. */
export type Netns = string | null;

export interface LinkInfo {
  index: number;
  name: string;
  /** IFLA_INFO_KIND ("veth", "tun", "bridge", "openvswitch", "dummy", ...); undefined for plain devices like lo. */
  kind?: string;
  /** For kind "tun": "tun" or "tap" (userspace-OVS internal ports are taps). */
  tunType?: 'tun' | 'tap';
  mtu: number;
  /** "aa:bb:cc:dd:ee:ff" (absent for devices without a link-layer address). */
  mac?: string;
  /** Administrative state (IFF_UP). */
  up: boolean;
  /** Carrier/operational (IFF_RUNNING). */
  running: boolean;
  flags: number;
  operState: number;
  txQueueLen?: number;
  alias?: string;
  /** For kind "vlan": the 802.1Q id (IFLA_LINK is then the parent's index). */
  vlanId?: number;
  master?: number;
  /** alternative names (`ip link property add ... altname`; udev gives some): the kernel resolves a name lookup to
   *  the link that holds it as an altname, and refuses the name to any other link */
  altnames?: string[];
  /** IFLA_LINK: for a veth, the peer's index (in the peer's namespace when linkNetnsId is set). */
  link?: number;
  linkNetnsId?: number;
}

/** An 802.1Q link on `parent` (same namespace); it takes the parent's MAC and MTU and starts down. */
export interface VlanSpec {
  /** default: the agent's own */
  netns?: Netns;
  name: string;
  parent: string;
  /** 1..4094 */
  id: number;
}

export interface VethSpec {
  /** Namespace of the host end (default: the agent's own). */
  netns?: Netns;
  name: string;
  mtu?: number;
  mac?: string;
  txQueueLen?: number;
  /** Peer end: created directly in `peer.netns` (IFLA_NET_NS_FD), never moved. */
  peer: { name: string; netns?: Netns; mac?: string; mtu?: number };
}

export interface LinkChanges {
  up?: boolean;
  mtu?: number;
  mac?: string;
  /** Rename (the link must be down for most drivers). */
  name?: string;
  alias?: string;
  txQueueLen?: number;
  /** Move into this namespace (by path). */
  moveTo?: string;
}

export interface AddressInfo {
  index: number;
  family: 4 | 6;
  /** "10.16.0.5" / "fd00::5" */
  address: string;
  prefixLen: number;
  /** IFA_F_* (IFA_FLAGS when present). */
  flags: number;
  scope: number;
  tentative: boolean;
  dadFailed: boolean;
  deprecated: boolean;
  permanent: boolean;
  label?: string;
  /** IPv4: IFA_BROADCAST, when the address has one */
  broadcast?: string;
  /** IFA_RT_PRIORITY: its prefix route's metric, when one was given */
  metric?: number;
}

export interface AddressSpec {
  /** CIDR: "10.16.0.5/16", "fd00::5/64". */
  cidr: string;
  /** IPv6: skip duplicate address detection (IFA_F_NODAD). */
  nodad?: boolean;
  /** No prefix route for it (IFA_F_NOPREFIXROUTE): whoever adds the address adds the route (NetworkManager does). */
  noprefixroute?: boolean;
  /** The metric of the prefix route the kernel adds for it (IFA_RT_PRIORITY); default: the kernel's (0, IPv6 256). */
  metric?: number;
  /** IPv4 broadcast; default: computed from the prefix for /0../30. */
  broadcast?: string | false;
}

export interface RouteSpec {
  /** Destination CIDR; omitted/"default" = default route of `family`. */
  dst?: string;
  /** Needed when dst is default and no gateway says the family. */
  family?: 4 | 6;
  gateway?: string;
  /** Output interface name (resolved in the same namespace). */
  dev?: string;
  /** Routing table id (default main, 254). */
  table?: number;
  /** RTNH_F_ONLINK: the gateway is reachable on `dev` even without a matching subnet route. */
  onlink?: boolean;
  metric?: number;
  /** Preferred source. */
  src?: string;
  /** RT_SCOPE_*; default universe (link when there is no gateway and a dev). */
  scope?: number;
  /** RTPROT_*; default boot (like `ip route`). */
  protocol?: number;
  /** RTN_*; default unicast. */
  type?: number;
}

export interface RouteInfo {
  family: 4 | 6;
  /** "10.16.0.0/16", or null for a default route. */
  dst: string | null;
  gateway?: string;
  oif?: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  metric?: number;
  src?: string;
  prefSrc?: string;
  onlink: boolean;
}

export interface RuleSpec {
  family: 4 | 6;
  /** Source CIDR ("10.16.0.5/32"). */
  src?: string;
  dst?: string;
  table: number;
  priority?: number;
  fwmark?: number;
  fwmask?: number;
  iif?: string;
  oif?: string;
  /**
   * FRA_PROTOCOL (RTPROT_*): who installed the rule, a tag `ip rule` prints as `proto`. On add it is stored; on
   * delete a non-zero value narrows the match (0/absent matches a rule of any protocol, as the kernel does).
   */
  protocol?: number;
}

export interface RuleInfo extends RuleSpec {
  /** FR_ACT_* (1 = lookup a table) */
  action: number;
  /** FRA_PROTOCOL as dumped (0 = unspec; kernels before 4.17 send none) */
  protocol: number;
  /** fib_rule_hdr.tos, when not 0 */
  tos?: number;
  /** `not`: the selector is inverted (FIB_RULE_INVERT) */
  invert?: boolean;
  /**
   * FRA_* attribute types present that this decoder does not model (goto, uid range, ports, ip proto, l3mdev,
   * suppress_*, tunnel id, ...): a rule that has any of them is not the plain rule its modelled fields describe.
   */
  other?: number[];
}

export interface NeighSpec {
  dev: string;
  /** IP address (v4 or v6). */
  ip: string;
  mac: string;
  /** NUD_* (default NUD_PERMANENT). */
  state?: number;
}

export interface NeighInfo {
  index: number;
  family: 4 | 6;
  ip: string;
  mac?: string;
  state: number;
  flags: number;
}

export interface DeleteOptions {
  /** Treat "already gone" (ENOENT/ENODEV/ESRCH/EADDRNOTAVAIL) as success; the call then returns false. */
  ignoreMissing?: boolean;
}

/** Multicast groups one can subscribe to ("address", "route" and "rule" cover IPv4 and IPv6). */
export type EventGroup = 'link' | 'address' | 'route' | 'neighbour' | 'rule';

/**
 * One kernel change, decoded. `resync` means events were lost (the socket's queue overflowed, ENOBUFS): whatever the
 * subscriber derived from events must be re-read from the kernel.
 */
export type NetlinkEvent =
  | { kind: 'link'; action: 'new' | 'del'; link: LinkInfo }
  | { kind: 'address'; action: 'new' | 'del'; address: AddressInfo }
  | { kind: 'route'; action: 'new' | 'del'; route: RouteInfo }
  | { kind: 'neighbour'; action: 'new' | 'del'; neighbour: NeighInfo }
  | { kind: 'rule'; action: 'new' | 'del'; rule: RuleInfo }
  | { kind: 'resync'; reason: string };

export interface SubscribeOptions {
  groups: readonly EventGroup[];
  /** Namespace to watch (default: the agent's own). */
  netns?: Netns;
  /** First deliver what exists now (as `new` events, after the subscription is in place, so nothing falls between). */
  listExisting?: boolean;
  /** Errors that end the subscription (the namespace vanished, the listing failed); it is closed afterwards. */
  onError?: (e: Error) => void;
}

export interface Subscription {
  /** Resolves once the socket listens (and, with listExisting, the existing state was delivered). */
  readonly ready: Promise<void>;
  close(): void;
}

export interface Netlink {
  /**
   * Kernel change feed of one namespace: `listener` gets each link/address/route/neighbour change of the subscribed
   * groups, decoded, on the event loop (anchor: vishvananda/netlink's LinkSubscribeWithOptions). Throws a
   * NetlinkError at once when the namespace cannot be opened.
   */
  subscribe(opts: SubscribeOptions, listener: (e: NetlinkEvent) => void): Subscription;

  /** veth pair; the peer is created directly inside `peer.netns` (no move, which costs 15–21 ms per pod). */
  createVeth(spec: VethSpec): Promise<void>;
  /** EEXIST when the name is taken, ENODEV when the parent is missing. */
  createVlan(spec: VlanSpec): Promise<void>;
  getLink(netns: Netns, name: string): Promise<LinkInfo | null>;
  getLinkByIndex(netns: Netns, index: number): Promise<LinkInfo | null>;
  /** `kind`: only links of that IFLA_INFO_KIND (the kernel filters the dump when it knows the kind) */
  listLinks(netns: Netns, filter?: { kind?: string }): Promise<LinkInfo[]>;
  /** One RTM_NEWLINK with all requested changes (rename, MAC, MTU, up, alias, txqueuelen, move). */
  setLink(netns: Netns, name: string, changes: LinkChanges): Promise<void>;
  renameLink(netns: Netns, from: string, to: string): Promise<void>;
  /** Returns false when the link was already gone and `ignoreMissing` was set. */
  deleteLink(netns: Netns, name: string, opts?: DeleteOptions): Promise<boolean>;
  /** Removes `altname` from the alternative names of the link named `link`; false when the link does not hold it. */
  deleteAltname(netns: Netns, link: string, altname: string): Promise<boolean>;

  /** EEXIST if present unless `replace`. */
  addAddress(netns: Netns, dev: string, addr: AddressSpec, opts?: { replace?: boolean }): Promise<void>;
  deleteAddress(netns: Netns, dev: string, cidr: string, opts?: DeleteOptions): Promise<boolean>;
  listAddresses(netns: Netns, filter?: { dev?: string; family?: 4 | 6 }): Promise<AddressInfo[]>;

  /** EEXIST if present unless `replace`. */
  addRoute(netns: Netns, route: RouteSpec, opts?: { replace?: boolean }): Promise<void>;
  deleteRoute(netns: Netns, route: RouteSpec, opts?: DeleteOptions): Promise<boolean>;
  listRoutes(netns: Netns, filter?: { family?: 4 | 6; table?: number; dev?: string }): Promise<RouteInfo[]>;

  addRule(netns: Netns, rule: RuleSpec): Promise<void>;
  deleteRule(netns: Netns, rule: RuleSpec, opts?: DeleteOptions): Promise<boolean>;
  listRules(netns: Netns, family: 4 | 6): Promise<RuleInfo[]>;

  /** Add or replace a neighbour entry. */
  setNeighbor(netns: Netns, neigh: NeighSpec): Promise<void>;
  deleteNeighbor(netns: Netns, dev: string, ip: string, opts?: DeleteOptions): Promise<boolean>;
  listNeighbors(netns: Netns, filter?: { dev?: string; family?: 4 | 6 }): Promise<NeighInfo[]>;

  /** Releases cached per-namespace sockets (all, or those of one namespace, e.g. after a pod's DEL). */
  close(netns?: Netns): void;
}

// The pod-side packet work of an ADD has its own room (datapath/podnet/); its port is re-exported here for callers
// that take both.
export type { PodNet, ProbeResult, ProbeTiming } from '../podnet/port.ts';
