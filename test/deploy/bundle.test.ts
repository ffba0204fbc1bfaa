// The production bundle (scripts/bundle.ts, entry agent/src/main.ts) carries no fake and no test hook: fakes live in
// modules only tests import, and hooks come from the test entry point integration/support/agent-main.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { bundleOptions } from '../../scripts/bundle.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

test('the agent bundle contains no fakes and no test hooks', async () => {
  const r = await build({ ...bundleOptions, absWorkingDir: ROOT, write: false, sourcemap: false, metafile: true, outfile: '/tmp/koa-bundle-test.mjs' });
  const js = r.outputFiles[0]!.text;
  for (const name of ['FakeNetlink', 'FakeVswitch', 'FakeBackend', 'InMemoryPodSource', 'KOA_FAULT_AFTER_STEP', 'KOA_TEST_BACKEND']) {
    assert.ok(!js.includes(name), `${name} is in the production bundle`);
  }
  const inputs = Object.keys(r.metafile!.inputs);
  assert.deepEqual(inputs.filter((f) => /fake|\/test\/|integration\//.test(f)), []);
  assert.ok(inputs.some((f) => f.endsWith('agent/src/main.ts')), 'the entry point is main.ts');
});

test('the agent bundle is ASCII only and leaves client-node\'s generated API out (README "Memory")', async () => {
  const r = await build({ ...bundleOptions, absWorkingDir: ROOT, write: false, sourcemap: false, metafile: true, outfile: '/tmp/koa-bundle-test.mjs' });
  const js = r.outputFiles[0]!.text;
  // one non-ASCII character anywhere (a regular expression literal, a kept comment) makes V8 hold the whole
  // source as two-byte text: twice its size in memory
  const at = js.search(/[^\x00-\x7f]/);
  assert.equal(at, -1, `non-ASCII character in the bundle: ${JSON.stringify(js.slice(Math.max(0, at - 60), at + 20))}`);
  const inputs = Object.keys(r.metafile!.inputs);
  assert.deepEqual(inputs.filter((f) => /client-node\/dist\/gen\/(apis|models)\//.test(f)), []);
  assert.ok(inputs.some((f) => f.endsWith('scripts/bundle-stubs/client-node-gen.ts')), 'the generated API is stubbed');
});

test('the agent bundle holds no undici and no SOCKS library, and loading it leaves Node\'s own undici unloaded (README "Memory")', async () => {
  const r = await build({ ...bundleOptions, absWorkingDir: ROOT, write: false, sourcemap: false, metafile: true, outfile: '/tmp/koa-bundle-test.mjs' });
  const inputs = Object.keys(r.metafile!.inputs);
  // the agent's requests go over node:https (agent/src/k8s/rest.ts); client-node's imports of them are stubbed
  assert.deepEqual(inputs.filter((f) => /node_modules\/(undici|socks|socks-proxy-agent|smart-buffer)\//.test(f)), []);
  assert.ok(inputs.some((f) => f.endsWith('scripts/bundle-stubs/client-node-proxy.ts')), 'client-node\'s undici and SOCKS imports are stubbed');
  const js = r.outputFiles[0]!.text;
  const esImports = Object.values(r.metafile!.outputs).flatMap((o) => o.imports).filter((i) => i.kind === 'import-statement').map((i) => i.path);
  assert.ok(esImports.includes('node:module'), 'the metafile lists the bundle\'s ES imports');
  assert.deepEqual(esImports.filter((p) => p === 'node:http' || p === 'http'), [], 'no ES import of node:http (its facade loads Node\'s undici)');
  // the bundle as a process: --help loads every module and exits before anything else
  const dir = mkdtempSync(join(tmpdir(), 'koa-bundle-'));
  try {
    writeFileSync(join(dir, 'agent.mjs'), js);
    const probe = 'data:text/javascript,process.on("exit",()=>process.stderr.write("UNDICI="+process.moduleLoadList.includes("NativeModule internal/deps/undici/undici")))';
    const p = spawnSync(process.execPath, ['--import', probe, join(dir, 'agent.mjs'), '--help'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(p.status, 0, p.stderr);
    assert.match(p.stdout, /--cni-conf-dir/);
    assert.match(p.stderr, /UNDICI=false/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the agent bundle leaves out what loads node:zlib, node:worker_threads, node:assert and node:vm unused, and client-node\'s auth providers (README "Memory")', async () => {
  const r = await build({ ...bundleOptions, absWorkingDir: ROOT, write: false, sourcemap: false, metafile: true, outfile: '/tmp/koa-bundle-test.mjs' });
  const inputs = Object.keys(r.metafile!.inputs);
  const left = /node_modules\/(thread-stream|openid-client|oauth4webapi|jsonpath-plus|@opentelemetry\/api)\/|prom-client\/lib\/pushgateway\.js|pino\/lib\/transport\.js|client-node\/dist\/(azure|gcp|oidc)_auth\.js/;
  assert.deepEqual(inputs.filter((f) => left.test(f)), []);
  assert.ok(inputs.some((f) => f.endsWith('scripts/bundle-stubs/client-node-auth-providers.ts')), 'the auth providers are stubbed');
  // the bundle as a process: --help loads every module and exits before anything else
  const dir = mkdtempSync(join(tmpdir(), 'koa-bundle-'));
  try {
    writeFileSync(join(dir, 'agent.mjs'), r.outputFiles[0]!.text);
    const probe = 'data:text/javascript,process.on("exit",()=>process.stderr.write("LOADED="+JSON.stringify(process.moduleLoadList.filter((m)=>/^NativeModule (zlib|worker_threads|assert|vm)$/.test(m)))))';
    const p = spawnSync(process.execPath, ['--import', probe, join(dir, 'agent.mjs'), '--help'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(p.status, 0, p.stderr);
    assert.match(p.stdout, /--cni-conf-dir/);
    assert.match(p.stderr, /LOADED=\[\]/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the stand-ins for unused modules refuse clearly where the real ones would have been used', async () => {
  const unused = createRequire(import.meta.url)('../../scripts/bundle-stubs/unused-node-modules.cjs') as {
    Pushgateway: new () => unknown; transport: () => unknown; assert: (v: unknown, m?: string) => void;
    workerThreads: { isMainThread: boolean }; openTelemetry: { trace: { getSpan: (c: unknown) => unknown }; context: { active: () => unknown } };
  };
  assert.throws(() => new unused.Pushgateway(), /prom-client Pushgateway is not available in the agent bundle/);
  assert.throws(() => unused.transport(), /a pino transport is not available in the agent bundle/);
  assert.throws(() => unused.assert(false, 'sonic.fd must be a number'), /^Error: sonic\.fd must be a number$/);
  unused.assert(true, 'never');
  assert.equal(unused.workerThreads.isMainThread, true);
  assert.equal(unused.openTelemetry.trace.getSpan(unused.openTelemetry.context.active()), undefined);
  const auth = await import('../../scripts/bundle-stubs/client-node-auth-providers.ts');
  for (const [C, name] of [[auth.AzureAuth, 'azure'], [auth.GoogleCloudPlatformAuth, 'gcp'], [auth.OpenIDConnectAuth, 'oidc']] as const) {
    const a = new C();
    assert.equal(a.isAuthProvider({ authProvider: { name } }), true);
    assert.equal(a.isAuthProvider({ authProvider: { name: 'other' } }), false);
    assert.equal(a.isAuthProvider({}), false);
    await assert.rejects(a.applyAuthentication(), new RegExp(`auth-provider ${name} is not available in the agent`));
  }
});

test('the stub for client-node\'s undici and SOCKS imports refuses to build a connection, with a clear error', async () => {
  const stub = await import('../../scripts/bundle-stubs/client-node-proxy.ts');
  for (const C of [stub.Agent, stub.ProxyAgent, stub.SocksProxyAgent]) {
    assert.throws(() => new C(), /is not available in the agent bundle \(agent\/src\/k8s\/rest\.ts makes the requests over node:https\)/);
  }
  assert.throws(() => stub.SocksClient.createConnection(), /SocksClient \(a socks proxy-url\) is not available/);
});

test('the agent bundle holds no fastify module: the CNI server is node:http (README "Memory")', async () => {
  const r = await build({ ...bundleOptions, absWorkingDir: ROOT, write: false, sourcemap: false, metafile: true, outfile: '/tmp/koa-bundle-test.mjs' });
  const inputs = Object.keys(r.metafile!.inputs);
  const framework = /node_modules\/(fastify|@fastify\/[^/]+|ajv|ajv-formats|avvio|find-my-way|light-my-request|fast-json-stringify|fast-uri|fast-querystring|ret|safe-regex2|secure-json-parse|toad-cache|json-schema-ref-resolver|rfdc|abstract-logging|fastq)\//;
  assert.deepEqual(inputs.filter((f) => framework.test(f)), []);
  assert.ok(inputs.some((f) => f.endsWith('agent/src/server/cni-http.ts')), 'the CNI server\'s own router is in');
});
