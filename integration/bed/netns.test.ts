// Real namespaces: a veth between two of them pings, and cleanup leaves none behind.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { addAddress, addVeth, cleanupAll, createNetns, listNetns, newPrefix, pendingCleanups, ping } from './netns.ts';
import { existsSync } from 'node:fs';

const prefix = newPrefix('koab');
after(async () => {
  await cleanupAll();
});

test('netns: veth pair between two namespaces pings, delete removes them', async () => {
  const a = await createNetns(`${prefix}a`);
  const b = await createNetns(`${prefix}b`);
  assert.ok(existsSync(a.path), 'netns path exists');
  await addVeth(a, 'veth-a', b, 'veth-b');
  await addAddress(a, 'veth-a', '192.168.77.1/24');
  await addAddress(b, 'veth-b', '192.168.77.2/24');
  const r = await ping(a, '192.168.77.2', { count: 2 });
  assert.equal(r.ok, true, r.output);
  assert.equal(r.received, 2);
  const miss = await ping(a, '192.168.77.9', { count: 1, waitS: 0.3 });
  assert.equal(miss.ok, false);
  assert.equal(miss.received, 0);
  const inside = await b.exec(['ip', '-o', 'link', 'show', 'veth-b']);
  assert.match(inside.stdout, /veth-b@/);
  assert.deepEqual(listNetns(prefix).sort(), [`${prefix}a`, `${prefix}b`]);
  await a.delete();
  await a.delete(); // idempotent
  assert.equal(existsSync(a.path), false);
  await cleanupAll();
  assert.deepEqual(listNetns(prefix), []);
  assert.deepEqual(pendingCleanups(), []);
});
