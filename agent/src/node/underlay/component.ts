// The underlay as a lifecycle component: watches of ProviderNetworks and Vlans (cluster-scoped kubeovn.io CRs), and
// the controller with one reconciler per provider network. It starts after the CNI socket and the health port are
// bound (agent.ts order), so nothing the agent listens on depends on the addresses it moves. Start-up does not wait
// for convergence: readiness reports a network that keeps failing.

import { randomBytes } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import type { Netlink } from '../../datapath/netlink/port.ts';
import type { Vswitch } from '../../datapath/ovsdb/port.ts';
import { KUBEOVN_GROUP, KUBEOVN_VERSION, listOf, listWatchFactory } from '../../k8s/client.ts';
import { KubeRest } from '../../k8s/rest.ts';
import type { EventRecorder } from '../../k8s/events.ts';
import type { NodeApi } from '../../k8s/node-api.ts';
import type { KubeList, Node, Service, Subnet } from '../../k8s/types.ts';
import { EXTERNAL_IP_FROM_SUBNET, slimService } from '../../k8s/slim.ts';
import { ResilientListWatch, type Log } from '../../k8s/watch.ts';
import type { Component } from '../../lifecycle.ts';
import type { PassOutcome, ReconcilerLog } from '../reconciler.ts';
import { UnderlayController } from './controller.ts';
import { FileJournal } from './journal.ts';
import { chooseNic, parseMappings, randomMac, vlanPortShape } from './plan.ts';
import { FDB_RESYNC_MS, fdbSpec, wantedKey } from './fdb.ts';
import { BRIDGE_MAPPINGS } from './reconciler.ts';
import { Reconciler } from '../reconciler.ts';
import type { Unixctl } from '../../datapath/ovsdb/unixctl.ts';
import type { OpenFlow } from '../../datapath/ovsdb/ofctl.ts';
import { LB_FLOWS_RESYNC_MS, lbFlowsSpec, lbInterfaceEvent, subnetsKey } from './lb-flows.ts';
import type { ProviderNetwork, Vlan } from './types.ts';
import { DBusNetworkManager, NmMarks, type NetworkManagerPort } from './network-manager.ts';

export interface UnderlayComponentDeps {
  readonly nodeName: string;
  readonly journalDir: string;
  readonly macLearningFallback: boolean;
  readonly watchIdleTimeoutMs: number;
  readonly kubeConfig: () => KubeConfig;
  readonly netlink: () => Netlink;
  readonly vswitch: () => Vswitch;
  readonly node: () => Node | undefined;
  readonly onNodeChange: (l: () => void) => () => void;
  readonly nodeApi: () => NodeApi;
  readonly events: () => EventRecorder;
  readonly log: Log & ReconcilerLog;
  readonly onPass?: (o: PassOutcome) => void;
  /** Subnets (the u2o FDB entries) and their change events */
  readonly subnets: () => readonly Subnet[];
  readonly onSubnetChange: (l: () => void) => () => void;
  readonly subnetsSynced: () => boolean;
  /** ovs-vswitchd's control socket (fdb/add, fdb/del, fdb/show) */
  readonly vswitchd: Unixctl;
  /** NetworkManager on the system bus (default: found as spec §6.5 says) */
  readonly networkManager?: NetworkManagerPort;
  /** --enable-external-lb-address: a Service watch and the external-LB OpenFlow flows (lb-flows.ts) */
  readonly externalLbAddress: boolean;
  /** ovs-ofctl on the bridges' management sockets */
  readonly openflow: OpenFlow;
}

export class UnderlayComponent implements Component {
  readonly name = 'underlay';
  readonly #d: UnderlayComponentDeps;
  #pns: ResilientListWatch<ProviderNetwork> | undefined;
  #vlans: ResilientListWatch<Vlan> | undefined;
  #controller: UnderlayController | undefined;
  #fdb: Reconciler<unknown, unknown, unknown> | undefined;
  #services: ResilientListWatch<Service> | undefined;
  #lbFlows: Reconciler<unknown, unknown, unknown> | undefined;
  #unsubscribe: (() => void)[] = [];

  constructor(d: UnderlayComponentDeps) { this.#d = d; }

  get controller(): UnderlayController | undefined { return this.#controller; }

  async start(): Promise<void> {
    const d = this.#d;
    const kc = d.kubeConfig();
    const rest = new KubeRest(kc);
    const crWatch = <T extends ProviderNetwork | Vlan>(plural: string): ResilientListWatch<T> => {
      const path = `/apis/${KUBEOVN_GROUP}/${KUBEOVN_VERSION}/${plural}`;
      return new ResilientListWatch<T>({
        resource: plural, idleTimeoutMs: d.watchIdleTimeoutMs, log: d.log,
        list: listOf<T>(rest, path), informer: listWatchFactory<T>(rest, path, {}, 250, d.watchIdleTimeoutMs),
      });
    };
    const pns = this.#pns = crWatch<ProviderNetwork>('provider-networks');
    const vlans = this.#vlans = crWatch<Vlan>('vlans');
    const controller = this.#controller = new UnderlayController({
      nodeName: d.nodeName, netns: null, netlink: d.netlink, vswitch: d.vswitch, journal: new FileJournal(d.journalDir),
      providerNetworks: () => pns.store.list(), synced: () => pns.health().synced && vlans.health().synced, vlans: () => vlans.store.list(), node: d.node,
      patchNode: (patch) => d.nodeApi().patchMetadata(d.nodeName, patch),
      event: (pn, name, type, reason, message) => d.events().record({
        target: { kind: 'ProviderNetwork', apiVersion: `${KUBEOVN_GROUP}/${KUBEOVN_VERSION}`, name, ...(pn?.metadata?.uid ? { uid: pn.metadata.uid } : {}) },
        type, reason, message,
      }),
      macLearningFallback: d.macLearningFallback,
      // the provider bridge shares br-int's datapath (netdev on userspace-datapath nodes)
      datapathType: () => { const t = d.vswitch().getBridge('br-int')?.datapathType; return t === undefined || t === '' ? undefined : t; },
      randomMac: () => randomMac(randomBytes(6)),
      log: d.log,
      ...(d.onPass ? { onPass: d.onPass } : {}),
      nm: { port: d.networkManager ?? new DBusNetworkManager(), marks: new NmMarks(d.journalDir), log: d.log },
    });
    pns.start();
    vlans.start();
    // moves in flight are finished before the watches have listed: they need no Kubernetes state
    await controller.start();
    const sync = (why: string) => () => controller.sync(why);
    this.#unsubscribe.push(pns.store.subscribe(sync('provider-network')), vlans.store.subscribe(sync('vlan')), d.onNodeChange(sync('node')));
    this.#unsubscribe.push(d.vswitch().onInterfaceChange((e) => {
      const nics = new Set(pns.store.list().map((p) => chooseNic(p, d.nodeName)));
      // bridges, VLAN internal ports (`br-<pn>-vlan<id>`, or `kv<id>-...` past 15 bytes) and the NICs
      if (e.name.startsWith('br-') || vlanPortShape(e.name) !== undefined || nics.has(e.name)) controller.sync('ovsdb');
    }));

    const sources = {
      subnets: d.subnets, vlans: () => vlans.store.list(),
      bridgeMappings: () => parseMappings(d.vswitch().getOvsExternalIds()[BRIDGE_MAPPINGS]),
    };
    const fdb = this.#fdb = new Reconciler(fdbSpec({
      ...sources, vswitch: d.vswitch, unixctl: d.vswitchd,
      synced: () => d.subnetsSynced() && pns.health().synced && vlans.health().synced,
    }), { resyncMs: FDB_RESYNC_MS, log: d.log, ...(d.onPass ? { onPass: d.onPass } : {}) }) as Reconciler<unknown, unknown, unknown>;
    const kick = (why: string) => () => fdb.trigger(why);
    // every Subnet status update in the cluster (IP counters move on each pod ADD) arrives here: a pass only when
    // the wanted entries change
    let wanted = '\0'; // the first Subnet event always triggers a pass
    const onSubnet = (): void => { const w = wantedKey(sources); if (w !== wanted) { wanted = w; fdb.trigger('subnet'); } };
    this.#unsubscribe.push(d.onSubnetChange(onSubnet), vlans.store.subscribe(kick('vlan')), pns.store.subscribe(kick('provider-network')));
    void Promise.all([pns.waitSynced(), vlans.waitSynced()]).then(() => { controller.sync('synced'); fdb.trigger('synced'); });
    // a localnet patch port (re)appearing, e.g. after an OVS restart, which also forgot the entries
    this.#unsubscribe.push(d.vswitch().onInterfaceChange((e) => { if (e.name.startsWith('patch-localnet.')) fdb.trigger('ovsdb'); }));
    fdb.start();
    if (d.externalLbAddress) this.#startLbFlows(pns, vlans);
  }

  /** The external-LB flows (lb-flows.ts): a Service watch of its own (only this feature reads Services) and the
   * reconciler, triggered by Service, Subnet, Vlan and ProviderNetwork events and OVSDB changes of the ports. */
  #startLbFlows(pns: ResilientListWatch<ProviderNetwork>, vlans: ResilientListWatch<Vlan>): void {
    const d = this.#d;
    const rest = new KubeRest(d.kubeConfig());
    const path = '/api/v1/services';
    const services = this.#services = new ResilientListWatch<Service>({
      resource: 'services', idleTimeoutMs: d.watchIdleTimeoutMs, log: d.log, decode: slimService,
      list: listOf<Service>(rest, path), informer: listWatchFactory<Service>(rest, path, {}, 250, d.watchIdleTimeoutMs),
    });
    const lb = this.#lbFlows = new Reconciler(lbFlowsSpec({
      nodeName: d.nodeName, services: () => services.store.list(), subnets: d.subnets, vlans: () => vlans.store.list(),
      providerNetworks: () => pns.store.list(), node: d.node, vswitch: d.vswitch, openflow: d.openflow,
      synced: () => services.health().synced && d.subnetsSynced() && pns.health().synced && vlans.health().synced,
    }), { resyncMs: LB_FLOWS_RESYNC_MS, log: d.log, ...(d.onPass ? { onPass: d.onPass } : {}) }) as Reconciler<unknown, unknown, unknown>;
    const kick = (why: string) => () => lb.trigger(why);
    // slimService keeps the annotation only where it is set: other Services' events are none of ours
    const annotated = (s: Service | undefined): boolean => s?.metadata?.annotations?.[EXTERNAL_IP_FROM_SUBNET] !== undefined;
    let subnetsWanted = '\0';
    const onSubnet = (): void => { const k = subnetsKey(d.subnets()); if (k !== subnetsWanted) { subnetsWanted = k; lb.trigger('subnet'); } };
    let nodeLabels = JSON.stringify(d.node()?.metadata?.labels ?? {});
    this.#unsubscribe.push(
      services.store.subscribe((_e, s, old) => { if (annotated(s) || annotated(old)) lb.trigger('service'); }),
      d.onSubnetChange(onSubnet), vlans.store.subscribe(kick('vlan')), pns.store.subscribe(kick('provider-network')),
      d.vswitch().onInterfaceChange((e) => { if (lbInterfaceEvent(e, d.vswitch())) lb.trigger('ovsdb'); }),
      // the NIC choice and the exclusion read this Node's labels (nodeSelector); other Node updates change nothing here
      d.onNodeChange(() => { const k = JSON.stringify(d.node()?.metadata?.labels ?? {}); if (k !== nodeLabels) { nodeLabels = k; lb.trigger('node'); } }),
    );
    services.start();
    void Promise.all([services.waitSynced(), pns.waitSynced(), vlans.waitSynced()]).then(kick('synced'));
    lb.start();
  }

  async stop(): Promise<void> {
    for (const u of this.#unsubscribe.splice(0)) u();
    await this.#lbFlows?.stop();
    await this.#fdb?.stop();
    await this.#controller?.stop();
    await Promise.all([this.#pns?.stop(), this.#vlans?.stop(), this.#services?.stop()]);
  }

  ready(): true | string {
    const c = this.#controller;
    if (!c) return 'not started';
    const unsynced = [this.#pns, this.#vlans].filter((w) => w && !w.health().synced).map((w) => w!.resource);
    if (unsynced.length) return `watches not synced: ${unsynced.join(', ')}`;
    // the u2o FDB entries only spare floods, and the external-LB flows concern LoadBalancer traffic, not pods:
    // their failures (and the Service watch's) are logged, never a reason to stop wiring pods
    return c.ready();
  }
}
