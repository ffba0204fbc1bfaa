import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { OvsdbClient, isConnectionLost } from '../../agent/src/datapath/ovsdb/client.ts';
import type { ClientOptions } from '../../agent/src/datapath/ovsdb/client.ts';
import type { RowChange } from '../../agent/src/datapath/ovsdb/replica.ts';
import { insert, select, eq } from '../../agent/src/datapath/ovsdb/ops.ts';
import { AgentError } from '../../agent/src/errors.ts';
import { FakeOvsdbServer, until } from './fake-server.ts';

const cleanups: Array<() => unknown> = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

async function setup(opts: Partial<ClientOptions> = {}): Promise<{ srv: FakeOvsdbServer; c: OvsdbClient }> {
  const srv = new FakeOvsdbServer();
  srv.rows = { Open_vSwitch: { ovs0: { next_cfg: 5, cur_cfg: 5 } }, Interface: { i1: { name: 'a', external_ids: ['map', [['k', 'v']]] } } };
  await srv.listen();
  cleanups.push(() => srv.close());
  const c = new OvsdbClient({
    remote: `unix:${srv.path}`, requestTimeoutMs: 1000, backoffInitialMs: 10, backoffMaxMs: 50,
    monitor: { Open_vSwitch: ['next_cfg', 'cur_cfg'], Interface: ['name', 'ofport', 'external_ids'] }, ...opts,
  });
  cleanups.push(() => c.close());
  return { srv, c };
}

test('start loads the schema and the monitor replica; defaults fill omitted columns', async () => {
  const { c, srv } = await setup();
  const inserts: RowChange[] = [];
  c.on('change', (ch: RowChange) => inserts.push(ch));
  await c.start();
  assert.equal(srv.requests[0]!.method, 'get_schema');
  assert.equal(srv.requests[1]!.method, 'monitor_cond');
  assert.deepEqual(srv.requests[1]!.params[2], { Open_vSwitch: [{ columns: ['next_cfg', 'cur_cfg'] }], Interface: [{ columns: ['name', 'ofport', 'external_ids'] }] });
  assert.deepEqual(c.replica.get('Interface', 'i1'), { name: 'a', ofport: ['set', []], external_ids: ['map', [['k', 'v']]] });
  assert.equal(inserts.length, 2);
  assert.ok(c.connected);
});

test('plain monitor (v1) works too', async () => {
  const { c, srv } = await setup({ monitorMethod: 'monitor' });
  await c.start();
  assert.equal(srv.requests[1]!.method, 'monitor');
  assert.deepEqual(srv.requests[1]!.params[2], { Open_vSwitch: { columns: ['next_cfg', 'cur_cfg'] }, Interface: { columns: ['name', 'ofport', 'external_ids'] } });
  assert.equal(c.replica.get('Interface', 'i1')!.name, 'a');
});

test('concurrent transactions get their own replies even out of order; observer sees each', async () => {
  const seen: string[] = [];
  const { c, srv } = await setup({ onRequest: (db, m, ms, ok) => { assert.ok(ms >= 0); seen.push(`${db}/${m}/${ok}`); } });
  await c.start();
  const held: Array<() => void> = [];
  srv.onTransact = (params, sock) => {
    const req = srv.requests.at(-1)!;
    const name = ((params[1] as { row: { name: string } }).row.name);
    held.push(() => sock.write(JSON.stringify({ id: req.id, error: null, result: [{ uuid: ['uuid', `u-${name}`] }] })));
    if (held.length === 3) for (const h of held.reverse()) h();
    return undefined;
  };
  const rs = await Promise.all(['x', 'y', 'z'].map((n) => c.transact([insert('Interface', { name: n })])));
  assert.deepEqual(rs.map((r) => r[0]!.uuid), [['uuid', 'u-x'], ['uuid', 'u-y'], ['uuid', 'u-z']]);
  assert.deepEqual(seen.filter((s) => s.includes('transact')), ['Open_vSwitch/transact/true', 'Open_vSwitch/transact/true', 'Open_vSwitch/transact/true']);
  const ids = srv.requests.filter((r) => r.method === 'transact').map((r) => r.id);
  assert.equal(new Set(ids).size, 3);
});

test('OVSDB errors in a transaction become TransactError with the failing operation', async () => {
  const { c, srv } = await setup();
  await c.start();
  srv.onTransact = () => [{ error: 'constraint violation', details: 'Transaction causes multiple rows in "Interface" table to have identical values (a) for index on column "name".' }];
  await assert.rejects(c.transact([insert('Interface', { name: 'a' })]), (e: AgentError) => e.code === 'KOA_OVSDB' && /operation 0 \(insert\): constraint violation/.test(e.message));
  srv.onTransact = () => undefined;
});

test('answers the server echo with its params', async () => {
  const { c, srv } = await setup();
  await c.start();
  srv.sendRaw(JSON.stringify({ method: 'echo', params: ['ping', 1], id: 'echo' }));
  await until(() => srv.replies.length > 0);
  assert.deepEqual(srv.replies[0], { result: ['ping', 1], error: null, id: 'echo' });
});

test('a request without a reply times out with a clear error and the late reply is ignored', async () => {
  const { c, srv } = await setup();
  await c.start();
  let late: (() => void) | undefined;
  srv.onTransact = (_p, sock) => { const id = srv.requests.at(-1)!.id; late = () => sock.write(JSON.stringify({ id, result: [{}], error: null })); return undefined; };
  await assert.rejects(c.transact([insert('Interface', { name: 'q' })], { timeoutMs: 50 }),
    (e: AgentError) => e.code === 'KOA_TIMEOUT' && /timed out after 50 ms waiting for the OVSDB reply to transact; it may still be applied/.test(e.message));
  late!();
  srv.onTransact = (params) => params.slice(1).map(() => ({ rows: [] }));
  assert.deepEqual(await c.transact([select('Interface', [])]), [{ rows: [] }]);
});

test('update2 notifications update the replica and emit change events', async () => {
  const { c, srv } = await setup();
  await c.start();
  const got = new Promise<RowChange>((r) => c.once('change', r));
  srv.notify2({ Interface: { i1: { modify: { external_ids: ['map', [['ovn-installed', 'true']]], ofport: 3 } } } });
  const ch = await got;
  assert.equal(ch.uuid, 'i1');
  assert.deepEqual(ch.new!.external_ids, ['map', [['k', 'v'], ['ovn-installed', 'true']]]);
  assert.deepEqual(ch.new!.ofport, ['set', [3]]);
});

test('an update written in the same chunk as the monitor reply is not lost', async () => {
  const { c, srv } = await setup();
  srv.afterMonitor = (id) => JSON.stringify({ method: 'update2', params: [id, { Interface: { i2: { insert: { name: 'b' } } } }], id: null });
  await c.start();
  assert.equal(c.replica.get('Interface', 'i2')!.name, 'b');
});

test('waitUntil resolves on a later event and times out otherwise', async () => {
  const { c, srv } = await setup();
  await c.start();
  const w = c.waitUntil(() => c.replica.get('Interface', 'i9'), 1000, () => 'i9');
  srv.notify2({ Interface: { i9: { insert: { name: 'n9' } } } });
  assert.equal((await w).name, 'n9');
  await assert.rejects(c.waitUntil(() => undefined, 30, () => 'nothing'), /timed out after 30 ms waiting for nothing/);
});

test('transactApplied waits for cur_cfg via the monitor; without vswitchd it times out clearly', async () => {
  const { c, srv } = await setup();
  await c.start();
  let next = 5;
  srv.onTransact = (params) => {
    const ops = params.slice(1) as Array<{ op: string }>;
    next++;
    return ops.map((o) => (o.op === 'select' ? { rows: [{ next_cfg: next }] } : o.op === 'mutate' ? { count: 1 } : {}));
  };
  const p = c.transactApplied([insert('Interface', { name: 'z' })]);
  await until(() => srv.requests.some((r) => r.method === 'transact'));
  const sent = srv.requests.find((r) => r.method === 'transact')!.params.slice(1) as Array<{ op: string; table: string; mutations?: unknown }>;
  assert.deepEqual(sent.map((o) => o.op), ['insert', 'mutate', 'select']);
  assert.deepEqual(sent[1]!.mutations, [['next_cfg', '+=', 1]]);
  setTimeout(() => srv.notify2({ Open_vSwitch: { ovs0: { modify: { cur_cfg: 6 } } } }), 20);
  const r = await p;
  assert.equal(r.length, 1);
  await assert.rejects(c.transactApplied([insert('Interface', { name: 'z2' })], { applyTimeoutMs: 60 }),
    (e: AgentError) => e.code === 'KOA_TIMEOUT' && /ovs-vswitchd to apply the change \(next_cfg=7, cur_cfg=6\); is ovs-vswitchd running\?/.test(e.message));
});

test('connection drop: non-idempotent in-flight fails cleanly, idempotent is retried, queued requests go out after resync', async () => {
  const { c, srv } = await setup();
  await c.start();
  const events: string[] = [];
  c.on('disconnected', () => events.push('down'));
  c.on('connected', () => events.push('up'));
  const diffs: RowChange[][] = [];
  c.on('changes', (ch: RowChange[]) => diffs.push(ch));
  srv.onTransact = () => undefined; // hold every transaction
  const write = c.transact([insert('Interface', { name: 'w' })]);
  const read = c.transact([select('Interface', [eq('name', 'w')])]);
  await until(() => srv.requests.filter((r) => r.method === 'transact').length === 2);
  // while down, the DB changes: i1 modified, i2 added
  srv.rows.Interface = { i1: { name: 'a', external_ids: ['map', [['k', 'v2']]] }, i2: { name: 'new' } };
  srv.onTransact = (params) => params.slice(1).map(() => ({ rows: [{ name: 'w' }] }));
  srv.dropAll();
  await assert.rejects(write, (e: AgentError) => isConnectionLost(e) && /may or may not have been applied/.test(e.message));
  assert.deepEqual(await read, [{ rows: [{ name: 'w' }] }]);
  assert.equal(srv.connections, 2);
  assert.deepEqual(events, ['down', 'up']);
  // resync emitted only the differences: i1 changed, i2 new (Open_vSwitch row unchanged)
  const last = diffs.at(-1)!;
  assert.deepEqual(last.map((d) => d.uuid).sort(), ['i1', 'i2']);
  assert.deepEqual(c.replica.get('Interface', 'i1')!.external_ids, ['map', [['k', 'v2']]]);
  // a request made while disconnected is sent once the connection is back
  srv.dropAll();
  const later = c.transact([select('Interface', [])]);
  assert.ok((await later)[0]!.rows);
  assert.equal(srv.connections, 3);
});

test('protocol garbage drops the connection and the client recovers', async () => {
  const { c, srv } = await setup();
  await c.start();
  srv.sendRaw('}}not json');
  await until(() => srv.connections === 2 && c.connected);
  srv.onTransact = (params) => params.slice(1).map(() => ({ rows: [] }));
  assert.deepEqual(await c.transact([select('Interface', [])]), [{ rows: [] }]);
});

test('schema check: a missing column fails start with a clear error', async () => {
  const { c } = await setup({ requiredColumns: { Interface: ['ovn_installed_bogus'], Nope: ['x'] } });
  await assert.rejects(c.start(), /schema check: database Open_vSwitch \(schema 8\.3\.1\) lacks Interface\.ovn_installed_bogus, Nope \(table\)/);
});

test('no server: start times out naming the remote and the last error; close rejects queued requests', async () => {
  const c = new OvsdbClient({ remote: 'unix:/nonexistent/koao.sock', backoffInitialMs: 5, backoffMaxMs: 20 });
  await assert.rejects(c.start(100), /OVSDB connect to unix:\/nonexistent\/koao.sock: no synced connection within 100 ms \(last error: connect ENOENT/);
  const c2 = new OvsdbClient({ remote: 'unix:/nonexistent/koao.sock', backoffInitialMs: 5 });
  void c2.start(5000).catch(() => undefined);
  const q = c2.transact([select('Interface', [])]);
  c2.close();
  await assert.rejects(q, /client: closed before the reply arrived/);
  await assert.rejects(c2.transact([]), /client is closed/);
});

test('echo probe: a silent server is detected and the connection is replaced', async () => {
  const { c, srv } = await setup({ probeIntervalMs: 40 });
  await c.start();
  // the fake answers echo normally: stays connected across a few intervals
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(srv.connections, 1);
  assert.ok(srv.requests.some((r) => r.method === 'echo'));
  // now stop answering anything
  for (const s of srv.sockets) s.removeAllListeners('data');
  await until(() => srv.connections === 2, 20_000);
});

test('tcp remote, and a comma list that skips a dead remote', async () => {
  const srv = new FakeOvsdbServer({ tcp: true });
  srv.rows = { Interface: { t1: { name: 'tcp' } } };
  await srv.listen();
  cleanups.push(() => srv.close());
  const c = new OvsdbClient({ remote: `unix:/nonexistent/koao-dead.sock,${srv.remote}`, backoffInitialMs: 5, monitor: { Interface: ['name'] } });
  cleanups.push(() => c.close());
  await c.start(3000);
  assert.match(srv.remote, /^tcp:127\.0\.0\.1:\d+$/);
  assert.equal(c.replica.get('Interface', 't1')!.name, 'tcp');
  srv.onTransact = (params) => params.slice(1).map(() => ({ rows: [] }));
  assert.deepEqual(await c.transact([select('Interface', [])]), [{ rows: [] }]);
});

test('a connect that never completes is abandoned after connectTimeoutMs and retried', async () => {
  const { PassThrough } = await import('node:stream');
  let attempts = 0;
  const c = new OvsdbClient({ remote: 'tcp:192.0.2.1:6640', connectTimeoutMs: 30, backoffInitialMs: 5, connect: () => { attempts++; return new PassThrough(); } });
  await assert.rejects(c.start(200), /no synced connection within 200 ms \(last error: connect timed out\)/);
  assert.ok(attempts >= 2, `attempts ${attempts}`);
});
