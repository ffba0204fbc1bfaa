// The node's iptables rules and ipsets (spec §5.7, §5.8), as desired state for the netfilter diff
// (datapath/netfilter): upstream's set and chain names and rules, per IP family the node runs. Pure: subnets, nodes,
// service CIDRs and what kube-proxy left (its IPVS sets) in; a DesiredState out. Rules are written in the canonical
// form iptables-save prints (datapath/netfilter/canonical.ts), so a converged node feeds iptables-restore nothing.

import type { DesiredSet, DesiredState, DesiredTable, PlacedRule } from '../datapath/netfilter/index.ts';
import type { Node, Subnet } from '../k8s/types.ts';
import { networkOf, parseCidr, parseIp, formatIp, type Family } from '../net/ip.ts';
import { internalIps } from './facts.ts';
import { byName } from '../order.ts';

export const MARK = { svc: '0x4000/0x4000', nodePortLocal: '0x80000/0x80000', natPolicyNat: '0x90001/0x90001', natPolicyForward: '0x90002/0x90002' } as const;

/** A NAT-outgoing policy rule of a subnet's status (user guide §7.24): first match wins. */
export interface NatPolicyRule {
  readonly ruleID: string;
  readonly action: 'nat' | 'forward';
  readonly match: { readonly srcIPs?: string; readonly dstIPs?: string };
}

export interface NetfilterInputs {
  readonly family: Family;
  readonly nodeName: string;
  readonly node: Node | undefined;
  /** every Node (other-node set) */
  readonly nodes: readonly Node[];
  readonly subnets: readonly Subnet[];
  /** --service-cluster-ip-range plus ServiceCIDR objects */
  readonly serviceCidrs: readonly string[];
  /** --cluster-router */
  readonly clusterRouter: string;
  /** names of ipsets present on the node (kube-proxy's IPVS sets decide some rules) */
  readonly existingSets: ReadonlySet<string>;
  /** iptables supports --random-fully on MASQUERADE/SNAT */
  readonly randomFully: boolean;
}

type SubnetSpec = NonNullable<Subnet['spec']> & {
  natOutgoing?: boolean; gatewayType?: string; gatewayNode?: string; enableLb?: boolean; protocol?: string;
};
type SubnetStatus = { activateGateway?: string; natOutgoingPolicyRules?: NatPolicyRule[] };

const spec = (s: Subnet): SubnetSpec => (s.spec ?? {}) as SubnetSpec;
const status = (s: Subnet): SubnetStatus => (s.status ?? {}) as SubnetStatus;

/** The CIDR of the family in a subnet's cidrBlock, canonical, or undefined. */
export function cidrOf(s: Subnet, family: Family): string | undefined {
  for (const t of (spec(s).cidrBlock ?? '').split(',')) {
    const c = parseCidr(t.trim());
    if (c && c.family === family) return networkOf(c.ip, c.prefixLen);
  }
  return undefined;
}

/** Default-VPC subnets whose traffic the node NATs and counts: overlay, or underlay with a logical gateway. */
export function natScopeSubnets(subnets: readonly Subnet[], clusterRouter: string): Subnet[] {
  return subnets.filter((s) => {
    const x = spec(s);
    if ((x.vpc ?? clusterRouter) !== clusterRouter) return false;
    const p = x.provider ?? 'ovn';
    if (p !== 'ovn' && !p.endsWith('.ovn')) return false;
    return !x.vlan || !!x.logicalGateway;
  }).sort(byName);
}

/** `gatewayNode: "n1:10.0.0.1,n2"`: the SNAT IP this node uses for a centralized subnet, if it is a gateway of it. */
export function centralizedSnatIp(s: Subnet, nodeName: string, family: Family): string | undefined {
  const x = spec(s);
  if (x.gatewayType !== 'centralized' || !x.natOutgoing) return undefined;
  const entries = (x.gatewayNode ?? '').split(',').map((e) => e.trim()).filter(Boolean);
  const mine = entries.find((e) => e.split(':')[0] === nodeName);
  if (!mine) return undefined;
  // an explicit IP per gateway node ("node:ip"; IPv6 "node:ip6"): only that one, of the right family
  const ipText = mine.includes(':') ? mine.slice(mine.indexOf(':') + 1) : '';
  if (!ipText) return undefined;
  const ip = ipText.split('/')[0]!.split(',').map((t) => parseIp(t.trim())).find((p) => p?.family === family);
  if (!ip) return undefined;
  // several gateways without ECMP: only the active one SNATs
  const active = status(s).activateGateway;
  if (entries.length > 1 && active && active !== nodeName) return undefined;
  return formatIp(ip);
}

const q = (comment: string): string => (/^[A-Za-z0-9_-]+$/.test(comment) ? comment : `"${comment}"`);

/** The desired iptables tables and ipsets of one family. */
export function desiredNetfilter(i: NetfilterInputs): DesiredState {
  const f = i.family;
  const P = f === 4 ? 'ovn40' : 'ovn60';
  const kubeIpvs = (name: string): string => (f === 4 ? `KUBE-${name}` : `KUBE-6-${name}`);
  const rf = i.randomFully ? ' --random-fully' : '';
  const scope = natScopeSubnets(i.subnets, i.clusterRouter);
  const withCidr = scope.map((s) => ({ s, cidr: cidrOf(s, f) })).filter((x): x is { s: Subnet; cidr: string } => x.cidr !== undefined);
  const live = withCidr.filter((x) => !x.s.metadata?.deletionTimestamp);
  const natSubnets = live.filter((x) => spec(x.s).natOutgoing);
  const policySubnets = natSubnets.filter((x) => (status(x.s).natOutgoingPolicyRules ?? []).length > 0);
  const ownIps = internalIps(i.node);
  const nodeIp = f === 4 ? ownIps.v4 : ownIps.v6;
  const otherNodes = i.nodes.filter((n) => n.metadata?.name !== i.nodeName)
    .map((n) => (f === 4 ? internalIps(n).v4 : internalIps(n).v6)).filter((x): x is string => !!x);
  const services = i.serviceCidrs.map((c) => parseCidr(c)).filter((c) => c?.family === f).map((c) => networkOf(c!.ip, c!.prefixLen));

  // ---- ipsets (§5.7)
  const set = (id: string, type: string, members: Iterable<string>): DesiredSet =>
    ({ name: `${P}${id}`, type, family: f === 4 ? 'inet' : 'inet6', maxelem: 1048576, members: [...new Set(members)] });
  const natpr: DesiredSet[] = [];
  const natprRules: { subnet: Subnet; cidr: string; rules: { rule: NatPolicyRule; src: boolean; dst: boolean }[] }[] = [];
  for (const x of policySubnets) {
    const rules: { rule: NatPolicyRule; src: boolean; dst: boolean }[] = [];
    for (const r of status(x.s).natOutgoingPolicyRules ?? []) {
      const fam = (text: string | undefined): string[] => (text ?? '').split(',').map((t) => t.trim()).filter(Boolean)
        .map((t) => (t.includes('/') ? parseCidr(t) : (() => { const p = parseIp(t); return p ? { family: p.family, ip: p, prefixLen: p.family === 4 ? 32 : 128 } : undefined; })()))
        .filter((c) => c?.family === f).map((c) => networkOf(c!.ip, c!.prefixLen));
      const src = fam(r.match.srcIPs);
      const dst = fam(r.match.dstIPs);
      // a rule of the other family only, or matching nothing of this family, is skipped (upstream)
      if ((r.match.srcIPs && src.length === 0) || (r.match.dstIPs && dst.length === 0) || (src.length === 0 && dst.length === 0)) continue;
      if (src.length) natpr.push(set(`natpr-${r.ruleID}-src`, 'hash:net', src));
      if (dst.length) natpr.push(set(`natpr-${r.ruleID}-dst`, 'hash:net', dst));
      rules.push({ rule: r, src: src.length > 0, dst: dst.length > 0 });
    }
    natprRules.push({ subnet: x.s, cidr: x.cidr, rules });
  }
  const ipsets: DesiredSet[] = [
    set('services', 'hash:net', services),
    set('subnets', 'hash:net', withCidr.map((x) => x.cidr)),
    set('local-pod-ip-nat', 'hash:ip', []),
    set('subnets-nat', 'hash:net', natSubnets.map((x) => x.cidr)),
    set('subnets-distributed-gw', 'hash:net', live.filter((x) => spec(x.s).gatewayType !== 'centralized').map((x) => x.cidr)),
    set('other-node', 'hash:net', otherNodes.map((ip) => `${ip}/${f === 4 ? 32 : 128}`)),
    set('subnets-nat-policy', 'hash:net', policySubnets.map((x) => x.cidr)),
    ...natpr,
  ];

  // ---- nat (§5.8)
  const clusterIpSet = i.existingSets.has(kubeIpvs('CLUSTER-IP'));
  const prerouting: string[] = [clusterIpSet
    ? `-i ovn0 -m set --match-set ${P}subnets src -m set --match-set ${kubeIpvs('CLUSTER-IP')} dst,dst -j MARK --set-xmark ${MARK.svc}`
    : `-i ovn0 -m set --match-set ${P}subnets src -m set --match-set ${P}services dst -j MARK --set-xmark ${MARK.svc}`];
  if (nodeIp) {
    for (const p of ['tcp', 'udp']) {
      const nplSet = kubeIpvs(`NODE-PORT-LOCAL-${p.toUpperCase()}`);
      if (!i.existingSets.has(nplSet)) continue;
      prerouting.push(`-p ${p} -m addrtype --dst-type LOCAL -m set --match-set ${nplSet} dst -j MARK --set-xmark ${MARK.nodePortLocal}`);
      prerouting.push(`-p ${p} -m set --match-set ${P}other-node src -m set --match-set ${nplSet} dst -j MARK --set-xmark ${MARK.svc}`);
    }
  }
  const snatRules = live.map((x) => ({ ...x, ip: centralizedSnatIp(x.s, i.nodeName, f) })).filter((x) => x.ip !== undefined);
  const postrouting: string[] = [
    ...(nodeIp ? [`-m set --match-set ${P}services src -m set --match-set ${P}subnets dst -m mark --mark ${MARK.svc} -j SNAT --to-source ${nodeIp}${rf}`] : []),
    `-m mark --mark ${MARK.svc} -j OVN-MASQUERADE`,
    `-m set --match-set ${P}subnets src -m set --match-set ${P}subnets dst -j OVN-MASQUERADE`,
    `-m mark --mark ${MARK.nodePortLocal} -m set --match-set ${P}subnets-distributed-gw dst -j RETURN`,
    `-m mark --mark ${MARK.nodePortLocal} -j OVN-MASQUERADE`,
    '-p tcp -m tcp --tcp-flags SYN NONE -m conntrack --ctstate NEW -j RETURN',
    `-m set ! --match-set ${P}subnets src -m set ! --match-set ${P}other-node src -m set --match-set ${P}subnets-nat dst -j RETURN`,
    `-m set --match-set ${P}subnets-nat-policy src -m set ! --match-set ${P}subnets dst -j OVN-NAT-POLICY`,
    `-m mark --mark ${MARK.natPolicyNat} -j OVN-MASQUERADE`,
    `-m mark --mark ${MARK.natPolicyForward} -j RETURN`,
    ...snatRules.map((x) => `-s ${x.cidr} -m set ! --match-set ${P}subnets dst -j SNAT --to-source ${x.ip}${rf}`),
    `-m set --match-set ${P}subnets-nat src -m set ! --match-set ${P}subnets dst -j OVN-MASQUERADE`,
  ];
  const natChains: Record<string, string[]> = {
    'OVN-PREROUTING': prerouting,
    'OVN-POSTROUTING': postrouting,
    'OVN-MASQUERADE': ['-j MARK --set-xmark 0x0/0xffffffff', `-j MASQUERADE${rf}`],
    'OVN-NAT-POLICY': natprRules.map((x) => `-s ${x.cidr} -m comment --comment ${q(`natPolicySubnet-${x.subnet.metadata?.name ?? ''}`)} -j OVN-NAT-PSUBNET-${uid12(x.subnet)}`),
  };
  for (const x of natprRules) {
    natChains[`OVN-NAT-PSUBNET-${uid12(x.subnet)}`] = x.rules.map(({ rule, src, dst }) => [
      ...(src ? [`-m set --match-set ${P}natpr-${rule.ruleID}-src src`] : []),
      ...(dst ? [`-m set --match-set ${P}natpr-${rule.ruleID}-dst dst`] : []),
      `-j MARK --set-xmark ${rule.action === 'forward' ? MARK.natPolicyForward : MARK.natPolicyNat}`,
    ].join(' '));
  }
  const nat: DesiredTable = {
    chains: natChains,
    rules: [
      { chain: 'PREROUTING', rule: '-m comment --comment "kube-ovn prerouting rules" -j OVN-PREROUTING',
        position: { above: { jump: 'KUBE-SERVICES', comment: 'kubernetes service portals' } } },
      { chain: 'POSTROUTING', rule: '-m comment --comment "kube-ovn postrouting rules" -j OVN-POSTROUTING' },
    ],
  };

  // ---- mangle
  const mangle: DesiredTable = {
    chains: {
      'OVN-POSTROUTING': [
        `-p tcp -m set --match-set ${P}subnets src -m tcp --tcp-flags RST RST -m state --state INVALID -j DROP`,
        ...snatRules.map((x) => `-s ${x.cidr} -p tcp -m tcp --tcp-flags SYN NONE -m conntrack --ctstate NEW -m set ! --match-set ${P}subnets dst -j DROP`),
      ],
    },
    rules: [{ chain: 'POSTROUTING', rule: '-m comment --comment "kube-ovn postrouting rules" -j OVN-POSTROUTING' }],
  };

  // ---- filter: accepts at the top of INPUT/FORWARD, tunnel mark clearing in OUTPUT, per-subnet counters in FORWARD
  const accepts = [`-m set --match-set ${P}subnets src -j ACCEPT`, `-m set --match-set ${P}subnets dst -j ACCEPT`,
    `-m set --match-set ${P}services src -j ACCEPT`, `-m set --match-set ${P}services dst -j ACCEPT`];
  const filterRules: PlacedRule[] = [
    ...['INPUT', 'FORWARD'].flatMap((chain) => accepts.map((rule) => ({ chain, rule }))),
    ...['6081', '4789'].map((port) => ({ chain: 'OUTPUT', rule: `-p udp -m udp --dport ${port} -j MARK --set-xmark 0x0/0xffffffff` })),
  ];
  if (i.existingSets.has(kubeIpvs('CLUSTER-IP'))) {
    const reject = `-p tcp -m mark ! --mark ${MARK.svc} -m set --match-set ${P}services dst -m conntrack --ctstate NEW -j REJECT --reject-with ${f === 4 ? 'icmp-port-unreachable' : 'icmp6-port-unreachable'}`;
    filterRules.push({ chain: 'INPUT', rule: reject }, { chain: 'OUTPUT', rule: reject });
  }
  for (const x of live) {
    const name = x.s.metadata?.name ?? '';
    if (spec(x.s).vlan) continue; // counters for overlay subnets only
    const c = q(`ovn-subnet-gateway,${name}`);
    filterRules.push({ chain: 'FORWARD', rule: `-s ${x.cidr} -m comment --comment ${c}`, position: 'bottom' },
      { chain: 'FORWARD', rule: `-d ${x.cidr} -m comment --comment ${c}`, position: 'bottom' });
  }
  return { family: f, tables: { nat, mangle, filter: { rules: filterRules } }, ipsets };
}

/** The last 12 characters of the subnet's UID (upstream's NAT-policy chain suffix). */
export function uid12(s: Subnet): string {
  const uid = (s.metadata?.uid ?? s.metadata?.name ?? '').replace(/[^A-Za-z0-9-]/g, '');
  return uid.slice(-12);
}

/**
 * Our rules that carry no comment of ours (the filter accepts, the IPVS REJECT and its older variant without `-p
 * tcp`, the tunnel mark clearing): the netfilter diff recognises them only by exact text, so cleanups (non-primary
 * mode, the legacy back end) are told about them here. Canonical form, as the planner writes them.
 */
export function unmarkedRules(family: Family): { table: 'filter'; chain: string; rule: string }[] {
  const P = family === 4 ? 'ovn40' : 'ovn60';
  const rejectWith = family === 4 ? 'icmp-port-unreachable' : 'icmp6-port-unreachable';
  const accepts = [`-m set --match-set ${P}subnets src -j ACCEPT`, `-m set --match-set ${P}subnets dst -j ACCEPT`,
    `-m set --match-set ${P}services src -j ACCEPT`, `-m set --match-set ${P}services dst -j ACCEPT`];
  const rejects = [`-p tcp -m mark ! --mark ${MARK.svc} -m set --match-set ${P}services dst -m conntrack --ctstate NEW -j REJECT --reject-with ${rejectWith}`,
    `-m mark ! --mark ${MARK.svc} -m set --match-set ${P}services dst -m conntrack --ctstate NEW -j REJECT --reject-with ${rejectWith}`];
  return [
    ...['INPUT', 'FORWARD'].flatMap((chain) => accepts.map((rule) => ({ table: 'filter' as const, chain, rule }))),
    ...['INPUT', 'OUTPUT'].flatMap((chain) => rejects.map((rule) => ({ table: 'filter' as const, chain, rule }))),
    ...['6081', '4789'].map((port) => ({ table: 'filter' as const, chain: 'OUTPUT', rule: `-p udp -m udp --dport ${port} -j MARK --set-xmark 0x0/0xffffffff` })),
  ];
}
