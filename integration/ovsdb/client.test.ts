// The OVSDB client against a real ovsdb-server: monitor and monitor_cond replicas agree with the server under a
// mixed workload; ovsdb-server killed and restarted under load (reconnect, resync, every request settles, none
// silently lost); ovs-vswitchd not running (a wait-for-apply write times out with a clear error).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { cleanupAll, newPrefix } from '../bed/netns.ts';
import { startOvs } from '../bed/ovs.ts';
import type { OvsNode } from '../bed/ovs.ts';
import { readPid, isAlive } from '../bed/daemon.ts';
import { sleep, waitFor } from '../bed/exec.ts';
import { OvsdbClient, isConnectionLost } from '../../agent/src/datapath/ovsdb/client.ts';
import { OvsVswitch, VSWITCH_MONITOR } from '../../agent/src/datapath/ovsdb/vswitch.ts';
import { insert, select, eq, mutate } from '../../agent/src/datapath/ovsdb/ops.ts';
import { namedUuid, set } from '../../agent/src/datapath/ovsdb/values.ts';
import { rowEquals } from '../../agent/src/datapath/ovsdb/replica.ts';
import type { AgentError } from '../../agent/src/errors.ts';

const prefix = newPrefix('koao');
let ovs: OvsNode;

before(async () => {
  ovs = await startOvs({ prefix, name: 'cl' });
  await ovs.addBridge('br-int');
});
after(async () => { await cleanupAll(); });

const serverPidfile = (): string => join(ovs.rundir, 'ovsdb-server.pid');

async function startServer(): Promise<void> {
  await ovs.nodeNs.exec(['ovsdb-server', join(ovs.dir, 'db', 'conf.db'), `--remote=punix:${ovs.dbSock}`,
    '--remote=db:Open_vSwitch,Open_vSwitch,manager_options', '--pidfile', '--log-file', '--no-chdir', '--detach', '-vconsole:off'], { env: ovs.env });
}

/** A full dump through a fresh one-shot connection: table -> uuid -> row, for the monitored columns. */
async function dump(tables: Record<string, readonly string[]>): Promise<Map<string, Map<string, Record<string, unknown>>>> {
  const c = new OvsdbClient({ remote: `unix:${ovs.dbSock}` });
  await c.start();
  const names = Object.keys(tables);
  const res = await c.transact(names.map((t) => select(t, [], ['_uuid', ...tables[t]!])));
  c.close();
  const out = new Map<string, Map<string, Record<string, unknown>>>();
  names.forEach((t, i) => out.set(t, new Map((res[i]!.rows ?? []).map((r) => [(r._uuid as [string, string])[1], r]))));
  return out;
}

/** The first difference between the client's replica and a fresh dump of the server, or '' when there is none. */
async function replicaDiff(c: OvsdbClient, label: string): Promise<string> {
  const truth = await dump(VSWITCH_MONITOR);
  for (const [table, rows] of truth) {
    const mine = c.replica.table(table);
    const [a, b] = [JSON.stringify([...mine.keys()].sort()), JSON.stringify([...rows.keys()].sort())];
    if (a !== b) return `${label}: ${table} rows\nreplica ${a}\nserver  ${b}`;
    for (const [u, row] of rows) {
      const { _uuid: _ignored, ...cols } = row;
      if (!rowEquals(mine.get(u)!, cols as never)) return `${label}: ${table} ${u}\nreplica ${JSON.stringify(mine.get(u))}\nserver  ${JSON.stringify(cols)}`;
    }
  }
  return '';
}

/**
 * The replica equals the server. ovs-vswitchd writes some monitored columns on its own (link_state, ofport, error,
 * statistics of the interfaces just added), so a dump can see a write whose update is still on its way to the
 * client: compare until both agree, within a bound far above one update's delivery.
 */
async function assertReplicaMatchesServer(c: OvsdbClient, label: string): Promise<void> {
  let diff = '';
  await waitFor(`${label}: replica equals the server`, async () => (diff = await replicaDiff(c, label)) === '', 10_000, 100)
    .catch(() => undefined);
  assert.equal(diff, '');
}

test('monitor and monitor_cond replicas both track the server exactly through a mixed workload', async () => {
  const cond = new OvsdbClient({ remote: `unix:${ovs.dbSock}`, monitor: VSWITCH_MONITOR, monitorMethod: 'monitor_cond' });
  const v1 = new OvsdbClient({ remote: `unix:${ovs.dbSock}`, monitor: VSWITCH_MONITOR, monitorMethod: 'monitor' });
  await Promise.all([cond.start(), v1.start()]);
  const vs = new OvsVswitch(cond);
  try {
    for (let i = 0; i < 6; i++) await vs.addPodPort({ name: `koaom${i}`, ifaceId: `m${i}.ns`, podName: `m${i}`, podNamespace: 'ns', podNetns: '/n', ips: ['10.0.0.1'] });
    await vs.addPodPort({ name: 'koaom0', ifaceId: 'm1.ns', podName: 'm0', podNamespace: 'ns', podNetns: '/n', mtu: 1300 }); // strips iface-id of m1
    await vs.setHtbQos({ ifaceId: 'm2.ns', pod: 'ns/m2', port: 'koaom2', rateMbps: 4 });
    await vs.setHtbQos({ ifaceId: 'm2.ns', pod: 'ns/m2', port: 'koaom2', rateMbps: 6 });
    await vs.setNetemQos({ ifaceId: 'm3.ns', pod: 'ns/m3', port: 'koaom3', latencyMs: 5 });
    await vs.addBridgePort({ bridge: 'br-int', name: 'koaomt', type: 'internal', trunks: [1, 2, 3], tag: 4 });
    await vs.addBridgePort({ bridge: 'br-int', name: 'koaomt', trunks: [2, 3, 9], tag: null });
    await ovs.vsctl(['set', 'Interface', 'koaom4', 'external_ids:ovn-installed=true', 'mac="02:00:00:00:00:04"']);
    await ovs.vsctl(['clear', 'Interface', 'koaom4', 'mac']);
    await ovs.vsctl(['remove', 'Interface', 'koaom4', 'external_ids', 'ip']);
    await vs.deletePort('koaom5');
    await vs.setIngressPolicing('m4.ns', 9);
    await vs.setOvsExternalIds({ 'ovn-encap-ip': '10.1.1.1' }, [], { wait: true });
    await ovs.vsctl(['set', 'Open_vSwitch', '.', 'external_ids:ovn-encap-ip=10.1.1.2']);
    await cond.transactApplied([]); // a barrier: both monitors have seen everything before this
    await v1.transactApplied([]);
    await assertReplicaMatchesServer(cond, 'monitor_cond');
    await assertReplicaMatchesServer(v1, 'monitor');
    for (const n of ['koaom0', 'koaom1', 'koaom2', 'koaom3', 'koaom4', 'koaomt']) await vs.deletePort(n);
    await vs.gcQos();
  } finally {
    cond.close();
    v1.close();
  }
});

test('ovsdb-server killed and restarted under load: reconnect, resync, every request settles, none lost', async () => {
  const vs = await OvsVswitch.connect({ remote: `unix:${ovs.dbSock}`, requestTimeoutMs: 15_000, backoffInitialMs: 20, backoffMaxMs: 200 });
  const events: string[] = [];
  vs.client.on('disconnected', () => events.push('down'));
  vs.client.on('synced', () => events.push('synced'));
  try {
    // 1. Deterministic in-flight requests: freeze the server, send, kill it, restart it.
    const pid = readPid(serverPidfile())!;
    process.kill(pid, 'SIGSTOP');
    const nonIdempotent = vs.client.transact([insert('Interface', { name: 'koaoraw' }, 'i'),
      insert('Port', { name: 'koaoraw', interfaces: set([namedUuid('i')]) }, 'p'),
      mutate('Bridge', [eq('name', 'br-int')], [['ports', 'insert', set([namedUuid('p')])]])])
      .then(() => undefined, (e: unknown) => e); // observed below; keep the rejection handled meanwhile
    const readOnly = vs.client.transact([select('Bridge', [eq('name', 'br-int')], ['name'])]);
    const guarded = vs.addPodPort({ name: 'koaog', ifaceId: 'g.ns', podName: 'g', podNamespace: 'ns', podNetns: '/n' });
    await sleep(50);
    process.kill(pid, 'SIGKILL');
    while (isAlive(pid)) await sleep(10);
    // 2. Load while the server is down: these are queued until the client is back.
    const load = Array.from({ length: 40 }, (_, i) => vs.addPodPort({ name: `koaol${i}`, ifaceId: `l${i}.ns`, podName: `l${i}`, podNamespace: 'ns', podNetns: '/n' }));
    const lost = (await nonIdempotent) as AgentError;
    assert.ok(isConnectionLost(lost) && /may or may not have been applied/.test(lost.message), String(lost));
    await sleep(300);
    await startServer();
    const [ro, g] = await Promise.all([readOnly, guarded]);
    assert.deepEqual(ro[0]!.rows, [{ name: 'br-int' }], 'the read-only transaction was retried after the reconnect');
    assert.equal(g.externalIds['iface-id'], 'g.ns', 'the guarded (idempotent) add was retried');
    const settled = await Promise.allSettled(load);
    assert.deepEqual(settled.filter((s) => s.status === 'rejected'), [], 'requests made while disconnected all went through');
    // 3. More load with a kill in the middle of it (not frozen): each op either succeeds or fails with a clear error.
    const more = Array.from({ length: 60 }, (_, i) => vs.addPodPort({ name: `koaok${i}`, ifaceId: `k${i}.ns`, podName: `k${i}`, podNamespace: 'ns', podNetns: '/n' }));
    await sleep(2);
    const pid2 = readPid(serverPidfile())!;
    process.kill(pid2, 'SIGKILL');
    while (isAlive(pid2)) await sleep(10);
    await sleep(100);
    await startServer();
    const res = await Promise.allSettled(more);
    for (const r of res) if (r.status === 'rejected') assert.match(String((r.reason as Error).message), /OVSDB|timed out/);
    assert.ok(events.filter((e) => e === 'down').length >= 2, `events: ${events.join(',')}`);
    // Nothing silently lost: each add that resolved is in the database, and the replica equals the server.
    await vs.client.transactApplied([]);
    const ports = new Set((await ovs.vsctl(['list-ports', 'br-int'])).split('\n'));
    for (let i = 0; i < 40; i++) assert.ok(ports.has(`koaol${i}`), `koaol${i}`);
    res.forEach((r, i) => { if (r.status === 'fulfilled') assert.ok(ports.has(`koaok${i}`), `koaok${i}`); });
    assert.ok(ports.has('koaog'));
    await assertReplicaMatchesServer(vs.client, 'after restarts');
    for (const p of [...ports].filter((n) => n.startsWith('koao'))) await vs.deletePort(p);
    assert.deepEqual((await ovs.vsctl(['list-ports', 'br-int'])).split('\n').filter((n) => n.startsWith('koao')), []);
  } finally {
    vs.close();
  }
});

test('ovs-vswitchd not running: a wait-for-apply write times out with a clear error; --no-wait style still works', async () => {
  const vs = await OvsVswitch.connect({ remote: `unix:${ovs.dbSock}` });
  try {
    await vs.addPodPort({ name: 'koaow1', ifaceId: 'w1.ns', podName: 'w1', podNamespace: 'ns', podNetns: '/n' }, { wait: true, timeoutMs: 5000 });
    const vpid = readPid(join(ovs.rundir, 'ovs-vswitchd.pid'))!;
    process.kill(vpid, 'SIGKILL');
    while (isAlive(vpid)) await sleep(10);
    const t0 = Date.now();
    await assert.rejects(
      vs.addPodPort({ name: 'koaow2', ifaceId: 'w2.ns', podName: 'w2', podNamespace: 'ns', podNetns: '/n' }, { wait: true, timeoutMs: 400 }),
      (e: AgentError) => e.code === 'KOA_TIMEOUT' && /timed out after 400 ms waiting for ovs-vswitchd to apply the change \(next_cfg=\d+, cur_cfg=\d+\); is ovs-vswitchd running\?/.test(e.message),
    );
    assert.ok(Date.now() - t0 < 10_000, 'bounded by the 400 ms timeout (25x slack for a loaded machine)');
    // the row itself was committed (as ovs-vsctl --timeout leaves it); writes without wait are unaffected
    assert.ok(vs.getInterface('koaow2'));
    assert.equal(await vs.deletePort('koaow2'), true);
    assert.equal(await vs.deletePort('koaow1'), true);
  } finally {
    vs.close();
  }
});
