// The reconnect-storm guard with the real list+watch (k8s/listwatch.ts) against a loopback server that ends every watch
// right after one BOOKMARK (the case dependencies.md §4 measured at ~470 reconnects/s and ~1,400 sockets).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { listWatchFactory } from '../../agent/src/k8s/client.ts';
import { KubeRest } from '../../agent/src/k8s/rest.ts';
import { ResilientListWatch } from '../../agent/src/k8s/watch.ts';
import type { Pod } from '../../agent/src/k8s/types.ts';

describe('KubeListWatch pacing', () => {
  it('bounds watch reconnects to one per interval and keeps sockets few', async () => {
    let watches = 0;
    const params: URLSearchParams[] = [];
    const sockets = new Set<Socket>();
    let maxSockets = 0;
    const server = createServer((req, res) => {
      const url = new URL(req.url!, 'http://x');
      if (url.searchParams.get('watch') === 'true') {
        watches++;
        params.push(url.searchParams);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Pod', metadata: { resourceVersion: String(10 + watches) } } }) + '\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'PodList', items: [], metadata: { resourceVersion: '10' } }));
    });
    server.on('connection', (s) => {
      sockets.add(s);
      maxSockets = Math.max(maxSockets, sockets.size);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const w = new ResilientListWatch<Pod>({
      resource: 'pods',
      list: async () => ({ items: [], metadata: { resourceVersion: '10' } }),
      informer: listWatchFactory<Pod>(new KubeRest(kc), '/api/v1/pods', { fieldSelector: 'spec.nodeName=n1' }, 200, 60_000),
      idleTimeoutMs: 60_000,
    });
    try {
      w.start();
      await w.waitSynced();
      const t0 = performance.now();
      // the loop goes on by itself (liveness; the bound is only for a starved machine), never faster than one watch
      // per 200 ms (pacing: unpaced this loop reaches hundreds per second). A busy machine only slows it down, so
      // the rate is bounded from above only.
      for (const end = t0 + 60_000; watches < 8 && performance.now() < end;) await new Promise((r) => setTimeout(r, 20));
      const elapsed = performance.now() - t0;
      console.log(`# ${Math.round(elapsed)} ms: ${watches} watch requests, peak ${maxSockets} sockets`);
      assert.ok(watches >= 8, `the watch loop went on: ${watches} watch requests in ${Math.round(elapsed)} ms`);
      assert.ok(watches <= Math.floor(elapsed / 200) + 2, `paced: ${watches} watch requests in ${Math.round(elapsed)} ms`);
      assert.ok(maxSockets <= 12, `peak sockets: ${maxSockets}`);
      assert.equal(w.health().healthy, true);
      assert.equal(w.health().restarts, 0);
      // quiet watches are kept open: bookmarks asked for, the server ends each one within 50-90 % of the watchdog
      for (const p of params) {
        assert.equal(p.get('allowWatchBookmarks'), 'true');
        const t = Number(p.get('timeoutSeconds'));
        assert.ok(t >= 30 && t <= 54, `timeoutSeconds ${t}`);
      }
    } finally {
      await w.stop();
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});
