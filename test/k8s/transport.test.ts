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
import { forgetAuth, KubeRest, requestAuth } from '../../agent/src/k8s/rest.ts';

function withKubeconfig(cluster: Record<string, unknown>, fn: (file: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'koat-kc-'));
  const file = join(dir, 'kubeconfig');
  writeFileSync(file, JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'x',
    clusters: [{ name: 'c', cluster }],
    users: [{ name: 'u', user: { token: 't' } }],
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

test('calls share at most MAX_CALL_SOCKETS connections and the rest wait; a watch has its own pool and is not held behind them', async () => {
  const { createServer } = await import('node:http');
  const { CONNECT_TIMEOUT_MS, MAX_CALL_SOCKETS } = await import('../../agent/src/k8s/rest.ts');
  const held: import('node:http').ServerResponse[] = [];
  const conns = new Set<unknown>();
  let watched = false;
  const server = createServer((req, res) => {
    if (req.url?.includes('watch=true')) { watched = true; res.writeHead(200, { 'content-type': 'application/json' }); res.end(); return; }
    held.push(res);
  });
  server.on('connection', (s) => conns.add(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as import('node:net').AddressInfo).port;
  try {
    await withKubeconfig({ server: `http://127.0.0.1:${port}`, 'insecure-skip-tls-verify': true }, async (file) => {
      const rest = new KubeRest(loadKubeConfig(file));
      const calls = Array.from({ length: MAX_CALL_SOCKETS + 8 }, (_, i) => rest.call('GET', `/api/v1/namespaces/x${i}`));
      while (held.length < MAX_CALL_SOCKETS) await new Promise((r) => setImmediate(r));
      // the watch is answered while every call connection is busy
      await rest.watch('/api/v1/pods', {}, () => {}, { signal: new AbortController().signal, idleTimeoutMs: 600_000 });
      assert.equal(watched, true);
      assert.equal(held.length, MAX_CALL_SOCKETS, 'the calls beyond the cap wait for a connection');
      assert.equal(conns.size, MAX_CALL_SOCKETS + 1, 'the calls\' connections and the watch\'s');
      // answering releases connections to the waiting calls, on the same connections; a call that waited for a
      // pooled connection is not held to the new-connection bound (mock clock: CONNECT_TIMEOUT_MS passes)
      const answer = (): void => { for (const res of held.splice(0)) { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{}'); } };
      const failed: unknown[] = [];
      for (const c of calls) c.catch((e: unknown) => failed.push(e));
      mock.timers.enable({ apis: ['setTimeout'] });
      try {
        answer();
        while (held.length < 8) await new Promise((r) => setImmediate(r));
        mock.timers.tick(CONNECT_TIMEOUT_MS + 1);
        for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
        assert.deepEqual(failed, [], 'no ConnectTimeoutError for a call on a pooled connection');
        answer();
        await Promise.all(calls);
      } finally {
        mock.timers.reset();
      }
      assert.equal(conns.size, MAX_CALL_SOCKETS + 1, 'no new connection for the calls that waited');
      (await requestAuth(loadKubeConfig(file))).transport.retire();
    });
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});
