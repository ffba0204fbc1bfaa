// The end of node initialisation: the node-ready gate opens and ADDs that waited go on. The node's own network
// (ovn0, encap, host routes, iptables; spec §5.1-§5.8) is set up by the node-network component started before this
// one; the pod MTU (podMtu, spec §5.2) is computed there once the encap IP is known.

import type { Logger } from 'pino';
import type { NodeConfig } from '../config/config.ts';
import { nodePodMtu } from '../config/mtu.ts';
import type { Netlink } from '../datapath/netlink/port.ts';
import type { Vswitch } from '../datapath/ovsdb/port.ts';
import type { Component } from '../lifecycle.ts';
import type { NodeGate } from './gate.ts';

/** Opens the node-ready gate once every component before it has started: ADDs waiting there go on. */
export class NodeInit implements Component {
  readonly name = 'node-initialised';
  readonly #gate: NodeGate;
  constructor(gate: NodeGate) { this.#gate = gate; }

  async start(): Promise<void> { this.#gate.open(); }

  async stop(): Promise<void> { this.#gate.close('the agent is stopping'); }

  ready(): true | string {
    return this.#gate.isOpen ? true : `node not initialised: ${this.#gate.reason}`;
  }
}

/**
 * The node-wide pod MTU (§5.2): --mtu when set, else the tunnel NIC's MTU minus the encapsulation overhead. The
 * tunnel NIC is --iface (a plain name), else the link holding OVS external_ids:ovn-encap-ip; a loopback or unknown
 * NIC counts as 1500 (single-node sandboxes encapsulate over 127.0.0.1).
 */
export async function podMtu(cfg: Pick<NodeConfig, 'mtu' | 'iface' | 'networkType'>, nl: Netlink, vs: Vswitch, log: Logger): Promise<number> {
  if (cfg.mtu > 0) return cfg.mtu;
  const encapIp = (vs.getOvsExternalIds()['ovn-encap-ip'] ?? '').split(',')[0]!.trim();
  let linkMtu = 1500;
  let nic: string | undefined;
  try {
    const name = cfg.iface.split(',')[0]!.trim();
    let link = /^[A-Za-z0-9_.-]{1,15}$/.test(name) ? await nl.getLink(null, name) : null;
    if (!link && encapIp) {
      const a = (await nl.listAddresses(null)).find((x) => x.address === encapIp);
      if (a) link = await nl.getLinkByIndex(null, a.index);
    }
    if (link && link.name !== 'lo' && (link.flags & 0x8) === 0) { linkMtu = link.mtu; nic = link.name; }
  } catch (e) {
    log.warn({ err: e instanceof Error ? e.message : String(e) }, 'cannot read the tunnel NIC; assuming MTU 1500');
  }
  const r = nodePodMtu(0, linkMtu, cfg.networkType, encapIp.includes(':'));
  if (r.warning) log.warn(r.warning);
  log.info({ tunnelNic: nic ?? '(none)', linkMtu, podMtu: r.mtu, networkType: cfg.networkType }, 'pod MTU');
  return r.mtu;
}
