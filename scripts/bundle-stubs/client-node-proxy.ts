// Stands in for `undici`, `socks` and `socks-proxy-agent` when client-node's dist/config.js imports them and
// scripts/bundle.ts bundles the agent. config.js needs them only to build connections itself: createDispatcher
// (undici's Agent and ProxyAgent, a SOCKS connector from `socks`), called from applySecurityAuthentication, which
// serves the generated API the agent leaves out (client-node-gen.ts); and createAgent's SOCKS branch
// (SocksProxyAgent), taken only for a cluster with a socks proxy-url, which the agent refuses before it asks the
// KubeConfig anything (agent/src/k8s/rest.ts refuseProxy). The agent's own requests go over node:https (rest.ts).
// Leaving them out takes undici, socks, smart-buffer, ip-address, agent-base and debug out of the bundle.
const notBundled = (what: string): never => {
  throw new Error(`${what} is not available in the agent bundle (agent/src/k8s/rest.ts makes the requests over node:https)`);
};

export class Agent {
  constructor() { notBundled('undici Agent (KubeConfig.createDispatcher)'); }
}
export class ProxyAgent {
  constructor() { notBundled('undici ProxyAgent (KubeConfig.createDispatcher)'); }
}
export class SocksProxyAgent {
  constructor() { notBundled('SocksProxyAgent (a socks proxy-url)'); }
}
export const SocksClient = {
  createConnection: (): never => notBundled('SocksClient (a socks proxy-url)'),
};
