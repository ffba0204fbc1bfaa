// KubeRest's connection to the API server: one shared node:https keep-alive Agent per TLS material (client-node 2.0.1
// builds a new undici Agent, so a new TCP + TLS connection, for every request), fresh headers on every request.
import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { loadKubeConfig } from '../../agent/src/k8s/client.ts';
import { AUTH_TTL_MS, forgetAuth, KubeRest, refuseAuthProvider, requestAuth } from '../../agent/src/k8s/rest.ts';

/** A self-signed certificate for 127.0.0.1 (openssl, as the test bed makes the API server's). */
function selfSigned(): { key: Buffer; cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'koak-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'k'), '-out', join(dir, 'c')], { stdio: 'ignore' });
    return { key: readFileSync(join(dir, 'k')), cert: readFileSync(join(dir, 'c')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function config(server: string, caData: string, user: { token?: string; username?: string; password?: string }): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({ clusters: [{ name: 'c', server, caData }], users: [{ name: 'u', ...user }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
  return kc;
}

/** Waits for `cond` (each step a 10 ms pause), at most 5 s, then asserts it. */
async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), what);
}

describe('KubeRest connections', () => {
  it('requests over HTTPS reuse their TLS connections, each with the current token', async () => {
    const tls = selfSigned();
    let handshakes = 0;
    const seen: string[] = [];
    const server = createServer(tls, (req, res) => {
      seen.push(String(req.headers.authorization));
      res.setHeader('content-type', 'application/json');
      res.end('{"kind":"Pod"}');
    });
    server.on('secureConnection', () => handshakes++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const kc = config(`https://127.0.0.1:${(server.address() as { port: number }).port}`, tls.cert.toString('base64'), { token: 't1' });
      const rest = new KubeRest(kc);
      for (let i = 0; i < 10; i++) assert.deepEqual(await rest.call('GET', '/api/v1/namespaces/default/pods/p'), { kind: 'Pod' });
      // the second request may be sent before the first's socket is back in the pool: at most two
      assert.ok(handshakes <= 2, `${handshakes} TLS handshakes for 10 sequential requests (a new Agent per request: 10)`);
      (kc.getCurrentUser() as { token?: string }).token = 't2'; // as a token file or exec plugin would rotate it
      forgetAuth(kc); // (the cached answer's age is the next test's subject)
      await Promise.all(Array.from({ length: 10 }, () => rest.call('GET', '/api/v1/namespaces/default/pods/p')));
      assert.deepEqual(seen, [...Array(10).fill('Bearer t1'), ...Array(10).fill('Bearer t2')]);
      assert.ok(handshakes <= 11, `${handshakes} TLS handshakes`); // 10 at once open up to 10 connections (HTTP/1.1)
      const before = handshakes;
      for (let i = 0; i < 5; i++) await rest.call('GET', '/api/v1/namespaces/default/pods/p');
      assert.equal(handshakes, before, 'sequential requests reuse an open connection');
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('the in-cluster service account (the DaemonSet has no kubeconfig) authenticates with its token file', async () => {
    const tls = selfSigned();
    const seen: string[] = [];
    const server = createServer(tls, (req, res) => {
      seen.push(String(req.headers.authorization));
      res.setHeader('content-type', 'application/json');
      res.end('{"kind":"Pod"}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const root = mkdtempSync(join(tmpdir(), 'koak-sa-'));
    const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
    try {
      const sa = join(root, 'var/run/secrets/kubernetes.io/serviceaccount');
      mkdirSync(sa, { recursive: true });
      writeFileSync(join(sa, 'token'), 'sa-token');
      writeFileSync(join(sa, 'ca.crt'), tls.cert);
      process.env.KUBERNETES_SERVICE_HOST = '127.0.0.1';
      process.env.KUBERNETES_SERVICE_PORT = String((server.address() as { port: number }).port);
      const kc = new KubeConfig();
      kc.loadFromCluster(root); // what loadKubeConfig('') does, with the files under root
      assert.equal(kc.getCurrentUser()?.authProvider?.name, 'tokenFile', 'client-node\'s in-cluster user is an auth-provider user');
      refuseAuthProvider(kc);
      const rest = new KubeRest(kc);
      assert.deepEqual(await rest.call('GET', '/api/v1/namespaces/default/pods/p'), { kind: 'Pod' });
      assert.deepEqual(seen, ['Bearer sa-token']);
    } finally {
      for (const [k, v] of [['KUBERNETES_SERVICE_HOST', saved.host], ['KUBERNETES_SERVICE_PORT', saved.port]] as const) {
        if (v === undefined) delete process.env[k]; else process.env[k] = v;
      }
      rmSync(root, { recursive: true, force: true });
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('a new CA gets a new transport and the old one is destroyed; basic auth becomes a header', async () => {
    const a = selfSigned();
    const kc = config('https://127.0.0.1:1', a.cert.toString('base64'), { username: 'admin', password: 'secret' });
    const one = await requestAuth(kc);
    const two = await requestAuth(kc);
    assert.equal(two.transport, one.transport);
    assert.equal(String((one.transport.agent as import('node:https').Agent).options.ca), a.cert.toString(), 'the CA reaches the Agent');
    assert.equal(one.headers.Authorization, `Basic ${Buffer.from('admin:secret').toString('base64')}`);
    (kc.clusters[0] as { caData?: string }).caData = selfSigned().cert.toString('base64');
    forgetAuth(kc);
    const three = await requestAuth(kc);
    assert.notEqual(three.transport, one.transport);
    assert.equal(one.transport.closed, true, 'no request was running on the old one: destroyed at once');
    assert.equal(three.transport.closed, false);
    three.transport.retire();
  });

  it('a request given the old transport just before a rotation, sent after it: answered, and no socket stays pooled', async () => {
    const tls = selfSigned();
    const server = createServer(tls, (_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"kind":"Pod"}'); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const kc = config(`https://127.0.0.1:${(server.address() as { port: number }).port}`, tls.cert.toString('base64'), { token: 't1' });
      const { transport: old } = await requestAuth(kc);
      old.retire();
      assert.equal(old.closed, true);
      const url = new KubeRest(kc).url('/api/v1/namespaces/default/pods/p');
      const res = await old.send(url, 'GET', { authorization: 'Bearer t1' });
      for await (const _ of res) { /* drain */ }
      assert.equal(res.statusCode, 200);
      await until('no socket left in the retired Agent', () => Object.keys(old.agent.freeSockets).length + Object.keys(old.agent.sockets).length === 0);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('a rotation while a watch runs: the watch keeps its connection until it ends, then the old Agent is destroyed', async () => {
    const tls = selfSigned();
    const streams: import('node:http').ServerResponse[] = [];
    const server = createServer(tls, (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      if (req.url!.includes('watch=true')) { streams.push(res); res.write('{"type":"ADDED","object":{"n":1}}\n'); } else res.end('{"kind":"Pod"}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const kc = config(`https://127.0.0.1:${(server.address() as { port: number }).port}`, tls.cert.toString('base64'), { token: 't1' });
      const rest = new KubeRest(kc);
      const seen: unknown[] = [];
      const stop = new AbortController();
      const watching = rest.watch('/api/v1/pods', {}, (e) => seen.push(e.object.n), { signal: stop.signal, idleTimeoutMs: 60_000 });
      await until('the first event', () => seen.length >= 1);
      const old = (await requestAuth(kc)).transport;
      (kc.clusters[0] as { caData?: string }).caData = Buffer.concat([tls.cert, selfSigned().cert]).toString('base64');
      forgetAuth(kc);
      assert.deepEqual(await rest.call('GET', '/api/v1/namespaces/default/pods/p'), { kind: 'Pod' });
      const now = (await requestAuth(kc)).transport;
      assert.notEqual(now, old);
      assert.equal(old.closed, false, 'the running watch holds the old Agent');
      streams[0]!.write('{"type":"ADDED","object":{"n":2}}\n');
      await until('the event sent after the rotation', () => seen.length >= 2);
      stop.abort();
      await watching;
      assert.deepEqual(seen, [1, 2]);
      await until('the old Agent destroyed after the watch', () => old.closed);
      now.retire();
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('the KubeConfig is asked once per AUTH_TTL_MS (monotonic clock), concurrent requests share the ask, a 401 makes the next one ask again', async () => {
    let clock = 1_000_000;
    mock.method(performance, 'now', () => clock);
    const tls = selfSigned();
    const seen: string[] = [];
    let status = 200;
    const server = createServer(tls, (req, res) => {
      seen.push(String(req.headers.authorization));
      res.statusCode = status;
      res.setHeader('content-type', 'application/json');
      res.end(status === 200 ? '{"kind":"Pod"}' : '{"kind":"Status","message":"Unauthorized"}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const kc = config(`https://127.0.0.1:${(server.address() as { port: number }).port}`, tls.cert.toString('base64'), { token: 't1' });
      let asked = 0;
      const apply = kc.applyToHTTPSOptions.bind(kc);
      kc.applyToHTTPSOptions = async (o) => { asked++; return apply(o); };
      const rest = new KubeRest(kc);
      const user = kc.getCurrentUser() as { token?: string };
      await Promise.all(Array.from({ length: 5 }, () => rest.call('GET', '/api/v1/namespaces/default/pods/p')));
      for (let i = 0; i < 5; i++) await rest.call('GET', '/api/v1/namespaces/default/pods/p');
      assert.equal(asked, 1, 'five concurrent and five later requests: one ask');
      user.token = 't2';
      clock += AUTH_TTL_MS - 1;
      await rest.call('GET', '/api/v1/namespaces/default/pods/p');
      clock += 1;
      await rest.call('GET', '/api/v1/namespaces/default/pods/p');
      assert.equal(asked, 2);
      assert.deepEqual(seen.slice(10), ['Bearer t1', 'Bearer t2']);
      user.token = 't3';
      status = 401;
      await assert.rejects(rest.call('GET', '/api/v1/namespaces/default/pods/p'), /HTTP 401/);
      status = 200;
      await rest.call('GET', '/api/v1/namespaces/default/pods/p');
      assert.equal(asked, 3, 'the 401 dropped the cached answer');
      assert.deepEqual(seen.slice(-2), ['Bearer t2', 'Bearer t3']);
    } finally {
      mock.restoreAll();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('a kubeconfig loaded as the agent loads it: a rewritten CA file gets a new transport, and requests go on', async () => {
    const tls = selfSigned();
    const server = createServer(tls, (_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"kind":"Pod"}'); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const dir = mkdtempSync(join(tmpdir(), 'koak-kc-'));
    try {
      const ca = join(dir, 'ca.crt');
      writeFileSync(ca, tls.cert);
      writeFileSync(join(dir, 'kubeconfig'), [
        'apiVersion: v1', 'kind: Config', 'current-context: x',
        `clusters: [{name: c, cluster: {server: "https://127.0.0.1:${(server.address() as { port: number }).port}", certificate-authority: "${ca}"}}]`,
        'users: [{name: u, user: {token: t1}}]', 'contexts: [{name: x, context: {cluster: c, user: u}}]', '',
      ].join('\n'));
      const kc = loadKubeConfig(join(dir, 'kubeconfig'));
      const rest = new KubeRest(kc);
      assert.deepEqual(await rest.call('GET', '/api/v1/namespaces/default/pods/p'), { kind: 'Pod' });
      const before = (await requestAuth(kc)).transport;
      // the CA bundle gains a second CA, as a rotation does
      writeFileSync(ca, Buffer.concat([tls.cert, selfSigned().cert]));
      forgetAuth(kc);
      assert.deepEqual(await rest.call('GET', '/api/v1/namespaces/default/pods/p'), { kind: 'Pod' });
      const after = (await requestAuth(kc)).transport;
      assert.notEqual(after, before, 'a new transport for the new CA bundle');
      assert.equal(before.closed, true, 'the old one is destroyed (no request left on it)');
      assert.deepEqual(await rest.call('GET', '/api/v1/namespaces/default/pods/p'), { kind: 'Pod' });
      after.retire();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
