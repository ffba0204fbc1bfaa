// The node planner's own rules on real iptables (legacy and nft, IPv4 and IPv6, in a namespace of ours): a full
// desired state (NAT subnets, a centralized gateway, NAT policy rules, kube-proxy IPVS sets present) applies, and
// the next plan emits 0 lines, so a converged node feeds iptables-restore nothing. Then the non-primary cleanup
// leaves no rule, chain or set of ours and a foreign rule where it was.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupAll } from '../bed/netns.ts';
import { BACKENDS, freshNetns, iptables, runnerIn } from '../netfilter/ns.ts';
import { apply, observe, plan } from '../../agent/src/datapath/netfilter/index.ts';
import { desiredNetfilter, type NetfilterInputs } from '../../agent/src/node/netfilter-plan.ts';
import { ownership, removeAllOwned } from '../../agent/src/node/netfilter.ts';
import type { Node, Subnet } from '../../agent/src/k8s/types.ts';

after(() => cleanupAll());

const node = (name: string, v4: string, v6: string): Node => ({ metadata: { name }, status: { addresses: [{ type: 'InternalIP', address: v4 }, { type: 'InternalIP', address: v6 }] } });
const sub = (name: string, cidrBlock: string, spec: Record<string, unknown> = {}, status: Record<string, unknown> = {}): Subnet =>
  ({ metadata: { name, uid: `0000-${name}-uid-123456789abc` }, spec: { cidrBlock, vpc: 'ovn-cluster', provider: 'ovn', ...spec }, status });

function inputs(family: 4 | 6, existingSets: Set<string>): NetfilterInputs {
  return {
    family, nodeName: 'n1', node: node('n1', '172.30.0.1', 'fd00:172:30::1'),
    nodes: [node('n1', '172.30.0.1', 'fd00:172:30::1'), node('n2', '172.30.0.2', 'fd00:172:30::2')],
    subnets: [
      sub('ovn-default', '10.16.0.0/16,fd00:10:16::/64', { natOutgoing: true }),
      sub('join', '100.64.0.0/16,fd00:100:64::/112'),
      sub('central', '10.20.0.0/16,fd00:10:20::/64', { natOutgoing: true, gatewayType: 'centralized', gatewayNode: 'n1:172.30.0.100' }),
      sub('policy', '10.30.0.0/16,fd00:10:30::/64', { natOutgoing: true }, { natOutgoingPolicyRules: [
        { ruleID: 'r1', action: 'forward', match: { dstIPs: '192.168.0.0/16,fd00:192::/64' } },
        { ruleID: 'r2', action: 'nat', match: { srcIPs: '10.30.1.0/24', dstIPs: '8.8.8.8' } }] }),
      sub('underlay', '10.40.0.0/16', { vlan: 'v100' }),
    ],
    serviceCidrs: ['10.96.0.0/12', 'fd00:10:96::/112'], clusterRouter: 'ovn-cluster', existingSets, randomFully: true,
  };
}

for (const backend of BACKENDS) {
  test(`[${backend}] the node's rules and sets apply and converge to 0 lines; the non-primary cleanup removes all of ours`, async () => {
    const ns = await freshNetns();
    try {
      const r = runnerIn(ns, backend);
      // kube-proxy in IPVS mode: its sets switch on the IPVS variants of the rules
      await ns.exec(['ipset', 'create', 'KUBE-CLUSTER-IP', 'hash:ip,port']);
      await ns.exec(['ipset', 'create', 'KUBE-NODE-PORT-LOCAL-TCP', 'bitmap:port', 'range', '0-65535']);
      await iptables(ns, backend, 4, ['-t', 'nat', '-I', 'POSTROUTING', '-s', '192.0.2.0/24', '-j', 'RETURN']); // foreign
      for (const family of [4, 6] as const) {
        const own = ownership(family);
        const first = plan(desiredNetfilter(inputs(family, new Set((await observe(r, family, own)).ipsets.keys()))), await observe(r, family, own), own);
        assert.ok(first.lines > 50, `v${family}: ${first.lines} lines`);
        await apply(r, first);
        const o = await observe(r, family, own);
        const again = plan(desiredNetfilter(inputs(family, new Set(o.ipsets.keys()))), o, own);
        assert.equal(again.lines, 0, `v${family} not converged:\n${[...again.iptables.values()].join('')}${again.ipset}`);
        const save = await r.save(family);
        const P = family === 4 ? 'ovn40' : 'ovn60';
        if (family === 4) {
          assert.match(save, /-A OVN-POSTROUTING -s 10\.20\.0\.0\/16 -m set ! --match-set ovn40subnets dst -j SNAT --to-source 172\.30\.0\.100 --random-fully/);
          assert.match(save, /-A OVN-PREROUTING -i ovn0 -m set --match-set ovn40subnets src -m set --match-set KUBE-CLUSTER-IP dst,dst -j MARK --set-xmark 0x4000\/0x4000/);
          assert.match(save, /-A OVN-NAT-PSUBNET-123456789abc -m set --match-set ovn40natpr-r2-src src -m set --match-set ovn40natpr-r2-dst dst -j MARK --set-xmark 0x90001\/0x90001/);
          assert.match(save, /-A FORWARD -s 10\.16\.0\.0\/16 -m comment --comment "ovn-subnet-gateway,ovn-default"/);
        } else {
          assert.doesNotMatch(save, /-s fd00:10:20::\/64 .*SNAT/, 'the centralized gateway IP is IPv4 only');
          assert.match(save, /-A OVN-NAT-PSUBNET-123456789abc -m set --match-set ovn60natpr-r1-dst dst -j MARK --set-xmark 0x90002\/0x90002/);
        }
        assert.match(await r.ipsetSave(), new RegExp(`add ${P}subnets-nat-policy`));
      }
      await removeAllOwned([r], [4, 6]);
      for (const family of [4, 6] as const) {
        const save = await r.save(family);
        assert.doesNotMatch(save, /OVN-|ovn40|ovn60|kube-ovn|ovn-subnet-gateway/, save);
      }
      assert.doesNotMatch(await r.ipsetSave(), /ovn[46]0/);
      assert.match(await r.save(4), /-A POSTROUTING -s 192\.0\.2\.0\/24 -j RETURN/, 'the foreign rule stays');
    } finally {
      await ns.delete();
    }
  });
}
