// Bundles the agent into one ESM file (faster start-up and lower RSS than running the .ts sources).
// Memory (README "Memory"): whitespace and syntax are minified, which drops comments, and the output is ASCII only
// (esbuild escapes strings; test/deploy/bundle.test.ts checks the rest), so V8 keeps the 4 MB source as one-byte
// text instead of 8 MB as two-byte; identifiers keep their names for readable stack traces. client-node's generated
// API is replaced by a stub (scripts/bundle-stubs/client-node-gen.ts): the agent takes only KubeConfig from it.
// client-node's imports of undici and the SOCKS libraries are replaced by a stub (scripts/bundle-stubs/client-node-proxy.ts):
// the agent's requests go over node:https. ES imports of node:http go through require (scripts/bundle-stubs/node-http.ts).
// client-node's auth providers are stubbed (scripts/bundle-stubs/client-node-auth-providers.ts: the agent refuses
// azure, gcp and oidc auth-provider users), and so is what loads node:zlib, node:worker_threads, node:assert and OpenTelemetry unused
// (scripts/bundle-stubs/unused-node-modules.cjs).
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type BuildOptions, type Plugin } from 'esbuild';

const GEN_STUB = fileURLToPath(new URL('./bundle-stubs/client-node-gen.ts', import.meta.url));

/** client-node's dist/config.js imports ./gen/index.js only for makeApiClient: resolve it to the stub. */
export const clientNodeGenStub: Plugin = {
  name: 'client-node-gen-stub',
  setup(b) {
    b.onResolve({ filter: /^\.\/gen\/index\.js$/ }, (args) =>
      /@kubernetes[\\/]client-node[\\/]dist[\\/]config\.js$/.test(args.importer) ? { path: GEN_STUB } : undefined);
  },
};

const PROXY_STUB = fileURLToPath(new URL('./bundle-stubs/client-node-proxy.ts', import.meta.url));

/** client-node's dist/config.js imports undici, socks and socks-proxy-agent only to build its own connections:
 * resolve those three imports (of that importer only) to the stub. */
export const clientNodeProxyStub: Plugin = {
  name: 'client-node-proxy-stub',
  setup(b) {
    b.onResolve({ filter: /^(undici|socks|socks-proxy-agent)$/ }, (args) =>
      /@kubernetes[\\/]client-node[\\/]dist[\\/]config\.js$/.test(args.importer) ? { path: PROXY_STUB } : undefined);
  },
};

const AUTH_STUB = fileURLToPath(new URL('./bundle-stubs/client-node-auth-providers.ts', import.meta.url));

/** client-node's dist/config.js imports its azure, gcp and oidc auth providers: resolve them to the stub (it says why). */
export const clientNodeAuthStub: Plugin = {
  name: 'client-node-auth-stub',
  setup(b) {
    b.onResolve({ filter: /^\.\/(azure|gcp|oidc)_auth\.js$/ }, (args) =>
      /@kubernetes[\\/]client-node[\\/]dist[\\/]config\.js$/.test(args.importer) ? { path: AUTH_STUB } : undefined);
  },
};

const NODE_HTTP = fileURLToPath(new URL('./bundle-stubs/node-http.ts', import.meta.url));

/** ES imports of node:http resolve to a module that requires it (bundle-stubs/node-http.ts says why); require()s stay. */
export const nodeHttpByRequire: Plugin = {
  name: 'node-http-by-require',
  setup(b) {
    b.onResolve({ filter: /^(node:)?http$/ }, (args) => (args.kind === 'import-statement' && args.importer !== NODE_HTTP ? { path: NODE_HTTP } : undefined));
  },
};

const UNUSED = fileURLToPath(new URL('./bundle-stubs/unused-node-modules.cjs', import.meta.url));

/** [importer, specifier, export of unused-node-modules.cjs that stands in for it]: what loads node:zlib,
 * node:worker_threads, node:assert and OpenTelemetry at start without the agent ever using it (the stub file says why). */
const UNUSED_IMPORTS: readonly [RegExp, string, string][] = [
  [/(^|[\\/])prom-client[\\/]index\.js$/, './lib/pushgateway', 'Pushgateway'],
  [/(^|[\\/])pino[\\/]lib[\\/]tools\.js$/, './transport', 'transport'],
  [/(^|[\\/])pino[\\/]pino\.js$/, './lib/transport', 'transport'],
  [/(^|[\\/])pino[\\/]lib[\\/]tools\.js$/, 'worker_threads', 'workerThreads'],
  [/(^|[\\/])sonic-boom[\\/]index\.js$/, 'assert', 'assert'],
  [/(^|[\\/])prom-client[\\/]lib[\\/]metrics[\\/]processCpuTotal\.js$/, '@opentelemetry/api', 'openTelemetry'],
];

/** Any specifier of UNUSED_IMPORTS (esbuild calls a plugin only for the paths its filter matches). */
const UNUSED_SPECIFIERS = new RegExp(`^(${[...new Set(UNUSED_IMPORTS.map(([, spec]) => spec.replace(/[./]/g, '\\$&')))].join('|')})$`);

/** Resolves each of UNUSED_IMPORTS (that importer and specifier only) to its stand-in. */
export const unusedNodeModules: Plugin = {
  name: 'unused-node-modules',
  setup(b) {
    b.onResolve({ filter: UNUSED_SPECIFIERS }, (args) => {
      const hit = UNUSED_IMPORTS.find(([importer, spec]) => spec === args.path && importer.test(args.importer));
      return hit ? { path: hit[2], namespace: 'koa-unused' } : undefined;
    });
    b.onLoad({ filter: /.*/, namespace: 'koa-unused' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(UNUSED)}).${args.path};`, loader: 'js', resolveDir: dirname(UNUSED),
    }));
  },
};

export const bundleOptions: BuildOptions = {
  entryPoints: ['agent/src/main.ts'],
  outfile: 'dist/agent.mjs',
  bundle: true,
  platform: 'node',
  target: 'node24',
  format: 'esm',
  sourcemap: true,
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  charset: 'ascii',
  logLevel: 'warning',
  plugins: [clientNodeGenStub, clientNodeProxyStub, clientNodeAuthStub, nodeHttpByRequire, unusedNodeModules],
  // The native addon is loaded from build/ at run time; CJS deps need `require` inside an ESM bundle.
  external: ['*.node'],
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
};

if (import.meta.main) await build(bundleOptions);
