// The Netlink contract (test/netlink/contract.ts) on the real kernel: RtNetlink in two fresh namespaces of our own
// per case. test/netlink/contract.test.ts runs the same cases on FakeNetlink.
import { before, test } from 'node:test';
import { warmUp } from '../../agent/src/native.ts';
import { RtNetlink } from '../../agent/src/datapath/netlink/rtnl.ts';
import { contract } from '../../test/netlink/contract.ts';
import { sh, withNs } from './ns.ts';

before(() => warmUp());

for (const [name, run] of contract) {
  test(`kernel: ${name}`, async () => {
    await withNs(2, async (a, b) => {
      // IPv6 on, DAD quick: as on a node
      for (const n of [a, b]) sh(['ip', 'netns', 'exec', n.name, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=0']);
      const nl = new RtNetlink();
      try {
        await run({ nl, a: a.path, b: b.path });
      } finally {
        nl.close();
      }
    });
  });
}
