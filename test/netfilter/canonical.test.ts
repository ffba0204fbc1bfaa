// canonicalRule against what real iptables-save printed for each input (recorded from iptables 1.8.9, legacy and
// nft agreeing; integration/netfilter/canonical.test.ts re-proves the rule shapes against the live tools), plus
// idempotence and every shape of shapes.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalRule } from '../../agent/src/datapath/netfilter/canonical.ts';
import { kubeOvnShapes } from './shapes.ts';

// [input as restored, family, what iptables-save printed]
const RECORDED: [string, 4 | 6, string][] = [
  ['-m comment --comment ovn-subnet-gateway,sub1 -s 10.16.0.0/16', 4, '-s 10.16.0.0/16 -m comment --comment "ovn-subnet-gateway,sub1"'],
  ['-s 10.16.0.1 -j ACCEPT', 4, '-s 10.16.0.1/32 -j ACCEPT'],
  ['-p udp -m udp --dport 6081 -j MARK --set-xmark 0x0', 4, '-p udp -m udp --dport 6081 -j MARK --set-xmark 0x0/0xffffffff'],
  ['-p tcp -m mark ! --mark 0x4000/0x4000 -m set --match-set ovn40services dst -m conntrack --ctstate NEW -j REJECT', 4,
    '-p tcp -m mark ! --mark 0x4000/0x4000 -m set --match-set ovn40services dst -m conntrack --ctstate NEW -j REJECT --reject-with icmp-port-unreachable'],
  ['-p tcp -m mark ! --mark 0x4000/0x4000 -m set --match-set ovn60services dst -m conntrack --ctstate NEW -j REJECT', 6,
    '-p tcp -m mark ! --mark 0x4000/0x4000 -m set --match-set ovn60services dst -m conntrack --ctstate NEW -j REJECT --reject-with icmp6-port-unreachable'],
  ['-m comment --comment "ab cd" -o eth0 -i lo ! -s fd00::1 -p udp -j ACCEPT', 6, '! -s fd00::1/128 -i lo -o eth0 -p udp -m comment --comment "ab cd" -j ACCEPT'],
  ['-m comment --comment "a\\"b" -s ::/0 -d ::ffff:1.2.3.4 -j ACCEPT', 6, '-d ::ffff:1.2.3.4/128 -m comment --comment "a\\"b" -j ACCEPT'],
  ['-m comment --comment kube-ovn -p all -j ACCEPT', 6, '-m comment --comment kube-ovn -j ACCEPT'],
  ['-m comment --comment "a,b" -p icmpv6 -j ACCEPT', 6, '-p ipv6-icmp -m comment --comment "a,b" -j ACCEPT'],
  ['-m comment --comment a+b -p udp -m udp --sport 53 --dport 1000:2000 -j ACCEPT', 6, '-p udp -m comment --comment "a+b" -m udp --sport 53 --dport 1000:2000 -j ACCEPT'],
  ['-m mark --mark 0x4000/0xffffffff -j ACCEPT', 6, '-m mark --mark 0x4000 -j ACCEPT'],
  ['-m mark --mark 0x0 -j ACCEPT', 6, '-m mark --mark 0x0 -j ACCEPT'],
  ['-m mark --mark 16384 -j ACCEPT', 6, '-m mark --mark 0x4000 -j ACCEPT'],
  ['-j MARK --set-mark 0x10', 6, '-j MARK --set-xmark 0x10/0xffffffff'],
  ['-j MARK --or-mark 0x10', 6, '-j MARK --set-xmark 0x10/0x10'],
  ['-j MARK --set-xmark 0x10/0x10', 6, '-j MARK --set-xmark 0x10/0x10'],
  ['-p udp --dport 4789 -j MARK --set-xmark 0', 6, '-p udp -m udp --dport 4789 -j MARK --set-xmark 0x0/0xffffffff'],
  ['-p 6 --tcp-flags SYN,RST,ACK SYN -j ACCEPT', 6, '-p tcp -m tcp --tcp-flags SYN,RST,ACK SYN -j ACCEPT'],
  ["-p tcp -m conntrack --ctstate ESTABLISHED,NEW,RELATED -m comment --comment '' -j ACCEPT", 6, '-p tcp -m conntrack --ctstate NEW,RELATED,ESTABLISHED -m comment --comment "\\\'\\\'" -j ACCEPT'],
  ['-m comment --comment "x\'y\\\\z" -j ACCEPT', 6, '-m comment --comment "x\\\'y\\\\z" -j ACCEPT'],
  ['-m set --match-set ovn60services dst,dst -j ACCEPT', 6, '-m set --match-set ovn60services dst,dst -j ACCEPT'],
  ['-m comment --comment "" -j ACCEPT', 4, '-m comment --comment "" -j ACCEPT'],
  ['-m comment --comment a.b -j ACCEPT', 4, '-m comment --comment "a.b" -j ACCEPT'],
  ['-m comment --comment a/b:c=d@e -j ACCEPT', 4, '-m comment --comment "a/b:c=d@e" -j ACCEPT'],
  ['-m comment --comment 0123 -j ACCEPT', 4, '-m comment --comment 0123 -j ACCEPT'],
  ['-m comment --comment "ümlaut" -j ACCEPT', 4, '-m comment --comment "ümlaut" -j ACCEPT'],
  ['-p tcp -m state --state RELATED,ESTABLISHED,INVALID -j ACCEPT', 4, '-p tcp -m state --state INVALID,RELATED,ESTABLISHED -j ACCEPT'],
  ['-p tcp --tcp-flags ALL NONE -j ACCEPT', 4, '-p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE -j ACCEPT'],
  ['-p tcp --syn -j ACCEPT', 4, '-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT'],
  ['-s 10.1.2.3/8 -d 1.2.3.4/255.255.255.0 -j ACCEPT', 4, '-s 10.0.0.0/8 -d 1.2.3.0/24 -j ACCEPT'],
  ['-s 0.0.0.0/0 -j ACCEPT', 4, '-j ACCEPT'],
  ['-p icmp -m addrtype --src-type LOCAL --dst-type LOCAL,UNICAST -j ACCEPT', 4, '-p icmp -m addrtype --src-type LOCAL --dst-type UNICAST,LOCAL -j ACCEPT'],
  ['-p udp -m multiport --dports 53,80:90 -j ACCEPT', 4, '-p udp -m multiport --dports 53,80:90 -j ACCEPT'],
  ['-p 17 -j ACCEPT', 4, '-p udp -j ACCEPT'],
  ['! -p tcp -j ACCEPT', 4, '! -p tcp -j ACCEPT'],
  ['-m set ! --match-set ovn40subnets src,dst -j ACCEPT', 4, '-m set ! --match-set ovn40subnets src,dst -j ACCEPT'],
  ['-m conntrack ! --ctstate NEW -j ACCEPT', 4, '-m conntrack ! --ctstate NEW -j ACCEPT'],
  ['-g KOANF-X', 4, '-g KOANF-X'],
  ['', 4, ''],
  ['-p tcp -j SNAT --to-source 1.2.3.4:1000-2000', 4, '-p tcp -j SNAT --to-source 1.2.3.4:1000-2000'],
  ['-p tcp -j DNAT --to-destination 1.2.3.4:80', 4, '-p tcp -j DNAT --to-destination 1.2.3.4:80'],
  ['-j SNAT --to-source 1.2.3.4-1.2.3.9 --random --persistent', 4, '-j SNAT --to-source 1.2.3.4-1.2.3.9 --random --persistent'],
  ['-p udp -j MASQUERADE --random-fully --random --to-ports 100-200', 4, '-p udp -j MASQUERADE --to-ports 100-200 --random --random-fully'],
  ['-j SNAT --persistent --random-fully --random --to-source 1.2.3.4', 4, '-j SNAT --to-source 1.2.3.4 --random --random-fully --persistent'],
  ['-p tcp -m tcp --dport 80 --sport 1:2 ! --syn -j ACCEPT', 4, '-p tcp -m tcp --sport 1:2 --dport 80 ! --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT'],
  ['-m set --match-set ovn40subnets src --return-nomatch ! --update-counters -j ACCEPT', 4, '-m set --match-set ovn40subnets src --return-nomatch ! --update-counters -j ACCEPT'],
  ['-m conntrack --ctstatus ASSURED --ctstate SNAT,DNAT,UNTRACKED -j ACCEPT', 4, '-m conntrack --ctstate UNTRACKED,SNAT,DNAT --ctstatus ASSURED -j ACCEPT'],
  ['-m addrtype --limit-iface-in --dst-type LOCAL -j ACCEPT', 4, '-m addrtype --dst-type LOCAL --limit-iface-in -j ACCEPT'],
  ['-m mark --mark 0x10/0x00000010 -j MARK --and-mark 0xff', 4, '-m mark --mark 0x10/0x10 -j MARK --set-xmark 0x0/0xffffff00'],
  ['-j MARK --xor-mark 0x0f', 4, '-j MARK --set-xmark 0xf/0x0'],
  ['-j MARK --set-mark 0x5/0x7', 4, '-j MARK --set-xmark 0x5/0x7'],
  ['-d 10.16.0.5/32 -p tcp -m tcp --dport 8080 -j TPROXY --on-port 8102 --on-ip 192.168.0.2 --tproxy-mark 0x90004/0x90004', 4,
    '-d 10.16.0.5/32 -p tcp -m tcp --dport 8080 -j TPROXY --on-port 8102 --on-ip 192.168.0.2 --tproxy-mark 0x90004/0x90004'],
  ['-p tcp -j TPROXY --tproxy-mark 0x1 --on-port 8102', 4, '-p tcp -j TPROXY --on-port 8102 --on-ip 0.0.0.0 --tproxy-mark 0x1/0xffffffff'],
  ['-m set --match-set ovn60services src -m set --match-set ovn60subnets dst -m mark --mark 0x4000/0x4000 -j SNAT --to-source FD00:0::2 --random-fully', 6,
    '-m set --match-set ovn60services src -m set --match-set ovn60subnets dst -m mark --mark 0x4000/0x4000 -j SNAT --to-source fd00::2 --random-fully'],
  ['-s fd00:10:16::0/64 -m set ! --match-set ovn60subnets dst -j SNAT --to-source fd00::2', 6, '-s fd00:10:16::/64 -m set ! --match-set ovn60subnets dst -j SNAT --to-source fd00::2'],
  ['-s fd00:10:16::5 -j RETURN', 6, '-s fd00:10:16::5/128 -j RETURN'],
];

test('canonicalRule gives what iptables-save printed for each recorded input', () => {
  for (const [input, family, saved] of RECORDED) assert.equal(canonicalRule(input, family), saved, input);
});

test('canonicalRule is the identity on save output (idempotent)', () => {
  for (const [, family, saved] of RECORDED) assert.equal(canonicalRule(saved, family), saved, saved);
});

test('every kube-ovn rule shape is already canonical, and upstream spellings normalise to it', () => {
  for (const family of [4, 6] as const) {
    for (const s of kubeOvnShapes(family).shapes) {
      assert.equal(canonicalRule(s.rule, family), s.rule, s.what);
      if (s.as) assert.equal(canonicalRule(s.as, family), s.rule, `${s.what}: ${s.as}`);
    }
  }
});

test('unknown modules and targets pass through in place, quoting preserved', () => {
  const r = '-m string --string "GET /" --algo bm -m physdev --physdev-in eth0 -j CT --zone 1';
  assert.equal(canonicalRule(r, 4), r);
});
