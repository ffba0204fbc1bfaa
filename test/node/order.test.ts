import { test } from 'node:test';
import assert from 'node:assert/strict';
import { byName, compareStrings } from '../../agent/src/order.ts';

test('compareStrings is code-unit order, the same whatever the locale', () => {
  const names = ['subnet-b', 'Subnet-a', 'subnet-a', 'subnet.a', '100.64.0.0/16', '10.16.0.0/16', 'ñ', 'z'];
  assert.deepEqual([...names].sort(compareStrings), [...names].sort());
  assert.deepEqual([...names].sort(compareStrings),
    ['10.16.0.0/16', '100.64.0.0/16', 'Subnet-a', 'subnet-a', 'subnet-b', 'subnet.a', 'z', 'ñ']);
  assert.equal(compareStrings('a', 'a'), 0);
});

test('byName sorts objects by metadata.name, a missing name first', () => {
  const objs: { metadata?: { name?: string } }[] = [{ metadata: { name: 'b' } }, {}, { metadata: { name: 'a' } }, { metadata: {} }];
  assert.deepEqual(objs.sort(byName).map((o) => o.metadata?.name ?? '-'), ['-', '-', 'a', 'b']);
});
