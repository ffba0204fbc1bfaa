// The Kubernetes part of the agent as a lifecycle component: the watches (pods of this node, Nodes, Subnets,
// ServiceCIDRs), started together; start-up waits for their first list, bounded, and goes on without it (readiness
// says why).

import type { Logger } from 'pino';
import type { Component } from '../lifecycle.ts';
import type { ConnectConfig, IdentityConfig } from '../config/config.ts';
import type { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { createWatchSet, loadKubeConfig, type WatchSet } from './client.ts';
import { nodeApi, type NodeApi } from './node-api.ts';
import { apiEventSink, EventRecorder } from './events.ts';

export interface KubeHooks {
  onRestart?: (resource: string, reason: string) => void;
  onHealth?: (resource: string, ok: boolean) => void;
  /** bound of the wait for the first list of every watch (default 30 s; then served anyway, not ready) */
  syncTimeoutMs?: number;
}

export class KubeComponent implements Component {
  readonly name = 'kubernetes-watches';
  #watches: WatchSet | undefined;
  #nodeApi: NodeApi | undefined;
  #events: EventRecorder | undefined;
  #kc: KubeConfig | undefined;
  readonly #cfg: ConnectConfig & Pick<IdentityConfig, 'nodeName'>;
  readonly #log: Logger;
  readonly #hooks: KubeHooks;

  constructor(cfg: ConnectConfig & Pick<IdentityConfig, 'nodeName'>, log: Logger, hooks: KubeHooks = {}) {
    this.#cfg = cfg;
    this.#log = log;
    this.#hooks = hooks;
  }

  /** the watch set (after start) */
  get watches(): WatchSet {
    if (!this.#watches) throw new Error('the Kubernetes watches are not started');
    return this.#watches;
  }

  /** writes to this agent's Node (after start) */
  get nodeApi(): NodeApi {
    if (!this.#nodeApi) throw new Error('the Kubernetes client is not started');
    return this.#nodeApi;
  }

  /** the shared KubeConfig (after start): other components' watches use its connection pool */
  get kubeConfig(): KubeConfig {
    if (!this.#kc) throw new Error('the Kubernetes client is not started');
    return this.#kc;
  }

  /** Kubernetes Events, rate-limited (after start) */
  get events(): EventRecorder {
    if (!this.#events) throw new Error('the Kubernetes client is not started');
    return this.#events;
  }

  async start(): Promise<void> {
    if (this.#cfg.kubeconfig === '' && !process.env.KUBERNETES_SERVICE_HOST) {
      throw new Error('no --kubeconfig (or KUBECONFIG) given and not running in a cluster (KUBERNETES_SERVICE_HOST is not set)');
    }
    const kc = loadKubeConfig(this.#cfg.kubeconfig);
    this.#kc = kc;
    this.#nodeApi = nodeApi(kc);
    this.#events = new EventRecorder(apiEventSink(kc), {
      component: 'kube-ovn-cni', host: this.#cfg.nodeName,
      onError: (e) => this.#log.debug({ err: e instanceof Error ? e.message : String(e) }, 'event not recorded'),
    });
    const w = createWatchSet(kc, this.#cfg, {
      log: this.#log,
      ...(this.#hooks.onRestart ? { onRestart: this.#hooks.onRestart } : {}),
      ...(this.#hooks.onHealth ? { onHealth: this.#hooks.onHealth } : {}),
    });
    this.#watches = w;
    for (const x of w.all()) x.start();
    const syncMs = this.#hooks.syncTimeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([
      w.waitSynced().then(() => true),
      new Promise<false>((r) => { timer = setTimeout(() => r(false), syncMs); }),
    ]);
    clearTimeout(timer);
    if (!inTime) {
      this.#log.warn({ health: w.health() }, `watches not synced after ${syncMs} ms; going on`);
      void w.waitSynced().then(() => this.#log.info('watches synced'));
    }
  }

  async stop(): Promise<void> {
    await this.#watches?.stop();
  }

  ready(): true | string {
    if (!this.#watches) return 'watches not started';
    const notSynced = this.#watches.health().filter((h) => !h.synced).map((h) => h.resource);
    return notSynced.length ? `Kubernetes watches not synced: ${notSynced.join(', ')}` : true;
  }
}
