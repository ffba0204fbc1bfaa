import { test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { createAgentMetrics, NAMESPACE } from '../../agent/src/observe/metrics.ts';
import { CNI_CALL_PATH, SHIM_METRICS_PATH, instrumentCniApp, resultFromPayload, upstreamStatus } from '../../agent/src/observe/cni-hook.ts';
import { find, parseExposition, value } from './prom-text.ts';

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

test('instrumentCniApp records commands, results, upstream labels and shim reports (fastify inject)', async () => {
  const m = createAgentMetrics({ nodeName: 'n1', version: 'v', defaultMetrics: false, sysctls: false });
  const app = Fastify();
  instrumentCniApp(app, m);
  app.post(CNI_CALL_PATH, async (req, reply) => {
    const cmd = (req.body as { env: { CNI_COMMAND: string } }).env.CNI_COMMAND;
    const fail = cmd === 'CHECK';
    return reply.header('x-cni-exit-status', fail ? '1' : '0').send(fail ? '{"code":3,"msg":"unknown container"}' : '{}');
  });
  app.post('/api/v1/del', async (_req, reply) => reply.code(204).send());
  app.post('/api/v1/add', async (_req, reply) => reply.code(500).send({ error: 'boom' }));
  app.get('/other', async () => 'x');
  const call = (command: string, extra: Record<string, unknown> = {}) =>
    app.inject({ method: 'POST', url: CNI_CALL_PATH, payload: { env: { CNI_COMMAND: command }, stdin: '{}', ...extra } });
  await call('ADD', { shim_prev: [{ command: 'ADD', ms: 40 }, { command: 'DEL', ms: 'x' }] });
  await call('CHECK');
  await call('DEL');
  await app.inject({ method: 'POST', url: '/api/v1/del', payload: {} });
  await app.inject({ method: 'POST', url: '/api/v1/add', payload: {} });
  await app.inject({ method: 'GET', url: '/other' });
  assert.equal((await app.inject({ method: 'POST', url: SHIM_METRICS_PATH, payload: { command: 'DEL', ms: 2, result: 'cni_11' } })).statusCode, 204);
  assert.equal((await app.inject({ method: 'POST', url: SHIM_METRICS_PATH, payload: [{ ms: 1 }] })).statusCode, 400);
  await app.close();

  const e = parseExposition(await m.registry.metrics());
  const h = `${NAMESPACE}cni_request_duration_seconds_count`;
  assert.equal(value(e, h, { command: 'ADD', result: 'ok' }), 1);
  assert.equal(value(e, h, { command: 'CHECK', result: 'cni_3' }), 1);
  assert.equal(value(e, h, { command: 'DEL', result: 'ok' }), 2);
  assert.equal(value(e, h, { command: 'ADD', result: 'error' }), 1);
  assert.equal(find(e, h).reduce((s, x) => s + x.value, 0), 5, 'GET /other and the shim side call are not CNI requests');
  assert.equal(value(e, 'cni_op_latency_seconds_count', { node_name: 'n1', method: '/api/v1/del', status_code: '204' }), 2);
  assert.equal(value(e, 'cni_op_latency_seconds_count', { node_name: 'n1', method: '/api/v1/add', status_code: '200' }), 1);
  assert.equal(value(e, 'cni_op_latency_seconds_count', { node_name: 'n1', method: '/api/v1/add', status_code: '500' }), 1);
  assert.equal(find(e, 'cni_op_latency_seconds_count').length, 3, 'CHECK is not an upstream request');
  const s = `${NAMESPACE}cni_shim_duration_seconds`;
  assert.equal(value(e, `${s}_sum`, { command: 'ADD', result: 'ok' }), 0.04);
  assert.equal(value(e, `${s}_count`, { command: 'DEL', result: 'cni_11' }), 1);
  assert.equal(find(e, `${s}_count`).length, 2, 'the malformed report was dropped');
});
