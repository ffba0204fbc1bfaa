// `npm run image` from a test: builds the image with podman (scripts/image.sh) and returns its JSON summary (tag,
// OCI archive, sizes, times). Machines whose registry access goes through a TLS-inspecting proxy: the host's own
// extra CAs (/usr/local/share/ca-certificates/*.crt, or KOA_IMAGE_EXTRA_CA_DIR) are given to the build stage.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const IMAGE_TAG = process.env.KOA_IMAGE_TAG ?? 'localhost/kube-ovn-node-agent:dev';
const HOST_CA_DIR = '/usr/local/share/ca-certificates';

export interface ImageSummary extends Record<string, unknown> {
  tag: string;
  archive: string;
}

/** `npm run image` (progress on stderr passed through); the JSON summary line it prints last. */
export async function buildImage(tag = IMAGE_TAG): Promise<ImageSummary> {
  const env: NodeJS.ProcessEnv = { ...process.env, KOA_IMAGE_TAG: tag };
  if (!env.KOA_IMAGE_EXTRA_CA_DIR && existsSync(HOST_CA_DIR) && (await readdir(HOST_CA_DIR)).some((f) => f.endsWith('.crt'))) {
    env.KOA_IMAGE_EXTRA_CA_DIR = HOST_CA_DIR;
  }
  const p = spawn('npm', ['run', '--silent', 'image'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  p.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  const code = await new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  assert.equal(code, 0, `npm run image exited ${code}: ${out}`);
  return JSON.parse(out.trim().split('\n').at(-1)!) as ImageSummary;
}
