// Every rule shape of upstream's node iptables (spec §5.8, §5.12), per family, in canonical form (as iptables-save
// prints it) and, where upstream spells it differently, in that spelling too (`as`). The canonical-form proof
// (integration/netfilter/canonical.test.ts) restores each into real iptables and expects `rule` back; the unit
// test expects canonicalRule(as) === rule and canonicalRule(rule) === rule.
import type { Family, TableName } from '../../agent/src/datapath/netfilter/types.ts';

export interface Shape { table: TableName; chain: string; rule: string; as?: string; what: string }

export interface ShapeEnv {
  family: Family;
  /** Sets the shapes name, with their create lines (ipset restore input). */
  sets: string;
  /** Chains the shapes live in or jump to, per table (own chains plus kube-proxy's KUBE-SERVICES). */
  chains: Partial<Record<TableName, string[]>>;
  shapes: Shape[];
}

export function kubeOvnShapes(family: Family): ShapeEnv {
  const v4 = family === 4;
  const S = v4 ? 'ovn40' : 'ovn60';
  const K = v4 ? 'KUBE-' : 'KUBE-6-';
  const inet = v4 ? 'inet' : 'inet6';
  const nodeIp = v4 ? '192.168.0.2' : 'fd00:100::2';
  const nodeIpSloppy = v4 ? '192.168.0.2' : 'FD00:100:0::2';
  const gwIp = v4 ? '172.18.0.2' : 'fd00:172:18::2';
  const cidr = v4 ? '10.16.0.0/16' : 'fd00:10:16::/64';
  const cidrSloppy = v4 ? '10.16.0.1/16' : 'fd00:10:16:0::1/64';
  const pod = v4 ? '10.16.0.5/32' : 'fd00:10:16::5/128';
  const podBare = v4 ? '10.16.0.5' : 'fd00:10:16::5';
  const reject = v4 ? 'icmp-port-unreachable' : 'icmp6-port-unreachable';
  const psubnet = 'OVN-NAT-PSUBNET-0123456789ab';
  const shapes: Shape[] = [];
  const add = (table: TableName, chain: string, what: string, rule: string, as?: string) =>
    shapes.push({ table, chain, rule, what, ...(as !== undefined && as !== rule ? { as } : {}) });

  // jumps into our chains (comment "kube-ovn <parent> rules")
  add('nat', 'PREROUTING', 'nat PREROUTING jump', '-m comment --comment "kube-ovn prerouting rules" -j OVN-PREROUTING');
  add('nat', 'POSTROUTING', 'nat POSTROUTING jump', '-m comment --comment "kube-ovn postrouting rules" -j OVN-POSTROUTING');
  add('mangle', 'POSTROUTING', 'mangle POSTROUTING jump', '-m comment --comment "kube-ovn postrouting rules" -j OVN-POSTROUTING');
  add('mangle', 'PREROUTING', 'mangle PREROUTING jump (tproxy)', '-m comment --comment "kube-ovn prerouting rules" -j OVN-PREROUTING');
  add('mangle', 'OUTPUT', 'mangle OUTPUT jump (tproxy)', '-m comment --comment "kube-ovn output rules" -j OVN-OUTPUT');

  // nat OVN-PREROUTING
  add('nat', 'OVN-PREROUTING', 'pod->service mark', `-i ovn0 -m set --match-set ${S}subnets src -m set --match-set ${S}services dst -j MARK --set-xmark 0x4000/0x4000`);
  add('nat', 'OVN-PREROUTING', 'pod->service mark (IPVS cluster-ip set)', `-i ovn0 -m set --match-set ${S}subnets src -m set --match-set ${K}CLUSTER-IP dst,dst -j MARK --set-xmark 0x4000/0x4000`);
  for (const p of ['tcp', 'udp']) {
    const P = p.toUpperCase();
    add('nat', 'OVN-PREROUTING', `NodePort local mark ${p}`, `-p ${p} -m addrtype --dst-type LOCAL -m set --match-set ${K}NODE-PORT-LOCAL-${P} dst -j MARK --set-xmark 0x80000/0x80000`);
    add('nat', 'OVN-PREROUTING', `NodePort other-node mark ${p}`, `-p ${p} -m set --match-set ${S}other-node src -m set --match-set ${K}NODE-PORT-LOCAL-${P} dst -j MARK --set-xmark 0x4000/0x4000`);
  }

  // nat OVN-POSTROUTING, items 1-12
  add('nat', 'OVN-POSTROUTING', '1 service->pod SNAT to node IP', `-m set --match-set ${S}services src -m set --match-set ${S}subnets dst -m mark --mark 0x4000/0x4000 -j SNAT --to-source ${nodeIp} --random-fully`,
    `-m set --match-set ${S}services src -m set --match-set ${S}subnets dst -m mark --mark 0x4000/0x4000 -j SNAT --random-fully --to-source ${nodeIpSloppy}`);
  add('nat', 'OVN-POSTROUTING', '2 marked -> masquerade', '-m mark --mark 0x4000/0x4000 -j OVN-MASQUERADE');
  add('nat', 'OVN-POSTROUTING', '3 hairpin', `-m set --match-set ${S}subnets src -m set --match-set ${S}subnets dst -j OVN-MASQUERADE`);
  add('nat', 'OVN-POSTROUTING', '4 local NodePort into distributed', `-m mark --mark 0x80000/0x80000 -m set --match-set ${S}subnets-distributed-gw dst -j RETURN`);
  add('nat', 'OVN-POSTROUTING', '5 local NodePort masquerade', '-m mark --mark 0x80000/0x80000 -j OVN-MASQUERADE');
  add('nat', 'OVN-POSTROUTING', '6 no NAT mid-stream', '-p tcp -m tcp --tcp-flags SYN NONE -m conntrack --ctstate NEW -j RETURN',
    '-p tcp --tcp-flags SYN NONE -m conntrack --ctstate NEW -j RETURN');
  add('nat', 'OVN-POSTROUTING', '7 routed into NAT subnets', `-m set ! --match-set ${S}subnets src -m set ! --match-set ${S}other-node src -m set --match-set ${S}subnets-nat dst -j RETURN`);
  add('nat', 'OVN-POSTROUTING', '8 NAT policy dispatch', `-m set --match-set ${S}subnets-nat-policy src -m set ! --match-set ${S}subnets dst -j OVN-NAT-POLICY`);
  add('nat', 'OVN-POSTROUTING', '9 policy nat', '-m mark --mark 0x90001/0x90001 -j OVN-MASQUERADE');
  add('nat', 'OVN-POSTROUTING', '10 policy forward', '-m mark --mark 0x90002/0x90002 -j RETURN');
  add('nat', 'OVN-POSTROUTING', '11 centralized gateway SNAT', `-s ${cidr} -m set ! --match-set ${S}subnets dst -j SNAT --to-source ${gwIp} --random-fully`,
    `-s ${cidrSloppy} -m set ! --match-set ${S}subnets dst -j SNAT --to-source ${gwIp} --random-fully`);
  add('nat', 'OVN-POSTROUTING', '12 NAT outgoing', `-m set --match-set ${S}subnets-nat src -m set ! --match-set ${S}subnets dst -j OVN-MASQUERADE`);
  add('nat', 'OVN-POSTROUTING', 'SNAT without --random-fully (old iptables)', `-s ${cidr} -m set ! --match-set ${S}subnets dst -j SNAT --to-source ${gwIp}`);

  // nat OVN-MASQUERADE, OVN-NAT-POLICY, OVN-NAT-PSUBNET-*
  add('nat', 'OVN-MASQUERADE', 'clear mark', '-j MARK --set-xmark 0x0/0xffffffff', '-j MARK --set-xmark 0x0');
  add('nat', 'OVN-MASQUERADE', 'masquerade', '-j MASQUERADE --random-fully');
  add('nat', 'OVN-MASQUERADE', 'masquerade (old iptables)', '-j MASQUERADE');
  add('nat', 'OVN-NAT-POLICY', 'per-subnet dispatch', `-s ${cidr} -m comment --comment natPolicySubnet-net1 -j ${psubnet}`,
    `-m comment --comment natPolicySubnet-net1 -s ${cidr} -j ${psubnet}`);
  add('nat', psubnet, 'rule src+dst nat', `-m set --match-set ${S}natpr-r1-src src -m set --match-set ${S}natpr-r1-dst dst -j MARK --set-xmark 0x90001/0x90001`);
  add('nat', psubnet, 'rule src forward', `-m set --match-set ${S}natpr-r2-src src -j MARK --set-xmark 0x90002/0x90002`);
  add('nat', psubnet, 'rule dst nat', `-m set --match-set ${S}natpr-r3-dst dst -j MARK --set-xmark 0x90001/0x90001`);

  // mangle
  add('mangle', 'OVN-POSTROUTING', 'drop invalid RST', `-p tcp -m set --match-set ${S}subnets src -m tcp --tcp-flags RST RST -m state --state INVALID -j DROP`);
  add('mangle', 'OVN-POSTROUTING', 'drop orphan non-SYN', `-s ${cidr} -p tcp -m tcp --tcp-flags SYN NONE -m conntrack --ctstate NEW -m set ! --match-set ${S}subnets dst -j DROP`,
    `-p tcp -s ${cidr} -m tcp --tcp-flags SYN NONE -m conntrack --ctstate NEW -m set ! --match-set ${S}subnets dst -j DROP`);
  add('mangle', 'OVN-PREROUTING', 'tproxy', `-d ${pod} -p tcp -m tcp --dport 8080 -j TPROXY --on-port 8102 --on-ip ${nodeIp} --tproxy-mark 0x90004/0x90004`,
    `-d ${podBare} -p tcp -m tcp --dport 8080 -j TPROXY --on-port 8102 --on-ip ${nodeIp} --tproxy-mark 0x90004/0x90004`);
  add('mangle', 'OVN-OUTPUT', 'tproxy mark', `-d ${pod} -p tcp -m tcp --dport 8080 -j MARK --set-xmark 0x90003/0x90003`);

  // filter
  for (const chain of ['INPUT', 'FORWARD']) {
    add('filter', chain, `${chain} subnets src accept`, `-m set --match-set ${S}subnets src -j ACCEPT`);
    add('filter', chain, `${chain} subnets dst accept`, `-m set --match-set ${S}subnets dst -j ACCEPT`);
    add('filter', chain, `${chain} services src accept`, `-m set --match-set ${S}services src -j ACCEPT`);
    add('filter', chain, `${chain} services dst accept`, `-m set --match-set ${S}services dst -j ACCEPT`);
  }
  for (const chain of ['INPUT', 'OUTPUT']) {
    add('filter', chain, `${chain} reject unknown service port`, `-p tcp -m mark ! --mark 0x4000/0x4000 -m set --match-set ${S}services dst -m conntrack --ctstate NEW -j REJECT --reject-with ${reject}`,
      `-p tcp -m mark ! --mark 0x4000/0x4000 -m set --match-set ${S}services dst -m conntrack --ctstate NEW -j REJECT`);
    add('filter', chain, `${chain} reject, old variant without -p tcp`, `-m mark ! --mark 0x4000/0x4000 -m set --match-set ${S}services dst -m conntrack --ctstate NEW -j REJECT --reject-with ${reject}`,
      `-m mark ! --mark 0x4000/0x4000 -m set --match-set ${S}services dst -m conntrack --ctstate NEW -j REJECT`);
  }
  for (const port of ['6081', '4789']) {
    add('filter', 'OUTPUT', `clear mark on tunnel port ${port}`, `-p udp -m udp --dport ${port} -j MARK --set-xmark 0x0/0xffffffff`,
      `-p udp -m udp --dport ${port} -j MARK --set-xmark 0x0`);
  }
  add('filter', 'FORWARD', 'subnet gateway counter src', `-s ${cidr} -m comment --comment "ovn-subnet-gateway,net1"`,
    `-m comment --comment ovn-subnet-gateway,net1 -s ${cidr}`);
  add('filter', 'FORWARD', 'subnet gateway counter dst', `-d ${cidr} -m comment --comment "ovn-subnet-gateway,net1"`,
    `-m comment --comment ovn-subnet-gateway,net1 -d ${cidr}`);

  const hashNet = ['subnets', 'services', 'other-node', 'subnets-nat', 'subnets-distributed-gw', 'subnets-nat-policy',
    'natpr-r1-src', 'natpr-r1-dst', 'natpr-r2-src', 'natpr-r3-dst'];
  const sets = [
    ...hashNet.map((n) => `create ${S}${n} hash:net family ${inet} maxelem 1048576`),
    `create ${K}CLUSTER-IP hash:ip,port family ${inet}`,
    `create ${K}NODE-PORT-LOCAL-TCP bitmap:port range 0-65535`,
    `create ${K}NODE-PORT-LOCAL-UDP bitmap:port range 0-65535`,
  ].join('\n') + '\n';
  return {
    family, sets, shapes,
    chains: {
      nat: ['OVN-PREROUTING', 'OVN-POSTROUTING', 'OVN-MASQUERADE', 'OVN-NAT-POLICY', psubnet, 'KUBE-SERVICES'],
      mangle: ['OVN-PREROUTING', 'OVN-POSTROUTING', 'OVN-OUTPUT'],
    },
  };
}
