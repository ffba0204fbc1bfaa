// Subnet lookups the ADD needs: is a provider bound to any subnet (spec §3.1), and the subnet facts the planner
// uses (MTU, underlay, u2o gateway, gateway check, node network).

import { providerForSubnet } from './annotations.ts';
import type { SubnetFacts } from './plan.ts';
import type { Subnet } from '../k8s/types.ts';

export function subnetFacts(s: Subnet): SubnetFacts {
  const spec = s.spec ?? {};
  const facts: { -readonly [K in keyof SubnetFacts]: SubnetFacts[K] } = { name: s.metadata?.name ?? '' };
  if (typeof spec.mtu === 'number' && spec.mtu > 0) facts.mtu = spec.mtu;
  if (spec.vlan) facts.vlan = spec.vlan;
  if (spec.logicalGateway) facts.logicalGateway = true;
  if (spec.u2oInterconnection) facts.u2oInterconnection = true;
  if (s.status?.u2oInterconnectionIP) facts.u2oInterconnectionIp = s.status.u2oInterconnectionIP;
  if (spec.disableGatewayCheck) facts.disableGatewayCheck = true;
  if (spec.nodeNetwork) facts.nodeNetwork = spec.nodeNetwork;
  return facts;
}

/**
 * The subnet a non-default provider is bound to (spec.provider == provider minus `.<ifName>`), or undefined.
 * Provider `ovn` (or empty) needs no binding: returns null.
 */
export function subnetForProvider(subnets: readonly Subnet[], provider: string, ifName: string): Subnet | undefined | null {
  if (provider === '' || provider === 'ovn') return null;
  const p = providerForSubnet(provider, ifName);
  return subnets.find((s) => s.spec?.provider === p);
}
