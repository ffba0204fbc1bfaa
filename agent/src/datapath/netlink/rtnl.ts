// `Netlink` on the real kernel: rtnetlink messages (link/addr/route codecs) over native namespace-scoped sockets.
//
// Sockets: the agent's own namespace keeps a few cached sockets (requests on one socket are serialised, so calls in
// parallel take different sockets). A socket in another namespace holds that namespace alive and a path may be
// re-used by a new namespace, so those are opened per call (≈12 µs) and closed at its end. Every request runs on
// the libuv pool (transport.ts); subscriptions (events.ts) watch their socket on the loop.
import { native } from '../../native.ts';
import * as addr from './addr.ts';
import { RT_TABLE_MAIN } from './constants.ts';
import { isNetlinkError } from './errors.ts';
import * as link from './link.ts';
import type {
  AddressInfo, AddressSpec, DeleteOptions, LinkChanges, LinkInfo, NeighInfo, NeighSpec, Netlink, Netns, RouteInfo,
  RouteSpec, RuleInfo, RuleSpec, VethSpec, VlanSpec, SubscribeOptions, NetlinkEvent, Subscription,
} from './port.ts';
import * as route from './route.ts';
import { NlSocket, wrapNative } from './transport.ts';
import { subscribe } from './events.ts';

/** errnos meaning "the thing is already gone" for delete operations. */
const MISSING = ['ENOENT', 'ENODEV', 'ESRCH', 'EADDRNOTAVAIL'];

function openNetnsFd(path: string, op: string): number {
  try {
    return native().openNetns(path);
  } catch (e) {
    throw wrapNative(e, op);
  }
}

/** Idle own-namespace sockets kept for re-use. */
const OWN_SOCKETS = 4;

export class RtNetlink implements Netlink {
  private readonly idle: NlSocket[] = [];

  /** Runs `fn` with a socket in `netns`: an idle own-namespace socket (returned afterwards), or a fresh one. */
  private async with<T>(netns: Netns, fn: (s: NlSocket) => Promise<T>): Promise<T> {
    const own = netns === null || netns === undefined;
    const s = own ? this.idle.pop() ?? new NlSocket(null) : new NlSocket(netns);
    try {
      return await fn(s);
    } finally {
      if (own && this.idle.length < OWN_SOCKETS) this.idle.push(s);
      else s.close();
    }
  }

  private index(s: NlSocket, name: string): Promise<number> {
    return s.get((q) => link.getLink(q, { name }), (m) => link.decodeLink(m).index, `get link ${name}`);
  }

  subscribe(opts: SubscribeOptions, listener: (e: NetlinkEvent) => void): Subscription {
    return subscribe(this, opts, listener);
  }

  async createVeth(spec: VethSpec): Promise<void> {
    const op = `create veth ${spec.name}/${spec.peer.name}`;
    const peerNetns = spec.peer.netns ?? null;
    // Validate before touching anything (names, MTU, MACs): the builder throws EINVAL.
    link.newVeth(0, { name: spec.name, peerName: spec.peer.name, mtu: spec.mtu, mac: spec.mac, peerMac: spec.peer.mac, peerMtu: spec.peer.mtu });
    const peerFd = peerNetns !== null && peerNetns !== (spec.netns ?? null) ? openNetnsFd(peerNetns, op) : undefined;
    try {
      await this.with(spec.netns ?? null, (s) => s.ack((q) => link.newVeth(q, {
        name: spec.name, mtu: spec.mtu, mac: spec.mac, txQueueLen: spec.txQueueLen,
        peerName: spec.peer.name, peerNetnsFd: peerFd, peerMac: spec.peer.mac, peerMtu: spec.peer.mtu,
      }), op));
    } finally {
      if (peerFd !== undefined) native().close(peerFd);
    }
  }

  async createVlan(spec: VlanSpec): Promise<void> {
    const op = `create vlan ${spec.name} on ${spec.parent}`;
    link.checkIfName(spec.name, op);
    link.checkIfName(spec.parent, op);
    link.checkVlanId(spec.id, op);
    await this.with(spec.netns ?? null, async (s) => {
      const parentIndex = await this.index(s, spec.parent);
      await s.ack((q) => link.newVlan(q, { name: spec.name, parentIndex, id: spec.id }), op);
    });
  }

  async getLink(netns: Netns, name: string): Promise<LinkInfo | null> {
    link.checkIfName(name, 'get link');
    return this.with(netns, async (s) => {
      try {
        return await s.get((q) => link.getLink(q, { name }), link.decodeLink, `get link ${name}`);
      } catch (e) {
        if (isNetlinkError(e, 'ENODEV')) return null;
        throw e;
      }
    });
  }

  async getLinkByIndex(netns: Netns, index: number): Promise<LinkInfo | null> {
    return this.with(netns, async (s) => {
      try {
        return await s.get((q) => link.getLink(q, { index }), link.decodeLink, `get link #${index}`);
      } catch (e) {
        if (isNetlinkError(e, 'ENODEV')) return null;
        throw e;
      }
    });
  }

  async listLinks(netns: Netns, filter: { kind?: string } = {}): Promise<LinkInfo[]> {
    const kind = filter.kind;
    const all = await this.with(netns, (s) => s.dump((q) => link.getLink(q, undefined, kind), link.decodeLink, 'dump links'));
    // a kind the kernel has no driver for filters nothing there: filter here too
    return kind === undefined ? all : all.filter((l) => l.kind === kind);
  }

  async setLink(netns: Netns, name: string, changes: LinkChanges): Promise<void> {
    const op = `set link ${name}`;
    link.checkIfName(name, op);
    if (changes.name !== undefined) link.checkIfName(changes.name, op);
    const fd = changes.moveTo !== undefined ? openNetnsFd(changes.moveTo, op) : undefined;
    try {
      await this.with(netns, async (s) => {
        const index = changes.name !== undefined && changes.name !== name ? await this.index(s, name) : undefined;
        await s.ack((q) => link.setLink(q, {
          index, name: index === undefined ? name : undefined, newName: index !== undefined ? changes.name : undefined,
          up: changes.up, mtu: changes.mtu, mac: changes.mac, alias: changes.alias, txQueueLen: changes.txQueueLen, netnsFd: fd,
        }), op);
      });
    } finally {
      if (fd !== undefined) native().close(fd);
    }
  }

  async renameLink(netns: Netns, from: string, to: string): Promise<void> {
    return this.setLink(netns, from, { name: to });
  }

  async deleteAltname(netns: Netns, linkName: string, altname: string): Promise<boolean> {
    const op = `delete altname ${altname} of ${linkName}`;
    link.checkIfName(linkName, op);
    link.checkAltname(altname, op);
    return this.with(netns, async (s) => {
      // by index: the kernel resolves a name to whichever link holds it, altnames included
      const l = await s.get((q) => link.getLink(q, { name: linkName }), link.decodeLink, `get link ${linkName}`).catch((e: unknown) => {
        if (isNetlinkError(e, 'ENODEV')) return null;
        throw e;
      });
      if (!l || l.name !== linkName || !(l.altnames ?? []).includes(altname)) return false;
      await s.ack((q) => link.delAltname(q, l.index, altname), op);
      return true;
    });
  }

  async deleteLink(netns: Netns, name: string, opts: DeleteOptions = {}): Promise<boolean> {
    link.checkIfName(name, 'delete link');
    return this.deleting(opts, () => this.with(netns, (s) => s.ack((q) => link.delLink(q, { name }), `delete link ${name}`)));
  }

  /** Runs a delete; with ignoreMissing, "already gone" (also: the namespace itself is gone) returns false. */
  private async deleting(opts: DeleteOptions, fn: () => Promise<unknown>): Promise<boolean> {
    try {
      await fn();
      return true;
    } catch (e) {
      if (opts.ignoreMissing && isNetlinkError(e, ...MISSING)) return false;
      throw e;
    }
  }

  async addAddress(netns: Netns, dev: string, spec: AddressSpec, opts: { replace?: boolean } = {}): Promise<void> {
    addr.newAddr(0, 0, spec, opts.replace); // validate first
    await this.with(netns, async (s) => {
      const index = await this.index(s, dev);
      await s.ack((q) => addr.newAddr(q, index, spec, opts.replace), `add address ${spec.cidr} to ${dev}`);
    });
  }

  async deleteAddress(netns: Netns, dev: string, cidr: string, opts: DeleteOptions = {}): Promise<boolean> {
    addr.delAddr(0, 0, cidr);
    return this.deleting(opts, () => this.with(netns, async (s) => {
      const index = await this.index(s, dev);
      await s.ack((q) => addr.delAddr(q, index, cidr), `delete address ${cidr} from ${dev}`);
    }));
  }

  async listAddresses(netns: Netns, filter: { dev?: string; family?: 4 | 6 } = {}): Promise<AddressInfo[]> {
    return this.with(netns, async (s) => {
      const index = filter.dev !== undefined ? await this.index(s, filter.dev) : 0;
      const all = await s.dump((q) => addr.getAddrs(q, filter.family, index), addr.decodeAddr, 'dump addresses');
      return all.filter((a) => (index === 0 || a.index === index) && (filter.family === undefined || a.family === filter.family));
    });
  }

  async addRoute(netns: Netns, r: RouteSpec, opts: { replace?: boolean } = {}): Promise<void> {
    route.newRoute(0, r, r.dev !== undefined ? 0 : undefined, opts.replace);
    const what = `${opts.replace ? 'replace' : 'add'} route ${r.dst ?? 'default'}${r.gateway ? ` via ${r.gateway}` : ''}${r.dev ? ` dev ${r.dev}` : ''}`;
    await this.with(netns, async (s) => {
      const oif = r.dev !== undefined ? await this.index(s, r.dev) : undefined;
      await s.ack((q) => route.newRoute(q, r, oif, opts.replace), what);
    });
  }

  async deleteRoute(netns: Netns, r: RouteSpec, opts: DeleteOptions = {}): Promise<boolean> {
    route.delRoute(0, r, undefined);
    return this.deleting(opts, () => this.with(netns, async (s) => {
      const oif = r.dev !== undefined ? await this.index(s, r.dev) : undefined;
      await s.ack((q) => route.delRoute(q, r, oif), `delete route ${r.dst ?? 'default'}`);
    }));
  }

  /** Routes of the main table by default; `table: 0` = every table. Cached clones are skipped. */
  async listRoutes(netns: Netns, filter: { family?: 4 | 6; table?: number; dev?: string } = {}): Promise<RouteInfo[]> {
    const table = filter.table ?? RT_TABLE_MAIN;
    return this.with(netns, async (s) => {
      const oif = filter.dev !== undefined ? await this.index(s, filter.dev) : undefined;
      const families: Array<4 | 6> = filter.family ? [filter.family] : [4, 6];
      const out: RouteInfo[] = [];
      for (const f of families) {
        try {
          out.push(...await s.dump((q) => route.getRoutes(q, f, table || undefined), route.decodeRoute, `dump IPv${f} routes`));
        } catch (e) {
          // A strict table filter on a table that does not exist (yet) in this family: no routes.
          if (!(table && isNetlinkError(e, 'ENOENT'))) throw e;
        }
      }
      return out.filter((r) => (table === 0 || r.table === table) && (oif === undefined || r.oif === oif));
    });
  }

  async addRule(netns: Netns, rule: RuleSpec): Promise<void> {
    route.newRule(0, rule);
    await this.with(netns, (s) => s.ack((q) => route.newRule(q, rule), `add rule table ${rule.table}`));
  }

  async deleteRule(netns: Netns, rule: RuleSpec, opts: DeleteOptions = {}): Promise<boolean> {
    route.delRule(0, rule);
    return this.deleting(opts, () => this.with(netns, (s) => s.ack((q) => route.delRule(q, rule), `delete rule table ${rule.table}`)));
  }

  async listRules(netns: Netns, family: 4 | 6): Promise<RuleInfo[]> {
    return this.with(netns, (s) => s.dump((q) => route.getRules(q, family), route.decodeRule, `dump IPv${family} rules`));
  }

  async setNeighbor(netns: Netns, n: NeighSpec): Promise<void> {
    route.newNeigh(0, 0, n);
    await this.with(netns, async (s) => {
      const index = await this.index(s, n.dev);
      await s.ack((q) => route.newNeigh(q, index, n), `set neighbour ${n.ip} on ${n.dev}`);
    });
  }

  async deleteNeighbor(netns: Netns, dev: string, ip: string, opts: DeleteOptions = {}): Promise<boolean> {
    route.delNeigh(0, 0, ip);
    return this.deleting(opts, () => this.with(netns, async (s) => {
      const index = await this.index(s, dev);
      await s.ack((q) => route.delNeigh(q, index, ip), `delete neighbour ${ip} on ${dev}`);
    }));
  }

  async listNeighbors(netns: Netns, filter: { dev?: string; family?: 4 | 6 } = {}): Promise<NeighInfo[]> {
    return this.with(netns, async (s) => {
      const index = filter.dev !== undefined ? await this.index(s, filter.dev) : 0;
      const all = await s.dump((q) => route.getNeighs(q, filter.family, index), route.decodeNeigh, 'dump neighbours');
      return all.filter((n) => (index === 0 || n.index === index) && (filter.family === undefined || n.family === filter.family));
    });
  }

  close(netns?: Netns): void {
    if (netns === undefined || netns === null) for (const s of this.idle.splice(0)) s.close();
  }
}
