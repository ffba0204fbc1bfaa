// One node:https keep-alive Agent while the TLS material stays the same (client-node 2.0.1 builds a new undici Agent,
// so a new TLS connection, for every request); node:http for an http:// server; a proxy-url is refused at start.
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { loadKubeConfig } from '../../agent/src/k8s/client.ts';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CONNECT_TIMEOUT_MS, forgetAuth, HEADERS_TIMEOUT_MS, KubeRest, MAX_CALL_SOCKETS, requestAuth } from '../../agent/src/k8s/rest.ts';

function withKubeconfig(cluster: Record<string, unknown>, fn: (file: string) => Promise<void>, user: Record<string, unknown> = { token: 't' }): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'koat-kc-'));
  const file = join(dir, 'kubeconfig');
  writeFileSync(file, JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'x',
    clusters: [{ name: 'c', cluster }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
  }));
  return fn(file).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test('every request of a kubeconfig shares one keep-alive https Agent, also when the kubeconfig is asked again', async () => {
  await withKubeconfig({ server: 'https://127.0.0.1:6443', 'insecure-skip-tls-verify': true }, async (file) => {
    const kc = loadKubeConfig(file);
    const transportOf = async () => {
      forgetAuth(kc); // ask the KubeConfig again, as every AUTH_TTL_MS
      return (await requestAuth(kc)).transport;
    };
    const a = await transportOf();
    const b = await transportOf();
    assert.equal(a, b, 'the same transport for both requests');
    assert.ok(a.agent instanceof HttpsAgent, 'node:https');
    assert.equal((a.agent as unknown as { keepAlive: boolean }).keepAlive, true, 'keep-alive');
    assert.equal(a.agent.options.rejectUnauthorized, false, 'insecure-skip-tls-verify reaches the TLS options');
    assert.ok(a.streams instanceof HttpsAgent, 'watches: node:https too');
    assert.equal(a.streams.options.rejectUnauthorized, false, 'and the same TLS options');
    a.retire();
    assert.equal(a.closed, true);
  });
});

test('an http:// server (insecure-skip-tls-verify, as client-node requires) gets a node:http Agent', async () => {
  await withKubeconfig({ server: 'http://127.0.0.1:8080', 'insecure-skip-tls-verify': true }, async (file) => {
    const { transport } = await requestAuth(loadKubeConfig(file));
    assert.ok(transport.agent instanceof HttpAgent && !(transport.agent instanceof HttpsAgent), 'plain node:http');
    transport.retire();
  });
});

test('a cluster with proxy-url is refused at start, naming the field; so is a KubeRest over such a KubeConfig', async () => {
  for (const proxy of ['http://proxy.example:3128', 'socks5://proxy.example:1080']) {
    await withKubeconfig({ server: 'https://127.0.0.1:6443', 'proxy-url': proxy, 'insecure-skip-tls-verify': true }, async (file) => {
      assert.throws(() => loadKubeConfig(file), (e: Error) => e.message.includes('proxy-url') && e.message.includes(proxy) && /"c"/.test(e.message));
      const kc = new KubeConfig();
      kc.loadFromFile(file);
      assert.throws(() => new KubeRest(kc), /proxy-url/);
      await assert.rejects(requestAuth(kc), /proxy-url/);
    });
  }
});

test('a user with auth-provider (azure, gcp, oidc) is refused at start, naming the field and the way out; so is a KubeRest over it', async () => {
  for (const name of ['oidc', 'gcp', 'azure']) {
    await withKubeconfig({ server: 'https://127.0.0.1:6443', 'insecure-skip-tls-verify': true }, async (file) => {
      const named = (e: Error) => e.message.includes(`auth-provider (${name})`) && /"u"/.test(e.message) && /token, a client certificate or an exec plugin/.test(e.message);
      assert.throws(() => loadKubeConfig(file), named);
      const kc = new KubeConfig();
      kc.loadFromFile(file);
      assert.throws(() => new KubeRest(kc), named);
      await assert.rejects(requestAuth(kc), named);
    }, { 'auth-provider': { name, config: { 'id-token': 'x' } } });
  }
});

test('client-node\'s tokenFile and exec auth-provider users are not refused (the in-cluster one: rest-auth.test.ts)', async () => {
  for (const provider of [{ name: 'tokenFile', config: { tokenFile: '/dev/null' } }, { name: 'exec', config: { exec: { command: 'true' } } }]) {
    await withKubeconfig({ server: 'https://127.0.0.1:6443', 'insecure-skip-tls-verify': true }, async (file) => {
      assert.equal(loadKubeConfig(file).getCurrentUser()?.authProvider?.name, provider.name);
    }, { 'auth-provider': provider });
  }
});

async function heldServer(): Promise<{ port: number; held: ServerResponse[]; conns: Set<unknown>; watched: () => boolean; close: () => Promise<void> }> {
  const held: ServerResponse[] = [];
  const conns = new Set<unknown>();
  let watched = false;
  const server = createServer((req, res) => {
    if (req.url?.includes('watch=true')) { watched = true; res.writeHead(200, { 'content-type': 'application/json' }); res.end(); return; }
    held.push(res);
  });
  server.on('connection', (c) => conns.add(c));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port, held, conns, watched: () => watched,
    close: async () => { server.closeAllConnections(); await new Promise((r) => server.close(r)); },
  };
}

const answer = (held: ServerResponse[]): void => { for (const res of held.splice(0)) { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{}'); } };
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A held server, a kubeconfig for it and the mock clock (from the start: every bound of the calls is a mock timer;
 * a real one would outlive the test), all undone after `fn`. */
async function onHeldServer(fn: (srv: Awaited<ReturnType<typeof heldServer>>, kc: ReturnType<typeof loadKubeConfig>) => Promise<void>): Promise<void> {
  const srv = await heldServer();
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    await withKubeconfig({ server: `http://127.0.0.1:${srv.port}`, 'insecure-skip-tls-verify': true }, (file) => fn(srv, loadKubeConfig(file)));
  } finally {
    mock.timers.reset();
    await srv.close();
  }
}

test('calls share at most MAX_CALL_SOCKETS connections and the rest wait; a watch has its own pool and is not held behind them', { timeout: 30_000 }, async () => {
  await onHeldServer(async (srv, kc) => {
    const rest = new KubeRest(kc);
    const { transport } = await requestAuth(kc);
    const calls = Array.from({ length: MAX_CALL_SOCKETS + 8 }, (_, i) => rest.call('GET', `/api/v1/namespaces/x${i}`));
    const failed: unknown[] = [];
    for (const c of calls) c.catch((e: unknown) => failed.push(e));
    while (srv.held.length < MAX_CALL_SOCKETS) await turn();
    // the watch is answered while every call connection is busy
    await rest.watch('/api/v1/pods', {}, () => {}, { signal: new AbortController().signal, idleTimeoutMs: 600_000 });
    assert.equal(srv.watched(), true);
    assert.equal(srv.held.length, MAX_CALL_SOCKETS, 'the calls beyond the cap wait for a connection');
    assert.equal(transport.queuedCalls, 8);
    assert.equal(srv.conns.size, MAX_CALL_SOCKETS + 1, 'the calls\' connections and the watch\'s');
    // answering hands the connections to the waiting calls; a call that waited for a pooled connection is not
    // held to the new-connection bound (CONNECT_TIMEOUT_MS passes on the mock clock)
    answer(srv.held);
    while (srv.held.length < 8) await turn();
    mock.timers.tick(CONNECT_TIMEOUT_MS + 1);
    for (let i = 0; i < 20; i++) await turn();
    assert.deepEqual(failed, [], 'no ConnectTimeoutError for a call on a pooled connection');
    answer(srv.held);
    await Promise.all(calls);
    assert.equal(srv.conns.size, MAX_CALL_SOCKETS + 1, 'no new connection for the calls that waited');
    transport.retire();
    assert.equal(transport.closed, true);
    for (let i = 0; i < 20; i++) await turn();
    assert.equal(Object.keys(transport.streams.freeSockets).length + Object.keys(transport.streams.sockets).length, 0, 'retire destroys the watch pool too');
  });
});

test('a call waiting for a slot fails at the headers bound or on abort, at once, and leaves the queue', { timeout: 30_000 }, async () => {
  await onHeldServer(async (srv, kc) => {
    const { transport } = await requestAuth(kc);
    const url = (i: number): URL => new URL(`http://127.0.0.1:${srv.port}/api/v1/namespaces/y${i}`);
    const busy = Array.from({ length: MAX_CALL_SOCKETS }, (_, i) => transport.send(url(i), 'GET', {}));
    while (srv.held.length < MAX_CALL_SOCKETS) await turn();
    const abort = new AbortController();
    const aborted = transport.send(url(100), 'GET', {}, undefined, abort.signal);
    const timedOut = transport.send(url(101), 'GET', {});
    assert.equal(transport.queuedCalls, 2);
    abort.abort();
    await assert.rejects(aborted, { name: 'AbortError' });
    assert.equal(transport.queuedCalls, 1);
    mock.timers.tick(HEADERS_TIMEOUT_MS);
    // every held call times out too (their requests are destroyed); the queued one is rejected without a connection
    await assert.rejects(timedOut, (e: Error) => e.name === 'TimeoutError' && /no response headers/.test(e.message));
    assert.equal(transport.queuedCalls, 0);
    for (const b of busy) await assert.rejects(b, { name: 'TimeoutError' });
    assert.equal(srv.held.length, MAX_CALL_SOCKETS, 'the queued calls never reached the server');
    for (let i = 0; i < 20; i++) await turn(); // the destroyed requests' close events
    transport.retire();
    assert.equal(transport.closed, true, 'nothing left running');
  });
});
