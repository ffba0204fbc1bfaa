// The runner contract (test/netfilter/contract.ts) on the real tools: iptables-legacy and iptables-nft, IPv4 and
// IPv6, each case in a fresh namespace of our own. The same cases run on the fake in test/netfilter/fake.test.ts.
import { after, test } from 'node:test';
import { cleanupAll } from '../bed/netns.ts';
import { BACKENDS, freshNetns, runnerIn } from './ns.ts';
import { contract } from '../../test/netfilter/contract.ts';

after(() => cleanupAll());

for (const backend of BACKENDS) {
  for (const family of [4, 6] as const) {
    for (const [name, run] of contract) {
      test(`real ${backend} IPv${family}: ${name}`, async () => {
        const ns = await freshNetns();
        try {
          await run({ runner: runnerIn(ns, backend), family });
        } finally {
          await ns.delete();
        }
      });
    }
  }
}
