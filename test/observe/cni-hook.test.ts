import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Dispatcher } from '../../agent/src/cni/dispatcher.ts';
import { FakeBackend } from '../../agent/src/cni/fake-backend.ts';
import { agentError } from '../../agent/src/errors.ts';
import { EXIT_HEADER, startCniServer } from '../../agent/src/server/cni-server.ts';
import { createAgentMetrics, NAMESPACE } from '../../agent/src/observe/metrics.ts';
import { CNI_CALL_PATH, SHIM_METRICS_PATH, cniMetricsObserver, resultFromPayload, upstreamStatus } from '../../agent/src/observe/cni-hook.ts';
import { find, parseExposition, value } from './prom-text.ts';
import { cniEnv, post, quietLog, raw, SOCK_NC, tempDir } from '../cni/helpers.ts';

test('resultFromPayload and upstreamStatus', () => {
  assert.equal(resultFromPayload('0', 200, '{"cniVersion":"1.0.0"}'), 'ok');
  assert.equal(resultFromPayload('1', 200, '{"cniVersion":"1.0.0","code":11,"msg":"try later"}'), 'cni_11');
  assert.equal(resultFromPayload('1', 200, 'not json'), 'error');
  assert.equal(resultFromPayload('1', 200, '{"code":"7"}'), 'error');
  assert.equal(resultFromPayload(undefined, 204, ''), 'ok');
  assert.equal(resultFromPayload(undefined, 500, '{"error":"x"}'), 'error');
  assert.equal(upstreamStatus('ADD', 'ok', 200), 200);
  assert.equal(upstreamStatus('DEL', 'ok', 200), 204);
  assert.equal(upstreamStatus('ADD', 'cni_7', 200), 500);
  assert.equal(upstreamStatus('ADD', 'error', 400), 400);
});

test('cniMetricsObserver records commands, results, upstream labels and shim reports (the real server on a temp socket)', async () => {
  const m = createAgentMetrics({ nodeName: 'n1', version: 'v', defaultMetrics: false, sysctls: false });
  // CHECK without prevResult fails with code 7; an upstream ADD of container koac-boom fails in the datapath (500)
  const backend = new FakeBackend({ fail: (op, req) => (op === 'add' && req?.containerId === 'koac-boom' ? agentError('KOA_OVSDB', 'add-port', 'refused') : undefined) });
  const dir = await tempDir();
  const sock = join(dir, 'agent.sock');
  const srv = await startCniServer({ socketPath: sock, dispatcher: new Dispatcher({ backend }), log: quietLog(), observer: cniMetricsObserver(m) });
  const upstream = (id: string) => JSON.stringify({ cni_type: 'kube-ovn', pod_name: 'p', pod_namespace: 'default', container_id: id,
    net_ns: '/var/run/netns/koac-h', if_name: 'eth0', provider: 'ovn' });
  try {
    const call = (command: string, extra: Record<string, unknown> = {}) =>
      post(sock, CNI_CALL_PATH, JSON.stringify({ env: cniEnv(command), stdin: SOCK_NC(sock), ...extra }));
    assert.equal((await call('ADD', { shim_prev: [{ command: 'ADD', ms: 40 }, { command: 'DEL', ms: 'x' }] })).headers[EXIT_HEADER], '0');
    assert.equal((await call('CHECK')).headers[EXIT_HEADER], '1');
    assert.equal((await call('DEL')).headers[EXIT_HEADER], '0');
    assert.equal((await post(sock, '/api/v1/del', upstream('koac-h1'))).status, 204);
    assert.equal((await post(sock, '/api/v1/add', upstream('koac-boom'))).status, 500);
    assert.match(await raw(sock, 'GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 404 /);
    assert.equal((await post(sock, CNI_CALL_PATH, '{"env":')).status, 400, 'an undecodable body is answered, not counted');
    assert.equal((await post(sock, SHIM_METRICS_PATH, JSON.stringify({ command: 'DEL', ms: 2, result: 'cni_11' }))).status, 204);
    assert.equal((await post(sock, SHIM_METRICS_PATH, JSON.stringify([{ ms: 1 }]))).status, 400);
  } finally {
    await srv.close();
    await rm(dir, { recursive: true, force: true });
  }

  const e = parseExposition(await m.registry.metrics());
  const h = `${NAMESPACE}cni_request_duration_seconds_count`;
  assert.equal(value(e, h, { command: 'ADD', result: 'ok' }), 1);
  assert.equal(value(e, h, { command: 'CHECK', result: 'cni_7' }), 1);
  assert.equal(value(e, h, { command: 'DEL', result: 'ok' }), 2);
  assert.equal(value(e, h, { command: 'ADD', result: 'error' }), 1);
  assert.equal(find(e, h).reduce((s, x) => s + x.value, 0), 5, 'GET /other, the undecodable body and the shim side call are not CNI requests');
  assert.equal(value(e, 'cni_op_latency_seconds_count', { node_name: 'n1', method: '/api/v1/del', status_code: '204' }), 2);
  assert.equal(value(e, 'cni_op_latency_seconds_count', { node_name: 'n1', method: '/api/v1/add', status_code: '200' }), 1);
  assert.equal(value(e, 'cni_op_latency_seconds_count', { node_name: 'n1', method: '/api/v1/add', status_code: '500' }), 1);
  assert.equal(find(e, 'cni_op_latency_seconds_count').length, 3, 'CHECK is not an upstream request');
  const s = `${NAMESPACE}cni_shim_duration_seconds`;
  assert.equal(value(e, `${s}_sum`, { command: 'ADD', result: 'ok' }), 0.04);
  assert.equal(value(e, `${s}_count`, { command: 'DEL', result: 'cni_11' }), 1);
  assert.equal(find(e, `${s}_count`).length, 2, 'the malformed report was dropped');
});

test('a call whose client leaves before the answer is recorded with the answer it got, once it has one', async () => {
  const m = createAgentMetrics({ nodeName: 'n1', version: 'v', defaultMetrics: false, sysctls: false });
  const backend = new FakeBackend({ delayMs: () => 150, fail: (op) => (op === 'add' ? agentError('KOA_TRY_AGAIN', 'not yet') : undefined) });
  const dir = await tempDir();
  const sock = join(dir, 'agent.sock');
  const srv = await startCniServer({ socketPath: sock, dispatcher: new Dispatcher({ backend }), log: quietLog(), observer: cniMetricsObserver(m) });
  const h = `${NAMESPACE}cni_request_duration_seconds_count`;
  try {
    const body = JSON.stringify({ env: cniEnv('ADD'), stdin: SOCK_NC(sock) });
    const s = connect({ path: sock });
    s.on('error', () => undefined);
    await new Promise((r) => s.once('connect', r));
    s.write(`POST ${CNI_CALL_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    while (backend.events.length === 0) await new Promise((r) => setTimeout(r, 5));
    s.destroy(); // gone while the ADD runs
    while (find(parseExposition(await m.registry.metrics()), h).length === 0) await new Promise((r) => setTimeout(r, 20));
    const e = parseExposition(await m.registry.metrics());
    assert.equal(value(e, h, { command: 'ADD', result: 'cni_11' }), 1);
    assert.equal(find(e, h).length, 1, 'recorded once, not as ok when the client left');
  } finally {
    await srv.close();
    await rm(dir, { recursive: true, force: true });
  }
});
