// agent.ts wiring helpers: start-up refuses clearly without a cluster, datapath calls are timed for the metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { instrument, parseArgs, startAgent } from '../../agent/src/agent.ts';
import { FakeNetlink } from '../../agent/src/datapath/netlink/fake.ts';

test('the ovn backend without --kubeconfig outside a cluster fails start-up with a clear message', async () => {
  const saved = process.env.KUBERNETES_SERVICE_HOST;
  delete process.env.KUBERNETES_SERVICE_HOST;
  try {
    const cfg = parseArgs(['--bind-socket=/tmp/koap-never.sock', '--cni-del-queue-dir=/tmp/koap-never-q'], {}, 'node-1');
    await assert.rejects(startAgent(cfg, pino({ level: 'silent' })), /no --kubeconfig \(or KUBECONFIG\) given and not running in a cluster/);
  } finally {
    if (saved !== undefined) process.env.KUBERNETES_SERVICE_HOST = saved;
  }
});

test('instrument times every async datapath call (ok and failed) and leaves sync members alone', async () => {
  const nl = new FakeNetlink();
  const seen: [string, boolean][] = [];
  const w = instrument(nl, (op, s, ok) => { assert.ok(s >= 0); seen.push([op, ok]); });
  await w.createVeth({ name: 'koap_h', peer: { name: 'koap_c' } });
  nl.failNext('deleteLink', 'EBUSY');
  await assert.rejects(w.deleteLink(null, 'koap_h'), /EBUSY/);
  w.close();
  assert.equal(w.calls, nl.calls);
  assert.deepEqual(seen, [['createVeth', true], ['deleteLink', false]]);
});
