import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readiness, formatEvaluation, type Evaluation } from '../../agent/src/observe/health.ts';
import { parseLevelBody, listenAddressesFromEnv } from '../../agent/src/observe/metrics-server.ts';

test('readiness is the conjunction of pull checks and push flags, with reasons', async () => {
  const seen: Evaluation[] = [];
  const r = new Readiness({ onEvaluated: (e) => seen.push(e) });
  let watches: boolean | string = 'pods not synced';
  r.register('watches-synced', () => watches);
  const ovsdb = r.flag('ovsdb-connected');
  let e = await r.evaluate();
  assert.equal(e.ok, false);
  assert.deepEqual(e.checks, [
    { name: 'watches-synced', ok: false, reason: 'pods not synced' },
    { name: 'ovsdb-connected', ok: false, reason: 'not yet' },
  ]);
  watches = true;
  ovsdb.set(true);
  e = await r.evaluate();
  assert.equal(e.ok, true);
  assert.equal(formatEvaluation(e, 'readyz', false), 'ok');
  assert.equal(formatEvaluation(e, 'readyz', true), '[+]watches-synced ok\n[+]ovsdb-connected ok\nreadyz check passed\n');
  ovsdb.set('connection lost');
  e = await r.evaluate();
  assert.equal(e.ok, false);
  assert.equal(formatEvaluation(e, 'readyz', false), '[+]watches-synced ok\n[-]ovsdb-connected failed: connection lost\nreadyz check failed\n');
  assert.ok(seen.length >= 3, 'onEvaluated sees every evaluation (flag changes evaluate too)');
});

test('checks that throw, reject, return false or hang fail; single-check evaluation; unregister', async () => {
  const r = new Readiness({ timeoutMs: 50 });
  r.register('throws', () => { throw new Error('boom'); });
  r.register('rejects', async () => { throw new Error('async boom'); });
  r.register('false', () => false);
  r.register('empty', () => '');
  r.register('hangs', () => new Promise<boolean>(() => {}));
  const unregister = r.register('async-ok', async () => true);
  const e = await r.evaluate();
  assert.deepEqual(Object.fromEntries(e.checks.map((c) => [c.name, c.reason])), {
    throws: 'boom', rejects: 'async boom', false: 'failed', empty: 'failed', hangs: 'timed out after 50 ms', 'async-ok': 'ok',
  });
  assert.equal((await r.evaluate('async-ok')).ok, true);
  assert.deepEqual((await r.evaluate('nope')).checks, [{ name: 'nope', ok: false, reason: 'no such check' }]);
  unregister();
  assert.deepEqual(r.names(), ['throws', 'rejects', 'false', 'empty', 'hangs']);
  assert.throws(() => r.register('false', () => true), /already registered/);
  assert.throws(() => r.register('Bad Name', () => true), /invalid readiness check name/);
});

test('after shutdown() readiness fails even when every check passes', async () => {
  const r = new Readiness();
  r.register('a', () => true);
  assert.equal((await r.evaluate()).ok, true);
  r.shutdown();
  const e = await r.evaluate();
  assert.equal(e.ok, false);
  assert.deepEqual(e.checks.at(-1), { name: 'shutdown', ok: false, reason: 'shutting down' });
  assert.equal(r.shuttingDown, true);
});

test('an empty registry is ready (the agent always registers cni-socket itself)', async () => {
  assert.equal((await new Readiness().evaluate()).ok, true);
});

test('listen addresses follow ENABLE_BIND_LOCAL_IP / POD_IPS; log level bodies', () => {
  assert.deepEqual(listenAddressesFromEnv({}), ['0.0.0.0']);
  assert.deepEqual(listenAddressesFromEnv({ ENABLE_BIND_LOCAL_IP: 'false', POD_IPS: '10.0.0.1' }), ['0.0.0.0']);
  assert.deepEqual(listenAddressesFromEnv({ ENABLE_BIND_LOCAL_IP: 'true', POD_IPS: '10.0.0.1, fd00::1' }), ['10.0.0.1', 'fd00::1']);
  assert.throws(() => listenAddressesFromEnv({ ENABLE_BIND_LOCAL_IP: 'true', POD_IPS: '' }), /POD_IPS is empty/);
  assert.equal(parseLevelBody('debug\n'), 'debug');
  assert.equal(parseLevelBody('level=trace'), 'trace');
  assert.equal(parseLevelBody('{"level":"warn"}'), 'warn');
  assert.equal(parseLevelBody('{"level":3}'), null);
  assert.equal(parseLevelBody('{bad json'), null);
  assert.equal(parseLevelBody('rm -rf /'), null);
});

test('agent version comes from package.json, else KOA_VERSION', async () => {
  const { agentVersion, agentRevision } = await import('../../agent/src/observe/version.ts');
  const { readFileSync } = await import('node:fs');
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.equal(agentVersion({}), pkg.version);
  assert.equal(agentVersion({ KOA_VERSION: '9.9.9' }, '/'), '9.9.9');
  assert.equal(agentVersion({}, '/'), 'unknown');
  assert.equal(agentRevision({ KOA_REVISION: 'abc' }), 'abc');
  assert.equal(agentRevision({}), 'unknown');
});

test('observabilityFromArgs reads the upstream flags and environment, ignoring other flags', async () => {
  const { observabilityFromArgs } = await import('../../agent/src/observe/index.ts');
  const d = observabilityFromArgs(['--backend', 'fake', '--v=3'], { NODE_NAME: 'Node-A' });
  assert.equal(d.port, 10665);
  assert.equal(d.enableMetrics, true);
  assert.equal(d.nodeName, 'node-a');
  assert.deepEqual(d.addresses, ['0.0.0.0']);
  const o = observabilityFromArgs(['--pprof-port=0', '--enable-metrics=false', '--node-name', 'n2', '--bind-socket=/x'],
    { KUBE_NODE_NAME: 'other', ENABLE_BIND_LOCAL_IP: 'true', POD_IPS: '192.0.2.1' });
  assert.deepEqual([o.port, o.enableMetrics, o.nodeName, o.addresses], [0, false, 'n2', ['192.0.2.1']]);
  assert.throws(() => observabilityFromArgs(['--pprof-port=http'], {}), /--pprof-port="http": expected a port number/);
  assert.throws(() => observabilityFromArgs(['--pprof-port=70000'], {}), /expected a port number/);
  assert.throws(() => observabilityFromArgs(['--enable-metrics=yes'], {}), /not a boolean/);
});
