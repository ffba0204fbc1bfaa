// One undici dispatcher while the TLS material stays the same, with no body timeout (client-node 2.0.1 builds a new
// one for every request, each with a 300 s body timeout that keeps undici's timer tick running while a watch is open).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadKubeConfig } from '../../agent/src/k8s/client.ts';
import { forgetAuth, requestAuth } from '../../agent/src/k8s/rest.ts';

test('every request of a kubeconfig shares one dispatcher without a body timeout, also when the kubeconfig is asked again', async () => {
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
      forgetAuth(kc); // ask the KubeConfig again, as every AUTH_TTL_MS
      return (await requestAuth(kc)).dispatcher;
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
