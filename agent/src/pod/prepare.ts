// Everything an ADD does before touching the datapath, wired to the k8s layer: the provider binding check (§3.1),
// the event-driven annotation wait (§3.2), the subnet lookup, the node facts, and the plan (§3.5-§3.8, §2.5).
// The executor applies `plan.steps`; the IP CR update (plan.ipCr, k8s/ipcr.ts) can run alongside it.

import { agentError } from '../errors.ts';
import type { PodSource } from '../k8s/pods.ts';
import { waitForPodAnnotations } from './wait.ts';
import { subnetFacts, subnetForProvider } from './subnets.ts';
import type { Node, Pod, Subnet } from '../k8s/types.ts';
import { isOvnProvider, type PodNicAnnotations } from './annotations.ts';
import { planAdd, type AddPlan, type NicRequest, type NodeFacts } from './plan.ts';

export const NODE_NETWORKS_ANNOTATION = 'ovn.kubernetes.io/node_networks';

export interface PrepareDeps {
  readonly pods: PodSource;
  /** the Subnet cache */
  subnets(): readonly Subnet[];
  /** false until the Subnet watch has listed once (an agent that went on without it after its start-up bound) */
  subnetsSynced?(): boolean;
  /** this Node from the cache (labels, node_networks) */
  node(): Node | undefined;
  /** node-wide facts; labels and node networks are filled in from node() */
  readonly nodeFacts: Omit<NodeFacts, 'nodeLabels' | 'nodeNetworks'>;
  readonly annotationWaitTimeoutMs: number;
}

export interface PreparedAdd {
  readonly pod: Pod;
  readonly nic: PodNicAnnotations;
  readonly plan: AddPlan;
  readonly waitedMs: number;
  /** whether the annotations were complete at once ('cache') or arrived by a watch event while the ADD waited */
  readonly via: 'cache' | 'event';
}

/** This Node's `ovn.kubernetes.io/node_networks` (JSON {network: encap IP}); a bad value counts as none. */
export function nodeNetworks(node: Node | undefined): Record<string, string> {
  const text = node?.metadata?.annotations?.[NODE_NETWORKS_ANNOTATION];
  if (!text) return {};
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return {};
    return Object.fromEntries(Object.entries(v).filter((e): e is [string, string] => typeof e[1] === 'string'));
  } catch {
    return {};
  }
}

export async function prepareAdd(deps: PrepareDeps, req: NicRequest, signal?: AbortSignal): Promise<PreparedAdd> {
  const subnets = deps.subnets();
  const bound = subnetForProvider(subnets, req.provider, req.ifName);
  // a Subnet missing from a cache that has not listed yet is not an answer: the runtime retries a code 11
  const unsynced = (): boolean => deps.subnetsSynced !== undefined && !deps.subnetsSynced();
  if (bound === undefined) {
    if (unsynced()) throw agentError('KOA_TRY_AGAIN', `the Subnet cache has not synced yet (provider ${req.provider})`);
    throw agentError('KOA_PROVIDER_UNBOUND', req.provider);
  }
  const { pod, nic, waitedMs, via } = await waitForPodAnnotations(deps.pods, req.podNamespace, req.podName, req.provider, req.ifName,
    { timeoutMs: deps.annotationWaitTimeoutMs, ...(signal ? { signal } : {}), ...(req.podUid ? { uid: req.podUid } : {}) });
  const subnetName = nic.logicalSwitch ?? bound?.metadata?.name;
  const subnet = subnetName === undefined ? undefined : subnets.find((s) => s.metadata?.name === subnetName);
  if (isOvnProvider(req.provider) && !subnet) {
    if (unsynced()) throw agentError('KOA_TRY_AGAIN', `the Subnet cache has not synced yet (subnet ${subnetName ?? '(none)'} of pod ${req.podNamespace}/${req.podName})`);
    throw agentError('KOA_K8S', `subnet ${subnetName ?? '(none)'} of pod ${req.podNamespace}/${req.podName} is not in the subnet cache`);
  }
  const node = deps.node();
  const facts: NodeFacts = { ...deps.nodeFacts, nodeLabels: node?.metadata?.labels ?? {}, nodeNetworks: nodeNetworks(node) };
  const plan = planAdd(req, nic, facts, subnet ? subnetFacts(subnet) : undefined);
  return { pod, nic, plan, waitedMs, via };
}
