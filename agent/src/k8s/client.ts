// Wiring to Kubernetes: client-node 2.0.1's KubeConfig for the connection and its authentication (rest.ts keeps one
// node:https keep-alive Agent per TLS material, so every request and watch shares its connection pool), our own lean REST
// calls and list+watch over it (rest.ts, listwatch.ts: plain JSON, no generated model classes), the resource
// watches the agent needs, each cache slimmed to the fields the agent reads (slim.ts), and the IP CR API.
// README "Kubernetes layer and pod planning" has the 1.x-vs-2.x evidence, README "Memory" why the lean path.

// config.js, not the package index: the index pulls in the whole generated API (scripts/bundle.ts keeps it out)
import { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import type { Config } from '../config/config.ts';
import type { BackoffOptions } from './backoff.ts';
import type { IpCrApi } from './ipcr.ts';
import { KubeListWatch } from './listwatch.ts';
import { storePodSource, type PodSource } from './pods.ts';
import { apiError, KubeApiError, KubeRest, refuseUnsupported } from './rest.ts';
import { slimNode, slimPod, slimSubnet } from './slim.ts';
import { SERVICE_CIDR_RESOURCE, ServiceCidrSource, type ServiceCidr } from './service-cidrs.ts';
import type { IpCr, KubeList, KubeObject, Node, Pod, Subnet } from './types.ts';
import { ResilientListWatch, type InformerFactory, type ListFn, type Log, type WatchHealth } from './watch.ts';

export const KUBEOVN_GROUP = 'kubeovn.io';
export const KUBEOVN_VERSION = 'v1';

/** Kubeconfig file when given, else the in-cluster service account (as upstream's --kubeconfig ""). A cluster with
 * `proxy-url` and a user whose `auth-provider` is azure, gcp or oidc are refused here, at start (rest.ts refuseProxy
 * and refuseAuthProvider say why). */
export function loadKubeConfig(kubeconfigPath: string): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfigPath !== '') kc.loadFromFile(kubeconfigPath);
  else kc.loadFromCluster();
  refuseUnsupported(kc);
  return kc;
}

/** An informer factory: a lean list+watch (listwatch.ts) of `path` with selectors (the same selectors go into `list`). */
export function listWatchFactory<T>(rest: KubeRest, path: string, selectors: { labelSelector?: string; fieldSelector?: string },
  watchMinIntervalMs: number, idleTimeoutMs: number): InformerFactory<T> {
  return (list: ListFn<T>) => new KubeListWatch<T>(list, { rest, path, ...selectors, minIntervalMs: watchMinIntervalMs, idleTimeoutMs });
}

/** Objects per page of a list (client-go's reflector pages its lists by 500 too). */
export const LIST_PAGE = 500;

/**
 * GET of a list (JSON, no model classes), with selectors, in pages of LIST_PAGE: a cluster's every Node in one answer
 * is one string of tens of MB parsed at once. The pages are one snapshot (the server's continue token); the items
 * come back as one list with the last page's resourceVersion (the snapshot's).
 */
export const listOf = <T>(rest: Pick<KubeRest, 'call'>, path: string, selectors: { labelSelector?: string; fieldSelector?: string } = {},
  page = LIST_PAGE): ListFn<T> =>
  async () => {
    const items: T[] = [];
    let token: string | undefined;
    for (;;) {
      const l = await rest.call<KubeList<T>>('GET', path, { query: { ...selectors, limit: page, ...(token ? { continue: token } : {}) } });
      for (const x of l.items ?? []) items.push(x);
      token = l.metadata?.continue || undefined;
      if (!token) return { ...l, items, metadata: { ...(l.metadata?.resourceVersion !== undefined ? { resourceVersion: l.metadata.resourceVersion } : {}) } };
    }
  };

/** What the watch set starts, stops and asks for health: a ResilientListWatch, or the ServiceCIDR source. */
export interface WatchLike {
  start(): void;
  stop(): Promise<void>;
  health(): WatchHealth;
  waitSynced(): Promise<void>;
}

export interface WatchSet {
  readonly pods: ResilientListWatch<Pod>;
  readonly node: ResilientListWatch<Node>;
  readonly subnets: ResilientListWatch<Subnet>;
  /** ServiceCIDR objects, watched when the API serves them (service-cidrs.ts) */
  readonly serviceCidrs: ServiceCidrSource;
  /** IP CRs labelled for this node */
  readonly podSource: PodSource;
  readonly ipApi: IpCrApi;
  all(): WatchLike[];
  health(): WatchHealth[];
  /** all started watches have listed once */
  waitSynced(): Promise<void>;
  stop(): Promise<void>;
}

export interface WatchSetOptions {
  readonly log?: Log;
  readonly backoff?: BackoffOptions;
  /** minimum ms between two watch requests of one resource (default 250) */
  readonly watchMinIntervalMs?: number;
  readonly onRestart?: (resource: string, reason: string) => void;
  readonly onHealth?: (resource: string, ok: boolean) => void;
}

/** Field selector of the pods the agent serves (upstream's informer filter, spec §7). */
export const podFieldSelector = (nodeName: string): string => `spec.nodeName=${nodeName},spec.hostNetwork=false`;

/** Builds (does not start) the agent's watches: pods on this node, Nodes, Subnets, ServiceCIDRs (when served). */
export function createWatchSet(kc: KubeConfig, config: Pick<Config, 'nodeName' | 'watchIdleTimeoutMs'>, o: WatchSetOptions = {}): WatchSet {
  const rest = new KubeRest(kc);
  const paceMs = o.watchMinIntervalMs ?? 250;
  const idle = config.watchIdleTimeoutMs;
  const common = {
    idleTimeoutMs: idle,
    ...(o.backoff ? { backoff: o.backoff } : {}),
    ...(o.log ? { log: o.log } : {}),
    ...(o.onRestart ? { onRestart: o.onRestart } : {}),
    ...(o.onHealth ? { onHealth: o.onHealth } : {}),
  };
  const podSel = { fieldSelector: podFieldSelector(config.nodeName) };
  // every Node: this one (annotations, InternalIP) and the others (the other-node ipset, spec §5.7)
  const nodeSel = {};
  const watch = <T extends KubeObject>(resource: string, path: string, sel: { fieldSelector?: string }, decode: (o: T) => T) =>
    new ResilientListWatch<T>({
      ...common, resource, decode, list: listOf<T>(rest, path, sel), informer: listWatchFactory<T>(rest, path, sel, paceMs, idle),
    });
  const pods = watch<Pod>('pods', '/api/v1/pods', podSel, slimPod);
  const node = watch<Node>('nodes', '/api/v1/nodes', nodeSel, slimNode);
  const subnets = watch<Subnet>('subnets', `/apis/${KUBEOVN_GROUP}/${KUBEOVN_VERSION}/subnets`, {}, slimSubnet);
  const serviceCidrs = new ServiceCidrSource({
    discover: () => servesServiceCidrs(rest),
    watch: () => watch<ServiceCidr>(SERVICE_CIDR_RESOURCE, `/apis/networking.k8s.io/v1/${SERVICE_CIDR_RESOURCE}`, {}, (o) => o),
    ...(o.backoff ? { backoff: o.backoff } : {}),
    ...(o.log ? { log: o.log } : {}),
  });
  // No IP CR watch: the agent only GETs and UPDATEs its pods' IP CRs (spec §3.3), and upstream's ClusterRole
  // grants exactly get/update on ips, so a list/watch would be refused (403) under the drop-in RBAC.
  const all: WatchLike[] = [pods, node, subnets, serviceCidrs];
  return {
    pods, node, subnets, serviceCidrs,
    podSource: storePodSource(pods.store),
    ipApi: ipCrApi(rest),
    all: () => all,
    health: () => all.map((w) => w.health()),
    waitSynced: async () => { await Promise.all(all.map((w) => w.waitSynced())); },
    stop: async () => { await Promise.all(all.map((w) => w.stop())); },
  };
}

/** Discovery of networking.k8s.io/v1: does it list `servicecidrs`? A 404 (the group version is not served at all)
 * is a plain no; any other failure throws (the source retries). */
export async function servesServiceCidrs(rest: Pick<KubeRest, 'call'>): Promise<boolean> {
  const what = 'GET /apis/networking.k8s.io/v1';
  try {
    const r = await rest.call<{ resources?: { name?: string }[] }>('GET', '/apis/networking.k8s.io/v1');
    return (r.resources ?? []).some((x) => x.name === SERVICE_CIDR_RESOURCE);
  } catch (e) {
    if (e instanceof KubeApiError && e.statusCode === 404) return false;
    throw apiError(what, e);
  }
}

/** IpCrApi over REST: GET (404 -> undefined) and PUT (409 surfaces as statusCode 409). */
export function ipCrApi(rest: Pick<KubeRest, 'call'>): IpCrApi {
  const path = (name: string) => `/apis/${KUBEOVN_GROUP}/${KUBEOVN_VERSION}/ips/${encodeURIComponent(name)}`;
  return {
    async get(name) {
      try {
        return await rest.call<IpCr>('GET', path(name));
      } catch (e) {
        if (e instanceof KubeApiError && e.statusCode === 404) return undefined;
        throw apiError(`GET ips/${name}`, e);
      }
    },
    async replace(ip) {
      const name = ip.metadata?.name ?? '';
      try {
        await rest.call('PUT', path(name), { body: ip });
      } catch (e) {
        throw apiError(`PUT ips/${name}`, e);
      }
    },
  };
}
