// plan() as a pure function: exact batches for small cases (the output format), own-chain edits, ownership rules
// and refusals. The behavioural scenarios (fake and real) are in scenarios.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { plan } from '../../agent/src/datapath/netfilter/plan.ts';
import { parseIptablesSave } from '../../agent/src/datapath/netfilter/iptables-codec.ts';
import { parseIpsetSave } from '../../agent/src/datapath/netfilter/ipset-codec.ts';
import { kubeOvnOwnership, type DesiredState } from '../../agent/src/datapath/netfilter/desired.ts';
import type { Observed } from '../../agent/src/datapath/netfilter/types.ts';

const own4 = kubeOvnOwnership(4);
const obs = (save: string, sets = ''): Observed => ({ family: 4, iptables: parseIptablesSave(save), ipsets: parseIpsetSave(sets) });
const EMPTY = obs('');

test('from empty: exact batches (sets first, one block per table, declarations, own chains, then jumps)', () => {
  const d: DesiredState = {
    family: 4,
    ipsets: [{ name: 'ovn40subnets', type: 'hash:net', family: 'inet', maxelem: 1048576, members: ['10.16.0.1/16', '10.17.0.0/16'] }],
    tables: {
      nat: {
        chains: { 'OVN-POSTROUTING': ['-m set --match-set ovn40subnets src -j OVN-MASQUERADE'], 'OVN-MASQUERADE': ['-j MASQUERADE --random-fully'] },
        rules: [{ chain: 'POSTROUTING', rule: '-m comment --comment "kube-ovn postrouting rules" -j OVN-POSTROUTING' }],
      },
      filter: { rules: [
        { chain: 'FORWARD', rule: '-m set --match-set ovn40subnets src -j ACCEPT' },
        { chain: 'FORWARD', rule: '-m set --match-set ovn40subnets dst -j ACCEPT' },
        { chain: 'FORWARD', rule: '-m comment --comment ovn-subnet-gateway,a -s 10.16.0.0/16', position: 'bottom' },
      ] },
    },
  };
  const p = plan(d, EMPTY, own4);
  assert.equal(p.ipset, 'create ovn40subnets hash:net family inet maxelem 1048576\nadd ovn40subnets 10.16.0.0/16\nadd ovn40subnets 10.17.0.0/16\n');
  assert.equal(p.ipsetAfter, '');
  assert.deepEqual([...p.iptables.keys()], ['filter', 'nat']);
  assert.equal(p.iptables.get('nat'), '*nat\n:OVN-POSTROUTING - [0:0]\n:OVN-MASQUERADE - [0:0]\n' +
    '-A OVN-POSTROUTING -m set --match-set ovn40subnets src -j OVN-MASQUERADE\n-A OVN-MASQUERADE -j MASQUERADE --random-fully\n' +
    '-I POSTROUTING 1 -m comment --comment "kube-ovn postrouting rules" -j OVN-POSTROUTING\nCOMMIT\n');
  assert.equal(p.iptables.get('filter'), '*filter\n-I FORWARD 1 -m set --match-set ovn40subnets dst -j ACCEPT\n' +
    '-I FORWARD 1 -m set --match-set ovn40subnets src -j ACCEPT\n-A FORWARD -s 10.16.0.0/16 -m comment --comment "ovn-subnet-gateway,a"\nCOMMIT\n');
  assert.equal(p.lines, 3 + 5 + 3);
  assert.equal(p.again, false);
});

test('own chain edits keep the common prefix and suffix: one insert, one delete, one replace', () => {
  const have = (rules: string[]) => obs(`*nat\n:OVN-NAT-POLICY - [0:0]\n${rules.map((r) => `-A OVN-NAT-POLICY ${r}`).join('\n')}\nCOMMIT\n`);
  const want = (rules: string[]): DesiredState => ({ family: 4, tables: { nat: { chains: { 'OVN-NAT-POLICY': rules } } } });
  const [a, b, c] = ['-s 10.1.0.0/16 -j RETURN', '-s 10.2.0.0/16 -j RETURN', '-s 10.3.0.0/16 -j RETURN'];
  assert.equal(plan(want([a, b, c]), have([a, c]), own4).iptables.get('nat'), `*nat\n-I OVN-NAT-POLICY 2 ${b}\nCOMMIT\n`);
  assert.equal(plan(want([a, c]), have([a, b, c]), own4).iptables.get('nat'), '*nat\n-D OVN-NAT-POLICY 2\nCOMMIT\n');
  assert.equal(plan(want([a, '-s 10.9.0.0/16 -j RETURN', c]), have([a, b, c]), own4).iptables.get('nat'), '*nat\n-R OVN-NAT-POLICY 2 -s 10.9.0.0/16 -j RETURN\nCOMMIT\n');
  assert.equal(plan(want([]), have([a, b]), own4).iptables.get('nat'), '*nat\n-D OVN-NAT-POLICY 1\n-D OVN-NAT-POLICY 1\nCOMMIT\n');
  assert.equal(plan(want([a, b, c]), have([a, b, c]), own4).lines, 0);
});

test('a desired rule spelled differently from save output still matches (canonicalised before comparing)', () => {
  const o = obs('*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -p udp -m udp --dport 6081 -j MARK --set-xmark 0x0/0xffffffff\nCOMMIT\n');
  const d: DesiredState = { family: 4, tables: { filter: { rules: [{ chain: 'OUTPUT', rule: '-p udp --dport 6081 -j MARK --set-xmark 0' }] } } };
  assert.equal(plan(d, o, own4).lines, 0);
});

test('ownership: unmarked stale rules go only when listed or matched; foreign rules never', () => {
  const o = obs('*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -s 10.0.0.0/8 -j SNAT --to-source 1.2.3.4\n-A POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE\n' +
    '-A POSTROUTING -s 10.9.0.0/16 -j RETURN\nCOMMIT\n');
  const d: DesiredState = { family: 4, tables: {} };
  assert.equal(plan(d, o, own4).lines, 0);
  const listed = kubeOvnOwnership(4, [{ table: 'nat', chain: 'POSTROUTING', rule: '-m mark --mark 0x4000/0x4000 -j MASQUERADE' }]);
  assert.equal(plan(d, o, listed).iptables.get('nat'), '*nat\n-D POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE\nCOMMIT\n');
  const matched = { ...own4, match: (t: string, c: string, s: string) => t === 'nat' && c === 'POSTROUTING' && s.includes('--to-source') };
  assert.equal(plan(d, o, matched).iptables.get('nat'), '*nat\n-D POSTROUTING -s 10.0.0.0/8 -j SNAT --to-source 1.2.3.4\nCOMMIT\n');
});

test('rules of foreign user chains are never ours, even with our comment; jumps to our chains count only in built-in chains', () => {
  const o = obs('*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-X - [0:0]\n:OVN-PREROUTING - [0:0]\n' +
    '-A KUBE-X -m comment --comment "kube-ovn prerouting rules" -j OVN-PREROUTING\n-A PREROUTING -j OVN-PREROUTING\nCOMMIT\n');
  const p = plan({ family: 4, tables: {} }, o, own4);
  assert.equal(p.iptables.get('nat'), '*nat\n-D PREROUTING -j OVN-PREROUTING\nCOMMIT\n');
  assert.ok(p.notes.some((n) => n.includes('OVN-PREROUTING is stale but still jumped to')), p.notes.join('; '));
});

test('refusals: desired chains and sets must be owned; rules for owned chains go in chains; families must agree', () => {
  assert.throws(() => plan({ family: 4, tables: { nat: { chains: { 'KUBE-X': [] } } } }, EMPTY, own4), /not owned/);
  assert.throws(() => plan({ family: 4, tables: { nat: { rules: [{ chain: 'OVN-POSTROUTING', rule: '-j RETURN' }] } } }, EMPTY, own4), /owned chain/);
  assert.throws(() => plan({ family: 4, tables: {}, ipsets: [{ name: 'koanf', type: 'hash:net', members: [] }] }, EMPTY, own4), /not owned/);
  assert.throws(() => plan({ family: 4, tables: {}, ipsets: [{ name: 'ovn40x', type: 'hash:net', family: 'inet6', members: [] }] }, EMPTY, own4), /inet6 in an IPv4 plan/);
  assert.throws(() => plan({ family: 4, tables: {}, ipsets: [{ name: 'ovn40x', type: 'hash:net', members: ['fd00::/64'] }] }, EMPTY, own4), /not an IPv4/);
  assert.throws(() => plan({ family: 6, tables: {} }, EMPTY, own4), /IPv6 vs observed IPv4/);
});

test('a rule for a foreign chain that does not exist is not placed (noted)', () => {
  const p = plan({ family: 4, tables: { nat: { rules: [{ chain: 'KUBE-SERVICES', rule: '-j RETURN' }] } } }, EMPTY, own4);
  assert.equal(p.lines, 0);
  assert.match(p.notes.join(), /KUBE-SERVICES does not exist/);
});

test('sets: unmanaged when desired.ipsets is absent; stale owned sets destroyed after iptables; temp leftovers too', () => {
  const sets = 'create ovn40old hash:net family inet hashsize 1024 maxelem 65536\ncreate ovn41subnets hash:net family inet hashsize 1024 maxelem 65536\n' +
    'create ovn60subnets hash:net family inet6 hashsize 1024 maxelem 65536\ncreate KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536\n';
  assert.equal(plan({ family: 4, tables: {} }, obs('', sets), own4).lines, 0);
  const p = plan({ family: 4, tables: {}, ipsets: [] }, obs('', sets), own4);
  assert.equal(p.ipset, '');
  assert.equal(p.ipsetAfter, 'destroy ovn40old\ndestroy ovn41subnets\n');
});

test('members: additions and removals only, in canonical form', () => {
  const sets = 'create ovn40subnets hash:net family inet hashsize 1024 maxelem 1048576\nadd ovn40subnets 10.16.0.0/16\nadd ovn40subnets 10.0.0.1\n';
  const p = plan({ family: 4, tables: {}, ipsets: [{ name: 'ovn40subnets', type: 'hash:net', maxelem: 1048576, members: ['10.16.0.0/16', '10.18.0.9/16'] }] }, obs('', sets), own4);
  assert.equal(p.ipset, 'del ovn40subnets 10.0.0.1\nadd ovn40subnets 10.18.0.0/16\n');
  assert.equal(p.lines, 2);
});
