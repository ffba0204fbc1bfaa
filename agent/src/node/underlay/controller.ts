// The provider networks of this node: one reconciler (reconciler.ts) per provider network, created when a
// ProviderNetwork appears, when the journal names a move in flight, or when ovn-bridge-mappings names a network that
// no longer exists (a leftover of a deletion the agent did not see: its first pass restores the NIC and removes the
// bridge and the mapping). A reconciler whose network is gone is dropped after a pass that found nothing to do.
// Events (ProviderNetwork, Vlan, this Node) trigger every reconciler: each pass is cheap when converged.

import type { Netlink, Netns } from '../../datapath/netlink/port.ts';
import type { Vswitch } from '../../datapath/ovsdb/port.ts';
import type { Node } from '../../k8s/types.ts';
import { Reconciler, type PassOutcome, type ReconcilerLog } from '../reconciler.ts';
import type { Journal } from './journal.ts';
import { parseMappings, planUnderlay } from './plan.ts';
import { BRIDGE_MAPPINGS, underlaySpec, type UnderlayDeps } from './reconciler.ts';
import type { ProviderNetwork, Vlan } from './types.ts';

export interface UnderlayControllerDeps {
  readonly nodeName: string;
  readonly netns: Netns;
  readonly netlink: () => Netlink;
  readonly vswitch: () => Vswitch;
  readonly journal: Journal;
  readonly providerNetworks: () => readonly ProviderNetwork[];
  /** the ProviderNetworks were listed once (before that, no network is treated as deleted) */
  readonly synced: () => boolean;
  readonly vlans: () => readonly Vlan[];
  readonly node: () => Node | undefined;
  readonly patchNode: UnderlayDeps['patchNode'];
  /** an Event on the ProviderNetwork */
  readonly event: (pn: ProviderNetwork | undefined, pnName: string, type: 'Normal' | 'Warning', reason: string, message: string) => void;
  readonly macLearningFallback: boolean;
  readonly datapathType: () => string | undefined;
  readonly randomMac: () => string;
  readonly resyncMs?: number;
  readonly timeoutMs?: number;
  readonly log?: ReconcilerLog;
  readonly onPass?: (o: PassOutcome) => void;
  readonly beforeStep?: UnderlayDeps['beforeStep'];
  readonly nm?: UnderlayDeps['nm'];
}

export class UnderlayController {
  readonly #d: UnderlayControllerDeps;
  readonly #recs = new Map<string, Reconciler<unknown, unknown, unknown>>();
  #stopped = false;

  constructor(d: UnderlayControllerDeps) { this.#d = d; }

  /** names of the provider networks with a reconciler */
  get networks(): string[] { return [...this.#recs.keys()].sort(); }

  /** Creates the reconcilers for the journal's moves in flight, the existing networks and the leftovers, and starts them. */
  async start(): Promise<void> {
    for (const rec of await this.#d.journal.list()) this.#ensure(rec.pn);
    this.sync('start');
  }

  /** Level-triggered: every known and leftover network gets a reconciler and a pass. */
  sync(reason: string): void {
    if (this.#stopped) return;
    for (const pn of this.#d.providerNetworks()) { const n = pn.metadata?.name; if (n) this.#ensure(n); }
    if (this.#d.synced()) {
      for (const [pn, br] of parseMappings(this.#d.vswitch().getOvsExternalIds()[BRIDGE_MAPPINGS])) {
        // only our own bridges (another system's mapping, e.g. one set by hand for a physnet, is left alone)
        if (this.#d.vswitch().getBridge(br)?.externalIds.vendor === 'kube-ovn') this.#ensure(pn);
      }
    }
    for (const r of this.#recs.values()) r.trigger(reason);
  }

  /** Runs a pass of every reconciler now (tests, start-up ordering); resolves when all are done. */
  async runNow(): Promise<PassOutcome[]> {
    return Promise.all([...this.#recs.values()].map((r) => r.runNow()));
  }

  ready(): true | string {
    const bad = [...this.#recs.values()].map((r) => r.ready()).filter((x): x is string => x !== true);
    return bad.length ? bad.join('; ') : true;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([...this.#recs.values()].map((r) => r.stop()));
  }

  #pn(name: string): ProviderNetwork | undefined {
    return this.#d.providerNetworks().find((p) => p.metadata?.name === name);
  }

  #ensure(name: string): void {
    if (this.#recs.has(name) || this.#stopped) return;
    const d = this.#d;
    const desired = () => planUnderlay({ pnName: name, pn: this.#pn(name), vlans: d.vlans(), node: d.node(), nodeName: d.nodeName, macLearningFallback: d.macLearningFallback, synced: d.synced() });
    const spec = underlaySpec({
      pn: name, nodeName: d.nodeName, netns: d.netns, netlink: d.netlink, vswitch: d.vswitch, journal: d.journal, desired,
      nodeMeta: () => ({ labels: d.node()?.metadata?.labels ?? {}, annotations: d.node()?.metadata?.annotations ?? {} }),
      patchNode: d.patchNode,
      event: (type, reason, message) => d.event(this.#pn(name), name, type, reason, message),
      datapathType: d.datapathType, randomMac: d.randomMac,
      ...(d.timeoutMs !== undefined ? { timeoutMs: d.timeoutMs } : {}),
      ...(d.beforeStep ? { beforeStep: d.beforeStep } : {}),
      ...(d.nm ? { nm: d.nm } : {}),
    });
    const r: Reconciler<unknown, unknown, unknown> = new Reconciler(spec as never, {
      resyncMs: d.resyncMs ?? 60_000,
      ...(d.log ? { log: d.log } : {}),
      onPass: (o) => {
        d.onPass?.(o);
        // a deleted network that needs nothing more: drop its reconciler
        if (o.ok && o.changes === 0 && d.synced() && !this.#pn(name) && this.#recs.get(name) === r) {
          this.#recs.delete(name);
          void r.stop();
        }
      },
    });
    this.#recs.set(name, r);
    r.start();
  }
}
