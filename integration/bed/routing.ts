// The stand-in controller's share of the default VPC's routing (test helper, not product code): what the real
// kube-ovn-controller programs on router `ovn-cluster` so that pod traffic leaving the cluster reaches a node and its
// iptables (the distributed and centralized gateways, user guide §3.2.4). Facts, in upstream's priorities:
//   static route   0.0.0.0/0 (::/0) via the join subnet's gateway (the router's own join port);
//   31000 allow    ip4.dst == <subnet CIDR>            traffic between subnets stays in OVN;
//   30000 reroute  ip4.dst == <node InternalIP>        to that node's ovn0 (join IP);
//   29000 reroute  ip4.src == <pod IP>                 distributed gateway: to the pod's node's ovn0 (upstream
//                                                      matches a per-node address set; one policy per pod here);
//   29000 reroute  ip4.src == <subnet CIDR>            centralized gateway: to the gateway node's ovn0.
// Each policy is keyed by its match, so adding one twice or deleting a missing one is harmless.
import type { OvnCentral } from './ovn.ts';

export const PRIORITY = { subnet: 31000, node: 30000, gateway: 29000 } as const;

const fam = (ip: string): 'ip4' | 'ip6' => (ip.includes(':') ? 'ip6' : 'ip4');
const bare = (cidrOrIp: string): string => cidrOrIp.split('/')[0]!;

export class RouterPolicies {
  readonly #central: OvnCentral;
  readonly #router: string;

  constructor(central: OvnCentral, router: string) {
    this.#central = central;
    this.#router = router;
  }

  /** The default route(s) via the join gateway(s). */
  async defaultRoutes(joinGateways: readonly string[]): Promise<void> {
    for (const gw of joinGateways) {
      await this.#central.nbctl(['--may-exist', 'lr-route-add', this.#router, gw.includes(':') ? '::/0' : '0.0.0.0/0', gw]);
    }
  }

  async allowSubnet(cidrs: readonly string[]): Promise<void> {
    for (const c of cidrs) await this.#add(PRIORITY.subnet, `${fam(c)}.dst == ${c}`, 'allow');
  }

  async removeSubnet(cidrs: readonly string[]): Promise<void> {
    for (const c of cidrs) {
      await this.#del(PRIORITY.subnet, `${fam(c)}.dst == ${c}`);
      await this.#del(PRIORITY.gateway, `${fam(c)}.src == ${c}`);
    }
  }

  /** Traffic to the node's own address goes to its ovn0 (loopback addresses of one-node beds are skipped). */
  async node(internalIps: readonly string[], joinIps: readonly string[]): Promise<void> {
    for (const ip of internalIps) {
      const via = joinIps.find((j) => fam(j) === fam(ip));
      if (!via || ip.startsWith('127.') || ip === '::1') continue;
      await this.#add(PRIORITY.node, `${fam(ip)}.dst == ${ip}`, 'reroute', via);
    }
  }

  /** Distributed gateway: the pod's own traffic leaves through its node. */
  async podGateway(podIps: readonly string[], nodeJoinIps: readonly string[]): Promise<void> {
    for (const ip of podIps) {
      const via = nodeJoinIps.find((j) => fam(j) === fam(ip));
      if (via) await this.#add(PRIORITY.gateway, `${fam(ip)}.src == ${bare(ip)}`, 'reroute', via);
    }
  }

  async removePodGateway(podIps: readonly string[]): Promise<void> {
    for (const ip of podIps) await this.#del(PRIORITY.gateway, `${fam(ip)}.src == ${bare(ip)}`);
  }

  /** Centralized gateway: the whole subnet leaves through the (first) gateway node; replaces an earlier choice. */
  async subnetGateway(cidrs: readonly string[], gatewayJoinIps: readonly string[]): Promise<void> {
    for (const c of cidrs) {
      const via = gatewayJoinIps.find((j) => fam(j) === fam(c));
      const match = `${fam(c)}.src == ${c}`;
      await this.#del(PRIORITY.gateway, match);
      if (via) await this.#add(PRIORITY.gateway, match, 'reroute', via);
    }
  }

  async #add(priority: number, match: string, action: 'allow' | 'reroute', via?: string): Promise<void> {
    await this.#central.nbctl(['--may-exist', 'lr-policy-add', this.#router, String(priority), match, action, ...(via ? [via] : [])]);
  }

  async #del(priority: number, match: string): Promise<void> {
    await this.#central.nbctl(['--if-exists', 'lr-policy-del', this.#router, String(priority), match]);
  }
}
