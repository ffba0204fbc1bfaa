// One undici dispatcher per cluster/user pair, with no body timeout (client-node 2.0.1 builds a new one for every
// request, each with a 300 s body timeout that keeps undici's timer tick running while a watch is open).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HttpMethod, RequestContext } from '@kubernetes/client-node';
import { loadKubeConfig } from '../../agent/src/k8s/client.ts';

test('every request of a kubeconfig shares one dispatcher without a body timeout', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'koat-kc-'));
  try {
    const file = join(dir, 'kubeconfig');
    writeFileSync(file, JSON.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'x',
      clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:6443', 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u', user: { token: 't' } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
    }));
    const kc = loadKubeConfig(file);
    const dispatcherOf = async () => {
      const ctx = new RequestContext('https://127.0.0.1:6443/api/v1/pods', HttpMethod.GET);
      await kc.applySecurityAuthentication(ctx);
      return ctx.getDispatcher();
    };
    const a = await dispatcherOf();
    const b = await dispatcherOf();
    assert.ok(a, 'a dispatcher is set');
    assert.equal(a, b, 'the same dispatcher for both requests');
    const opts = Object.getOwnPropertySymbols(a).map((s) => (a as unknown as Record<symbol, unknown>)[s])
      .find((v): v is { bodyTimeout?: number } => typeof v === 'object' && v !== null && 'bodyTimeout' in v);
    assert.equal(opts?.bodyTimeout, 0, 'no body timeout');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
