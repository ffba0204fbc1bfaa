// Stands in for `undici` (its index.js) when scripts/bundle.ts bundles the agent. The agent and client-node's
// KubeConfig use undici's Agent and ProxyAgent, and the agent its `request`; index.js also loads fetch, WebSocket,
// EventSource, the cache stores, MockAgent and HTTP/2 support at start-up. A Node process that requires index.js
// holds about 12 MB more than one that requires only the dispatchers and the request API (measured on Node 24).
// This module is undici's own code for what the agent uses: the dispatchers, the request API installed on
// Dispatcher.prototype as index.js installs it, and `request` as index.js builds it (an absolute URL and a dispatcher).
// @ts-nocheck -- undici ships types for index.js only
import Dispatcher from 'undici/lib/dispatcher/dispatcher.js';
import api from 'undici/lib/api/index.js';
import Agent from 'undici/lib/dispatcher/agent.js';
import ProxyAgent from 'undici/lib/dispatcher/proxy-agent.js';
import { getGlobalDispatcher, setGlobalDispatcher } from 'undici/lib/global.js';
import errors from 'undici/lib/core/errors.js';

Object.assign(Dispatcher.prototype, api);

export { Agent, Dispatcher, ProxyAgent, errors, getGlobalDispatcher, setGlobalDispatcher };

/** `undici.request(url, opts)`: the URL absolute, `opts.path` not supported (the agent never passes it). */
export function request(url, opts = {}) {
  if (opts.path != null) throw new errors.InvalidArgumentError('opts.path is not supported in the agent bundle');
  const u = url instanceof URL ? url : new URL(url);
  const { agent, dispatcher = getGlobalDispatcher(), ...rest } = opts;
  if (agent) throw new errors.InvalidArgumentError('unsupported opts.agent. Did you mean opts.client?');
  return api.request.call(dispatcher, {
    ...rest, origin: u.origin, path: u.search ? `${u.pathname}${u.search}` : u.pathname, method: opts.method || (opts.body ? 'PUT' : 'GET'),
  });
}
