// The node namespace's kernel change feed for the node wing: link, address, route and policy-rule events of the
// agent's own namespace wake the reconcilers that read them (ovn0, host-routes, encap, egress-gateway), so `ip route
// del` of one of our routes, `ip rule del` of one of our rules or ovn0 set down is repaired at once, not at the next
// resync.
//
// Noise is dropped before it wakes anything: every pod ADD/DEL creates and removes a host veth (`<cid>_h`, its IPv6
// link-local address, its fe80::/64 route) and the kernel's local-table routes follow every address; none of these is
// state a node reconciler reads. What is left still only triggers passes, which coalesce (node/reconciler.ts).
import type { Netlink, NetlinkEvent, Subscription } from '../datapath/netlink/port.ts';

/** route = of the main table; table-route = of another table but local (policy-routing tables); rule = ip rules */
export type KernelChange = 'link' | 'address' | 'route' | 'table-route' | 'rule' | 'resync';

const RT_TABLE_MAIN = 254;
const RT_TABLE_LOCAL = 255;
/** Back-off before subscribing again after the feed failed. */
const RESUBSCRIBE_MS = 1000;

/** Pod host ends are veths named `<container id prefix>..._h` (pod/plan.ts). */
const isPodHostVeth = (name: string, kind: string | undefined): boolean => kind === 'veth' && name.endsWith('_h');

/** Remembers the pod host veths (by index) and says whether an event concerns the node's own network. */
export class KernelNoiseFilter {
  readonly #podLinks = new Set<number>();

  relevant(e: NetlinkEvent): KernelChange | null {
    switch (e.kind) {
      case 'resync':
        return 'resync';
      case 'link':
        if (isPodHostVeth(e.link.name, e.link.kind)) {
          if (e.action === 'new') this.#podLinks.add(e.link.index);
          else this.#podLinks.delete(e.link.index);
          return null;
        }
        this.#podLinks.delete(e.link.index); // an index re-used by a link of another kind
        return 'link';
      case 'address':
        return this.#podLinks.has(e.address.index) ? null : 'address';
      case 'route':
        if (e.route.oif !== undefined && this.#podLinks.has(e.route.oif)) return null;
        // the local table follows every address (and every pod veth's link-local one): nothing reads it
        return e.route.table === RT_TABLE_MAIN ? 'route' : e.route.table === RT_TABLE_LOCAL ? null : 'table-route';
      case 'rule':
        return 'rule';
      default:
        return null;
    }
  }
}

export interface KernelFeedLog {
  warn(obj: object, msg: string): void;
}

/**
 * `NodeEventSources.onKernelChange` over a `Netlink` port: one subscription to link/address/route/rule events of the
 * agent's namespace per listener; a failed feed is reported as a resync and subscribed again after a second.
 */
export function kernelChanges(nl: () => Netlink, log: KernelFeedLog): (listener: (what: KernelChange) => void) => () => void {
  return (listener) => {
    const filter = new KernelNoiseFilter();
    let sub: Subscription | undefined;
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    const open = (): void => {
      if (stopped) return;
      try {
        sub = nl().subscribe({
          groups: ['link', 'address', 'route', 'rule'],
          listExisting: true, // learns the pod veths already there (their events are delivered, then filtered)
          onError: (err) => {
            log.warn({ err: err.message }, 'kernel change feed failed; subscribing again');
            listener('resync');
            retry();
          },
        }, (e) => {
          const what = filter.relevant(e);
          if (what) listener(what);
        });
      } catch (err) {
        log.warn({ err: err instanceof Error ? err.message : String(err) }, 'cannot subscribe to kernel changes; trying again');
        retry();
      }
    };
    const retry = (): void => {
      sub?.close();
      sub = undefined;
      if (stopped || timer) return;
      timer = setTimeout(() => { timer = undefined; open(); }, RESUBSCRIBE_MS);
      timer.unref();
    };
    open();
    return () => {
      stopped = true;
      clearTimeout(timer);
      sub?.close();
    };
  };
}
