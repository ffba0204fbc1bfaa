// The Netlink contract (contract.ts) on FakeNetlink; integration/netlink/contract.test.ts runs the same cases on the
// kernel.
import { test } from 'node:test';
import { FakeNetlink } from '../../agent/src/datapath/netlink/fake.ts';
import { contract } from './contract.ts';

for (const [name, run] of contract) {
  test(`fake: ${name}`, async () => {
    const nl = new FakeNetlink();
    const a = '/run/netns/koanl-a';
    const b = '/run/netns/koanl-b';
    nl.addNamespace(a);
    nl.addNamespace(b);
    await run({ nl, a, b, addAltname: async (ns, link, alt) => nl.addAltname(ns, link, alt) });
  });
}
