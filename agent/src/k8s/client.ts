// Wiring to @kubernetes/client-node 2.0.1: one KubeConfig (2.x caches one undici dispatcher per cluster/user pair,
// so every API client and watch shares its connection pool), watches paced so that a reconnect storm cannot pile
// up sockets (dependencies.md §4 measured ~1,400 sockets with unpaced 2.0.1 reconnects), the resource watches the
// agent needs, and the IP CR API. README "Kubernetes layer and pod planning" has the 1.x-vs-2.x evidence.

import { ApiException, CoreV1Api, CustomObjectsApi, KubeConfig, ListWatch, NetworkingV1Api, Watch, type Cluster, type KubernetesObject } from '@kubernetes/client-node';
import { Agent, type Dispatcher } from 'undici';
import type { Config } from '../config/config.ts';
import type { BackoffOptions } from './backoff.ts';
import type { IpCrApi } from './ipcr.ts';
import { storePodSource, type PodSource } from './pods.ts';
import { SERVICE_CIDR_RESOURCE, ServiceCidrSource, type ServiceCidr } from './service-cidrs.ts';
import type { IpCr, KubeList, Node, Pod, Subnet } from './types.ts';
import { ResilientListWatch, type InformerFactory, type InformerLike, type ListFn, type Log, type WatchHealth } from './watch.ts';

export const KUBEOVN_GROUP = 'kubeovn.io';
export const KUBEOVN_VERSION = 'v1';

/** Kubeconfig file when given, else the in-cluster service account (as upstream's --kubeconfig ""). */
export function loadKubeConfig(kubeconfigPath: string): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfigPath !== '') kc.loadFromFile(kubeconfigPath);
  else kc.loadFromCluster();
  shareDispatcher(kc);
  return kc;
}

/** The undici dispatcher options of every API connection: no body timeout (a watch is quiet for minutes by design;
 * its liveness is the watch layer's watchdog), headers within 60 s. */
export const DISPATCHER_OPTIONS = { bodyTimeout: 0, headersTimeout: 60_000 } as const;

/**
 * client-node 2.0.1 builds a new undici Agent for every request (a new TLS connection per REST call and per watch),
 * each with undici's default 300 s body timeout, which keeps undici's 0.5 s timer tick running for as long as a
 * watch is open, so an idle agent woke twice a second. One dispatcher per cluster/user pair, without the body
 * timeout, fixes both. Proxied clusters keep the library's own dispatcher.
 */
function shareDispatcher(kc: KubeConfig): void {
  const own = kc as unknown as { createDispatcher(cluster: Cluster | null, agentOptions: object): Dispatcher | undefined };
  const library = own.createDispatcher.bind(kc);
  const cache = new Map<string, Dispatcher>();
  own.createDispatcher = (cluster, agentOptions) => {
    const o = kc.createDispatcherOptions(cluster, agentOptions);
    if (o.type !== 'agent' && o.type !== 'none') return library(cluster, agentOptions);
    const key = JSON.stringify([cluster?.name, cluster?.server, kc.getCurrentUser()?.name, o.type]);
    let d = cache.get(key);
    if (!d) {
      d = new Agent({ ...DISPATCHER_OPTIONS, ...(o.type === 'agent' ? { connect: o.connect } : {}) });
      cache.set(key, d);
    }
    return d;
  };
}

/**
 * A Watch that starts a new watch request at most once per `minIntervalMs`. ListWatch re-watches immediately after
 * a clean close and its own backoff is reset by every event (even a BOOKMARK), so without this a server that ends
 * each watch at once makes it loop as fast as the network allows.
 *
 * With `idleTimeoutMs` (the watch layer's watchdog), a quiet watch is also kept open: client-node aborts a watch
 * that received nothing for 30 s, so every quiet watch was re-requested twice a minute (a wake-up of an idle agent
 * and an API request per resource per node). Here the inactivity bound is the watchdog's, bookmarks are asked for
 * (they also keep the resourceVersion fresh for the re-watch), and the server ends each watch after a random
 * 50-90 % of the watchdog period (client-go spreads its watch timeouts the same way), so a quiet watch is renewed
 * cleanly before the watchdog would call it dead.
 */
export class PacedWatch extends Watch {
  readonly #minIntervalMs: number;
  readonly #idleTimeoutMs: number | undefined;
  readonly #random: () => number;
  #last = 0;
  constructor(kc: KubeConfig, minIntervalMs: number, idleTimeoutMs?: number, random: () => number = Math.random) {
    super(kc);
    this.#minIntervalMs = minIntervalMs;
    this.#idleTimeoutMs = idleTimeoutMs;
    this.#random = random;
    // a private field of client-node's Watch (2.0.1), read per request
    if (idleTimeoutMs !== undefined) (this as unknown as { requestTimeoutMs: number }).requestTimeoutMs = idleTimeoutMs;
  }
  override async watch(path: string, queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: any, watchObj?: any) => void, done: (err: any) => void): Promise<AbortController> {
    const wait = this.#last + this.#minIntervalMs - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    this.#last = Date.now();
    const params = this.#idleTimeoutMs === undefined ? queryParams
      : { ...queryParams, allowWatchBookmarks: true, timeoutSeconds: watchTimeoutSeconds(this.#idleTimeoutMs, this.#random()) };
    return super.watch(path, params, callback, done);
  }
}

/** Server-side watch timeout: a random 50-90 % of the watchdog period, at least 1 s. */
export const watchTimeoutSeconds = (idleTimeoutMs: number, r: number): number =>
  Math.max(1, Math.floor((idleTimeoutMs / 1000) * (0.5 + 0.4 * r)));

/** An informer factory over the client's ListWatch for `path` with selectors (the same selectors go into `list`). */
export function listWatchFactory<T>(kc: KubeConfig, path: string, selectors: { labelSelector?: string; fieldSelector?: string },
  watchMinIntervalMs: number, idleTimeoutMs?: number): InformerFactory<T> {
  return (list: ListFn<T>) => new ListWatch<KubernetesObject>(path, new PacedWatch(kc, watchMinIntervalMs, idleTimeoutMs),
    list as unknown as () => Promise<{ items: KubernetesObject[]; metadata?: { resourceVersion?: string } }> as never,
    false, selectors.labelSelector, selectors.fieldSelector) as unknown as InformerLike<T>;
}

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
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const networking = kc.makeApiClient(NetworkingV1Api);
  const paceMs = o.watchMinIntervalMs ?? 250;
  const common = {
    idleTimeoutMs: config.watchIdleTimeoutMs,
    ...(o.backoff ? { backoff: o.backoff } : {}),
    ...(o.log ? { log: o.log } : {}),
    ...(o.onRestart ? { onRestart: o.onRestart } : {}),
    ...(o.onHealth ? { onHealth: o.onHealth } : {}),
  };
  const podSel = { fieldSelector: podFieldSelector(config.nodeName) };
  // every Node: this one (annotations, InternalIP) and the others (the other-node ipset, spec §5.7)
  const nodeSel = {};
  const crList = <T>(plural: string, labelSelector?: string): ListFn<T> => async () =>
    (await custom.listClusterCustomObject({ group: KUBEOVN_GROUP, version: KUBEOVN_VERSION, plural, ...(labelSelector ? { labelSelector } : {}) })) as KubeList<T>;

  const pods = new ResilientListWatch<Pod>({
    ...common, resource: 'pods',
    list: async () => (await core.listPodForAllNamespaces(podSel)) as unknown as KubeList<Pod>,
    informer: listWatchFactory<Pod>(kc, '/api/v1/pods', podSel, paceMs, config.watchIdleTimeoutMs),
  });
  const node = new ResilientListWatch<Node>({
    ...common, resource: 'nodes',
    list: async () => (await core.listNode(nodeSel)) as unknown as KubeList<Node>,
    informer: listWatchFactory<Node>(kc, '/api/v1/nodes', nodeSel, paceMs, config.watchIdleTimeoutMs),
  });
  const subnets = new ResilientListWatch<Subnet>({
    ...common, resource: 'subnets',
    list: crList<Subnet>('subnets'),
    informer: listWatchFactory<Subnet>(kc, `/apis/${KUBEOVN_GROUP}/${KUBEOVN_VERSION}/subnets`, {}, paceMs, config.watchIdleTimeoutMs),
  });
  const serviceCidrs = new ServiceCidrSource({
    discover: () => servesServiceCidrs(networking),
    watch: () => new ResilientListWatch<ServiceCidr>({
      ...common, resource: SERVICE_CIDR_RESOURCE,
      list: async () => (await networking.listServiceCIDR({})) as unknown as KubeList<ServiceCidr>,
      informer: listWatchFactory<ServiceCidr>(kc, `/apis/networking.k8s.io/v1/${SERVICE_CIDR_RESOURCE}`, {}, paceMs, config.watchIdleTimeoutMs),
    }),
    ...(o.backoff ? { backoff: o.backoff } : {}),
    ...(o.log ? { log: o.log } : {}),
  });
  // No IP CR watch: the agent only GETs and UPDATEs its pods' IP CRs (spec §3.3), and upstream's ClusterRole
  // grants exactly get/update on ips, so a list/watch would be refused (403) under the drop-in RBAC.
  const all: WatchLike[] = [pods, node, subnets, serviceCidrs];
  return {
    pods, node, subnets, serviceCidrs,
    podSource: storePodSource(pods.store),
    ipApi: ipCrApi(custom),
    all: () => all,
    health: () => all.map((w) => w.health()),
    waitSynced: async () => { await Promise.all(all.map((w) => w.waitSynced())); },
    stop: async () => { await Promise.all(all.map((w) => w.stop())); },
  };
}

/** Discovery of networking.k8s.io/v1: does it list `servicecidrs`? A 404 (the group version is not served at all)
 * is a plain no; any other failure throws (the source retries). */
export async function servesServiceCidrs(networking: NetworkingV1Api): Promise<boolean> {
  try {
    const r = await networking.getAPIResources();
    return (r.resources ?? []).some((x) => x.name === SERVICE_CIDR_RESOURCE);
  } catch (e) {
    if (e instanceof ApiException && e.code === 404) return false;
    throw apiError('GET /apis/networking.k8s.io/v1', e);
  }
}

/** IpCrApi over the CustomObjectsApi: GET (404 -> undefined) and PUT (409 surfaces as statusCode 409). */
export function ipCrApi(custom: CustomObjectsApi): IpCrApi {
  const base = { group: KUBEOVN_GROUP, version: KUBEOVN_VERSION, plural: 'ips' };
  return {
    async get(name) {
      try {
        return (await custom.getClusterCustomObject({ ...base, name })) as IpCr;
      } catch (e) {
        if (e instanceof ApiException && e.code === 404) return undefined;
        throw apiError(`GET ips/${name}`, e);
      }
    },
    async replace(ip) {
      const name = ip.metadata?.name ?? '';
      try {
        await custom.replaceClusterCustomObject({ ...base, name, body: ip });
      } catch (e) {
        throw apiError(`PUT ips/${name}`, e);
      }
    },
  };
}

function apiError(what: string, e: unknown): Error {
  if (e instanceof ApiException) {
    const body = e.body as { message?: string } | string | undefined;
    const msg = typeof body === 'object' && body?.message ? body.message : String(body ?? e.message);
    return Object.assign(new Error(`${what}: HTTP ${e.code}: ${msg}`), { statusCode: e.code });
  }
  return new Error(`${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}
