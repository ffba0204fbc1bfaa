// The README's flag table is generated from the FLAGS table: this keeps the two equal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { flagsMarkdown } from '../../agent/src/config/flags-doc.ts';

test('the README flag table equals the one generated from FLAGS (regenerate with config/flags-doc.ts)', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const m = /<!-- flags:begin[^\n]*-->\n([\s\S]*?)\n<!-- flags:end -->/.exec(readme);
  assert.ok(m, 'README has the flags:begin/end markers');
  assert.equal(m[1], flagsMarkdown());
});
