// The metrics/health server on 127.0.0.1 (ephemeral port) beside the real CNI server (node:http server of
// agent/src/server/cni-server.ts with the in-memory fake backend) on a real Unix socket: probes through start-up,
// steady state and shutdown, and /metrics scraped over HTTP after real CNI requests. Loopback only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startObservability, type Observability } from '../../agent/src/observe/index.ts';
import { NAMESPACE } from '../../agent/src/observe/metrics.ts';
import { CALL_PATH, startCniServer } from '../../agent/src/server/cni-server.ts';
import { CNI_CALL_PATH, SHIM_METRICS_PATH, cniMetricsObserver } from '../../agent/src/observe/cni-hook.ts';
import { isLoopback, startMetricsServer } from '../../agent/src/observe/metrics-server.ts';
import { Dispatcher } from '../../agent/src/cni/dispatcher.ts';
import { FakeBackend } from '../../agent/src/cni/fake-backend.ts';
import type { Logger } from '../../agent/src/observe/log.ts';
import { bucketBounds, find, parseExposition, value } from '../../test/observe/prom-text.ts';

interface Answer { status: number; body: string; headers: Record<string, string | string[] | undefined> }

function http(opts: { port?: number; host?: string; socketPath?: string; method?: string; path: string; body?: string; json?: unknown }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = opts.json !== undefined ? JSON.stringify(opts.json) : opts.body;
    const headers: Record<string, string> = {};
    if (opts.json !== undefined) headers['content-type'] = 'application/json';
    if (payload !== undefined) headers['content-length'] = String(Buffer.byteLength(payload));
    const req = request({ host: opts.host ?? '127.0.0.1', port: opts.port, socketPath: opts.socketPath, method: opts.method ?? 'GET',
      path: opts.path, headers, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`timeout ${opts.path}`)));
    req.end(payload);
  });
}

async function startCni(socketPath: string, log: Logger, obs: Observability | null, backend = new FakeBackend()) {
  const srv = await startCniServer({ socketPath, dispatcher: new Dispatcher({ backend, log }), log, ...(obs ? { observer: cniMetricsObserver(obs.metrics) } : {}) });
  return { close: () => srv.close() };
}

const silent = { write: (_s: string): void => {} };

function forwarded(command: string, containerId: string, netconf: Record<string, unknown> | string, extra: Record<string, unknown> = {}) {
  return {
    env: {
      CNI_COMMAND: command, CNI_CONTAINERID: containerId, CNI_NETNS: `/var/run/netns/koa-observe-${containerId}`, CNI_IFNAME: 'eth0',
      CNI_PATH: '/opt/cni/bin', CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-${containerId}`,
    },
    stdin: typeof netconf === 'string' ? netconf : JSON.stringify(netconf),
    ...extra,
  };
}
const NETCONF = { cniVersion: '1.0.0', name: 'kube-ovn', type: 'kube-ovn', server_socket: '/run/openvswitch/kube-ovn-daemon.sock' };

test('probes through start-up, steady state, a deleted socket file, restart and shutdown', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'koa-observe-'));
  const socketPath = join(dir, 'kube-ovn-daemon.sock');
  const obs = await startObservability({
    nodeName: 'node-a', version: '0.1.0-test', cniSocketPath: socketPath, port: 0, addresses: ['127.0.0.1', '::1'],
    logDestination: silent, handleSignals: false, metricsOptions: { defaultMetrics: false },
  });
  const apps: { close(): Promise<unknown> }[] = [];
  t.after(async () => {
    for (const a of apps) await a.close().catch(() => {});
    await obs.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const port = obs.server.addresses[0]!.port;
  assert.ok(port > 0);
  assert.deepEqual(obs.server.addresses.map((a) => a.address), ['127.0.0.1', '::1']);
  assert.ok(obs.server.addresses.every((a) => a.port === port), 'one port for every address');
  const get = (path: string) => http({ port, path });

  // start-up: the process serves health, but the CNI socket is not there yet
  assert.deepEqual([(await get('/healthz')).status, (await get('/healthz')).body], [200, 'ok']);
  const live0 = await get('/livez');
  assert.deepEqual([live0.status, live0.body], [503, 'probe failed']);
  assert.match((await get('/livez?verbose')).body, /ENOENT/);
  const nodeInit = obs.readiness.flag('node-initialised');
  let ready = await get('/readyz');
  assert.equal(ready.status, 503);
  assert.match(ready.body, /\[-\]cni-socket failed: .*ENOENT/);
  assert.match(ready.body, /\[-\]node-initialised failed: not yet/);
  assert.equal((await http({ port, host: '::1', path: '/readyz' })).status, 503, 'same answer on the second address');

  // the CNI server comes up: alive, but still not ready until the node is initialised
  apps.push(await startCni(socketPath, obs.logger, obs));
  const live1 = await get('/livez');
  assert.deepEqual([live1.status, live1.body], [200, 'ok']);
  ready = await get('/readyz');
  assert.equal(ready.status, 503);
  assert.match(ready.body, /\[\+\]cni-socket ok/);
  assert.match(ready.body, /\[-\]node-initialised failed: not yet/);
  assert.equal((await get('/readyz/cni-socket')).status, 200);
  assert.equal((await get('/readyz/node-initialised')).status, 503);
  assert.equal((await get('/readyz/no-such-check')).status, 503);

  // steady state
  nodeInit.set(true);
  ready = await get('/readyz');
  assert.deepEqual([ready.status, ready.body], [200, 'ok']);
  assert.equal((await get('/readyz?verbose')).body, '[+]cni-socket ok\n[+]node-initialised ok\nreadyz check passed\n');
  for (let i = 0; i < 5; i++) assert.equal((await get('/livez')).status, 200);
  let e = parseExposition((await get('/metrics')).body);
  assert.equal(value(e, `${NAMESPACE}readiness_check`, { check: 'cni-socket' }), 1);
  assert.equal(value(e, `${NAMESPACE}readiness_check`, { check: 'node-initialised' }), 1);
  const readyAfter = value(e, `${NAMESPACE}ready_duration_seconds`);
  assert.ok(readyAfter > 0 && readyAfter <= process.uptime(), String(readyAfter));

  // HEAD, wrong method, unknown path
  const head = await http({ port, method: 'HEAD', path: '/healthz' });
  assert.deepEqual([head.status, head.body, head.headers['content-length']], [200, '', '2']);
  assert.equal((await http({ port, method: 'POST', path: '/metrics', body: 'x' })).status, 405);
  assert.equal((await get('/debug/pprof/')).status, 404);

  // the socket file is deleted while the listener lives on (upstream's reason for dialling): not alive, not ready
  unlinkSync(socketPath);
  assert.equal((await get('/livez')).status, 503);
  assert.equal((await get('/readyz')).status, 503);
  await apps.pop()!.close();

  // a restarted CNI server brings both back
  apps.push(await startCni(socketPath, obs.logger, null));
  assert.equal((await get('/livez')).status, 200);
  assert.equal((await get('/readyz')).status, 200);

  // shutdown: the CNI server goes first (socket removed on close) -> livez fails; then the metrics server
  await apps.pop()!.close();
  const live2 = await get('/livez');
  assert.deepEqual([live2.status, live2.body], [503, 'probe failed']);
  assert.equal((await get('/readyz')).status, 503);
  e = parseExposition((await get('/metrics')).body);
  assert.equal(value(e, `${NAMESPACE}readiness_check`, { check: 'cni-socket' }), 0);
  const closing = obs.close();
  await closing;
  await obs.close(); // idempotent
  await assert.rejects(get('/healthz'), /ECONNREFUSED/);
  await assert.rejects(http({ port, host: '::1', path: '/healthz' }), /ECONNREFUSED/);
});

test('readiness fails as soon as close() starts, before the server stops', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'koa-observe-'));
  const socketPath = join(dir, 'cni.sock');
  const obs = await startObservability({ nodeName: 'n', version: 'v', cniSocketPath: socketPath, port: 0, addresses: ['127.0.0.1'],
    logDestination: silent, handleSignals: false, metricsOptions: { defaultMetrics: false, sysctls: false } });
  const app = await startCni(socketPath, obs.logger, obs);
  t.after(async () => { await app.close(); await obs.close(); rmSync(dir, { recursive: true, force: true }); });
  const port = obs.server.addresses[0]!.port;
  assert.equal((await http({ port, path: '/readyz' })).status, 200);
  obs.readiness.shutdown(); // what close() does first
  const r = await http({ port, path: '/readyz' });
  assert.equal(r.status, 503);
  assert.match(r.body, /\[-\]shutdown failed: shutting down/);
  assert.equal((await http({ port, path: '/livez' })).status, 200, 'still alive while draining');
});

test('runtime log level over HTTP, metrics disabled, port in use', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'koa-observe-'));
  const lines: string[] = [];
  const obs = await startObservability({ nodeName: 'n', version: 'v', cniSocketPath: join(dir, 'none.sock'), port: 0,
    addresses: ['127.0.0.1'], enableMetrics: false, logDestination: { write: (s: string) => { lines.push(s); } },
    handleSignals: false, metricsOptions: { defaultMetrics: false, sysctls: false } });
  t.after(async () => { await obs.close(); rmSync(dir, { recursive: true, force: true }); });
  const port = obs.server.addresses[0]!.port;

  assert.deepEqual([(await http({ port, path: '/debug/loglevel' })).body], ['info\n']);
  obs.logger.debug('before: hidden');
  let r = await http({ port, method: 'PUT', path: '/debug/loglevel', body: 'debug' });
  assert.deepEqual([r.status, r.body], [200, 'debug\n']);
  obs.logger.debug('after: shown');
  r = await http({ port, method: 'PUT', path: '/log-level', json: { level: 'warn' } });
  assert.deepEqual([r.status, r.body], [200, 'warn\n']);
  assert.equal(obs.log.level(), 'warn');
  r = await http({ port, method: 'PUT', path: '/log-level', body: 'chatty' });
  assert.equal(r.status, 400);
  assert.match(r.body, /unknown log level "chatty"/);
  r = await http({ port, method: 'PUT', path: '/log-level', body: 'x'.repeat(5000) });
  assert.equal(r.status, 413, 'oversized body refused');
  assert.equal(obs.log.level(), 'warn');
  r = await http({ port, method: 'DELETE', path: '/log-level' });
  assert.equal(r.status, 405);
  const msgs = lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
  assert.ok(msgs.includes('after: shown'));
  assert.ok(!msgs.includes('before: hidden'));
  assert.equal(isLoopback('127.0.0.1'), true);
  assert.equal(isLoopback('::ffff:127.0.0.1'), true);
  assert.equal(isLoopback('::1'), true);
  assert.equal(isLoopback('10.0.0.1'), false);
  assert.equal(isLoopback(undefined), false);

  // --enable-metrics=false: health only
  assert.equal((await http({ port, path: '/metrics' })).status, 404);
  assert.equal((await http({ port, path: '/healthz' })).status, 200);

  // a second server on the same port fails with a clear message
  await assert.rejects(startMetricsServer({ addresses: ['127.0.0.1'], port, enableMetrics: true, metrics: obs.metrics,
    readiness: obs.readiness, liveness: async () => true, log: obs.log, logger: obs.logger }),
  /metrics server cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
});

test('/metrics over HTTP after real CNI requests: upstream names and labels, new series, shim times, process metrics', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'koa-observe-'));
  const socketPath = join(dir, 'kube-ovn-daemon.sock');
  const obs = await startObservability({ nodeName: 'node-a', version: '0.1.0-test', revision: 'deadbeef', cniSocketPath: socketPath,
    port: 0, addresses: ['127.0.0.1'], logDestination: silent, handleSignals: false });
  const app = await startCni(socketPath, obs.logger, obs);
  t.after(async () => { await app.close(); await obs.close(); rmSync(dir, { recursive: true, force: true }); });
  const port = obs.server.addresses[0]!.port;
  assert.equal(CNI_CALL_PATH, CALL_PATH, 'hook and server agree on the call route');
  const cni = (path: string, json: unknown) => http({ socketPath, method: 'POST', path, json });

  // own protocol: two ADDs, one DEL, one bad netconf, one VERSION
  for (const id of ['c1', 'c2']) {
    const r = await cni(CALL_PATH, forwarded('ADD', id, NETCONF));
    assert.equal(r.headers['x-cni-exit-status'], '0', r.body);
  }
  const withShim = forwarded('DEL', 'c1', NETCONF, { shim_prev: { command: 'ADD', ms: 1234.5, result: 'ok' } });
  assert.equal((await cni(CALL_PATH, withShim)).headers['x-cni-exit-status'], '0');
  const bad = await cni(CALL_PATH, forwarded('ADD', 'c3', '{"cniVersion":"1.0.0","type":"kube-ovn"}'));
  assert.equal(bad.headers['x-cni-exit-status'], '1');
  const badCode = (JSON.parse(bad.body) as { code: number }).code;
  assert.equal((await cni(CALL_PATH, forwarded('VERSION', 'c4', NETCONF))).headers['x-cni-exit-status'], '0');
  // upstream protocol
  const up = await cni('/api/v1/add', { cni_type: 'kube-ovn', pod_name: 'p9', pod_namespace: 'default', container_id: 'c9',
    net_ns: '/var/run/netns/koa-observe-c9', if_name: 'eth0', provider: 'ovn' });
  assert.equal(up.status, 200, up.body);
  const upBad = await cni('/api/v1/add', { cni_type: 'kube-ovn', container_id: 'c10' });
  assert.equal(upBad.status, 400, upBad.body);
  // side call with shim times
  assert.equal((await cni(SHIM_METRICS_PATH, [{ command: 'DEL', ms: 3, result: 'ok' }, { command: 'ADD', ms: 9000, result: 'cni_11' }])).status, 204);
  assert.equal((await cni(SHIM_METRICS_PATH, { nonsense: true })).status, 400);

  const res = await http({ port, path: '/metrics' });
  assert.equal(res.status, 200);
  assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  const e = parseExposition(res.body);

  // upstream: cni_op_latency_seconds{node_name,method,status_code}
  assert.equal(e.types.get('cni_op_latency_seconds'), 'histogram');
  const add200 = { node_name: 'node-a', method: '/api/v1/add', status_code: '200' };
  assert.equal(value(e, 'cni_op_latency_seconds_count', add200), 3, 'two own-protocol ADDs + one upstream ADD');
  assert.equal(value(e, 'cni_op_latency_seconds_count', { node_name: 'node-a', method: '/api/v1/del', status_code: '204' }), 1);
  assert.equal(value(e, 'cni_op_latency_seconds_count', { node_name: 'node-a', method: '/api/v1/add', status_code: '500' }), 1);
  assert.equal(value(e, 'cni_op_latency_seconds_count', { node_name: 'node-a', method: '/api/v1/add', status_code: '400' }), 1);
  assert.equal(Math.max(...bucketBounds(e, 'cni_op_latency_seconds', add200)), 262.144);
  assert.ok(value(e, 'cni_op_latency_seconds_sum', add200) > 0);
  for (const n of ['cni_wait_address_seconds_total', 'cni_wait_route_seconds_total', 'cni_wait_connectivity_seconds_total'])
    assert.equal(e.types.get(n), 'counter', n);
  assert.equal(e.types.get('ovs_client_request_latency_milliseconds'), 'histogram');
  for (const n of ['ovn_subnet_gateway_packets', 'ovn_subnet_gateway_packet_bytes']) assert.equal(e.types.get(n), 'counter');
  // sysctl gauges from this machine's /proc
  assert.equal(find(e, 'ip_local_port_range', { hostname: 'node-a' }).length, 1);
  assert.equal(find(e, 'tcp_mem', { hostname: 'node-a' }).length, 1);
  assert.equal(find(e, 'checksum_err_count', { hostname: 'node-a' }).length, 1);

  // new: per-command histogram with result
  const h = `${NAMESPACE}cni_request_duration_seconds_count`;
  assert.equal(value(e, h, { command: 'ADD', result: 'ok' }), 3);
  assert.equal(value(e, h, { command: 'DEL', result: 'ok' }), 1);
  assert.equal(value(e, h, { command: 'ADD', result: `cni_${badCode}` }), 1);
  assert.equal(value(e, h, { command: 'ADD', result: 'error' }), 1, 'upstream 400 without a CNI code');
  assert.equal(value(e, h, { command: 'VERSION', result: 'ok' }), 1);
  assert.equal(find(e, 'cni_op_latency_seconds_count').length, 4, 'VERSION is not an upstream request');
  // shim-observed times (field + side call)
  const s = `${NAMESPACE}cni_shim_duration_seconds`;
  assert.equal(value(e, `${s}_sum`, { command: 'ADD', result: 'ok' }), 1.2345);
  assert.equal(value(e, `${s}_count`, { command: 'DEL', result: 'ok' }), 1);
  assert.equal(value(e, `${s}_count`, { command: 'ADD', result: 'cni_11' }), 1);
  // build info, process metrics, log line counters (the CNI server logs through the agent logger)
  assert.deepEqual(find(e, `${NAMESPACE}build_info`)[0]!.labels,
    { version: '0.1.0-test', revision: 'deadbeef', node_version: process.version, arch: process.arch });
  assert.ok(value(e, 'process_resident_memory_bytes') > 0);
  assert.ok(value(e, 'process_cpu_seconds_total') > 0);
  assert.ok(value(e, 'klog_lines_total', { level: 'INFO' }) >= 2, 'metrics server + CNI server start-up lines');
  assert.ok(value(e, 'klog_lines_total', { level: 'WARN' }) >= 1, 'the failed ADD was logged as a warning');
  // no pod-identifying label anywhere
  const labelNames = new Set(e.samples.flatMap((x) => Object.keys(x.labels)));
  for (const l of ['pod', 'pod_name', 'container_id', 'containerId', 'netns']) assert.equal(labelNames.has(l), false, l);
  assert.ok(!res.body.includes('pod-c1') && !res.body.includes('c1"'), 'no pod names or container ids in label values');
});
