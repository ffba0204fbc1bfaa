// Kernel change feeds: a NETLINK_ROUTE socket bound to multicast groups inside a namespace, watched on the event loop
// (the addon's Poller, uv_poll), its messages decoded with the same decoders as the request path.
//
// Overflow: when changes come faster than we read, the kernel drops them and the next recv fails with ENOBUFS. A
// lost event cannot be told apart from no event, so the subscriber gets a `resync` event and must re-read what it
// derived from the feed (reconcilers: one more pass; waits: one more look). The socket's receive buffer is raised to
// 4 MiB first, so this stays rare.
import { native, AF_NETLINK, NETLINK_ROUTE, SOCK_RAW, SOL_SOCKET, SO_RCVBUF, SO_RCVBUFFORCE, isNativeError,
  type NativePoller } from '../../native.ts';
import { parseMessages, type NlMessage } from './codec.ts';
import { RTM_DELADDR, RTM_DELLINK, RTM_DELNEIGH, RTM_DELROUTE, RTM_DELRULE, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWNEIGH,
  RTM_NEWROUTE, RTM_NEWRULE } from './constants.ts';
import { decodeAddr } from './addr.ts';
import { decodeLink } from './link.ts';
import { decodeNeigh, decodeRoute, decodeRule } from './route.ts';
import type { EventGroup, Netlink, NetlinkEvent, SubscribeOptions, Subscription } from './port.ts';
import { invalid } from './errors.ts';
import { wrapNative } from './transport.ts';

/** rtnetlink multicast groups (RTNLGRP_*) per subscription group. */
export const GROUPS: Record<EventGroup, readonly number[]> = {
  link: [1], // RTNLGRP_LINK
  neighbour: [3], // RTNLGRP_NEIGH
  address: [5, 9], // RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR
  route: [7, 11], // RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE
  rule: [8, 19], // RTNLGRP_IPV4_RULE, RTNLGRP_IPV6_RULE
};

const RCVBUF = 4 * 1024 * 1024;

/** The legacy bind() group mask (bit g-1 for group g; every group we use is below 32). */
export function groupMask(groups: readonly EventGroup[]): number {
  let mask = 0;
  for (const g of groups) for (const n of GROUPS[g]) mask |= 1 << (n - 1);
  return mask >>> 0;
}

/** One multicast message as an event; null for types we do not follow (or entries the decoders skip). */
export function decodeEvent(m: NlMessage): NetlinkEvent | null {
  switch (m.type) {
    case RTM_NEWLINK: case RTM_DELLINK:
      return { kind: 'link', action: m.type === RTM_NEWLINK ? 'new' : 'del', link: decodeLink(m) };
    case RTM_NEWADDR: case RTM_DELADDR: {
      const a = decodeAddr(m);
      return a && { kind: 'address', action: m.type === RTM_NEWADDR ? 'new' : 'del', address: a };
    }
    case RTM_NEWROUTE: case RTM_DELROUTE: {
      const r = decodeRoute(m);
      return r && { kind: 'route', action: m.type === RTM_NEWROUTE ? 'new' : 'del', route: r };
    }
    case RTM_NEWNEIGH: case RTM_DELNEIGH: {
      const n = decodeNeigh(m);
      return n && { kind: 'neighbour', action: m.type === RTM_NEWNEIGH ? 'new' : 'del', neighbour: n };
    }
    case RTM_NEWRULE: case RTM_DELRULE: {
      const r = decodeRule(m);
      return r && { kind: 'rule', action: m.type === RTM_NEWRULE ? 'new' : 'del', rule: r };
    }
    default:
      return null;
  }
}

/** struct sockaddr_nl: family, pad, pid 0 (the kernel picks one), groups. */
function sockaddrNl(groups: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16LE(AF_NETLINK, 0);
  b.writeUInt32LE(groups, 8);
  return b;
}

/** One receive buffer for every subscription: reads are synchronous, and decoders copy what they keep. */
const recvBuf = Buffer.allocUnsafe(64 * 1024);

/** What exists now in `opts.netns`, as `new` events (listExisting). */
async function existing(nl: Netlink, opts: SubscribeOptions): Promise<NetlinkEvent[]> {
  const ns = opts.netns ?? null;
  const out: NetlinkEvent[] = [];
  if (opts.groups.includes('link')) for (const l of await nl.listLinks(ns)) out.push({ kind: 'link', action: 'new', link: l });
  if (opts.groups.includes('address')) for (const a of await nl.listAddresses(ns)) out.push({ kind: 'address', action: 'new', address: a });
  if (opts.groups.includes('route')) for (const r of await nl.listRoutes(ns, { table: 0 })) out.push({ kind: 'route', action: 'new', route: r });
  if (opts.groups.includes('neighbour')) for (const n of await nl.listNeighbors(ns)) out.push({ kind: 'neighbour', action: 'new', neighbour: n });
  if (opts.groups.includes('rule')) for (const f of [4, 6] as const) for (const r of await nl.listRules(ns, f)) out.push({ kind: 'rule', action: 'new', rule: r });
  return out;
}

/** `Netlink.subscribe` on the real kernel; `nl` answers the listing of existing state. */
export function subscribe(nl: Netlink, opts: SubscribeOptions, listener: (e: NetlinkEvent) => void): Subscription {
  const n = native();
  const where = opts.netns ?? 'own netns';
  const op = `subscribe to ${opts.groups.join('/')} events in ${where}`;
  if (opts.groups.length === 0) throw invalid(op, 'no event groups given');
  let fd: number;
  try {
    fd = n.socketInNetns(opts.netns ?? null, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
  } catch (e) {
    throw wrapNative(e, op);
  }
  let poller: NativePoller | undefined;
  let closed = false;
  /** events held back while the existing state is listed */
  let held: NetlinkEvent[] | undefined = opts.listExisting ? [] : undefined;

  const deliver = (e: NetlinkEvent): void => {
    if (held) { held.push(e); return; }
    try {
      listener(e);
    } catch (err) {
      opts.onError?.(err instanceof Error ? err : new Error(String(err)));
    }
  };
  const fail = (e: unknown): void => {
    if (closed) return;
    close();
    opts.onError?.(wrapNative(e, op) as Error);
  };
  const onReadable = (error: string | null): void => {
    if (closed) return;
    if (error) return fail(new Error(`poll: ${error}`));
    for (;;) {
      let got: number;
      try {
        got = n.recv(fd, recvBuf, 0, null);
      } catch (e) {
        if (isNativeError(e) && e.code === 'ENOBUFS') { deliver({ kind: 'resync', reason: 'netlink event queue overflowed (ENOBUFS)' }); continue; }
        return fail(e);
      }
      if (got < 0 || closed) return;
      try {
        for (const m of parseMessages(recvBuf.subarray(0, Math.min(got, recvBuf.length)))) {
          const ev = decodeEvent(m);
          if (ev) deliver(ev);
        }
      } catch (e) {
        // a message we cannot decode: say so, the subscriber re-reads (never a silently lost change)
        deliver({ kind: 'resync', reason: `undecodable netlink event: ${e instanceof Error ? e.message : String(e)}` });
      }
    }
  };
  const close = (): void => {
    if (closed) return;
    closed = true;
    held = undefined;
    poller?.close();
    n.close(fd);
  };

  try {
    try {
      n.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF);
    } catch {
      n.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, RCVBUF); // without CAP_NET_ADMIN: as much as rmem_max allows
    }
    n.bind(fd, sockaddrNl(groupMask(opts.groups)));
    poller = new n.Poller(fd, onReadable);
    poller.start();
  } catch (e) {
    close();
    throw wrapNative(e, op);
  }

  const ready = !opts.listExisting ? Promise.resolve() : existing(nl, opts).then((list) => {
    if (closed) return;
    const later = held ?? [];
    held = undefined;
    for (const e of list) deliver(e);
    for (const e of later) deliver(e);
  }, (e: unknown) => { fail(e); throw wrapNative(e, op); });
  ready.catch(() => undefined);
  return { ready, close };
}
