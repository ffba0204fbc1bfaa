// The diff/apply scenarios (scenarios.ts) on the in-memory fake; the same run on real iptables/ipset in
// integration/netfilter/reconcile.test.ts.
import { test } from 'node:test';
import { rawArg } from '../../agent/src/datapath/netfilter/args.ts';
import { FakeNetfilter } from '../../agent/src/datapath/netfilter/fake.ts';
import { scenarios, type ScenarioEnv } from './scenarios.ts';

/** A foreign `iptables -t T <command>` on the fake is the same command as a one-line restore block. */
export function fakeEnv(family: 4 | 6, runner = new FakeNetfilter()): ScenarioEnv {
  return {
    runner, family,
    iptables: async (args) => {
      const t = args[0] === '-t' ? args[1]! : 'filter';
      const rest = args[0] === '-t' ? args.slice(2) : args;
      await runner.restore(family, `*${t}\n${rest.map(rawArg).join(' ')}\nCOMMIT\n`);
    },
    ipset: (args) => runner.ipsetRestore(`${args.map(rawArg).join(' ')}\n`),
  };
}

for (const family of [4, 6] as const) {
  for (const [name, run] of scenarios) test(`fake IPv${family}: ${name}`, () => run(fakeEnv(family)));
}
