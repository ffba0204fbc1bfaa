// The few Kubernetes object shapes the agent reads, declared by us. The watch caches of Pods, Nodes and Subnets
// hold only what is declared here (slim.ts copies these fields at decode time and drops the rest, managedFields
// first): a field a new reader needs goes into both. IP CRs are read and written whole (never cached).

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
  /** `continue`: a paged list (limit) has more; ask again with it */
  metadata?: { resourceVersion?: string; continue?: string };
}

export interface Pod extends KubeObject {
  spec?: { nodeName?: string; hostNetwork?: boolean };
}

export interface NodeConditionStatus {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

export interface Node extends KubeObject {
  /** conditions: only NetworkUnavailable is kept (the one the agent sets and reads back) */
  status?: { addresses?: { type: string; address: string }[]; conditions?: NodeConditionStatus[] };
}

/** kubeovn.io/v1 Subnet (cluster-scoped): the fields the node agent uses (user docs §3.1). The spec is kept whole
 * (small, and read in many places); of the status only the fields below (its IP usage counters and ranges go). */
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
    /** LoadBalancer addresses from this subnet get OpenFlow flows on the provider bridge (node/underlay/lb-flows.ts) */
    enableExternalLBAddress?: boolean;
    disableGatewayCheck?: boolean;
    mtu?: number;
    nodeNetwork?: string;
    [k: string]: unknown;
  };
  status?: {
    u2oInterconnectionIP?: string;
    /** the MAC of the u2o router port: a static FDB entry on the provider bridge (node/underlay/fdb.ts) */
    u2oInterconnectionMAC?: string;
    activateGateway?: string;
    natOutgoingPolicyRules?: unknown[];
    conditions?: { type?: string; status?: string }[];
  };
}

/** v1 Service: what the external-LB flows read (slim.ts keeps only the one annotation, the ports and the
 * LoadBalancer ingress IPs, and nothing of Services without that annotation). */
export interface Service extends KubeObject {
  spec?: { ports?: { port?: number; protocol?: string }[] };
  status?: { loadBalancer?: { ingress?: { ip?: string }[] } };
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
