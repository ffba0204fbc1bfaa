// Bundles the agent into one ESM file (faster start-up and lower RSS than running the .ts sources).
import { build, type BuildOptions } from 'esbuild';

export const bundleOptions: BuildOptions = {
  entryPoints: ['agent/src/main.ts'],
  outfile: 'dist/agent.mjs',
  bundle: true,
  platform: 'node',
  target: 'node24',
  format: 'esm',
  sourcemap: true,
  logLevel: 'warning',
  // The native addon is loaded from build/ at run time; CJS deps need `require` inside an ESM bundle.
  external: ['*.node'],
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
};

if (import.meta.main) await build(bundleOptions);
