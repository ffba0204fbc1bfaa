// The node's identity in OVS and Kubernetes, as two small reconcilers:
//  - encap (spec §5.2-§5.3): the Open_vSwitch external_ids the agent owns (ovn-encap-ip, ovn-encap-ip-default,
//    ovn-encap-csum) from the tunnel interface and the node networks; re-evaluated on Node and link/address events;
//  - chassis (§5.1 step 6): the Node annotation ovn.kubernetes.io/chassis = the OVS system-id, which the real
//    kube-ovn-controller needs (it garbage-collects SB chassis no Node claims).

import { readFile } from 'node:fs/promises';
import type { Netlink } from '../datapath/netlink/port.ts';
import type { Vswitch } from '../datapath/ovsdb/port.ts';
import type { NodeApi } from '../k8s/node-api.ts';
import type { Node } from '../k8s/types.ts';
import { chooseTunnel, encapExternalIds, parseNodeNetworks } from './encap.ts';
import { internalIps, NODE_ANNOTATION } from './facts.ts';
import type { ReconcileSpec } from './reconciler.ts';

export interface EncapDeps {
  readonly netlink: Netlink;
  readonly vswitch: Vswitch;
  node(): Node | undefined;
  readonly iface: string;
  readonly podIp: string;
  readonly hostTunnelSrc: boolean;
  readonly encapChecksum: boolean;
  /** NIC -> bridge for NICs a provider network moved (underlay) */
  bridgedNics?(): ReadonlyMap<string, string>;
  onChosen?(choice: { link: string; encapIp: string; source: string }): void;
}

type Ids = Record<string, string>;

export function encapSpec(d: EncapDeps): ReconcileSpec<Ids, Ids, { set: Ids }> {
  return {
    name: 'encap',
    async desired() {
      const node = d.node();
      if (!node) throw new Error('the Node object is not in the cache yet');
      const [links, addresses, r4, r6] = await Promise.all([d.netlink.listLinks(null), d.netlink.listAddresses(null),
        d.netlink.listRoutes(null, { family: 4 }), d.netlink.listRoutes(null, { family: 6 })]);
      const annotationIface = node.metadata?.annotations?.[NODE_ANNOTATION.tunnelInterface];
      const choice = chooseTunnel({
        ...(annotationIface ? { annotationIface } : {}), iface: d.iface, ...(d.podIp ? { podIp: d.podIp } : {}),
        internalIps: internalIps(node), hostTunnelSrc: d.hostTunnelSrc, ...(d.bridgedNics ? { bridgedNics: d.bridgedNics() } : {}),
        links, addresses, routes: [...r4, ...r6],
      });
      if (!choice.ok) throw new Error(`tunnel interface: ${choice.reason}`);
      d.onChosen?.({ link: choice.link.name, encapIp: choice.encapIp, source: choice.source });
      const nn = parseNodeNetworks(node.metadata?.annotations?.[NODE_ANNOTATION.nodeNetworks]);
      return encapExternalIds(choice.encapIp, nn.networks, d.encapChecksum);
    },
    observe: async () => d.vswitch.getOvsExternalIds(),
    diff: (want, have) => {
      const set = Object.fromEntries(Object.entries(want).filter(([k, v]) => have[k] !== v));
      return Object.keys(set).length ? [{ set }] : [];
    },
    async apply(ops) {
      for (const op of ops) await d.vswitch.setOvsExternalIds(op.set);
    },
    describe: (op) => `Open_vSwitch external_ids ${JSON.stringify(op.set)}`,
  };
}

export interface ChassisDeps {
  readonly vswitch: Vswitch;
  readonly api: NodeApi;
  readonly nodeName: string;
  node(): Node | undefined;
  /** where ovs-ctl keeps the system-id (read when OVSDB has none) */
  readonly systemIdFile?: string;
}

/** The chassis name: Open_vSwitch external_ids:system-id (ovs-ctl sets it from system-id.conf), else that file. */
export async function systemId(vs: Vswitch, file = '/etc/openvswitch/system-id.conf'): Promise<string> {
  const fromDb = (vs.getOvsExternalIds()['system-id'] ?? '').trim();
  if (fromDb) return fromDb;
  const text = (await readFile(file, 'utf8').catch(() => '')).trim();
  if (!text) throw new Error(`no OVS system-id: Open_vSwitch external_ids:system-id is unset and ${file} is missing or empty`);
  return text;
}

export function chassisSpec(d: ChassisDeps): ReconcileSpec<string, string | undefined, { chassis: string }> {
  return {
    name: 'chassis',
    desired: () => systemId(d.vswitch, d.systemIdFile),
    observe: async () => {
      const n = d.node();
      if (!n) throw new Error('the Node object is not in the cache yet');
      return n.metadata?.annotations?.[NODE_ANNOTATION.chassis];
    },
    diff: (want, have) => (want === have ? [] : [{ chassis: want }]),
    async apply(ops) {
      for (const op of ops) await d.api.patchMetadata(d.nodeName, { annotations: { [NODE_ANNOTATION.chassis]: op.chassis } });
    },
    describe: (op) => `annotate node ${NODE_ANNOTATION.chassis}=${op.chassis}`,
  };
}
