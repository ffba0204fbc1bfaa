// The diff/apply scenarios (test/netfilter/scenarios.ts) on real iptables/ipset in a namespace of our own,
// iptables-legacy and iptables-nft, IPv4 and IPv6. Foreign writers are real `iptables`/`ipset` commands.
import { after, test } from 'node:test';
import { cleanupAll } from '../bed/netns.ts';
import { BACKENDS, freshNetns, iptables, runnerIn } from './ns.ts';
import { scenarios } from '../../test/netfilter/scenarios.ts';

after(() => cleanupAll());

for (const backend of BACKENDS) {
  for (const family of [4, 6] as const) {
    for (const [name, run] of scenarios) {
      test(`real ${backend} IPv${family}: ${name}`, async () => {
        const ns = await freshNetns();
        try {
          await run({
            runner: runnerIn(ns, backend), family,
            iptables: (args) => iptables(ns, backend, family, args),
            ipset: async (args) => { await ns.exec(['ipset', ...args]); },
          });
        } finally {
          await ns.delete();
        }
      });
    }
  }
}
