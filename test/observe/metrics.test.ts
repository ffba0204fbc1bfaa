import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CNI_OP_LATENCY_BUCKETS, LabelGuard, NAMESPACE, createAgentMetrics, nullMetrics, parseShimReport, resultLabel,
  type AgentMetrics,
} from '../../agent/src/observe/metrics.ts';
import { bucketBounds, find, parseExposition, value, type Exposition } from './prom-text.ts';

function fresh(): AgentMetrics {
  return createAgentMetrics({ nodeName: 'node-a', version: '1.2.3', revision: 'abc123', defaultMetrics: false, sysctls: false });
}
async function scrape(m: AgentMetrics): Promise<Exposition> {
  return parseExposition(await m.registry.metrics());
}

test('cni_op_latency_seconds keeps the upstream name, labels and le values and widens beyond 0.512 s', async () => {
  const m = fresh();
  m.observeCni('ADD', 'ok', 0.9, '/api/v1/add', 200);
  m.observeCni('DEL', 'ok', 0.004, '/api/v1/del', 204);
  m.observeCni('ADD', 'KOA_TIMEOUT', 45, '/api/v1/add', 500);
  const e = await scrape(m);
  assert.equal(e.types.get('cni_op_latency_seconds'), 'histogram');
  const add = { node_name: 'node-a', method: '/api/v1/add', status_code: '200' };
  assert.equal(value(e, 'cni_op_latency_seconds_count', add), 1);
  assert.equal(value(e, 'cni_op_latency_seconds_sum', add), 0.9);
  const bounds = bucketBounds(e, 'cni_op_latency_seconds', add);
  // every upstream bound 0.001 * 2^k, k = 0..9, is still there
  for (let k = 0; k <= 9; k++) assert.ok(bounds.includes(Math.round(0.001 * 2 ** k * 1e6) / 1e6), `le=${0.001 * 2 ** k}`);
  assert.equal(Math.max(...bounds), 262.144);
  assert.deepEqual(bounds, [...CNI_OP_LATENCY_BUCKETS]);
  // 0.9 s is no longer only in +Inf
  assert.equal(value(e, 'cni_op_latency_seconds_bucket', { ...add, le: '0.512' }), 0);
  assert.equal(value(e, 'cni_op_latency_seconds_bucket', { ...add, le: '1.024' }), 1);
  const slow = { node_name: 'node-a', method: '/api/v1/add', status_code: '500' };
  assert.equal(value(e, 'cni_op_latency_seconds_bucket', { ...slow, le: '32.768' }), 0);
  assert.equal(value(e, 'cni_op_latency_seconds_bucket', { ...slow, le: '65.536' }), 1);
  assert.equal(value(e, 'cni_op_latency_seconds_count', { node_name: 'node-a', method: '/api/v1/del', status_code: '204' }), 1);
});

test('new per-command CNI histogram: command and result labels, bounded values', async () => {
  const m = fresh();
  m.observeCni('ADD', 'ok', 0.02, '/api/v1/add', 200);
  m.observeCni('add', true, 0.03, '/api/v1/add', 200);
  m.observeCni('CHECK', 'KOA_TIMEOUT', 1, '/api/v1/check', 500);
  m.observeCni('rm -rf', 'some free text', 1, '/api/v1/add?pod=x', 500);
  m.observeCni('DEL', false, -5, '/api/v1/del', 500);
  m.observeCni('CHECK', 'ok', 0.01, null, 200); // not an upstream request: only the new histogram
  const e = await scrape(m);
  const n = `${NAMESPACE}cni_request_duration_seconds`;
  assert.equal(e.types.get(n), 'histogram');
  assert.equal(value(e, `${n}_count`, { command: 'ADD', result: 'ok' }), 2);
  assert.equal(value(e, `${n}_sum`, { command: 'ADD', result: 'ok' }), 0.05);
  assert.equal(value(e, `${n}_count`, { command: 'CHECK', result: 'KOA_TIMEOUT' }), 1);
  assert.equal(value(e, `${n}_count`, { command: 'CHECK', result: 'ok' }), 1);
  assert.equal(find(e, 'cni_op_latency_seconds_count', { status_code: '200', method: 'other' }).length, 0);
  assert.equal(value(e, `${n}_count`, { command: 'other', result: 'error' }), 1);
  assert.equal(value(e, `${n}_sum`, { command: 'DEL', result: 'error' }), 0, 'negative durations are clamped to 0');
  // unknown upstream method URIs collapse into "other" instead of carrying query strings
  assert.equal(value(e, 'cni_op_latency_seconds_count', { node_name: 'node-a', method: 'other', status_code: '500' }), 2);
  assert.equal(bucketBounds(e, n, { command: 'ADD', result: 'ok' }).at(-1), 240);
});

test('waits: per-stage histogram and the upstream cni_wait_*_seconds_total counters', async () => {
  const m = fresh();
  m.observeWait('annotation', 2.5);
  m.observeWait('annotation', 0.5);
  m.observeWait('routed', 1.25);
  m.observeWait('ovn_installed', 0.2);
  m.observeWait('gateway_check', 0.75);
  const e = await scrape(m);
  for (const c of ['cni_wait_address_seconds_total', 'cni_wait_route_seconds_total', 'cni_wait_connectivity_seconds_total'])
    assert.equal(e.types.get(c), 'counter', c);
  assert.equal(value(e, 'cni_wait_address_seconds_total', { node_name: 'node-a' }), 3);
  assert.equal(value(e, 'cni_wait_route_seconds_total', { node_name: 'node-a' }), 1.25);
  assert.equal(value(e, 'cni_wait_connectivity_seconds_total', { node_name: 'node-a' }), 0.75);
  const h = `${NAMESPACE}cni_wait_duration_seconds`;
  assert.equal(value(e, `${h}_count`, { stage: 'annotation' }), 2);
  assert.equal(value(e, `${h}_sum`, { stage: 'ovn_installed' }), 0.2);
  assert.equal(value(e, `${h}_count`, { stage: 'gateway_check' }), 1);
  assert.deepEqual(new Set(find(e, `${h}_count`).map((s) => s.labels.stage)),
    new Set(['annotation', 'routed', 'ovn_installed', 'gateway_check']));
});

test('OVSDB calls: upstream ovs_client_request_latency_milliseconds{db,method,code} and the new seconds histogram', async () => {
  const m = fresh();
  m.observeOvsdb('ovsdb', 'transact', 0.003, true);
  m.observeOvsdb('ovsdb', 'transact', 0.001, true);
  m.observeOvsdb('ovsdb', 'monitor_cond', 0.7, false);
  const e = await scrape(m);
  assert.equal(e.types.get('ovs_client_request_latency_milliseconds'), 'histogram');
  const ok = { db: 'ovsdb', method: 'transact', code: '0' };
  assert.equal(value(e, 'ovs_client_request_latency_milliseconds_count', ok), 2);
  assert.equal(value(e, 'ovs_client_request_latency_milliseconds_sum', ok), 4);
  assert.deepEqual(bucketBounds(e, 'ovs_client_request_latency_milliseconds', ok), [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]);
  assert.equal(value(e, 'ovs_client_request_latency_milliseconds_count', { db: 'ovsdb', method: 'monitor_cond', code: '1' }), 1);
  const n = `${NAMESPACE}ovsdb_request_duration_seconds`;
  assert.equal(value(e, `${n}_count`, { op: 'transact', result: 'ok' }), 2);
  assert.equal(value(e, `${n}_sum`, { op: 'monitor_cond', result: 'error' }), 0.7);
});

test('netlink, iptables-restore and ipset calls: counts, durations and lines', async () => {
  const m = fresh();
  m.observeNetlink('link_add', 0.0002, true);
  m.observeNetlink('link_add', 0.0004, false);
  m.observeIptables('v4-filter', 0.012, true, 40);
  m.observeIptables('v4-filter', 0.02, false);
  m.observeIpset('v4', 0.004, true, 7);
  const e = await scrape(m);
  assert.equal(value(e, `${NAMESPACE}netlink_request_duration_seconds_count`, { op: 'link_add', result: 'ok' }), 1);
  assert.equal(value(e, `${NAMESPACE}netlink_request_duration_seconds_count`, { op: 'link_add', result: 'error' }), 1);
  assert.equal(value(e, `${NAMESPACE}iptables_restore_duration_seconds_count`, { op: 'v4-filter', result: 'ok' }), 1);
  assert.equal(value(e, `${NAMESPACE}iptables_restore_duration_seconds_count`, { op: 'v4-filter', result: 'error' }), 1);
  assert.equal(value(e, `${NAMESPACE}iptables_restore_lines_total`, { op: 'v4-filter' }), 40);
  assert.equal(value(e, `${NAMESPACE}ipset_restore_duration_seconds_sum`, { op: 'v4', result: 'ok' }), 0.004);
  assert.equal(value(e, `${NAMESPACE}ipset_restore_lines_total`, { op: 'v4' }), 7);
  assert.equal(bucketBounds(e, `${NAMESPACE}netlink_request_duration_seconds`, { op: 'link_add', result: 'ok' })[0], 0.00005);
});

test('kernel calls: read at scrape time, by where they ran; nothing before a source is set', async () => {
  const m = fresh();
  assert.equal(find(await scrape(m), `${NAMESPACE}kernel_calls_total`, { path: 'inline' }).length, 0);
  const stats = { inline: 5, pooled: 2, slow: 1 };
  m.countKernelCalls(() => stats);
  let e = await scrape(m);
  assert.equal(e.types.get(`${NAMESPACE}kernel_calls_total`), 'counter');
  assert.equal(value(e, `${NAMESPACE}kernel_calls_total`, { path: 'inline' }), 5);
  assert.equal(value(e, `${NAMESPACE}kernel_calls_total`, { path: 'pool' }), 2);
  assert.equal(value(e, `${NAMESPACE}kernel_calls_total`, { path: 'slow_inline' }), 1);
  stats.inline = 9;
  e = await scrape(m);
  assert.equal(value(e, `${NAMESPACE}kernel_calls_total`, { path: 'inline' }), 9);
});

test('watch restarts and health, readiness gauges, ready duration', async () => {
  const m = fresh();
  m.watchRestarted('pods');
  m.watchRestarted('pods');
  m.watchRestarted('subnets');
  m.setWatchHealthy('pods', true);
  m.setWatchHealthy('subnets', false);
  m.setReadiness('cni-socket', true);
  m.setReadiness('ovsdb-connected', false);
  m.markReady(1.5);
  m.markReady(99); // only the first time counts
  const e = await scrape(m);
  assert.equal(value(e, `${NAMESPACE}watch_restarts_total`, { resource: 'pods' }), 2);
  assert.equal(value(e, `${NAMESPACE}watch_restarts_total`, { resource: 'subnets' }), 1);
  assert.equal(value(e, `${NAMESPACE}watch_healthy`, { resource: 'pods' }), 1);
  assert.equal(value(e, `${NAMESPACE}watch_healthy`, { resource: 'subnets' }), 0);
  assert.equal(value(e, `${NAMESPACE}readiness_check`, { check: 'cni-socket' }), 1);
  assert.equal(value(e, `${NAMESPACE}readiness_check`, { check: 'ovsdb-connected' }), 0);
  assert.equal(value(e, `${NAMESPACE}ready_duration_seconds`), 1.5);
});

test('build_info carries version, revision, node version and arch', async () => {
  const e = await scrape(fresh());
  const s = find(e, `${NAMESPACE}build_info`);
  assert.equal(s.length, 1);
  assert.equal(s[0]!.value, 1);
  assert.deepEqual(s[0]!.labels, { version: '1.2.3', revision: 'abc123', node_version: process.version, arch: process.arch });
});

test('shim-observed time: shim_prev reports are validated, converted from ms and recorded', async () => {
  const m = fresh();
  assert.equal(m.observeShimReport({ command: 'ADD', ms: 1500, result: 'ok' }), true);
  assert.equal(m.observeShimReport({ command: 'del', ms: 20 }), true);
  for (const bad of [null, 'x', {}, { command: 'ADD' }, { command: 'ADD', ms: -1 }, { command: 'ADD', ms: Number.NaN },
    { command: 'ADD', ms: '5' }, { command: 'ADD', ms: 5, result: 3 }, { command: 'ADD', ms: 1e12 }])
    assert.equal(m.observeShimReport(bad), false, JSON.stringify(bad));
  m.observeShim('ADD', 0.25, 'KOA_TIMEOUT');
  const e = await scrape(m);
  const n = `${NAMESPACE}cni_shim_duration_seconds`;
  assert.equal(value(e, `${n}_sum`, { command: 'ADD', result: 'ok' }), 1.5);
  assert.equal(value(e, `${n}_sum`, { command: 'DEL', result: 'ok' }), 0.02);
  assert.equal(value(e, `${n}_count`, { command: 'ADD', result: 'KOA_TIMEOUT' }), 1);
  assert.deepEqual(parseShimReport({ command: 'check', ms: 3, result: 'error' }), { command: 'CHECK', ms: 3, result: 'error' });
});

test('subnet gateway counters, klog line counters, rest client metrics use the upstream names and labels', async () => {
  const m = fresh();
  m.addSubnetGatewayTraffic('ovn-default', '10.16.0.0/16', 'egress', 'IPv4', 10, 1500);
  m.addSubnetGatewayTraffic('ovn-default', '10.16.0.0/16', 'egress', 'IPv4', 5, 500);
  m.countLogLine('ERROR', 120);
  m.countLogLine('INFO', 80);
  m.countLogLine('INFO', 20);
  m.observeRestClient('get', '/api/v1/namespaces/{namespace}/pods/{name}', 200, 'https://10.96.0.1:443', 0.01);
  const e = await scrape(m);
  const gw = { hostname: 'node-a', subnet_name: 'ovn-default/egress/IPv4', cidr: '10.16.0.0/16', direction: 'egress', protocol: 'IPv4' };
  assert.equal(e.types.get('ovn_subnet_gateway_packets'), 'counter');
  assert.equal(value(e, 'ovn_subnet_gateway_packets', gw), 15);
  assert.equal(value(e, 'ovn_subnet_gateway_packet_bytes', gw), 2000);
  assert.equal(e.types.get('klog_lines_total'), 'gauge');
  assert.equal(value(e, 'klog_lines_total', { level: 'ERROR' }), 1);
  assert.equal(value(e, 'klog_lines_total', { level: 'INFO' }), 2);
  assert.equal(value(e, 'klog_lines_total', { level: 'WARN' }), 0);
  assert.equal(value(e, 'klog_bytes_total', { level: 'INFO' }), 100);
  assert.equal(value(e, 'rest_client_request_latency_seconds_count', { verb: 'GET', url: '/api/v1/namespaces/{namespace}/pods/{name}' }), 1);
  assert.equal(value(e, 'rest_client_requests_total', { code: '200', method: 'GET', host: 'https://10.96.0.1:443' }), 1);
});

test('label cardinality is bounded: free-form op names are capped, no pod-identifying labels exist', async () => {
  const m = fresh();
  for (let i = 0; i < 500; i++) m.observeNetlink(`op-${i}`, 0.001, true);
  m.observeNetlink('x'.repeat(300), 0.001, true);
  const e = await scrape(m);
  const series = find(e, `${NAMESPACE}netlink_request_duration_seconds_count`);
  assert.equal(series.length, 65, '64 distinct values + other');
  assert.equal(value(e, `${NAMESPACE}netlink_request_duration_seconds_count`, { op: 'other', result: 'ok' }), 437);
  assert.ok(series.every((s) => s.labels.op!.length <= 64));
  const labelNames = new Set(e.samples.flatMap((s) => Object.keys(s.labels)));
  for (const forbidden of ['pod', 'pod_name', 'namespace', 'container_id', 'netns', 'ip'])
    assert.equal(labelNames.has(forbidden), false, forbidden);
  const g = new LabelGuard(2);
  assert.deepEqual(['a', 'b', 'c', 'a'].map((v) => g.value(v)), ['a', 'b', 'other', 'a']);
});

test('naming: new families are namespaced, counters end in _total except the upstream names kept as they are', async () => {
  const m = fresh();
  const e = await scrape(m);
  const upstream = new Set(['cni_op_latency_seconds', 'cni_wait_address_seconds_total', 'cni_wait_route_seconds_total',
    'cni_wait_connectivity_seconds_total', 'ovs_client_request_latency_milliseconds', 'rest_client_request_latency_seconds',
    'rest_client_requests_total', 'ovn_subnet_gateway_packets', 'ovn_subnet_gateway_packet_bytes', 'klog_lines_total',
    'klog_bytes_total']);
  for (const [name, type] of e.types) {
    if (upstream.has(name)) continue;
    assert.ok(name.startsWith(NAMESPACE), `${name} is namespaced`);
    if (type === 'counter') assert.ok(name.endsWith('_total'), `${name} ends in _total`);
    assert.ok(!name.includes('millisecond'), `${name} uses base units`);
  }
  for (const u of upstream) assert.ok(e.types.has(u), `upstream family ${u} registered`);
});

test('process and Node.js default metrics are registered by default', async () => {
  const m = createAgentMetrics({ nodeName: 'n', version: '0', sysctls: false });
  const e = await scrape(m);
  for (const n of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_heap_size_used_bytes'])
    assert.ok(e.types.has(n), n);
  assert.ok(value(e, 'process_resident_memory_bytes') > 1e6);
});

test('registries are independent; resultLabel and nullMetrics', async () => {
  const a = fresh();
  const b = fresh();
  a.watchRestarted('pods');
  assert.equal(find(await scrape(b), `${NAMESPACE}watch_restarts_total`).length, 0);
  assert.equal(resultLabel('KOA_NOT_READY'), 'KOA_NOT_READY');
  assert.equal(resultLabel('toString'), 'error');
  assert.equal(resultLabel(true), 'ok');
  assert.equal(resultLabel('cni_11'), 'cni_11');
  assert.equal(resultLabel('cni_1000'), 'error');
  assert.equal(resultLabel('cni_011'), 'error');
  const nm = nullMetrics();
  assert.deepEqual(Object.keys(nm).sort(), Object.keys(a).sort());
  nm.observeCni('ADD', 'ok', 1, '/api/v1/add', 200);
  assert.equal((await nm.registry.metrics()).trim(), '');
});
