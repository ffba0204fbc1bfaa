// Moving a NIC's addresses and routes onto its provider bridge and back (spec §6.2 step 10, §6.4 step 3), journaled
// (journal.ts) so that a crash at any instant is finished at the next start.
//
// Order, chosen so that at every instant each address and the default route exist on the NIC or on the bridge (never
// on neither), which upstream's delete-then-add order does not give:
//   transfer: bridge link takes the NIC's MAC and MTU and comes up -> every address is ADDED to the bridge (the NIC
//   keeps it) -> the NIC becomes a port of the bridge with its trunks (so the bridge reaches the wire before any
//   route points at it) -> every route is REPLACED onto the bridge in scope order host, link, site, universe (a
//   replace swaps the output device in one kernel operation, so the default route is never missing) -> the
//   addresses are deleted from the NIC -> the NIC is up.
//   restore: the mirror image (addresses added to the NIC, routes replaced onto it, addresses deleted from the
//   bridge while the NIC is still its port, port removed, bridge deleted).
// Link-local addresses and the kernel's own routes (proto kernel: connected, local; kernelMadeRoute) stay where the kernel put them.

import { IFA_F_NOPREFIXROUTE, RT_TABLE_LOCAL, RTPROT_KERNEL } from '../../datapath/netlink/constants.ts';
import { formatIp, networkOf, parseCidr } from '../../datapath/netlink/ip.ts';
import type { AddressInfo, AddressSpec, LinkInfo, Netlink, Netns, RouteInfo, RouteSpec } from '../../datapath/netlink/port.ts';
import type { Vswitch } from '../../datapath/ovsdb/port.ts';
import type { Journal, LinkSnapshot, MoveRecord, SnapAddress, SnapRoute } from './journal.ts';

/** The kernel's metric for an IPv6 prefix route; IPv4's is none (0). */
const IP6_RT_PRIO_ADDRCONF = 256;

/**
 * A route the kernel made for an address, which follows the address and is not moved: `proto kernel` in the local
 * table, or the prefix route of an address on the link (its network, with the address's IFA_RT_PRIORITY or else the
 * kernel's metric). NetworkManager marks its addresses `noprefixroute` and adds their prefix routes itself, also
 * `proto kernel` but with its metric (100 on ethernet): no address of the link claims those, so they are moved like
 * any route, or the bridge would lack them.
 */
export function kernelMadeRoute(r: Pick<RouteInfo, 'protocol' | 'table' | 'family' | 'metric' | 'dst'>, addrs: readonly AddressInfo[]): boolean {
  if (r.protocol !== RTPROT_KERNEL) return false;
  if (r.table === RT_TABLE_LOCAL) return true;
  const dflt = r.family === 6 ? IP6_RT_PRIO_ADDRCONF : 0;
  const metric = (m: number | undefined): number => (m === undefined || (r.family === 6 && m === 0) ? dflt : m);
  return addrs.some((a) => {
    if (a.family !== r.family || (a.flags & IFA_F_NOPREFIXROUTE) !== 0) return false;
    const c = parseCidr(`${a.address}/${a.prefixLen}`);
    return `${formatIp(networkOf(c))}/${c.prefixLen}` === r.dst && metric(a.metric) === metric(r.metric);
  });
}

export interface TransferDeps {
  readonly netlink: Netlink;
  readonly vswitch: Vswitch;
  readonly journal: Journal;
  /** the node's namespace (null = the agent's own) */
  readonly netns: Netns;
  /** bound of the waits for vswitchd (bridge device, port applied) */
  readonly timeoutMs?: number;
  /** tests: runs before each step, after its intent is journaled (crash injection) */
  readonly beforeStep?: (rec: MoveRecord) => void | Promise<void>;
  /** after a rename and up: how long no route event may name the link before its addresses come back (default 50) */
  readonly networkdQuietMs?: number;
}

export const isLinkLocal = (cidr: string): boolean => /^fe[89ab][0-9a-f]:/i.test(cidr) || cidr.startsWith('169.254.');

/** Scope order for re-adding routes: host (254), link (253), site (200), universe (0), so gateways resolve. */
export const byScope = (a: SnapRoute, b: SnapRoute): number => b.scope - a.scope;

function toSnapRoute(r: RouteInfo): SnapRoute {
  return {
    family: r.family, dst: r.dst, table: r.table, protocol: r.protocol, scope: r.scope, type: r.type, onlink: r.onlink,
    ...(r.gateway !== undefined ? { gateway: r.gateway } : {}),
    ...(r.metric !== undefined ? { metric: r.metric } : {}),
    ...(r.prefSrc !== undefined ? { src: r.prefSrc } : {}),
  };
}

export function routeSpec(r: SnapRoute, dev: string): RouteSpec {
  return {
    ...(r.dst === null ? { family: r.family } : { dst: r.dst }), dev, table: r.table, protocol: r.protocol, scope: r.scope, type: r.type,
    ...(r.gateway !== undefined ? { gateway: r.gateway } : {}),
    ...(r.metric !== undefined ? { metric: r.metric } : {}),
    ...(r.src !== undefined ? { src: r.src } : {}),
    ...(r.onlink ? { onlink: true } : {}),
  };
}

/** The state of a link that is gone: nothing to move. */
export const EMPTY_SNAPSHOT: LinkSnapshot = { mac: '', mtu: 0, up: false, addresses: [], routes: [] };

/** The movable state of a link: non-link-local addresses and non-kernel routes of every table. */
export async function snapshotLink(nl: Netlink, netns: Netns, dev: string): Promise<LinkSnapshot> {
  const link = await nl.getLink(netns, dev);
  if (!link) throw new Error(`link ${dev} not found`);
  const onLink = await nl.listAddresses(netns, { dev });
  const addrs = onLink
    .map((a) => ({
      cidr: `${a.address}/${a.prefixLen}`, family: a.family, ...(a.family === 4 ? { broadcast: a.broadcast ?? null } : {}),
      ...(a.flags & IFA_F_NOPREFIXROUTE ? { noprefixroute: true as const } : {}),
      ...(a.metric !== undefined ? { metric: a.metric } : {}),
    }))
    .filter((a) => !isLinkLocal(a.cidr));
  const routes = (await nl.listRoutes(netns, { table: 0 })).filter((r) => r.oif === link.index && !kernelMadeRoute(r, onLink))
    .filter((r) => !(r.dst !== null && isLinkLocal(r.dst)))
    .map(toSnapRoute);
  return { mac: link.mac ?? '', mtu: link.mtu, up: link.up, addresses: addrs, routes };
}

/** An address as it was: IPv6 without DAD (it was in use), IPv4 with the broadcast it had (or none), without a
 *  prefix route when it had none, and with its prefix route's metric. Lifetimes are not kept: a DHCP lease becomes
 *  permanent (nobody renews it now). */
export function addressSpec(a: SnapAddress): AddressSpec {
  return {
    cidr: a.cidr, ...(a.family === 6 ? { nodad: true } : {}), ...(a.noprefixroute ? { noprefixroute: true } : {}),
    ...(a.metric !== undefined ? { metric: a.metric } : {}),
    ...(a.broadcast !== undefined ? { broadcast: a.broadcast ?? false } : {}),
  };
}

/** Journals the step's intent, then runs it (the crash tests hook in between). */
export async function journalStep(d: TransferDeps, rec: MoveRecord, name: string, fn: () => Promise<unknown>): Promise<void> {
  const r = { ...rec, step: name };
  await d.journal.write(r);
  await d.beforeStep?.(r);
  await fn();
}

/**
 * Moves the NIC onto the bridge (which must exist, owned by us). `rec` given = finish a journaled move (recovery);
 * otherwise a new move from a fresh snapshot of the NIC. Returns the snapshot the move used.
 */
export async function transferNic(d: TransferDeps, pn: string, nic: string, bridge: string, trunks: readonly number[], rec?: MoveRecord): Promise<LinkSnapshot> {
  const { netlink: nl, netns } = d;
  const timeout = d.timeoutMs ?? 10_000;
  const base: MoveRecord = rec ?? { pn, op: 'transfer', nic, bridge, trunks, snapshot: await snapshotLink(nl, netns, nic), step: 'begin' };
  const s = base.snapshot;
  await journalStep(d, base, 'bridge-link', async () => {
    // the bridge's own port carries the NIC's MAC (peers' ARP caches stay valid); other_config:hwaddr keeps
    // vswitchd from putting another one back
    await d.vswitch.ensureBridge({ name: bridge, otherConfig: { hwaddr: s.mac } });
    await d.vswitch.waitOfport(bridge, timeout);
    await nl.setLink(netns, bridge, { mac: s.mac, mtu: s.mtu, up: true });
  });
  await journalStep(d, base, 'addresses-to-bridge', async () => {
    for (const a of s.addresses) await nl.addAddress(netns, bridge, addressSpec(a), { replace: true });
  });
  await journalStep(d, base, 'nic-port', async () => {
    await d.vswitch.addBridgePort({ bridge, name: nic, trunks: base.trunks }, { wait: true, timeoutMs: timeout });
  });
  await journalStep(d, base, 'routes-to-bridge', async () => {
    for (const r of [...s.routes].sort(byScope)) await nl.addRoute(netns, routeSpec(r, bridge), { replace: true });
  });
  await journalStep(d, base, 'addresses-off-nic', async () => {
    for (const a of s.addresses) await nl.deleteAddress(netns, nic, a.cidr, { ignoreMissing: true });
  });
  await journalStep(d, base, 'nic-up', async () => {
    await nl.setLink(netns, nic, { up: true });
  });
  await d.journal.clear(pn);
  return s;
}

/**
 * Moves the bridge's addresses and routes back to the NIC, removes the NIC port and deletes the bridge.
 * `rec` given = finish a journaled restore. A NIC that vanished meanwhile: the bridge's routes and the bridge go.
 */
export async function restoreNic(d: TransferDeps, pn: string, nic: string, bridge: string, rec?: MoveRecord): Promise<void> {
  const { netlink: nl, netns } = d;
  const timeout = d.timeoutMs ?? 10_000;
  let base = rec;
  if (!base) {
    const bridgeLink = await nl.getLink(netns, bridge);
    const snapshot: LinkSnapshot = bridgeLink ? await snapshotLink(nl, netns, bridge) : EMPTY_SNAPSHOT;
    base = { pn, op: 'restore', nic, bridge, trunks: [], snapshot, step: 'begin' };
  }
  const s = base.snapshot;
  const nicThere = nic !== '' && (await nl.getLink(netns, nic)) !== null;
  if (nicThere) {
    await journalStep(d, base, 'nic-up', async () => { await nl.setLink(netns, nic, { up: true }); });
    await journalStep(d, base, 'addresses-to-nic', async () => {
      for (const a of s.addresses) await nl.addAddress(netns, nic, addressSpec(a), { replace: true });
    });
    await journalStep(d, base, 'routes-to-nic', async () => {
      for (const r of [...s.routes].sort(byScope)) await nl.addRoute(netns, routeSpec(r, nic), { replace: true });
    });
  }
  // the bridge's addresses (and so its connected routes, which the kernel prefers as the older ones) go while the NIC
  // is still its port: replies then leave through the NIC at once, and no reply is sent into a bridge without uplink
  await journalStep(d, base, 'addresses-off-bridge', async () => {
    for (const a of s.addresses) await nl.deleteAddress(netns, bridge, a.cidr, { ignoreMissing: true });
  });
  await journalStep(d, base, 'nic-unport', async () => {
    const port = nic === '' ? undefined : d.vswitch.getPort(nic);
    // absent from the replica may mean "not seen yet" (deletePort asks the server); on another bridge: not ours to take
    if (nic !== '' && (!port || port.bridge === bridge || port.bridge === undefined)) await d.vswitch.deletePort(nic, { wait: true, timeoutMs: timeout });
  });
  await journalStep(d, base, 'bridge-delete', async () => {
    await d.vswitch.deleteBridge(bridge, { wait: true, timeoutMs: timeout });
  });
  await d.journal.clear(pn);
}

/**
 * Renames a link and gives it back its addresses and routes (exchangeLinkName, spec §6.2 step 8 and §6.4). The
 * kernel refuses to rename a link that is up (EBUSY), and setting it down drops its routes (and, with the default
 * keep_addr_on_down=0, its IPv6 addresses), so the node cannot use this link from the down to the re-add: a few
 * milliseconds, as upstream. The snapshot is journaled first, so a crash in between is finished at the next start.
 * Every step is idempotent: a link already renamed (`from` gone, `to` there) is not renamed again. Refused before
 * anything changes: a taken new name, and a VLAN link on the NIC that has addresses (the down would take it down and
 * flush its routes). renameOrRollBack below handles an error.
 */
export async function renameNic(d: TransferDeps, pn: string, from: string, to: string, bridge: string, rec?: MoveRecord): Promise<void> {
  const { netlink: nl, netns } = d;
  let base = rec;
  if (!base) {
    const link = await nl.getLink(netns, from);
    if (!link) throw new Error(`cannot rename ${from} to ${to}: no link ${from}`);
    if (await nl.getLink(netns, to)) throw new Error(`cannot rename ${from} to ${to}: a link named ${to} exists`);
    for (const u of (await nl.listLinks(netns, { kind: 'vlan' })).filter((l) => l.link === link.index && l.linkNetnsId === undefined)) {
      const held = (await nl.listAddresses(netns, { dev: u.name })).map((a) => `${a.address}/${a.prefixLen}`).filter((c) => !isLinkLocal(c));
      if (held.length) throw new Error(`cannot rename ${from} to ${to}: setting it down would take down ${u.name}, which has ${held.join(', ')}`);
    }
    const snapshot = await snapshotLink(nl, netns, from);
    base = { pn, op: 'rename', nic: from, to, bridge, trunks: [], snapshot, step: 'begin' };
  }
  await renameSteps(d, base, from, to);
  await d.journal.clear(pn);
}

/**
 * A rename whose error (not a crash) puts the snapshot back on the NIC under whichever name it has now (found by
 * its MAC) and drops the intent, so an impossible rename (the NIC unplugged, the name taken meanwhile) never blocks
 * the network; if the NIC is gone there is nothing to put back. Throws the rename's error after that.
 */
export async function renameOrRollBack(d: TransferDeps, pn: string, from: string, to: string, bridge: string, rec?: MoveRecord): Promise<void> {
  const { netlink: nl, netns } = d;
  try {
    await renameNic(d, pn, from, to, bridge, rec);
  } catch (e) {
    // the snapshot the rename journaled before its first step; none = refused before anything changed
    const journaled = rec ?? await d.journal.read(pn).catch(() => undefined);
    const s = journaled?.op === 'rename' ? journaled.snapshot : undefined;
    if (!s) throw e;
    try {
      const at = await nicByMac(nl, netns, s.mac, [from, to]);
      if (at) {
        await nl.setLink(netns, at, { up: true });
        for (const a of s.addresses) await nl.addAddress(netns, at, addressSpec(a), { replace: true });
        for (const r of [...s.routes].sort(byScope)) await nl.addRoute(netns, routeSpec(r, at), { replace: true });
      }
      await d.journal.clear(pn);
    } catch (e2) {
      throw new AggregateError([e, e2], `renaming ${from} to ${to} failed (${errorText(e)}) and so did putting its addresses back (${errorText(e2)}); the journal keeps the rename for the next pass`);
    }
    throw e;
  }
}

/** The first of `names` that is a link with this MAC (the NIC under its old or new name). */
async function nicByMac(nl: Netlink, netns: Netns, mac: string, names: readonly string[]): Promise<string | undefined> {
  for (const n of names) {
    const l = await nl.getLink(netns, n);
    if (l && (l.mac ?? '') === mac) return n;
  }
  return undefined;
}

/** The link under exactly this name (the kernel's lookup also answers for a name another link holds as an altname). */
export async function linkNamed(nl: Netlink, netns: Netns, name: string): Promise<LinkInfo | null> {
  const l = await nl.getLink(netns, name);
  return l && l.name === name ? l : null;
}

async function renameSteps(d: TransferDeps, base: MoveRecord, from: string, to: string): Promise<void> {
  const { netlink: nl, netns } = d;
  const s = base.snapshot;
  await journalStep(d, base, 'rename-down', async () => {
    if (await linkNamed(nl, netns, from)) await nl.setLink(netns, from, { up: false });
  });
  // a rename relabels the IPv4 addresses (the kernel names the second and later ones `<new>:2`, `<new>:3`, and a
  // replace keeps a label), so they go before and come back with the link's own name as their label
  await journalStep(d, base, 'rename-addresses-off', async () => {
    if (await linkNamed(nl, netns, from)) for (const a of s.addresses) await nl.deleteAddress(netns, from, a.cidr, { ignoreMissing: true });
  });
  await journalStep(d, base, 'rename', async () => {
    const src = await linkNamed(nl, netns, from);
    if (src) {
      // a name held as an alternative name cannot be taken, not even by its holder: the link's own altname goes first
      if (src.altnames?.includes(to)) await nl.deleteAltname(netns, from, to);
      const taken = await nl.getLink(netns, to);
      if (taken) throw new Error(`cannot rename ${from} to ${to}: ${taken.name === to ? `a link named ${to} exists` : `${to} is an alternative name of ${taken.name}`}`);
      await nl.renameLink(netns, from, to);
    }
    // udev may keep the old name as an altname of the renamed link, which would keep the bridge from taking it (spec
    // §6.2 step 8); one that comes later is found by the next pass (op dropAltname)
    await nl.deleteAltname(netns, to, from);
  });
  await journalStep(d, base, 'rename-up', async () => {
    const link = await linkNamed(nl, netns, to);
    const quiet = link ? routesQuiet(nl, netns, link.index, d.networkdQuietMs ?? NETWORKD_QUIET_MS) : undefined;
    try {
      await quiet?.ready;
      await nl.setLink(netns, to, { up: true });
      await quiet?.settled();
    } finally {
      quiet?.close();
    }
  });
  await journalStep(d, base, 'rename-readd', async () => {
    for (const a of s.addresses) await nl.addAddress(netns, to, addressSpec(a), { replace: true });
    for (const r of [...s.routes].sort(byScope)) await nl.addRoute(netns, routeSpec(r, to), { replace: true });
  });
}

/**
 * A transfer whose failure (an error, not a crash) is rolled back: the NIC gets back what the transfer's snapshot
 * recorded and the bridge goes (the next pass makes it again). Throws the transfer's error after the rollback.
 * A NIC that was already the bridge's port (it got an address back, from DHCP or an operator) is not rolled back:
 * the bridge then holds the node's addresses from the first move, and deleting it would cut the node off. Every
 * address of this move is still on the NIC or the bridge, so only the journal goes.
 */
export async function transferOrRollBack(d: TransferDeps, pn: string, nic: string, bridge: string, trunks: readonly number[], rec?: MoveRecord): Promise<LinkSnapshot> {
  const snapshot = rec?.snapshot ?? await snapshotLink(d.netlink, d.netns, nic);
  const first = rec ?? { pn, op: 'transfer' as const, nic, bridge, trunks, snapshot, step: 'begin' };
  const plugged = d.vswitch.getPort(nic)?.bridge === bridge;
  try {
    return await transferNic(d, pn, nic, bridge, trunks, first);
  } catch (e) {
    if (plugged) {
      await d.journal.clear(pn).catch(() => undefined);
      throw e;
    }
    try {
      await restoreNic(d, pn, nic, bridge, { pn, op: 'restore', nic, bridge, trunks: [], snapshot, step: 'rollback' });
    } catch (e2) {
      throw new AggregateError([e, e2], `moving ${nic} onto ${bridge} failed (${errorText(e)}) and so did the rollback (${errorText(e2)}); the journal keeps the move for the next pass`);
    }
    throw e;
  }
}

export const NETWORKD_QUIET_MS = 50;
/** the longest wait for quiet; upstream has none */
export const NETWORKD_QUIET_MAX_MS = 2000;
/** without a route feed, upstream waits this long instead */
const NO_FEED_WAIT_MS = 100;

/**
 * After a rename and up, systemd-networkd may apply its configuration to the link again (it matches links by name),
 * and addresses or routes re-added before it is done can be flushed. Upstream waits until no route event has named
 * the link for 50 ms (spec §6.2 step 8), and so does this, with the feed listening before the up. The wait ends after
 * NETWORKD_QUIET_MAX_MS whatever happens: upstream's has no bound, so a link whose routes keep changing would hold
 * the move, with the node's addresses off the link, forever. Without a feed it waits 100 ms, as upstream.
 */
export function routesQuiet(nl: Netlink, netns: Netns, index: number, quietMs: number, maxMs = NETWORKD_QUIET_MAX_MS): { ready: Promise<void>; settled(): Promise<void>; close(): void } {
  let kick = (): void => undefined;
  let failed = false;
  let sub: { ready: Promise<void>; close(): void } | undefined;
  try {
    sub = nl.subscribe({ netns, groups: ['route'], onError: () => { failed = true; } }, (e) => {
      if (e.kind === 'resync' || (e.kind === 'route' && e.route.oif === index)) kick();
    });
  } catch {
    failed = true;
  }
  const ready = (sub?.ready ?? Promise.resolve()).catch(() => { failed = true; });
  const settled = (): Promise<void> => new Promise<void>((resolve) => {
    if (failed || quietMs <= 0) {
      if (quietMs <= 0) resolve();
      else setTimeout(resolve, NO_FEED_WAIT_MS);
      return;
    }
    let t = setTimeout(done, quietMs);
    const cap = setTimeout(done, Math.max(maxMs, quietMs));
    function done(): void { clearTimeout(t); clearTimeout(cap); kick = () => undefined; resolve(); }
    kick = () => { clearTimeout(t); t = setTimeout(done, quietMs); };
  });
  return { ready, settled, close: () => sub?.close() };
}

export const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));
