// Back-end detection on this machine, probed from inside a namespace of our own, and the one-time cleanup of our
// rules left in the legacy tables of an nft node (spec §5.8): legacy rules of ours go, the sets (shared with the
// nft rules in use) and the nft rules stay.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupAll } from '../bed/netns.ts';
import { freshNetns, inNetns, runnerIn } from './ns.ts';
import { decideBackend, hostProbeDeps, probeBackend, type ProbeDeps } from '../../agent/src/datapath/netfilter/backend.ts';
import { execArgv } from '../../agent/src/datapath/netfilter/runner.ts';
import { reconcile, removeOwned } from '../../agent/src/datapath/netfilter/apply.ts';
import { parseIptablesSave } from '../../agent/src/datapath/netfilter/iptables-codec.ts';
import { parseIpsetSave } from '../../agent/src/datapath/netfilter/ipset-codec.ts';
import { sampleDesired, sampleOwnership } from '../../test/netfilter/sample.ts';
import type { Netns } from '../bed/netns.ts';

after(() => cleanupAll());

function depsIn(ns: Netns): ProbeDeps {
  return {
    run: async (argv) => { const r = await execArgv([...inNetns(ns), ...argv], undefined, 10_000); return r.code === 0 ? r.stdout : ''; },
    read: async (path) => { const r = await execArgv([...inNetns(ns), 'cat', path], undefined, 10_000); return r.code === 0 ? r.stdout : null; },
    which: hostProbeDeps.which,
  };
}

test('this test bed: `iptables` is nft (Debian alternative); a fresh netns has no legacy table to clean', async () => {
  const ns = await freshNetns();
  const d = decideBackend(await probeBackend(depsIn(ns)));
  assert.equal(d.backend, 'nft', d.reason);
  assert.deepEqual(d.cleanupLegacy, []);
  await ns.delete();
});

test('nft node with rules of ours left in legacy tables: probe asks for the cleanup; it removes only those', async () => {
  const ns = await freshNetns();
  const own = sampleOwnership(4);
  const desired = sampleDesired(4, { subnets: 3 });
  // an older version ran in legacy mode, the node then moved to nft and the agent runs there now
  await reconcile(runnerIn(ns, 'legacy'), desired, own);
  await reconcile(runnerIn(ns, 'nft'), desired, own);
  await execArgv([...inNetns(ns), 'iptables-legacy', '-w', '5', '-t', 'nat', '-A', 'POSTROUTING', '-j', 'RETURN'], undefined, 10_000);
  const d = decideBackend(await probeBackend(depsIn(ns)));
  assert.equal(d.backend, 'nft');
  assert.deepEqual(d.cleanupLegacy, [4]);
  const r = await removeOwned(runnerIn(ns, 'legacy'), 4, own, { sets: false });
  assert.equal(r.lines, 28, 'nat: 2 jumps, 3 flushes, 4 chain deletes; mangle: jump, flush, delete; filter: 16 rules; no set');
  const legacy = parseIptablesSave(await runnerIn(ns, 'legacy').save(4));
  const legacyRules = [...legacy.values()].flatMap((t) => [...t.chains.values()].flatMap((c) => c.rules.map((x) => `${t.name}/${c.name} ${x.spec}`)));
  assert.deepEqual(legacyRules, ['nat/POSTROUTING -j RETURN']);
  assert.equal([...legacy.values()].some((t) => [...t.chains.keys()].some((c) => c.startsWith('OVN-'))), false);
  const sets = parseIpsetSave(await runnerIn(ns, 'nft').ipsetSave());
  assert.equal(sets.get('ovn40subnets')?.members.size, 3);
  assert.equal((await reconcile(runnerIn(ns, 'nft'), desired, own)).lines, 0, 'nft side untouched');
  await ns.delete();
});
