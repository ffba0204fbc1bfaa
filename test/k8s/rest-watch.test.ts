// KubeRest.watch over node:https against a loopback TLS server: lines split anywhere are put back together, a torn
// (unparseable) line is skipped, a non-200 answer is a KubeApiError, silence is a TimeoutError, the caller's abort
// ends the stream quietly; and a request whose headers never come fails after HEADERS_TIMEOUT_MS.
import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { CALL_TIMEOUT_MS, CONNECT_TIMEOUT_MS, ERROR_BODY_MS, HEADERS_TIMEOUT_MS, KubeApiError, KubeRest, type WatchEvent } from '../../agent/src/k8s/rest.ts';
import { createServer as createTcpServer, type Socket } from 'node:net';

const tls = (() => {
  const dir = mkdtempSync(join(tmpdir(), 'koak-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'k'), '-out', join(dir, 'c')], { stdio: 'ignore' });
    return { key: readFileSync(join(dir, 'k')), cert: readFileSync(join(dir, 'c')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
})();

/** A KubeConfig for https://127.0.0.1:<port> trusting the test certificate, with a bearer token. */
function kubeConfigFor(port: number): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `https://127.0.0.1:${port}`, caData: tls.cert.toString('base64') }],
    users: [{ name: 'u', token: 't' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x',
  });
  return kc;
}

async function withServer(handler: (req: IncomingMessage, res: ServerResponse) => void, fn: (rest: KubeRest) => Promise<void>): Promise<void> {
  const server = createServer(tls, handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const kc = kubeConfigFor((server.address() as { port: number }).port);
  try {
    await fn(new KubeRest(kc));
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

const tick = () => new Promise((r) => setImmediate(r));

/**
 * With mock timers on (setTimeout): once `reached`, `p` is still pending `ms - 1` ms later and rejects as `check`
 * says at `ms`: the bound is the behaviour under test, so the clock is the test's.
 */
async function rejectsAt(p: Promise<unknown>, reached: Promise<void>, ms: number, check: (e: Error) => boolean): Promise<void> {
  const state: { outcome: unknown } = { outcome: 'pending' };
  p.then(() => { state.outcome = 'resolved'; }, (e: unknown) => { state.outcome = e; });
  await reached;
  for (let i = 0; i < 5; i++) await tick();
  mock.timers.tick(ms - 1);
  for (let i = 0; i < 5; i++) await tick();
  assert.equal(state.outcome, 'pending', 'not before the bound');
  mock.timers.tick(1);
  await assert.rejects(p, check);
}
/** Waits for `cond` (each step a 10 ms pause), at most 5 s, then asserts it. */
async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), what);
}

describe('KubeRest.watch over node:https', () => {
  it('puts lines split across chunks back together, skips a torn line, resolves when the server ends the stream', async () => {
    await withServer(async (req, res) => {
      assert.match(req.url!, /watch=true/);
      assert.equal(req.headers.authorization, 'Bearer t');
      res.writeHead(200, { 'content-type': 'application/json' });
      const lines = '{"type":"ADDED","object":{"n":1}}\n{"type":"MODI' + 'FIED","object":{"n":2}}\n{"type":"ADDED","obj\n\n{"type":"DELETED","object":{"n":3}}\n';
      for (const part of [lines.slice(0, 20), lines.slice(20, 47), lines.slice(47)]) {
        res.write(part);
        await new Promise((r) => setTimeout(r, 20)); // separate chunks on the wire
      }
      res.end();
    }, async (rest) => {
      const seen: WatchEvent[] = [];
      await rest.watch('/api/v1/pods', { resourceVersion: '5' }, (e) => seen.push(e), { signal: new AbortController().signal, idleTimeoutMs: 10_000 });
      assert.deepEqual(seen.map((e) => `${e.type}:${e.object.n}`), ['ADDED:1', 'MODIFIED:2', 'DELETED:3']);
    });
  });

  it('a non-200 answer rejects with KubeApiError carrying the Status message (410: too old)', async () => {
    await withServer((_req, res) => {
      res.writeHead(410, { 'content-type': 'application/json' });
      res.end('{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version: 5 (9)"}');
    }, async (rest) => {
      await assert.rejects(rest.watch('/api/v1/pods', {}, () => undefined, { signal: new AbortController().signal, idleTimeoutMs: 10_000 }),
        (e: unknown) => e instanceof KubeApiError && e.statusCode === 410 && e.reason === 'Expired' && /too old resource version/.test(e.message));
    });
  });

  it('no byte for idleTimeoutMs: rejects with a TimeoutError and the server sees the connection closed', async () => {
    let closed = false;
    await withServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"type":"ADDED","object":{"n":1}}\n');
      req.socket.once('close', () => { closed = true; });
    }, async (rest) => {
      const seen: unknown[] = [];
      await assert.rejects(rest.watch('/api/v1/pods', {}, (e) => seen.push(e.object.n), { signal: new AbortController().signal, idleTimeoutMs: 300 }),
        (e: Error) => e.name === 'TimeoutError' && /nothing received for 300 ms/.test(e.message));
      assert.deepEqual(seen, [1]);
      await until('the server sees the connection closed', () => closed);
    });
  });

  it('the caller\'s abort ends a running watch quietly (resolves) and closes its connection', async () => {
    let closed = false;
    let started = false;
    await withServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('\n'); // headers and a keep-alive newline, then silence
      started = true;
      req.socket.once('close', () => { closed = true; });
    }, async (rest) => {
      const stop = new AbortController();
      const watching = rest.watch('/api/v1/pods', {}, () => undefined, { signal: stop.signal, idleTimeoutMs: 60_000 });
      await until('the watch started', () => started);
      stop.abort();
      await watching;
      await until('the server sees the connection closed', () => closed);
      // aborted before it starts: no request at all
      started = false;
      await rest.watch('/api/v1/pods', {}, () => undefined, { signal: stop.signal, idleTimeoutMs: 60_000 });
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(started, false);
    });
  });
});

describe('KubeRest.call over node:https', () => {
  it('a server that never sends the response headers: the request fails after HEADERS_TIMEOUT_MS', async () => {
    let arrived!: () => void;
    const reached = new Promise<void>((r) => { arrived = r; });
    await withServer(() => arrived(), async (rest) => {
      mock.timers.enable({ apis: ['setTimeout'] });
      try {
        await rejectsAt(rest.call('GET', '/api/v1/nodes/n1'), reached, HEADERS_TIMEOUT_MS,
          (e) => e.name === 'TimeoutError' && /no response headers within 60000 ms/.test(e.message));
      } finally {
        mock.timers.reset();
      }
    });
  });

  it('an answer whose body stalls: the call fails after CALL_TIMEOUT_MS instead of waiting forever', async () => {
    let arrived!: () => void;
    const reached = new Promise<void>((r) => { arrived = r; });
    await withServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"kin');
      arrived();
    }, async (rest) => {
      mock.timers.enable({ apis: ['setTimeout'] });
      try {
        await rejectsAt(rest.call('GET', '/api/v1/nodes/n1'), reached, CALL_TIMEOUT_MS,
          (e) => e.name === 'TimeoutError' && /no complete answer within 120000 ms/.test(e.message));
      } finally {
        mock.timers.reset();
      }
    });
  });
});

describe('KubeRest.watch: an error answer whose body stalls', () => {
  it('is still a KubeApiError with its status, after ERROR_BODY_MS, not an idle timeout', async () => {
    let arrived!: () => void;
    const reached = new Promise<void>((r) => { arrived = r; });
    await withServer((_req, res) => {
      res.writeHead(403, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"kind":"Status"');
      arrived();
    }, async (rest) => {
      mock.timers.enable({ apis: ['setTimeout'] });
      try {
        const stop = new AbortController();
        // the idle bound (500 ms) no longer applies once the status is known
        await rejectsAt(rest.watch('/api/v1/pods', {}, () => undefined, { signal: stop.signal, idleTimeoutMs: 500 }), reached, ERROR_BODY_MS,
          (e) => e instanceof KubeApiError && e.statusCode === 403);
      } finally {
        mock.timers.reset();
      }
    });
  });
});

describe('KubeRest: a server that accepts the TCP connection but never finishes the TLS handshake', () => {
  it('fails the call with a ConnectTimeoutError after CONNECT_TIMEOUT_MS (a failure, not a quiet watch)', async () => {
    const held: Socket[] = [];
    let accepted!: () => void;
    const reached = new Promise<void>((r) => { accepted = r; });
    const server = createTcpServer((s) => { held.push(s); s.on('error', () => undefined); accepted(); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const kc = kubeConfigFor((server.address() as { port: number }).port);
    try {
      mock.timers.enable({ apis: ['setTimeout'] });
      await rejectsAt(new KubeRest(kc).call('GET', '/api/v1/nodes/n1'), reached, CONNECT_TIMEOUT_MS,
        (e) => e.name === 'ConnectTimeoutError' && /no connection to 127\.0\.0\.1:\d+ within 10000 ms/.test(e.message));
    } finally {
      mock.timers.reset();
      for (const s of held) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});
