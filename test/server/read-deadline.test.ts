import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { installReadDeadlines } from '../../agent/src/server/read-deadline.ts';

const D = { headersMs: 200, requestMs: 400 };

async function withServer(handlerMs: number, f: (port: number, s: Server) => Promise<void>): Promise<void> {
  const s = createServer((req, res) => {
    req.resume();
    req.on('end', () => setTimeout(() => res.end('ok'), handlerMs));
  });
  installReadDeadlines(s, D);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  try { await f((s.address() as AddressInfo).port, s); } finally { s.closeAllConnections(); await new Promise((r) => s.close(r)); }
}

const closed = (c: Socket) => new Promise<string>((r) => { let data = ''; c.on('data', (b) => { data += b.toString(); }); c.on('error', () => undefined); c.on('close', () => r(data)); });

test('headers not finished: the connection is closed (by its own timer, not a sweep)', async () => {
  await withServer(0, async (port, s) => {
    assert.equal((s as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval, 2 ** 31 - 1);
    const c = connect(port, '127.0.0.1');
    c.write('POST / HTTP/1.1\r\nHost: x\r\n');
    assert.equal(await closed(c), '', 'closed without an answer');
  });
});

test('a body trickled past the request deadline is cut; one sent in time is answered even when the handler is slow', async () => {
  await withServer(1000, async (port) => {
    const slow = connect(port, '127.0.0.1');
    slow.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab');
    const late = closed(slow);
    const ok = connect(port, '127.0.0.1');
    ok.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab');
    const answered = await closed(ok);
    assert.match(answered, /^HTTP\/1\.1 200/, 'a handler slower than both deadlines still answers');
    assert.equal(await late, '', 'the trickled body got no answer');
  });
});

test('a kept-alive connection gets the header deadline again after its answer', async () => {
  await withServer(0, async (port) => {
    const c = connect(port, '127.0.0.1');
    const all = closed(c);
    c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const got = await all; // the server closes the idle kept-alive connection on the header deadline
    assert.match(got, /^HTTP\/1\.1 200/);
  });
});
