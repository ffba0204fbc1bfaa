import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Replica, changedColumns } from '../../agent/src/datapath/ovsdb/replica.ts';
import { parseSchema } from '../../agent/src/datapath/ovsdb/schema.ts';

const schema = parseSchema({
  name: 'Open_vSwitch', version: 'x', tables: {
    Interface: { columns: {
      name: { type: 'string' },
      ofport: { type: { key: 'integer', min: 0, max: 1 } },
      external_ids: { type: { key: 'string', value: 'string', min: 0, max: 'unlimited' } },
      admin_state: { type: { key: { type: 'string', enum: ['set', ['up', 'down']] }, min: 0, max: 1 } },
    } },
    Port: { columns: {
      name: { type: 'string' },
      interfaces: { type: { key: { type: 'uuid', refTable: 'Interface' }, min: 1, max: 'unlimited' } },
      trunks: { type: { key: 'integer', min: 0, max: 4096 } },
    } },
  },
});
const cols = { Interface: ['name', 'ofport', 'external_ids'], Port: ['name', 'interfaces', 'trunks'] };

test('update2: initial rows are completed with defaults; modify applies scalar/set/map diffs', () => {
  const r = new Replica(cols, schema);
  const c0 = r.applyUpdate2({ Interface: { u1: { initial: { name: 'veth1' } } }, Port: { p1: { initial: { name: 'veth1', interfaces: ['uuid', 'u1'] } } } });
  assert.equal(c0.length, 2);
  assert.deepEqual(r.get('Interface', 'u1'), { name: 'veth1', ofport: ['set', []], external_ids: ['map', []] });
  assert.deepEqual(r.get('Port', 'p1'), { name: 'veth1', interfaces: ['set', [['uuid', 'u1']]], trunks: ['set', []] });

  // optional column (set with max 1): modify carries the new value, as ovsdb-server 3.1 sends it
  r.applyUpdate2({ Interface: { u1: { modify: { ofport: 1 } } } });
  assert.deepEqual(r.get('Interface', 'u1')!.ofport, ['set', [1]]);
  r.applyUpdate2({ Interface: { u1: { modify: { ofport: 2 } } } });
  assert.deepEqual(r.get('Interface', 'u1')!.ofport, ['set', [2]]);
  r.applyUpdate2({ Interface: { u1: { modify: { ofport: ['set', []] } } } });
  assert.deepEqual(r.get('Interface', 'u1')!.ofport, ['set', []]);

  // map: add two keys; then remove one (same value), change the other (new value), add a third
  r.applyUpdate2({ Interface: { u1: { modify: { external_ids: ['map', [['iface-id', 'a.ns'], ['vendor', 'kube-ovn']]] } } } });
  const ch = r.applyUpdate2({ Interface: { u1: { modify: { external_ids: ['map', [['vendor', 'kube-ovn'], ['iface-id', 'b.ns'], ['ovn-installed', 'true']]] } } } });
  assert.deepEqual(r.get('Interface', 'u1')!.external_ids, ['map', [['iface-id', 'b.ns'], ['ovn-installed', 'true']]]);
  assert.equal(ch.length, 1);
  assert.deepEqual(changedColumns(ch[0]!.old, ch[0]!.new), ['external_ids']);
  assert.deepEqual(ch[0]!.old!.external_ids, ['map', [['iface-id', 'a.ns'], ['vendor', 'kube-ovn']]]);

  // scalar: new value
  r.applyUpdate2({ Interface: { u1: { modify: { name: 'veth2' } } } });
  assert.equal(r.get('Interface', 'u1')!.name, 'veth2');

  // set with many elements: symmetric difference (trunks 1,2 -> 2,3 arrives as [1,3] from ovsdb-server 3.1)
  r.applyUpdate2({ Port: { p1: { modify: { trunks: ['set', [1, 2]] } } } });
  r.applyUpdate2({ Port: { p1: { modify: { trunks: ['set', [1, 3]] } } } });
  assert.deepEqual(r.get('Port', 'p1')!.trunks, ['set', [2, 3]]);
  r.applyUpdate2({ Port: { p1: { modify: { trunks: ['set', [0, 10]] } } } });
  assert.deepEqual(r.get('Port', 'p1')!.trunks, ['set', [2, 3, 0, 10]]);

  // delete
  const cd = r.applyUpdate2({ Port: { p1: { delete: null } }, Interface: { gone: { delete: null } } });
  assert.equal(cd.length, 1);
  assert.equal(cd[0]!.new, undefined);
  assert.equal(r.get('Port', 'p1'), undefined);
  assert.throws(() => r.applyUpdate2({ Port: { nope: { modify: { name: 'x' } } } }), /unknown row/);
});

test('update (v1): new carries full values; a bare atom in a set column is normalised', () => {
  const r = new Replica(cols, schema);
  r.applyUpdate({ Interface: { u1: { new: { name: 'a', ofport: 5, external_ids: ['map', []] } } } });
  assert.deepEqual(r.get('Interface', 'u1'), { name: 'a', ofport: ['set', [5]], external_ids: ['map', []] });
  const ch = r.applyUpdate({ Interface: { u1: { old: { ofport: 5 }, new: { name: 'a', ofport: ['set', []], external_ids: ['map', []] } } } });
  assert.deepEqual(changedColumns(ch[0]!.old, ch[0]!.new), ['ofport']);
  const d = r.applyUpdate({ Interface: { u1: { old: { name: 'a' } } } });
  assert.equal(d.length, 1);
  assert.equal(r.table('Interface').size, 0);
});

test('replaceAll after a resync reports only the differences', () => {
  const r = new Replica(cols, schema);
  r.applyUpdate2({ Interface: { keep: { initial: { name: 'k' } }, change: { initial: { name: 'c' } }, gone: { initial: { name: 'g' } } } });
  const fresh = new Replica(cols, schema);
  fresh.applyUpdate2({ Interface: { keep: { initial: { name: 'k' } }, change: { initial: { name: 'c', ofport: 3 } }, added: { initial: { name: 'n' } } } });
  const ch = r.replaceAll(fresh);
  const summary = ch.map((c) => `${c.uuid}:${c.old ? 'o' : '-'}${c.new ? 'n' : '-'}`).sort();
  assert.deepEqual(summary, ['added:-n', 'change:on', 'gone:o-']);
  assert.deepEqual([...r.table('Interface').keys()].sort(), ['added', 'change', 'keep']);
});
