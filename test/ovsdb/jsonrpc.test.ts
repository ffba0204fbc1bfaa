import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JsonStreamParser, JsonStreamError, classify, encodeRequest, encodeResponse, encodeNotification } from '../../agent/src/datapath/ovsdb/jsonrpc.ts';

const enc = (s: string): Buffer => Buffer.from(s, 'utf8');

test('splits back-to-back values with no delimiter', () => {
  const p = new JsonStreamParser();
  assert.deepEqual(p.push(enc('{"a":1}{"b":[2,3]}  \n[4]')), [{ a: 1 }, { b: [2, 3] }, [4]]);
  assert.equal(p.pending, false);
});

const tricky: Array<[string, unknown]> = [
  ['braces inside strings', { s: '}{][' }],
  ['escaped quote then brace', { s: 'a\\"}b' }],
  ['escaped backslash before closing quote', { s: 'x\\' }],
  ['unicode escapes', { s: '\u00e9\u2603 }' }],
  ['multibyte UTF-8', { s: 'π≈3.14 — 日本語 😀', k: '{"x":"}"}' }],
  ['nested arrays and objects', { a: [[{ b: [{}] }], []], c: null, d: true, e: -1.5e3 }],
  ['empty object', {}],
  ['OVSDB set/map', { result: [{ rows: [{ external_ids: ['map', [['iface-id', 'p.ns']]], ports: ['set', [['uuid', 'u1']]] }] }], error: null, id: 7 }],
];
for (const [name, v] of tricky) {
  test(`round trip: ${name}`, () => {
    const s = JSON.stringify(v);
    const p = new JsonStreamParser();
    assert.deepEqual(p.push(enc(s + s)), [v, v]);
  });
}

test('value split at every byte position, including inside multibyte characters', () => {
  const v = { method: 'update', params: ['x', { t: { u: { new: { name: 'é}😀{"\\' } } } }], id: null };
  const bytes = enc(JSON.stringify(v) + JSON.stringify({ id: 1, result: [], error: null }));
  for (let cut = 0; cut <= bytes.length; cut++) {
    const p = new JsonStreamParser();
    const out = [...p.push(bytes.subarray(0, cut)), ...p.push(bytes.subarray(cut))];
    assert.equal(out.length, 2, `cut ${cut}`);
    assert.deepEqual(out[0], v);
  }
});

test('fuzz: random values, random chunkings, one byte at a time', () => {
  let seed = 12345;
  const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  const alphabet = ['a', '{', '}', '[', ']', '"', '\\', 'é', '😀', ' ', ':', ',', '\n', '日'];
  const rstr = (): string => { let s = ''; const n = rnd(12); for (let i = 0; i < n; i++) s += alphabet[rnd(alphabet.length)]; return s; };
  const rval = (d: number): unknown => {
    const k = rnd(d > 3 ? 4 : 7);
    if (k === 0) return rstr();
    if (k === 1) return rnd(1000) - 500;
    if (k === 2) return rnd(2) === 0;
    if (k === 3) return null;
    if (k === 4) return Array.from({ length: rnd(4) }, () => rval(d + 1));
    const o: Record<string, unknown> = {};
    for (let i = 0; i < rnd(4); i++) o[rstr()] = rval(d + 1);
    return o;
  };
  for (let iter = 0; iter < 200; iter++) {
    const values = Array.from({ length: 1 + rnd(5) }, () => ({ id: iter, v: rval(0) }));
    const bytes = enc(values.map((v) => JSON.stringify(v) + (rnd(3) === 0 ? ' \n' : '')).join(''));
    const p = new JsonStreamParser();
    const out: unknown[] = [];
    let i = 0;
    const oneByte = iter % 10 === 0;
    while (i < bytes.length) {
      const n = oneByte ? 1 : 1 + rnd(40);
      out.push(...p.push(bytes.subarray(i, i + n)));
      i += n;
    }
    assert.deepEqual(out, values, `iteration ${iter}`);
    assert.equal(p.pending, false);
  }
});

test('chunk buffers reused by the caller do not corrupt a pending value', () => {
  const p = new JsonStreamParser();
  const chunk = Buffer.from('{"a":"xy');
  assert.deepEqual(p.push(chunk), []);
  chunk.fill(0x20);
  assert.deepEqual(p.push(enc('z"}')), [{ a: 'xyz' }]);
});

test('garbage between messages is an error', () => {
  assert.throws(() => new JsonStreamParser().push(enc('{"a":1} x')), JsonStreamError);
  assert.throws(() => new JsonStreamParser().push(enc('42')), JsonStreamError);
  assert.throws(() => new JsonStreamParser().push(enc('{"a":tru}')), /invalid JSON/);
});

test('size limit', () => {
  const p = new JsonStreamParser(16);
  assert.throws(() => p.push(enc('{"a":"0123456789abcdef')), /exceeds 16 bytes/);
});

test('classify: request, notification, response', () => {
  assert.deepEqual(classify({ method: 'echo', params: [], id: 'echo' }), { kind: 'request', msg: { method: 'echo', params: [], id: 'echo' } });
  assert.deepEqual(classify({ method: 'update', params: [1], id: null }), { kind: 'notification', msg: { method: 'update', params: [1], id: null } });
  assert.deepEqual(classify({ result: [1], error: null, id: 3 }), { kind: 'response', msg: { result: [1], error: null, id: 3 } });
  assert.deepEqual(classify({ error: 'unknown method', id: 4 }), { kind: 'response', msg: { result: null, error: 'unknown method', id: 4 } });
  assert.throws(() => classify([1]), /not an object/);
  assert.throws(() => classify({ foo: 1 }), /neither/);
  assert.throws(() => classify({ method: 'x', id: {} }), /id must be/);
});

test('encoders', () => {
  assert.equal(encodeRequest('transact', ['Open_vSwitch'], 1), '{"method":"transact","params":["Open_vSwitch"],"id":1}');
  assert.equal(encodeResponse('echo', []), '{"result":[],"error":null,"id":"echo"}');
  assert.equal(encodeNotification('cancel', [1]), '{"method":"cancel","params":[1],"id":null}');
});
