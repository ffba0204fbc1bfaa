// Stands in for an ES `import ... from 'node:http'` (client-node's config.js, the agent's health and metrics code)
// when scripts/bundle.ts bundles the agent. Such an import makes Node build node:http's ES facade, which reads every
// export, and reading the lazy WebSocket, CloseEvent and MessageEvent exports loads Node's internal copy of undici
// (fetch, WebSocket): 12 MB more RSS in a bare Node 24 process than requiring node:http. A require reads only what
// is used. The exports below are node:http's plain (non-getter) exports.
import { createRequire } from 'node:module';

const http = createRequire(import.meta.url)('node:http') as typeof import('node:http');

export default http;
export const {
  Agent, ClientRequest, IncomingMessage, METHODS, OutgoingMessage, STATUS_CODES, Server, ServerResponse, createServer,
  get, request, setMaxIdleHTTPParsers, validateHeaderName, validateHeaderValue,
} = http;
