// The Netlink contract (test/netlink/contract.ts) on the real kernel: RtNetlink in two fresh namespaces of our own
// per case. test/netlink/contract.test.ts runs the same cases on FakeNetlink.
import { before, test } from 'node:test';
import { warmUp } from '../../agent/src/native.ts';
import { RtNetlink } from '../../agent/src/datapath/netlink/rtnl.ts';
import assert from 'node:assert/strict';
import { isNetlinkError } from '../../agent/src/datapath/netlink/errors.ts';
import { contract } from '../../test/netlink/contract.ts';
import { sh, withNs } from './ns.ts';

before(() => warmUp());

/** Can this kernel make 802.1Q links? (CONFIG_VLAN_8021Q: some VM kernels are built without it.) */
async function vlanSupport(): Promise<true | string> {
  let ok: true | string = true;
  await withNs(1, async (ns) => {
    sh(['ip', '-n', ns.name, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1']);
    try { sh(['ip', '-n', ns.name, 'link', 'add', 'link', 'v0', 'name', 'v0.5', 'type', 'vlan', 'id', '5']); } catch (e) {
      ok = `this kernel cannot make 802.1Q links (CONFIG_VLAN_8021Q not set: ${String(e).split('\n')[0]})`;
    }
  });
  return ok;
}
const vlan = await vlanSupport();

for (const [name, run, needs] of contract) {
  if (needs?.kernel === 'vlan' && vlan !== true) {
    // the case itself cannot run on this kernel; what can be checked is that the transport reports it cleanly
    test(`kernel without 802.1Q: createVlan fails with EOPNOTSUPP and creates nothing (not run here: "${name}"; ${vlan})`, async () => {
      await withNs(1, async (a) => {
        const nl = new RtNetlink();
        try {
          await nl.createVeth({ netns: a.path, name: 'h', peer: { name: 'p' } });
          await assert.rejects(nl.createVlan({ netns: a.path, name: 'h.100', parent: 'h', id: 100 }), (e) => isNetlinkError(e, 'EOPNOTSUPP'));
          assert.equal(await nl.getLink(a.path, 'h.100'), null);
          assert.deepEqual(await nl.listLinks(a.path, { kind: 'vlan' }), []);
        } finally {
          nl.close();
        }
      });
    });
    continue;
  }
  test(`kernel: ${name}`, async () => {
    await withNs(2, async (a, b) => {
      // IPv6 on, DAD quick: as on a node
      for (const n of [a, b]) sh(['ip', 'netns', 'exec', n.name, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=0']);
      const nl = new RtNetlink();
      try {
        await run({ nl, a: a.path, b: b.path, addAltname: async (ns, link, alt) => { sh(['ip', 'netns', 'exec', ns === a.path ? a.name : b.name, 'ip', 'link', 'property', 'add', 'dev', link, 'altname', alt]); } });
      } finally {
        nl.close();
      }
    });
  });
}
