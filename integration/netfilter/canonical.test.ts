// The canonical-form proof: every rule shape the agent installs (test/netfilter/shapes.ts: spec §5.8/§5.12, IPv4
// and IPv6) is restored into real iptables in a namespace of our own, legacy and nft, and iptables-save must
// print it back character for character as the shape's canonical text; rules restored in upstream's own
// spelling (`as`) must come back as canonicalRule(as). Then a desired state made of all shapes converges: after
// one apply, observe + plan emits 0 lines.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupAll } from '../bed/netns.ts';
import { BACKENDS, freshNetns, runnerIn } from './ns.ts';
import { kubeOvnShapes } from '../../test/netfilter/shapes.ts';
import { canonicalRule } from '../../agent/src/datapath/netfilter/canonical.ts';
import { parseIptablesSave, renderTable, ruleLine } from '../../agent/src/datapath/netfilter/iptables-codec.ts';
import { observe, apply } from '../../agent/src/datapath/netfilter/apply.ts';
import { plan } from '../../agent/src/datapath/netfilter/plan.ts';
import { kubeOvnOwnership, type DesiredState } from '../../agent/src/datapath/netfilter/desired.ts';
import type { TableName } from '../../agent/src/datapath/netfilter/types.ts';

after(() => cleanupAll());

for (const backend of BACKENDS) {
  for (const family of [4, 6] as const) {
    test(`${backend} IPv${family}: every shape round-trips through iptables-restore -> iptables-save unchanged`, async () => {
      const env = kubeOvnShapes(family);
      const ns = await freshNetns();
      const runner = runnerIn(ns, backend);
      await runner.ipsetRestore(env.sets);
      // one test chain per (shape, spelling) so the order of rules in the built-in chains does not matter
      const blocks = new Map<TableName, string[]>();
      const expect: { table: TableName; chain: string; want: string; what: string }[] = [];
      env.shapes.forEach((s, i) => {
        const lines = blocks.get(s.table) ?? [];
        blocks.set(s.table, lines);
        for (const [k, text] of [['c', s.rule], ...(s.as ? [['a', s.as]] : [])] as const) {
          const chain = `KOANF-${k}${i}`;
          lines.push(`:${chain} - [0:0]`, ruleLine('-A', chain, text));
          expect.push({ table: s.table, chain, want: s.rule, what: `${s.what} (${k === 'c' ? 'canonical' : 'as upstream writes it'})` });
        }
      });
      for (const [table, chains] of Object.entries(env.chains)) for (const c of chains) blocks.get(table as TableName)?.unshift(`:${c} - [0:0]`);
      await runner.restore(family, [...blocks].map(([t, l]) => renderTable(t, l)).join(''));
      const saved = parseIptablesSave(await runner.save(family));
      for (const e of expect) {
        const got = saved.get(e.table)?.chains.get(e.chain)?.rules.map((r) => r.spec);
        assert.deepEqual(got, [e.want], `${e.what}`);
      }
      // and the normaliser agrees with the tool on every spelling
      for (const s of env.shapes) {
        assert.equal(canonicalRule(s.rule, family), s.rule, `canonicalRule is the identity on ${s.what}`);
        if (s.as) assert.equal(canonicalRule(s.as, family), s.rule, `canonicalRule(${s.as})`);
      }
      await ns.delete();
    });

    test(`${backend} IPv${family}: all shapes as one desired state converge (apply once, then plan emits 0 lines)`, async () => {
      const env = kubeOvnShapes(family);
      const ns = await freshNetns();
      const runner = runnerIn(ns, backend);
      await runner.ipsetRestore(env.sets);
      await runner.restore(family, renderTable('nat', [':KUBE-SERVICES - [0:0]']));
      const own = kubeOvnOwnership(family);
      const tables: DesiredState['tables'] = {};
      for (const s of env.shapes) {
        const t = (tables[s.table] ??= { chains: {}, rules: [] });
        const spelled = s.as ?? s.rule; // hand the planner upstream's spelling: the diff must still converge
        if (s.chain.startsWith('OVN-')) {
          const chains = t.chains as Record<string, string[]>;
          (chains[s.chain] ??= []).push(spelled);
        } else (t.rules as { chain: string; rule: string }[]).push({ chain: s.chain, rule: spelled });
      }
      const desired: DesiredState = { family, tables };
      const first = plan(desired, await observe(runner, family, own), own);
      assert.ok(first.lines > 0);
      await apply(runner, first);
      const second = plan(desired, await observe(runner, family, own), own);
      assert.equal(second.lines, 0, `second plan not empty:\n${[...second.iptables.values()].join('')}`);
      await ns.delete();
    });
  }
}
