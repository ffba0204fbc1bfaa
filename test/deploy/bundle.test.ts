// The production bundle (scripts/bundle.ts, entry agent/src/main.ts) carries no fake and no test hook: fakes live in
// modules only tests import, and hooks come from the test entry point integration/support/agent-main.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
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
