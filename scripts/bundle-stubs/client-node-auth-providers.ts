// Stands in for client-node's `azure_auth.js`, `gcp_auth.js` and `oidc_auth.js` when its dist/config.js imports them
// and scripts/bundle.ts bundles the agent. They refresh tokens for a kubeconfig user's `auth-provider`, which the agent
// refuses at start (agent/src/k8s/rest.ts refuseAuthProvider: upstream's daemon has no auth-provider plugins either).
// Leaving them out takes openid-client, oauth4webapi and jsonpath-plus out of the bundle, and with them the built-in
// modules they load at start (node:vm, Node's navigator and Web Crypto). config.js builds one of each at start and asks
// each whether it serves a user: these answer for their own provider's name, and refuse to authenticate it.
const refuse = (name: string): never => {
  throw new Error(`auth-provider ${name} is not available in the agent (agent/src/k8s/rest.ts refuseAuthProvider)`);
};

interface User { authProvider?: { name?: string } }

class Refusing {
  readonly provider: string;
  constructor(provider: string) { this.provider = provider; }
  isAuthProvider(user: User | undefined): boolean { return user?.authProvider?.name === this.provider; }
  async applyAuthentication(): Promise<never> { return refuse(this.provider); }
}

export class AzureAuth extends Refusing { constructor() { super('azure'); } }
export class GoogleCloudPlatformAuth extends Refusing { constructor() { super('gcp'); } }
export class OpenIDConnectAuth extends Refusing { constructor() { super('oidc'); } }
