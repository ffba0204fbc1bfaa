import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as v from '../../agent/src/datapath/ovsdb/values.ts';
import * as o from '../../agent/src/datapath/ovsdb/ops.ts';
import { parseRemote, parseRemotes, formatRemote } from '../../agent/src/datapath/ovsdb/remote.ts';
import { parseSchema, columnInfo, defaultValue, missingColumns } from '../../agent/src/datapath/ovsdb/schema.ts';

test('value encoders produce RFC 7047 §5.1 JSON', () => {
  const cases: Array<[unknown, string]> = [
    [v.uuid('6f0c5b1e-0000-4000-8000-000000000001'), '["uuid","6f0c5b1e-0000-4000-8000-000000000001"]'],
    [v.namedUuid('row1'), '["named-uuid","row1"]'],
    [v.set([1, 2]), '["set",[1,2]]'],
    [v.emptySet(), '["set",[]]'],
    [v.optional(undefined), '["set",[]]'],
    [v.optional(5), '["set",[5]]'],
    [v.map({ 'iface-id': 'p.ns', skip: undefined, vendor: 'kube-ovn' }), '["map",[["iface-id","p.ns"],["vendor","kube-ovn"]]]'],
    [v.map([[0, v.uuid('q')]]), '["map",[[0,["uuid","q"]]]]'],
  ];
  for (const [value, json] of cases) assert.equal(JSON.stringify(value), json);
});

test('value decoders accept both set forms', () => {
  assert.deepEqual(v.setAtoms('x'), ['x']);
  assert.deepEqual(v.setAtoms(['set', ['x', 'y']]), ['x', 'y']);
  assert.deepEqual(v.setAtoms(undefined), []);
  assert.equal(v.uuidOf(['uuid', 'a']), 'a');
  assert.equal(v.uuidOf(['set', []]), undefined);
  assert.deepEqual(v.uuidsOf(['set', [['uuid', 'a'], ['uuid', 'b']]]), ['a', 'b']);
  assert.deepEqual(v.strMap(['map', [['a', '1'], ['b', 2]]]), { a: '1', b: '2' });
  assert.deepEqual(v.strMap(['set', []]), {});
  assert.equal(v.optAtom(['set', [3]]), 3);
  assert.throws(() => v.setAtoms(['map', []]), /expected a set/);
  assert.throws(() => v.mapEntries('x'), /expected a map/);
});

test('valueEquals compares sets and maps unordered, types strictly', () => {
  assert.ok(v.valueEquals(['set', [1, 2]], ['set', [2, 1]]));
  assert.ok(v.valueEquals('a', ['set', ['a']]));
  assert.ok(!v.valueEquals(['set', [1]], ['set', ['1']]));
  assert.ok(v.valueEquals(['map', [['a', 'x'], ['b', 'y']]], ['map', [['b', 'y'], ['a', 'x']]]));
  assert.ok(!v.valueEquals(['map', [['a', 'x']]], ['map', [['a', 'y']]]));
  assert.ok(!v.valueEquals(['uuid', 'a'], ['named-uuid', 'a']));
});

test('operation builders', () => {
  const table: Array<[unknown, unknown]> = [
    [o.insert('Port', { name: 'p' }, 'newport'), { op: 'insert', table: 'Port', row: { name: 'p' }, 'uuid-name': 'newport' }],
    [o.insert('Port', { name: 'p' }), { op: 'insert', table: 'Port', row: { name: 'p' } }],
    [o.select('Bridge', [o.eq('name', 'br-int')], ['ports']), { op: 'select', table: 'Bridge', where: [['name', '==', 'br-int']], columns: ['ports'] }],
    [o.update('Interface', o.byUuid('u'), { mtu_request: 1400 }), { op: 'update', table: 'Interface', where: [['_uuid', '==', ['uuid', 'u']]], row: { mtu_request: 1400 } }],
    [o.mutate('Open_vSwitch', [], [['next_cfg', '+=', 1]]), { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['next_cfg', '+=', 1]] }],
    [o.del('QoS', [o.cond('external_ids', 'includes', v.map({ vendor: 'kube-ovn' }))]), { op: 'delete', table: 'QoS', where: [['external_ids', 'includes', ['map', [['vendor', 'kube-ovn']]]]] }],
    [o.wait('Port', [o.eq('name', 'p')], ['name'], '==', [], 0), { op: 'wait', table: 'Port', where: [['name', '==', 'p']], columns: ['name'], until: '==', rows: [], timeout: 0 }],
    [o.comment('koa: add p'), { op: 'comment', comment: 'koa: add p' }],
    [o.assertLock('l'), { op: 'assert', lock: 'l' }],
    [o.commit(true), { op: 'commit', durable: true }],
    [o.abort(), { op: 'abort' }],
  ];
  for (const [built, want] of table) assert.deepEqual(built, want);
});

test('transact result decoding', () => {
  const ops = [o.insert('Interface', { name: 'a' }, 'i'), o.select('Port', []), o.mutate('Bridge', [], [])];
  assert.deepEqual(o.decodeTransactResult(ops, [{ uuid: ['uuid', 'x'] }, { rows: [] }, { count: 1 }]),
    [{ uuid: ['uuid', 'x'] }, { rows: [] }, { count: 1 }]);
  // error in op 1, later ones null
  assert.throws(() => o.decodeTransactResult(ops, [{ uuid: ['uuid', 'x'] }, { error: 'unknown column', details: 'no column foo' }, null]),
    (e: unknown) => e instanceof o.TransactError && e.index === 1 && e.op === 'select' && e.error === 'unknown column' && /no column foo/.test(e.message));
  // commit-time error appended after the last op
  assert.throws(() => o.decodeTransactResult(ops, [{}, { rows: [] }, { count: 0 }, { error: 'constraint violation', details: 'duplicate name' }]),
    (e: unknown) => e instanceof o.TransactError && e.index === -1 && e.error === 'constraint violation');
  assert.throws(() => o.decodeTransactResult(ops, [{}]), /expected 3 results/);
  assert.throws(() => o.decodeTransactResult(ops, 'x'), /not an array/);
});

test('remotes', () => {
  assert.deepEqual(parseRemote('unix:/run/openvswitch/db.sock'), { kind: 'unix', path: '/run/openvswitch/db.sock' });
  assert.deepEqual(parseRemote('tcp:127.0.0.1:6640'), { kind: 'tcp', host: '127.0.0.1', port: 6640 });
  assert.deepEqual(parseRemote('tcp:[::1]:6641'), { kind: 'tcp', host: '::1', port: 6641 });
  assert.deepEqual(parseRemotes('tcp:10.0.0.1:6642,tcp:10.0.0.2:6642').map(formatRemote), ['tcp:10.0.0.1:6642', 'tcp:10.0.0.2:6642']);
  assert.equal(formatRemote({ kind: 'tcp', host: '::1', port: 1 }), 'tcp:[::1]:1');
  for (const bad of ['unix:', 'tcp:host', 'tcp:h:0', 'tcp:h:70000', 'tcp:::1:5', 'ssl:1.2.3.4:6640', '/run/db.sock', 'tcp:[::1]6640']) {
    assert.throws(() => parseRemote(bad), /OVSDB remote/, bad);
  }
  assert.throws(() => parseRemotes(' , '), /empty/);
});

test('schema column kinds, defaults and the column check', () => {
  assert.deepEqual(columnInfo('string'), { kind: 'scalar', keyType: 'string', max: 1 });
  assert.deepEqual(columnInfo({ key: 'integer', min: 0, max: 1 }), { kind: 'set', keyType: 'integer', max: 1 });
  assert.deepEqual(columnInfo({ key: { type: 'uuid', refTable: 'Port' }, min: 0, max: 'unlimited' }), { kind: 'set', keyType: 'uuid', max: Infinity });
  assert.deepEqual(columnInfo({ key: 'integer', min: 0, max: 4096 }), { kind: 'set', keyType: 'integer', max: 4096 });
  assert.deepEqual(columnInfo({ key: 'string', value: 'string', min: 0, max: 'unlimited' }), { kind: 'map', keyType: 'string', valueType: 'string', max: Infinity });
  assert.deepEqual(columnInfo({ key: { type: 'integer', minInteger: 0 } }), { kind: 'scalar', keyType: 'integer', max: 1 });
  assert.equal(defaultValue({ kind: 'scalar', keyType: 'integer', max: 1 }), 0);
  assert.equal(defaultValue({ kind: 'scalar', keyType: 'boolean', max: 1 }), false);
  assert.equal(defaultValue({ kind: 'scalar', keyType: 'string', max: 1 }), '');
  assert.deepEqual(defaultValue({ kind: 'set', keyType: 'string', max: 1 }), ['set', []]);
  assert.deepEqual(defaultValue({ kind: 'map', keyType: 'string', max: Infinity }), ['map', []]);
  const s = parseSchema({ name: 'Open_vSwitch', version: '8.3.1', tables: { Port: { columns: { name: { type: 'string' } } } } });
  assert.equal(s.version, '8.3.1');
  assert.deepEqual(missingColumns(s, { Port: ['name', '_uuid', 'qos'], QoS: ['type'] }), ['Port.qos', 'QoS (table)']);
  assert.throws(() => parseSchema(null), /malformed/);
});
