// The runner contract on the in-memory fake (the same cases run on the real tools in integration/netfilter).
import { test } from 'node:test';
import { FakeNetfilter } from '../../agent/src/datapath/netfilter/fake.ts';
import { contract } from './contract.ts';

for (const family of [4, 6] as const) {
  for (const [name, run] of contract) {
    test(`fake IPv${family}: ${name}`, () => run({ runner: new FakeNetfilter(), family }));
  }
}
