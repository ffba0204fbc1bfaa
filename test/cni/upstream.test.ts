// The upstream kube-ovn protocol: exact CniRequest in, exact CniResponse shape out (spec §1.6, §2.3, §2.4).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Dispatcher } from '../../agent/src/cni/dispatcher.ts';
import { FakeBackend } from '../../agent/src/cni/fake-backend.ts';
import { handleUpstream, networkOf, parseUpstreamRequest, toUpstreamResponse } from '../../agent/src/cni/upstream.ts';
import { startCniServer } from '../../agent/src/server/cni-server.ts';
import { AgentError, agentError, ERRORS, toAgentError } from '../../agent/src/errors.ts';
import { post, quietLog, raw, tempDir } from './helpers.ts';

/** A request exactly as the upstream kube-ovn CNI binary sends it for ADD (all fields, Go zero values). */
const upstreamAdd = {
  cni_type: 'kube-ovn', pod_name: 'web-0', pod_namespace: 'default', container_id: 'koacup0123456789', net_ns: '/var/run/netns/koac-up',
  if_name: 'eth0', provider: 'ovn', routes: null, dns: {}, vf_driver: '', deviceID: '',
  vhost_user_socket_volume_name: '', vhost_user_socket_name: '', vhost_user_socket_consumption: '',
};

test('networkOf', () => {
  const table: [string, string][] = [
    ['10.16.0.5/16', '10.16.0.0/16'], ['10.16.255.255/32', '10.16.255.255/32'], ['192.168.7.9/0', '0.0.0.0/0'],
    ['172.17.3.130/25', '172.17.3.128/25'], ['fd00:10:16::5/64', 'fd00:10:16::/64'], ['2001:db8:1:2:3:4:5:6/48', '2001:db8:1::/48'],
    ['fe80::1/10', 'fe80::/10'], ['::1/128', '::1/128'], ['2001:db8::ffff:1.2.3.4/120', '2001:db8::ffff:102:300/120'], ['1:0:0:1:0:0:0:1/128', '1:0:0:1::1/128'],
  ];
  for (const [i, o] of table) assert.equal(networkOf(i), o, i);
});

test('ADD answers the exact upstream CniResponse shape', async () => {
  const d = new Dispatcher({ backend: new FakeBackend() });
  const r = await handleUpstream(d, 'ADD', upstreamAdd);
  assert.equal(r.status, 200);
  const b = r.body!;
  assert.deepEqual(Object.keys(b).sort(), ['dns', 'error', 'ips', 'mac_address', 'mtu', 'nicname', 'routes']);
  assert.equal(b.error, '');
  assert.equal(b.nicname, 'eth0');
  assert.equal(b.mtu, 1400);
  assert.match(b.mac_address, /^00:00:00(:[0-9a-f]{2}){3}$/);
  assert.equal(b.ips!.length, 2);
  assert.deepEqual(b.ips!.map((i) => Object.keys(i).sort()), [['cidr', 'gateway', 'ip', 'protocol'], ['cidr', 'gateway', 'ip', 'protocol']]);
  assert.deepEqual(b.ips!.map((i) => [i.protocol, i.cidr, i.gateway]), [['IPv4', '10.16.0.0/16', '10.16.0.1'], ['IPv6', 'fd00:10:16::/64', 'fd00:10:16::1']]);
  assert.ok(!b.ips![0]!.ip.includes('/'));
  assert.deepEqual(b.dns, {});
});

test('IPAM-only upstream request (cni_type macvlan) gets no nic fields, routes from the request', async () => {
  const d = new Dispatcher({ backend: new FakeBackend() });
  const r = await handleUpstream(d, 'ADD', { ...upstreamAdd, cni_type: 'macvlan', provider: 'mv.default', if_name: 'net1', routes: [{ dst: '', gw: '172.20.0.1' }] });
  assert.equal(r.status, 200);
  assert.equal(r.body!.nicname, '');
  assert.equal(r.body!.mac_address, '');
  assert.equal(r.body!.mtu, 0);
  assert.deepEqual(r.body!.routes, [{ dst: '0.0.0.0/0', gw: '172.20.0.1' }]);
});

test('DEL: 204 empty; empty net_ns is 204 without touching the backend', async () => {
  const fake = new FakeBackend();
  const d = new Dispatcher({ backend: fake });
  await handleUpstream(d, 'ADD', upstreamAdd);
  const del = { pod_name: 'web-0', pod_namespace: 'default', container_id: 'koacup0123456789', net_ns: '/var/run/netns/koac-up', if_name: 'eth0', provider: 'ovn', cni_type: 'kube-ovn', deviceID: '', vhost_user_socket_volume_name: '', vhost_user_socket_consumption: '' };
  assert.deepEqual(await handleUpstream(d, 'DEL', { ...del, net_ns: '' }), { status: 204, body: null });
  assert.equal(fake.attachments.size, 1);
  assert.deepEqual(await handleUpstream(d, 'DEL', del), { status: 204, body: null });
  assert.equal(fake.attachments.size, 0);
});

test('errors: 400 for bad requests, 500 for backend failures, body carries only error', async () => {
  const d = new Dispatcher({ backend: new FakeBackend({ fail: (op) => (op === 'add' ? agentError('KOA_OVSDB', 'add-port', 'refused') : undefined) }) });
  const table: [unknown, number, RegExp][] = [
    ['x', 400, /expected a JSON object/],
    [{ ...upstreamAdd, pod_name: '' }, 400, /pod_name/],
    [{ ...upstreamAdd, pod_name: 5 }, 400, /pod_name must be a string/],
    [{ ...upstreamAdd, if_name: 'a/b' }, 400, /if_name/],
    [{ ...upstreamAdd, container_id: '' }, 400, /container_id/],
    [{ ...upstreamAdd, net_ns: '' }, 400, /net_ns/],
    [{ ...upstreamAdd, routes: [{ dst: 'bad' }] }, 400, /routes\[0\]\.dst/],
    [upstreamAdd, 500, /OVSDB add-port: refused/],
  ];
  for (const [body, status, re] of table) {
    const r = await handleUpstream(d, 'ADD', body);
    assert.equal(r.status, status, JSON.stringify(body));
    assert.match(r.body!.error, re);
    assert.deepEqual({ ...r.body!, error: '' }, { ips: null, mac_address: '', routes: null, mtu: 0, nicname: '', dns: {}, error: '' });
  }
});

test('upstream request mapping keeps provider, routes, dns and device keys', () => {
  const req = parseUpstreamRequest({ ...upstreamAdd, provider: 'net2.ns.ovn', routes: [{ dst: '10.0.0.0/8', gw: '10.16.0.254' }], dns: { nameservers: ['1.1.1.1'] },
    deviceID: '0000:3b:00.2', vf_driver: 'mlx5_core', vhost_user_socket_volume_name: 'vol', vhost_user_socket_name: 'sock', vhost_user_socket_consumption: 'kubevirt' }, 'ADD');
  assert.equal(req.via, 'upstream');
  assert.equal(req.netconf.provider, 'net2.ns.ovn');
  assert.deepEqual(req.netconf.routes, [{ dst: '10.0.0.0/8', gw: '10.16.0.254' }]);
  assert.deepEqual(req.netconf.dns, { nameservers: ['1.1.1.1'] });
  assert.deepEqual([req.netconf.deviceID, req.netconf.vfDriver, req.netconf.vhostUserSocketVolumeName, req.netconf.vhostUserSocketName, req.netconf.vhostUserSocketConsumption],
    ['0000:3b:00.2', 'mlx5_core', 'vol', 'sock', 'kubevirt']);
  assert.equal(parseUpstreamRequest({ ...upstreamAdd, provider: '' }, 'ADD').netconf.provider, 'ovn');
  assert.deepEqual(toUpstreamResponse({}), { ips: [], mac_address: '', routes: null, mtu: 0, nicname: '', dns: {}, error: '' });
});

test('routes over HTTP (a real socket): /api/v1/add 200, /api/v1/del 204 with an empty body, bad JSON 400', async () => {
  const dir = await tempDir();
  const sock = join(dir, 'agent.sock');
  const srv = await startCniServer({ socketPath: sock, dispatcher: new Dispatcher({ backend: new FakeBackend() }), log: quietLog() });
  try {
    const add = await post(sock, '/api/v1/add', JSON.stringify(upstreamAdd));
    assert.equal(add.status, 200);
    assert.match(add.headers['content-type'] as string, /application\/json/);
    assert.equal(JSON.parse(add.body).nicname, 'eth0');
    const del = await post(sock, '/api/v1/del', JSON.stringify(upstreamAdd));
    assert.equal(del.status, 204);
    assert.equal(del.body, '');
    assert.equal(del.headers['content-type'], undefined);
    const bad = await post(sock, '/api/v1/add', '{"pod_name":');
    assert.equal(bad.status, 400);
    assert.match(JSON.parse(bad.body).error, /cannot decode request body/);
    const nf = await raw(sock, 'GET /api/v1/add HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(nf, /^HTTP\/1\.1 404 /);
  } finally {
    await srv.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('errors carry their HTTP status and retryability from the one table; a validation RangeError is not internal', () => {
  for (const [code, e] of Object.entries(ERRORS)) {
    const err = new AgentError(code as keyof typeof ERRORS, 'x');
    assert.equal(err.httpStatus, e.http, code);
    assert.equal(err.retryable, e.retryable, code);
    if (e.cni === 11 || e.cni === 50) assert.equal(e.retryable, true, `${code}: "try again" codes are retryable`);
    if (e.http === 400 || e.http === 413) assert.equal(e.retryable, false, `${code}: a bad request stays bad`);
  }
  assert.equal(agentError('KOA_TOO_LARGE', 10, 5).message, 'request of 10 bytes exceeds the limit of 5 bytes');
  const r = toAgentError(new RangeError('invalid ingress_rate -1'));
  assert.deepEqual([r.code, r.cniCode, r.httpStatus], ['KOA_INVALID_VALUE', 7, 400]);
  assert.deepEqual([toAgentError(new TypeError('x is undefined')).code], ['KOA_INTERNAL']);
});
