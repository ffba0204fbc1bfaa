// Stands in for @kubernetes/client-node/dist/gen/index.js when scripts/bundle.ts bundles the agent. The agent takes
// only KubeConfig from client-node (dist/config.js) and makes its own REST calls (agent/src/k8s/rest.ts); config.js
// imports the generated API only for KubeConfig.makeApiClient, which the agent never calls. Keeping the generated
// API (~700 model classes and the ObjectSerializer) out of the bundle is most of README "Memory"'s saving.
const notBundled = (): never => {
  throw new Error('KubeConfig.makeApiClient is not available in the agent bundle (agent/src/k8s/rest.ts makes the REST calls)');
};
export const createConfiguration = notBundled;
export class ServerConfiguration {
  constructor() { notBundled(); }
}
