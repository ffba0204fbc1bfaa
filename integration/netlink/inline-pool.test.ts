// Both ways an exchange runs, against the real kernel in fresh namespaces (prefix koai): inline on the event loop
// (the default while RTNL is free) and on the libuv pool (after a slow call). They must give the same answers,
// including a dump far larger than one datagram, and the pool's receive-only exchange must pick up an answer whose
// request was sent before.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { warmUp, native, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE } from '../../agent/src/native.ts';
import { RtNetlink } from '../../agent/src/datapath/netlink/rtnl.ts';
import { kernelCalls } from '../../agent/src/datapath/kernel-calls.ts';
import { getLink } from '../../agent/src/datapath/netlink/link.ts';
import { parseMessages } from '../../agent/src/datapath/netlink/codec.ts';
import { isNetlinkError } from '../../agent/src/datapath/netlink/errors.ts';
import { sh, withNs, type TestNs } from './ns.ts';

const nl = new RtNetlink();
before(async () => { await warmUp(); });

/** Makes the router see contention without timing anything: a call slow by nature held open on the pool (as a
 *  link delete would be) sends every other call to the pool until it is released. */
function contend(): () => Promise<void> {
  let release!: () => void;
  const held = kernelCalls.onPool(() => new Promise<void>((r) => { release = r; }));
  assert.equal(kernelCalls.contended, true);
  return async () => { release(); await held; };
}

async function observe(ns: TestNs): Promise<unknown> {
  const links = (await nl.listLinks(ns.path)).map((l) => [l.name, l.mtu, l.up]).sort();
  const lo = await nl.getLink(ns.path, 'lo');
  let missing: unknown;
  try { await nl.setLink(ns.path, 'koai-none', { up: true }); } catch (e) { missing = isNetlinkError(e) ? e.errno : e; }
  await nl.setLink(ns.path, 'd299', { mtu: 1400 });
  return { links, lo: [lo?.name, lo?.index], missing, d299: (await nl.getLink(ns.path, 'd299'))?.mtu };
}

test('inline and pool give the same answers: gets, ACKs, kernel errors, a dump of 301 links', async () => {
  await withNs(1, async (ns) => {
    const batch = Array.from({ length: 150 }, (_, i) => `link add d${2 * i} type veth peer name d${2 * i + 1}`).join('\n') + '\n';
    sh(['ip', '-n', ns.name, '-batch', '-'], batch);
    const s0 = { ...kernelCalls.stats };
    const inline = await observe(ns);
    const s1 = { ...kernelCalls.stats };
    if (kernelCalls.stats.slow === s0.slow) assert.equal(s1.pooled, s0.pooled, 'nothing went to the pool while uncontended');
    assert.ok(s1.inline > s0.inline, 'calls ran inline');
    sh(['ip', '-n', ns.name, 'link', 'set', 'd299', 'mtu', '1500']);
    const release = contend();
    const s2 = { ...kernelCalls.stats };
    const pooled = await observe(ns);
    await release();
    assert.ok(kernelCalls.stats.pooled > s2.pooled, 'calls ran on the pool while contended');
    assert.deepEqual(pooled, inline);
    assert.equal((inline as { links: unknown[] }).links.length, 301);
  }, 'koai');
});

test('the pool exchange with an empty request only receives: the answer to a request sent before', async () => {
  await withNs(1, async (ns) => {
    const n = native();
    const fd = n.socketInNetns(ns.path, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
    try {
      n.sendto(fd, getLink(4242, { name: 'lo' }), null);
      const got = await n.exchange(fd, Buffer.alloc(0), 4242, 1, 5000);
      const msgs = got.flatMap((d) => parseMessages(d));
      assert.deepEqual(msgs.map((m) => [m.type, m.seq]), [[16, 4242]]);
      const none = await n.exchange(fd, Buffer.alloc(0), 4243, 1, 50);
      assert.deepEqual(none, [], 'nothing sent, nothing answered: the deadline returns what arrived (nothing)');
    } finally {
      n.close(fd);
    }
  }, 'koai');
});

test('a link delete always runs on the pool (it waits for an RCU grace period inside sendto), and does delete', async () => {
  await withNs(1, async (ns) => {
    sh(['ip', '-n', ns.name, 'link', 'add', 'koai-a', 'type', 'veth', 'peer', 'name', 'koai-b']);
    const before = { ...kernelCalls.stats };
    await nl.deleteLink(ns.path, 'koai-a');
    assert.equal(kernelCalls.stats.pooled, before.pooled + 1);
    assert.equal(kernelCalls.stats.inline, before.inline, 'nothing inline for the delete');
    assert.equal(await nl.getLink(ns.path, 'koai-a'), null);
  }, 'koai');
});
