// A desired state shaped like a Kube-OVN node's (spec §5.7/§5.8) for N overlay subnets: the sets, the nat and
// mangle chains, the jumps (nat PREROUTING above kube-proxy's KUBE-SERVICES), the filter accepts, the tunnel mark
// clears and two `ovn-subnet-gateway,<subnet>` counter rules per subnet. Used by the diff tests (fake and real)
// and by bench/netfilter.bench.ts. Rules are written the way upstream spells them, not pre-canonicalised.
import { kubeOvnOwnership, type DesiredState, type Ownership, type PlacedRule } from '../../agent/src/datapath/netfilter/desired.ts';
import type { Family } from '../../agent/src/datapath/netfilter/types.ts';

export interface SampleOptions {
  subnets: number;
  /** Subnets with natOutgoing (default: all). */
  natSubnets?: number;
  /** Extra members of the services set. */
  services?: string[];
}

export function subnetCidr(family: Family, i: number): string {
  return family === 4 ? `10.${100 + (i >> 8)}.${i & 255}.0/24` : `fd00:10:${(i + 0x100).toString(16)}::/64`;
}

export function sampleDesired(family: Family, opts: SampleOptions): DesiredState {
  const S = family === 4 ? 'ovn40' : 'ovn60';
  const inet = family === 4 ? 'inet' : 'inet6';
  const nodeIp = family === 4 ? '192.168.0.2' : 'fd00:100::2';
  const cidrs = Array.from({ length: opts.subnets }, (_, i) => subnetCidr(family, i));
  const nat = cidrs.slice(0, opts.natSubnets ?? cidrs.length);
  const set = (id: string, members: string[]) => ({ name: `${S}${id}`, type: 'hash:net', family: inet as 'inet' | 'inet6', maxelem: 1048576, members });
  const filterRules: PlacedRule[] = [];
  for (const chain of ['INPUT', 'FORWARD']) {
    for (const [s, d] of [['subnets', 'src'], ['subnets', 'dst'], ['services', 'src'], ['services', 'dst']]) {
      filterRules.push({ chain, rule: `-m set --match-set ${S}${s} ${d} -j ACCEPT` });
    }
  }
  for (const port of ['6081', '4789']) filterRules.push({ chain: 'OUTPUT', rule: `-p udp -m udp --dport ${port} -j MARK --set-xmark 0x0` });
  cidrs.forEach((c, i) => {
    filterRules.push({ chain: 'FORWARD', rule: `-m comment --comment ovn-subnet-gateway,subnet-${i} -s ${c}`, position: 'bottom' });
    filterRules.push({ chain: 'FORWARD', rule: `-m comment --comment ovn-subnet-gateway,subnet-${i} -d ${c}`, position: 'bottom' });
  });
  return {
    family,
    ipsets: [
      set('services', opts.services ?? [family === 4 ? '10.96.0.0/12' : 'fd00:96::/112']),
      set('subnets', cidrs),
      set('subnets-nat', nat),
      set('subnets-distributed-gw', cidrs),
      set('other-node', [family === 4 ? '192.168.0.3' : 'fd00:100::3']),
      set('subnets-nat-policy', []),
      { name: `${S}local-pod-ip-nat`, type: 'hash:ip', family: inet, maxelem: 1048576, members: [] },
    ],
    tables: {
      nat: {
        chains: {
          'OVN-PREROUTING': [`-i ovn0 -m set --match-set ${S}subnets src -m set --match-set ${S}services dst -j MARK --set-xmark 0x4000/0x4000`],
          'OVN-POSTROUTING': [
            `-m set --match-set ${S}services src -m set --match-set ${S}subnets dst -m mark --mark 0x4000/0x4000 -j SNAT --to-source ${nodeIp} --random-fully`,
            '-m mark --mark 0x4000/0x4000 -j OVN-MASQUERADE',
            `-m set --match-set ${S}subnets src -m set --match-set ${S}subnets dst -j OVN-MASQUERADE`,
            `-m mark --mark 0x80000/0x80000 -m set --match-set ${S}subnets-distributed-gw dst -j RETURN`,
            '-m mark --mark 0x80000/0x80000 -j OVN-MASQUERADE',
            '-p tcp -m tcp --tcp-flags SYN NONE -m conntrack --ctstate NEW -j RETURN',
            `-m set ! --match-set ${S}subnets src -m set ! --match-set ${S}other-node src -m set --match-set ${S}subnets-nat dst -j RETURN`,
            `-m set --match-set ${S}subnets-nat-policy src -m set ! --match-set ${S}subnets dst -j OVN-NAT-POLICY`,
            '-m mark --mark 0x90001/0x90001 -j OVN-MASQUERADE',
            '-m mark --mark 0x90002/0x90002 -j RETURN',
            `-m set --match-set ${S}subnets-nat src -m set ! --match-set ${S}subnets dst -j OVN-MASQUERADE`,
          ],
          'OVN-MASQUERADE': ['-j MARK --set-xmark 0x0/0xffffffff', '-j MASQUERADE --random-fully'],
          'OVN-NAT-POLICY': [],
        },
        rules: [
          { chain: 'PREROUTING', rule: '-m comment --comment "kube-ovn prerouting rules" -j OVN-PREROUTING',
            position: { above: { jump: 'KUBE-SERVICES', comment: 'kubernetes service portals' } } },
          { chain: 'POSTROUTING', rule: '-m comment --comment "kube-ovn postrouting rules" -j OVN-POSTROUTING' },
        ],
      },
      mangle: {
        chains: { 'OVN-POSTROUTING': [`-p tcp -m set --match-set ${S}subnets src -m tcp --tcp-flags RST RST -m state --state INVALID -j DROP`] },
        rules: [{ chain: 'POSTROUTING', rule: '-m comment --comment "kube-ovn postrouting rules" -j OVN-POSTROUTING' }],
      },
      filter: { rules: filterRules },
    },
  };
}

/** Ownership for the sample: upstream's names plus the unmarked filter rules (exact text) so cleanup finds them. */
export function sampleOwnership(family: Family): Ownership {
  const d = sampleDesired(family, { subnets: 0 });
  const rules = (d.tables.filter?.rules ?? []).map((r) => ({ table: 'filter' as const, chain: r.chain, rule: r.rule }));
  return kubeOvnOwnership(family, rules);
}

/** Counts rules in `iptables-save` text (lines starting with `-A` or `[n:n] -A`). */
export function countRules(save: string): number {
  return save.split('\n').filter((l) => /^(\[\d+:\d+\] )?-A /.test(l)).length;
}
