// Stands in, in the agent bundle only (scripts/bundle.ts `unusedNodeModules`), for what dependencies load at start
// and the agent never uses, so that neither they nor the built-in modules behind them are loaded (README "Memory"):
//   - prom-client's Pushgateway (its index requires it eagerly): it loads node:zlib. The agent is scraped, never pushes.
//   - pino's transports (pino/lib/tools.js requires ./transport eagerly): thread-stream loads node:worker_threads and
//     node:assert. The agent writes its log lines itself (agent/src/observe/log.ts, a synchronous destination).
//   - pino's `isMainThread` (the same file, from node:worker_threads): the agent logs from its main thread only.
//   - sonic-boom's node:assert: one argument check of its own.
//   - @opentelemetry/api, which prom-client's process CPU metric asks for a trace span only when exemplars are on
//     (the agent's metrics have none): an API with no span.
// Each stand-in refuses clearly where the real thing would have been used.
'use strict';

const notBundled = (what) => {
  throw new Error(`${what} is not available in the agent bundle (scripts/bundle-stubs/unused-node-modules.cjs)`);
};

class Pushgateway {
  constructor() { notBundled('prom-client Pushgateway'); }
}

function transport() { return notBundled('a pino transport'); }

function assert(value, message) {
  if (!value) throw new Error(typeof message === 'string' ? message : 'assertion failed');
}

const openTelemetry = { trace: { getSpan: () => undefined }, context: { active: () => undefined } };

module.exports = { Pushgateway, transport, assert, workerThreads: { isMainThread: true }, openTelemetry };
