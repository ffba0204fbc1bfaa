// The fake stays out of production: no netfilter module other than fake.ts itself names it, so nothing the
// agent bundles can pull it in through this room.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('../../agent/src/datapath/netfilter/', import.meta.url));

test('no production netfilter module imports fake.ts', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts') && f !== 'fake.ts');
  assert.ok(files.includes('index.ts') && files.includes('plan.ts'));
  for (const f of files) assert.doesNotMatch(readFileSync(dir + f, 'utf8'), /from '\.\/fake\.ts'/, f);
});
