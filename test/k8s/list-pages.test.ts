// Lists are read in pages (limit + continue), as client-go's reflector does: one snapshot, one list back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { listOf } from '../../agent/src/k8s/client.ts';
import type { Query } from '../../agent/src/k8s/rest.ts';

test('a list is read in pages with the selectors on each; the items come back in order with the snapshot\'s resourceVersion', async () => {
  const asked: Query[] = [];
  const pages = [
    { items: [{ n: 1 }, { n: 2 }], metadata: { resourceVersion: '7', continue: 'c1' } },
    { items: [{ n: 3 }, { n: 4 }], metadata: { resourceVersion: '7', continue: 'c2' } },
    { items: [{ n: 5 }], metadata: { resourceVersion: '7' } },
  ];
  const rest = { call: async (method: string, path: string, o: { query?: Query } = {}) => {
    assert.equal(method, 'GET');
    assert.equal(path, '/api/v1/nodes');
    asked.push(o.query ?? {});
    return pages[asked.length - 1] as never;
  } };
  const l = await listOf<{ n: number }>(rest, '/api/v1/nodes', { labelSelector: 'a=b' }, 2)();
  assert.deepEqual(l.items.map((x) => x.n), [1, 2, 3, 4, 5]);
  assert.deepEqual(l.metadata, { resourceVersion: '7' }, 'no continue token in the result');
  assert.deepEqual(asked, [{ labelSelector: 'a=b', limit: 2 }, { labelSelector: 'a=b', limit: 2, continue: 'c1' }, { labelSelector: 'a=b', limit: 2, continue: 'c2' }]);
});

test('a page that fails (an expired continue token: 410) fails the list; nothing partial is returned', async () => {
  let n = 0;
  const rest = { call: async () => {
    if (n++ === 0) return { items: [{ n: 1 }], metadata: { resourceVersion: '1', continue: 'old' } } as never;
    throw Object.assign(new Error('HTTP 410: The provided continue parameter is too old'), { statusCode: 410 });
  } };
  await assert.rejects(listOf(rest, '/api/v1/nodes')(), /410/);
});
