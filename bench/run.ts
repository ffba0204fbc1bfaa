// `npm run bench [-- FILTER]`: runs every bench/*.bench.ts; each module's default export receives a context and
// emits JSON lines for the bench ids the filter selects (FILTER is a substring of the bench id, e.g. "netlink.", or a
// module's group name, e.g. "vs-upstream", which selects all of that module's ids).
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BenchContext } from './lib.ts';

const here = dirname(fileURLToPath(import.meta.url));
const filter = process.argv[2] ?? '';
const ctx: BenchContext = { wants: (id) => filter === '' || id.includes(filter) };
const files = readdirSync(here).filter((f) => f.endsWith('.bench.ts')).sort();
let failed = 0;
for (const f of files) {
  const mod = (await import(pathToFileURL(join(here, f)).href)) as { default: (c: BenchContext) => Promise<void>; ids?: readonly string[]; group?: string };
  const modCtx: BenchContext = mod.group !== undefined && mod.group === filter ? { wants: () => true } : ctx;
  if (mod.ids && !mod.ids.some((id) => modCtx.wants(id))) continue;
  try {
    await mod.default(modCtx);
  } catch (e) {
    failed++;
    process.stderr.write(`bench ${f} failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  }
}
process.exitCode = failed ? 1 : 0;
