// Diff/apply scenarios, run on the fake (test/netfilter/diff.test.ts) and on the real tools in a namespace, legacy
// and nft (integration/netfilter/reconcile.test.ts). Foreign writers (kube-proxy, an admin) act through `iptables`
// and `ipset` one command at a time, as they would on a node.
import assert from 'node:assert/strict';
import type { NetfilterRunner } from '../../agent/src/datapath/netfilter/port.ts';
import { observe, reconcile, removeOwned } from '../../agent/src/datapath/netfilter/apply.ts';
import { plan, commentOf, jumpTarget, setsNamedBy } from '../../agent/src/datapath/netfilter/plan.ts';
import { parseIptablesSave, withoutCounters } from '../../agent/src/datapath/netfilter/iptables-codec.ts';
import { parseIpsetSave } from '../../agent/src/datapath/netfilter/ipset-codec.ts';
import type { DesiredState, Ownership } from '../../agent/src/datapath/netfilter/desired.ts';
import type { Family } from '../../agent/src/datapath/netfilter/types.ts';
import { sampleDesired, sampleOwnership, subnetCidr } from './sample.ts';

export interface ScenarioEnv {
  runner: NetfilterRunner;
  family: Family;
  /** One command as `iptables`/`ip6tables` would run it, e.g. ['-t', 'nat', '-I', 'POSTROUTING', '1', ...]. */
  iptables(args: readonly string[]): Promise<void>;
  /** One `ipset` command, e.g. ['del', 'ovn40subnets', '10.100.0.0/24']. */
  ipset(args: readonly string[]): Promise<void>;
}
export type Scenario = [name: string, run: (env: ScenarioEnv) => Promise<void>];

/** Wraps a runner to count writes (restores) — a no-op reconcile must not spawn one. */
export function counting(r: NetfilterRunner): NetfilterRunner & { writes: number; reads: number } {
  const c = {
    writes: 0, reads: 0,
    save: (f: Family) => { c.reads++; return r.save(f); },
    ipsetSave: () => { c.reads++; return r.ipsetSave(); },
    restore: (f: Family, i: string) => { c.writes++; return r.restore(f, i); },
    ipsetRestore: (i: string) => { c.writes++; return r.ipsetRestore(i); },
  };
  return c;
}

const S = (f: Family) => (f === 4 ? 'ovn40' : 'ovn60');
const foreignNet = (f: Family) => (f === 4 ? '198.51.100.0/24' : '2001:db8:1::/64');

async function natRules(env: ScenarioEnv, chain: string): Promise<string[]> {
  return parseIptablesSave(await env.runner.save(env.family)).get('nat')?.chains.get(chain)?.rules.map((r) => r.spec) ?? [];
}

async function converged(env: ScenarioEnv, d: DesiredState, own: Ownership): Promise<void> {
  const p = plan(d, await observe(env.runner, env.family, own), own);
  assert.equal(p.lines, 0, `not converged:\n${p.ipset}${[...p.iptables.values()].join('')}${p.ipsetAfter}`);
}

/** kube-proxy's nat layout: KUBE-SERVICES jumped to from PREROUTING with its comment. */
async function kubeProxy(env: ScenarioEnv): Promise<void> {
  await env.iptables(['-t', 'nat', '-N', 'KUBE-SERVICES']);
  await env.iptables(['-t', 'nat', '-I', 'PREROUTING', '1', '-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES']);
}

/** Every rule of ours left anywhere, by the marks the cleanup must find. */
function oursLeft(save: string, family: Family): string[] {
  const left: string[] = [];
  for (const t of parseIptablesSave(save).values()) {
    for (const c of t.chains.values()) {
      if (c.name.startsWith('OVN-')) left.push(`${t.name}/${c.name} (chain)`);
      for (const r of c.rules) {
        const cm = commentOf(r.spec) ?? '';
        if (cm.startsWith('kube-ovn ') || cm.startsWith('ovn-subnet-gateway,') || jumpTarget(r.spec)?.startsWith('OVN-')
          || setsNamedBy(r.spec).some((s) => s.startsWith(S(family))) || /--dport (6081|4789) -j MARK/.test(r.spec)) left.push(`${t.name}/${c.name}: ${r.spec}`);
      }
    }
  }
  return left;
}

export const scenarios: Scenario[] = [
  ['from empty one reconcile builds everything; the next emits 0 lines and spawns no write', async (env) => {
    const own = sampleOwnership(env.family);
    const d = sampleDesired(env.family, { subnets: 3 });
    const first = await reconcile(env.runner, d, own);
    assert.ok(first.lines > 40, `first pass wrote ${first.lines} lines`);
    assert.equal(first.passes, 1);
    const w = counting(env.runner);
    const again = await reconcile(w, d, own);
    assert.deepEqual({ lines: again.lines, passes: again.passes, writes: w.writes }, { lines: 0, passes: 0, writes: 0 });
    assert.equal(w.reads, 2, 'one iptables-save and one ipset save');
    const sets = parseIpsetSave(await env.runner.ipsetSave());
    assert.deepEqual([...sets.get(`${S(env.family)}subnets`)!.members].sort(), [0, 1, 2].map((i) => subnetCidr(env.family, i)).sort());
    assert.equal(sets.get(`${S(env.family)}subnets`)!.maxelem, 1048576);
  }],

  ['a foreign rule inserted first in nat POSTROUTING and a foreign chain survive 100 reconciles, unmoved', async (env) => {
    const own = sampleOwnership(env.family);
    const d = sampleDesired(env.family, { subnets: 3 });
    await kubeProxy(env);
    await reconcile(env.runner, d, own);
    await env.iptables(['-t', 'nat', '-N', 'KOANF-FOREIGN']);
    await env.iptables(['-t', 'nat', '-A', 'KOANF-FOREIGN', '-p', 'tcp', '-j', 'RETURN']);
    await env.iptables(['-t', 'nat', '-I', 'POSTROUTING', '1', '-s', foreignNet(env.family), '-j', 'KOANF-FOREIGN']);
    await env.iptables(['-t', 'filter', '-I', 'FORWARD', '1', '-s', foreignNet(env.family), '-j', 'DROP']);
    const before = withoutCounters(parseIptablesSave(await env.runner.save(env.family)));
    const post = before.get('nat')!.chains.get('POSTROUTING')!.rules.map((r) => r.spec);
    assert.deepEqual(post, [`-s ${foreignNet(env.family)} -j KOANF-FOREIGN`, '-m comment --comment "kube-ovn postrouting rules" -j OVN-POSTROUTING']);
    const w = counting(env.runner);
    for (let i = 0; i < 100; i++) {
      const r = await reconcile(w, d, own);
      assert.equal(r.lines, 0, `reconcile ${i} wrote ${r.lines} lines`);
    }
    assert.equal(w.writes, 0);
    assert.deepEqual(withoutCounters(parseIptablesSave(await env.runner.save(env.family))), before);
  }],

  ['our rule deleted with iptables -D (built-in chain, own chain, jump) is restored by the next apply, one line each', async (env) => {
    const own = sampleOwnership(env.family);
    const d = sampleDesired(env.family, { subnets: 3 });
    await reconcile(env.runner, d, own);
    const before = withoutCounters(parseIptablesSave(await env.runner.save(env.family)));
    await env.iptables(['-t', 'filter', '-D', 'INPUT', '-m', 'set', '--match-set', `${S(env.family)}services`, 'src', '-j', 'ACCEPT']);
    assert.equal((await reconcile(env.runner, d, own)).lines, 1);
    await env.iptables(['-t', 'nat', '-D', 'OVN-POSTROUTING', '3']);
    assert.equal((await reconcile(env.runner, d, own)).lines, 1);
    await env.iptables(['-t', 'nat', '-D', 'POSTROUTING', '-m', 'comment', '--comment', 'kube-ovn postrouting rules', '-j', 'OVN-POSTROUTING']);
    assert.equal((await reconcile(env.runner, d, own)).lines, 1);
    await env.iptables(['-t', 'filter', '-D', 'FORWARD', '-s', subnetCidr(env.family, 1), '-m', 'comment', '--comment', 'ovn-subnet-gateway,subnet-1']);
    assert.equal((await reconcile(env.runner, d, own)).lines, 1);
    const after = withoutCounters(parseIptablesSave(await env.runner.save(env.family)));
    // same rules; the restored filter accept is back at the top (it was inserted at position 1 originally too)
    for (const t of ['nat', 'mangle']) assert.deepEqual(after.get(t), before.get(t));
    assert.deepEqual(new Set(after.get('filter')!.chains.get('INPUT')!.rules.map((r) => r.spec)), new Set(before.get('filter')!.chains.get('INPUT')!.rules.map((r) => r.spec)));
    await converged(env, d, own);
  }],

  ['an ipset member removed with ipset del comes back; a foreign member added is removed', async (env) => {
    const own = sampleOwnership(env.family);
    const d = sampleDesired(env.family, { subnets: 3 });
    await reconcile(env.runner, d, own);
    await env.ipset(['del', `${S(env.family)}subnets`, subnetCidr(env.family, 2)]);
    await env.ipset(['add', `${S(env.family)}subnets-nat`, foreignNet(env.family)]);
    const r = await reconcile(env.runner, d, own);
    assert.equal(r.lines, 2);
    const sets = parseIpsetSave(await env.runner.ipsetSave());
    assert.equal(sets.get(`${S(env.family)}subnets`)!.members.has(subnetCidr(env.family, 2)), true);
    assert.equal(sets.get(`${S(env.family)}subnets-nat`)!.members.has(foreignNet(env.family)), false);
  }],

  ['a subnet added or removed costs only its lines (3 set members, 2 counter rules)', async (env) => {
    const own = sampleOwnership(env.family);
    await reconcile(env.runner, sampleDesired(env.family, { subnets: 3 }), own);
    const grow = plan(sampleDesired(env.family, { subnets: 4 }), await observe(env.runner, env.family, own), own);
    assert.equal(grow.lines, 5);
    assert.deepEqual([...grow.iptables.keys()], ['filter']);
    assert.match(grow.iptables.get('filter')!, /^\*filter\n-A FORWARD -s \S+ -m comment --comment "ovn-subnet-gateway,subnet-3"\n-A FORWARD -d \S+ -m comment --comment "ovn-subnet-gateway,subnet-3"\nCOMMIT\n$/);
    await reconcile(env.runner, sampleDesired(env.family, { subnets: 4 }), own);
    const shrink = plan(sampleDesired(env.family, { subnets: 2 }), await observe(env.runner, env.family, own), own);
    assert.equal(shrink.lines, 10);
    assert.equal(shrink.iptables.get('filter')!.split('\n').filter((l) => l.startsWith('-D FORWARD')).length, 4);
  }],

  ['our PREROUTING jump is moved above kube-proxy\'s KUBE-SERVICES jump, and nothing else moves', async (env) => {
    const own = sampleOwnership(env.family);
    const d = sampleDesired(env.family, { subnets: 1 });
    await env.iptables(['-t', 'nat', '-N', 'KOANF-FOREIGN']);
    await env.iptables(['-t', 'nat', '-A', 'PREROUTING', '-j', 'KOANF-FOREIGN']);
    await reconcile(env.runner, d, own); // no KUBE-SERVICES yet: the jump goes to the top
    const ours = '-m comment --comment "kube-ovn prerouting rules" -j OVN-PREROUTING';
    assert.deepEqual(await natRules(env, 'PREROUTING'), [ours, '-j KOANF-FOREIGN']);
    await kubeProxy(env); // kube-proxy inserts its jump at position 1, above ours
    await env.iptables(['-t', 'nat', '-I', 'PREROUTING', '1', '-s', foreignNet(env.family), '-j', 'RETURN']);
    const r = await reconcile(env.runner, d, own);
    assert.equal(r.lines, 2, 'one -D and one -I');
    assert.deepEqual(await natRules(env, 'PREROUTING'), [`-s ${foreignNet(env.family)} -j RETURN`, ours,
      '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES', '-j KOANF-FOREIGN']);
    await converged(env, d, own);
  }],

  ['duplicates of our rules are removed; the first copy keeps its place', async (env) => {
    const own = sampleOwnership(env.family);
    const d = sampleDesired(env.family, { subnets: 1 });
    await reconcile(env.runner, d, own);
    const input = async () => parseIptablesSave(await env.runner.save(env.family)).get('filter')!.chains.get('INPUT')!.rules.map((r) => r.spec);
    const inputBefore = await input();
    await env.iptables(['-t', 'nat', '-A', 'POSTROUTING', '-s', foreignNet(env.family), '-j', 'RETURN']);
    await env.iptables(['-t', 'nat', '-A', 'POSTROUTING', '-m', 'comment', '--comment', 'kube-ovn postrouting rules', '-j', 'OVN-POSTROUTING']);
    await env.iptables(['-t', 'filter', '-A', 'INPUT', '-m', 'set', '--match-set', `${S(env.family)}subnets`, 'src', '-j', 'ACCEPT']);
    await env.iptables(['-t', 'filter', '-A', 'INPUT', '-m', 'set', '--match-set', `${S(env.family)}subnets`, 'src', '-j', 'ACCEPT']);
    const r = await reconcile(env.runner, d, own);
    assert.equal(r.lines, 3 + 4, 'nat: -D -D -I; filter: -D -D -D -I');
    assert.deepEqual(await natRules(env, 'POSTROUTING'), ['-m comment --comment "kube-ovn postrouting rules" -j OVN-POSTROUTING', `-s ${foreignNet(env.family)} -j RETURN`]);
    assert.deepEqual(await input(), inputBefore);
    await converged(env, d, own);
  }],

  ['stale own chains and sets go: jumps removed, chains flushed and deleted, then sets destroyed', async (env) => {
    const own = sampleOwnership(env.family);
    const s = S(env.family);
    const inet = env.family === 4 ? 'inet' : 'inet6';
    const withPolicy = sampleDesired(env.family, { subnets: 2 });
    const nat = withPolicy.tables.nat!;
    const psub = 'OVN-NAT-PSUBNET-aaaabbbbcccc';
    withPolicy.tables.nat = { ...nat, chains: { ...(nat.chains as Record<string, string[]>),
      'OVN-NAT-POLICY': [`-s ${subnetCidr(env.family, 0)} -m comment --comment natPolicySubnet-subnet-0 -j ${psub}`],
      [psub]: [`-m set --match-set ${s}natpr-r1-src src -j MARK --set-xmark 0x90001/0x90001`] } };
    withPolicy.ipsets = [...withPolicy.ipsets!, { name: `${s}natpr-r1-src`, type: 'hash:net', family: inet, members: [subnetCidr(env.family, 0)] }];
    await reconcile(env.runner, withPolicy, own);
    assert.deepEqual(await natRules(env, psub), [`-m set --match-set ${s}natpr-r1-src src -j MARK --set-xmark 0x90001/0x90001`]);
    const d = sampleDesired(env.family, { subnets: 2 });
    const p = plan(d, await observe(env.runner, env.family, own), own);
    assert.equal(p.ipsetAfter, `destroy ${s}natpr-r1-src\n`);
    assert.match(p.iptables.get('nat')!, new RegExp(`-D OVN-NAT-POLICY 1\\n-F ${psub}\\n-X ${psub}\\n`));
    await reconcile(env.runner, d, own);
    const saved = parseIptablesSave(await env.runner.save(env.family));
    assert.equal(saved.get('nat')!.chains.has(psub), false);
    assert.equal(parseIpsetSave(await env.runner.ipsetSave()).has(`${s}natpr-r1-src`), false);
    await converged(env, d, own);
  }],

  ['a stale chain still jumped to by a foreign chain is flushed but kept; a stale set a foreign rule names is kept', async (env) => {
    const own = sampleOwnership(env.family);
    const s = S(env.family);
    const d = sampleDesired(env.family, { subnets: 1 });
    await reconcile(env.runner, d, own);
    await env.iptables(['-t', 'nat', '-N', 'OVN-NAT-PSUBNET-oldoldoldold']);
    await env.iptables(['-t', 'nat', '-A', 'OVN-NAT-PSUBNET-oldoldoldold', '-j', 'RETURN']);
    await env.iptables(['-t', 'nat', '-N', 'KOANF-FOREIGN']);
    await env.iptables(['-t', 'nat', '-A', 'KOANF-FOREIGN', '-j', 'OVN-NAT-PSUBNET-oldoldoldold']);
    await env.ipset(['create', `${s}stale`, 'hash:net', 'family', env.family === 4 ? 'inet' : 'inet6']);
    await env.iptables(['-t', 'filter', '-N', 'KOANF-X']);
    await env.iptables(['-t', 'filter', '-A', 'KOANF-X', '-m', 'set', '--match-set', `${s}stale`, 'src', '-j', 'RETURN']);
    const r = await reconcile(env.runner, d, own);
    assert.equal(r.lines, 1, '-F only');
    assert.ok(r.notes.some((n) => n.includes('OVN-NAT-PSUBNET-oldoldoldold')), r.notes.join('; '));
    assert.ok(r.notes.some((n) => n.includes(`${s}stale`)), r.notes.join('; '));
    assert.deepEqual(await natRules(env, 'OVN-NAT-PSUBNET-oldoldoldold'), []);
    assert.deepEqual(await natRules(env, 'KOANF-FOREIGN'), ['-j OVN-NAT-PSUBNET-oldoldoldold']);
    assert.equal(parseIpsetSave(await env.runner.ipsetSave()).has(`${s}stale`), true);
    assert.equal((await reconcile(env.runner, d, own)).lines, 0);
  }],

  ['a set whose maxelem changed is replaced through a temp set and swap; members and rules stay', async (env) => {
    const own = sampleOwnership(env.family);
    const s = S(env.family);
    const d = sampleDesired(env.family, { subnets: 2 });
    await reconcile(env.runner, d, own);
    const bigger = { ...d, ipsets: d.ipsets!.map((x) => (x.name === `${s}subnets` ? { ...x, maxelem: 2097152 } : x)) };
    const p = plan(bigger, await observe(env.runner, env.family, own), own);
    const tmp = `${env.family === 4 ? 'ovn41' : 'ovn61'}subnets`;
    assert.deepEqual(p.ipset.split('\n').filter(Boolean).map((l) => l.split(' ')[0]), ['create', 'add', 'add', 'swap', 'destroy']);
    assert.match(p.ipset, new RegExp(`^create ${tmp} hash:net .*maxelem 2097152\n(add ${tmp} \\S+\n){2}swap ${tmp} ${s}subnets\ndestroy ${tmp}\n$`));
    assert.equal(p.iptables.size, 0);
    await reconcile(env.runner, bigger, own);
    const set = parseIpsetSave(await env.runner.ipsetSave()).get(`${s}subnets`)!;
    assert.equal(set.maxelem, 2097152);
    assert.equal(set.members.size, 2);
    await converged(env, bigger, own);
  }],

  ['a set whose type changed is rebuilt: rules naming it held back, set re-created, rules put back (two passes)', async (env) => {
    const own = sampleOwnership(env.family);
    const s = S(env.family);
    const d = sampleDesired(env.family, { subnets: 2 });
    await reconcile(env.runner, d, own);
    const host = env.family === 4 ? '192.168.0.3' : 'fd00:100::3';
    const retyped = { ...d, ipsets: d.ipsets!.map((x) => (x.name === `${s}other-node` ? { ...x, type: 'hash:ip', members: [host] } : x)) };
    const r = await reconcile(env.runner, retyped, own);
    assert.equal(r.passes, 2);
    const set = parseIpsetSave(await env.runner.ipsetSave()).get(`${s}other-node`)!;
    assert.equal(set.type, 'hash:ip');
    assert.deepEqual([...set.members], [host]);
    assert.ok((await natRules(env, 'OVN-POSTROUTING')).some((x) => x.includes(`${s}other-node`)));
    await converged(env, retyped, own);
  }],

  ['full cleanup (non-primary mode) removes every rule, jump, chain and set of ours and leaves foreign ones', async (env) => {
    const own = sampleOwnership(env.family);
    const s = S(env.family);
    await kubeProxy(env);
    await env.iptables(['-t', 'nat', '-N', 'KOANF-FOREIGN']);
    await env.iptables(['-t', 'nat', '-A', 'KOANF-FOREIGN', '-j', 'RETURN']);
    await env.iptables(['-t', 'nat', '-A', 'POSTROUTING', '-s', foreignNet(env.family), '-j', 'KOANF-FOREIGN']);
    await env.iptables(['-t', 'filter', '-A', 'INPUT', '-s', foreignNet(env.family), '-j', 'ACCEPT']);
    await env.ipset(['create', 'koanf-foreign', 'hash:net', 'family', env.family === 4 ? 'inet' : 'inet6']);
    const foreignBefore = withoutCounters(parseIptablesSave(await env.runner.save(env.family)));
    await reconcile(env.runner, sampleDesired(env.family, { subnets: 3 }), own);
    assert.ok(oursLeft(await env.runner.save(env.family), env.family).length > 30);
    const r = await removeOwned(env.runner, env.family, own, { sets: true });
    assert.ok(r.lines > 30);
    const save = await env.runner.save(env.family);
    assert.deepEqual(oursLeft(save, env.family), []);
    // what was there before we came is there, in the same order (tables we created stay, empty)
    const after = withoutCounters(parseIptablesSave(save));
    for (const [t, table] of foreignBefore) assert.deepEqual(after.get(t), table, `table ${t}`);
    const sets = parseIpsetSave(await env.runner.ipsetSave());
    assert.deepEqual([...sets.keys()].filter((n) => n.startsWith(s)), []);
    assert.equal(sets.has('koanf-foreign'), true);
    assert.equal((await removeOwned(env.runner, env.family, own, { sets: true })).lines, 0);
  }],
];
