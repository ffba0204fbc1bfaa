// Issue 14 item 5: 100 simultaneous 1 MiB calls raise the agent's RSS by less than 200 MB (the body budget makes
// the rest wait their turn), and every one of them is answered. See memory.ts for how the rise is measured.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { killStartedAgents } from '../cni/lib.ts';
import { rssRiseUnderBodies } from './memory.ts';

test('100 simultaneous 1 MiB bodies: all answered, RSS rises by less than 200 MB', { timeout: 300_000 }, async () => {
  try {
    const r = await rssRiseUnderBodies(100);
    process.stdout.write(`# ${r.n} bodies of ${(r.bodyBytes / 1048576).toFixed(2)} MiB: RSS at rest ${r.idleMb.toFixed(0)} MB, peak ${r.peakMb.toFixed(0)} MB, rise ${r.riseMb.toFixed(0)} MB\n`);
    assert.equal(r.ok, r.n, `every call answered with exit 0; first failure: ${r.firstFailure}`);
    assert.ok(r.riseMb < 200, `RSS rose by ${r.riseMb.toFixed(0)} MB`);
  } finally {
    await killStartedAgents();
  }
});
