// KubeListWatch against a loopback API server: a watch resumes from the last resourceVersion it saw (bookmarks
// included) without a relist, a 410 (ERROR event or HTTP status) relists, any other failure is reported as 'error'.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeListWatch } from '../../agent/src/k8s/listwatch.ts';
import { KubeRest } from '../../agent/src/k8s/rest.ts';
import type { KubeList, Pod } from '../../agent/src/k8s/types.ts';

type Handler = (n: number, q: URLSearchParams, res: ServerResponse) => void;

async function withServer(onWatch: Handler, fn: (rest: KubeRest, watches: URLSearchParams[]) => Promise<void>): Promise<void> {
  const watches: URLSearchParams[] = [];
  const server = createServer((req, res) => {
    const q = new URL(req.url!, 'http://x').searchParams;
    watches.push(q);
    onWatch(watches.length, q, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as { port: number }).port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x',
  });
  try {
    await fn(new KubeRest(kc), watches);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

const line = (type: string, object: object) => JSON.stringify({ type, object }) + '\n';
const pod = (name: string, rv: string) => ({ metadata: { name, namespace: 'default', resourceVersion: rv } });
const until = async (what: string, cond: () => boolean) => {
  for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(cond(), what);
};

describe('KubeListWatch', () => {
  it('resumes from the last resourceVersion (bookmarks too) after a clean close, and relists on a 410 ERROR event', async () => {
    const lists: number[] = [];
    const added: string[] = [];
    await withServer((n, _q, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      if (n === 1) res.end(line('ADDED', pod('a', '11')) + line('BOOKMARK', { metadata: { resourceVersion: '15' } }));
      else if (n === 2) res.end(line('ERROR', { kind: 'Status', code: 410, message: 'too old resource version' }));
      else res.write(line('ADDED', pod('b', '21'))); // stays open
    }, async (rest, watches) => {
      const list = async (): Promise<KubeList<Pod>> => { lists.push(Date.now()); return { items: [], metadata: { resourceVersion: lists.length === 1 ? '10' : '20' } }; };
      const lw = new KubeListWatch<Pod>(list, { rest, path: '/api/v1/pods', fieldSelector: 'spec.nodeName=n1', minIntervalMs: 10, idleTimeoutMs: 60_000 });
      const errors: unknown[] = [];
      lw.on('add', (p) => added.push(p.metadata!.name!));
      lw.on('error', (e) => errors.push(e));
      await lw.start();
      await until('third watch', () => watches.length >= 3 && added.includes('b'));
      await lw.stop();
      assert.deepEqual(errors, []);
      assert.deepEqual(watches.slice(0, 3).map((q) => q.get('resourceVersion')), ['10', '15', '20']);
      assert.equal(lists.length, 2, 'one relist, after the 410');
      assert.deepEqual(added, ['a', 'b']);
      for (const q of watches) {
        assert.equal(q.get('watch'), 'true');
        assert.equal(q.get('allowWatchBookmarks'), 'true');
        assert.equal(q.get('fieldSelector'), 'spec.nodeName=n1');
      }
    });
  });

  it('relists on an HTTP 410 and reports any other failure as error (then stops)', async () => {
    let lists = 0;
    await withServer((n, _q, res) => {
      res.writeHead(n === 1 ? 410 : 500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', code: n === 1 ? 410 : 500, message: n === 1 ? 'gone' : 'boom' }));
    }, async (rest, watches) => {
      const lw = new KubeListWatch<Pod>(async () => { lists++; return { items: [], metadata: { resourceVersion: String(lists) } }; },
        { rest, path: '/api/v1/pods', minIntervalMs: 10, idleTimeoutMs: 60_000 });
      const errors: Error[] = [];
      lw.on('error', (e) => errors.push(e as Error));
      await lw.start();
      await until('an error', () => errors.length > 0);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(lists, 2);
      assert.equal(watches.length, 2, 'no watch after the error');
      assert.equal((errors[0] as { statusCode?: number }).statusCode, 500);
      assert.match(errors[0]!.message, /HTTP 500: boom/);
      await lw.stop();
    });
  });

  it('a list that times out is reported as error, not retried at once as a quiet watch is (it never synced, and looked alive)', async () => {
    let lists = 0;
    await withServer(() => undefined, async (rest, watches) => {
      const lw = new KubeListWatch<Pod>(async () => {
        lists++;
        throw Object.assign(new Error('GET /api/v1/pods: no complete answer within 120000 ms'), { name: 'TimeoutError' });
      }, { rest, path: '/api/v1/pods', minIntervalMs: 10, idleTimeoutMs: 60_000 });
      const errors: Error[] = [];
      lw.on('error', (e) => errors.push(e as Error));
      await lw.start();
      await until('an error', () => errors.length > 0);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(lists, 1, 'not retried by the informer itself');
      assert.equal(watches.length, 0);
      assert.equal(errors[0]!.name, 'TimeoutError');
      await lw.stop();
    });
  });
});
