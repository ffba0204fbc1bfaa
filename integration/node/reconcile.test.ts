// iptables/ipset reconcile on the real bed (issue 12, "Reconcile"), all inside the node namespace: a rule of ours
// deleted with `iptables -D` comes back within the resync (`--node-resync-period` 2 s; bound 20 s for this loaded
// machine); a foreign rule inserted first in nat POSTROUTING and a foreign chain survive 100 reconcile passes unmoved,
// and those passes feed iptables-restore nothing; a member removed with `ipset del` comes back.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type BedNode } from '../bed/bed.ts';
import { cleanupAll } from '../bed/netns.ts';
import type { NodeAgent } from '../e2e/agent-harness.ts';
import { ipsetList, measure, metric, nodeBed, RESYNC_S, startAgent, type NodeBed, downNodeBed } from './lib.ts';

let nb: NodeBed;
let node: BedNode;
let agent: NodeAgent;
const BOUND_MS = 20_000;
const RUNS = 'kube_ovn_agent_reconcile_runs_total';
const V4 = 'reconciler="netfilter-v4"';

before(async () => {
  nb = await nodeBed();
  node = nb.bed.nodes[0]!;
  agent = await startAgent(nb.bed, node);
});

after(() => downNodeBed(nb, async () => {
  await agent?.stop();
}));

const ipt = (args: string[]) => node.ns.exec(['iptables', '-w', '5', ...args]);

for (const [where, table, rule] of [
  ['a built-in chain', 'filter', ['FORWARD', '-m', 'set', '--match-set', 'ovn40subnets', 'src', '-j', 'ACCEPT']],
  ['an own chain', 'nat', ['OVN-MASQUERADE', '-j', 'MASQUERADE', '--random-fully']],
  ['the jump into our chain', 'nat', ['POSTROUTING', '-m', 'comment', '--comment', 'kube-ovn postrouting rules', '-j', 'OVN-POSTROUTING']],
] as const) {
  test(`a rule of ours in ${where} deleted with iptables -D comes back within the resync`, async () => {
    const line = `-A ${rule.map((x) => (x.includes(' ') ? `"${x}"` : x)).join(' ')}`;
    // per table: mangle has the same POSTROUTING jump as nat
    const has = async () => (await node.ns.exec(['iptables-save', '-t', table])).stdout.split('\n').includes(line);
    assert.ok(await has(), `present before: ${line}`);
    // `iptables -D` succeeding is the deletion; a resync may put the rule back before anything could look
    await ipt(['-t', table, '-D', ...rule]);
    const ms = await measure(`${line} back`, has, BOUND_MS);
    console.log(`# ${where}: deleted rule back after ${ms} ms (resync ${RESYNC_S} s)`);
  });
}

test('a foreign rule first in nat POSTROUTING and a foreign chain survive 100 reconciles unmoved; 0 lines fed to iptables-restore', async () => {
  await ipt(['-t', 'nat', '-I', 'POSTROUTING', '1', '-s', '192.0.2.0/24', '-j', 'RETURN']);
  await ipt(['-t', 'nat', '-N', 'KOAND-FOREIGN']);
  await ipt(['-t', 'nat', '-A', 'KOAND-FOREIGN', '-d', '198.51.100.0/24', '-j', 'RETURN']);
  await ipt(['-t', 'nat', '-A', 'POSTROUTING', '-j', 'KOAND-FOREIGN']);
  const nat = async () => (await node.ns.exec(['iptables-save', '-t', 'nat'])).stdout.split('\n').filter((l) => /^(-A|:)/.test(l)).join('\n');
  const before = await nat();
  assert.match(before, /^-A POSTROUTING -s 192\.0\.2\.0\/24 -j RETURN\n-A POSTROUTING -m comment --comment "kube-ovn postrouting rules" -j OVN-POSTROUTING\n-A POSTROUTING -j KOAND-FOREIGN$/m);
  const lines0 = await metric(agent, 'kube_ovn_agent_iptables_restore_lines_total');
  const runs0 = await metric(agent, RUNS, V4);
  // each Subnet change wakes the netfilter reconcilers (changes during a pass coalesce into one more pass): keep
  // changing the subnet until 100 more passes ran
  const t0 = performance.now();
  for (let i = 0; (await metric(agent, RUNS, V4)) < runs0 + 100; i++) {
    await nb.bed.kube!.api.mergePatch('/apis/kubeovn.io/v1/subnets/ovn-default', { metadata: { annotations: { 'koand/tick': String(i) } } });
    if (performance.now() - t0 > 400_000) assert.fail(`only ${(await metric(agent, RUNS, V4)) - runs0} passes in 400 s`);
  }
  const runs = (await metric(agent, RUNS, V4)) - runs0;
  console.log(`# ${runs} netfilter-v4 passes in ${Math.round(performance.now() - t0)} ms`);
  assert.equal(await metric(agent, RUNS, `${V4},result="error"`), 0, 'no failed pass');
  assert.equal(await metric(agent, 'kube_ovn_agent_iptables_restore_lines_total'), lines0, 'nothing fed to iptables-restore');
  assert.equal(await nat(), before, 'the nat table is exactly as before, foreign rules and chain in place');
});

test('an ipset member removed with `ipset del` comes back', async () => {
  assert.match(await ipsetList(node, 'ovn40subnets'), /^10\.16\.0\.0\/16$/m);
  // `ipset del` succeeding is the deletion (as above)
  await node.ns.exec(['ipset', 'del', 'ovn40subnets', '10.16.0.0/16']);
  const ms = await measure('10.16.0.0/16 back in ovn40subnets', async () => /^10\.16\.0\.0\/16$/m.test(await ipsetList(node, 'ovn40subnets')), BOUND_MS);
  console.log(`# ipset member back after ${ms} ms (resync ${RESYNC_S} s)`);
});
