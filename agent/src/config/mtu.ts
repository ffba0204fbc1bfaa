// Pod MTU derived at start-up (spec §5.2): with --mtu 0 the pod MTU is the tunnel NIC's MTU minus the
// encapsulation header: geneve and vlan 100, vxlan 50, stt 72, and 20 more when the encap IP is IPv6.

import type { NetworkType } from './config.ts';

const OVERHEAD: Record<NetworkType, number> = { geneve: 100, vlan: 100, vxlan: 50, stt: 72 };

/** Bytes the encapsulation takes from the tunnel NIC's MTU. */
export function tunnelOverhead(networkType: NetworkType, encapIpIsV6: boolean): number {
  return OVERHEAD[networkType] + (encapIpIsV6 ? 20 : 0);
}

export interface PodMtu {
  mtu: number;
  /** set when the result is below the IPv6 minimum (upstream only warns) */
  warning?: string;
}

/** The node-wide pod MTU: the --mtu flag when > 0, else the tunnel NIC's MTU minus the overhead. */
export function nodePodMtu(flagMtu: number, linkMtu: number, networkType: NetworkType, encapIpIsV6: boolean): PodMtu {
  const mtu = flagMtu > 0 ? flagMtu : linkMtu - tunnelOverhead(networkType, encapIpIsV6);
  return mtu < 1280 ? { mtu, warning: `pod MTU ${mtu} is below 1280, the IPv6 minimum` } : { mtu };
}
