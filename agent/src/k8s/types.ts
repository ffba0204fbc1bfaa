// The few Kubernetes object shapes the agent reads, declared by us (the client's CR results are untyped).
// Only fields we use; everything else passes through untouched.

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string | Date;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
}

export interface KubeList<T> {
  items: T[];
  metadata?: { resourceVersion?: string };
}

export interface Pod extends KubeObject {
  spec?: { nodeName?: string; hostNetwork?: boolean };
  status?: { phase?: string };
}

export interface Node extends KubeObject {
  status?: { addresses?: { type: string; address: string }[] };
}

/** kubeovn.io/v1 Subnet (cluster-scoped): the fields the node agent uses (user docs §3.1). */
export interface Subnet extends KubeObject {
  spec?: {
    provider?: string;
    protocol?: string;
    cidrBlock?: string;
    gateway?: string;
    vpc?: string;
    vlan?: string;
    logicalGateway?: boolean;
    u2oInterconnection?: boolean;
    disableGatewayCheck?: boolean;
    mtu?: number;
    nodeNetwork?: string;
    [k: string]: unknown;
  };
  status?: { u2oInterconnectionIP?: string; [k: string]: unknown };
}

/** kubeovn.io/v1 IP (cluster-scoped), named `<pod>.<ns>[.<provider>]`. */
export interface IpCr extends KubeObject {
  spec?: {
    podName?: string;
    namespace?: string;
    subnet?: string;
    nodeName?: string;
    ipAddress?: string;
    attachIps?: string[];
    attachMacs?: string[];
    attachSubnets?: string[];
    [k: string]: unknown;
  };
}

/** `namespace/name` (or just `name` for cluster-scoped objects): the cache key. */
export function objectKey(obj: KubeObject): string {
  const ns = obj.metadata?.namespace ?? '';
  const name = obj.metadata?.name ?? '';
  return ns === '' ? name : `${ns}/${name}`;
}

export const keyOf = (namespace: string, name: string): string => (namespace === '' ? name : `${namespace}/${name}`);
