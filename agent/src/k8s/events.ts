// Kubernetes Events the agent emits (spec §5.11): PodNetworkConfigured, PodNetworkConfigureFailed,
// PodNetworkRemoved, PodQoSUpdated, ... on pods; InitOVSBridgeSucceeded/Failed on ProviderNetworks. Rate-limited
// like client-go's spam filter (a token bucket per object and reason: a burst, then one per interval), so a pod
// failing in a loop cannot flood the API server; repeats within the bucket are dropped, not queued. Sending never
// blocks or fails the caller: the Event is best effort, as upstream's recorder.

import type { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { KubeRest } from './rest.ts';

export interface EventTarget {
  readonly kind: string;
  readonly apiVersion: string;
  readonly name: string;
  readonly namespace?: string;
  readonly uid?: string;
}

export interface AgentEvent {
  readonly target: EventTarget;
  readonly type: 'Normal' | 'Warning';
  readonly reason: string;
  readonly message: string;
}

export interface EventSink {
  create(namespace: string, body: Record<string, unknown>): Promise<void>;
}

export interface RecorderOptions {
  readonly component: string;
  readonly host: string;
  /** events allowed at once per object and reason (default 25, client-go's burst) */
  readonly burst?: number;
  /** one more allowed per interval (default 300 s, client-go's 1/300 qps) */
  readonly refillMs?: number;
  /** objects tracked before the oldest bucket is forgotten (default 4096) */
  readonly maxKeys?: number;
  readonly now?: () => number;
  readonly onError?: (e: unknown) => void;
}

export class EventRecorder {
  readonly #sink: EventSink;
  readonly #o: Required<Pick<RecorderOptions, 'burst' | 'refillMs' | 'maxKeys'>> & RecorderOptions;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  #dropped = 0;

  constructor(sink: EventSink, o: RecorderOptions) {
    this.#sink = sink;
    this.#o = { burst: 25, refillMs: 300_000, maxKeys: 4096, ...o };
  }

  /** events dropped by the rate limit so far */
  get dropped(): number { return this.#dropped; }

  /** Records an event if its bucket allows; returns whether it was sent. */
  record(e: AgentEvent): boolean {
    const now = (this.#o.now ?? Date.now)();
    const key = `${e.target.kind}/${e.target.namespace ?? ''}/${e.target.name}/${e.target.uid ?? ''}|${e.reason}`;
    let b = this.#buckets.get(key);
    if (!b) {
      if (this.#buckets.size >= this.#o.maxKeys) this.#buckets.delete(this.#buckets.keys().next().value!);
      b = { tokens: this.#o.burst, at: now };
    } else {
      this.#buckets.delete(key); // re-insert: the map's order is least recently used first
      const refill = Math.floor((now - b.at) / this.#o.refillMs);
      if (refill > 0) b = { tokens: Math.min(this.#o.burst, b.tokens + refill), at: b.at + refill * this.#o.refillMs };
    }
    this.#buckets.set(key, b);
    if (b.tokens <= 0) { this.#dropped++; return false; }
    b.tokens--;
    const ts = new Date(now).toISOString();
    const ns = e.target.namespace || 'default';
    const body = {
      metadata: { generateName: `${e.target.name}.`, namespace: ns },
      involvedObject: { kind: e.target.kind, apiVersion: e.target.apiVersion, name: e.target.name, ...(e.target.namespace ? { namespace: e.target.namespace } : {}),
        ...(e.target.uid ? { uid: e.target.uid } : {}) },
      reason: e.reason, message: e.message.slice(0, 1024), type: e.type,
      source: { component: this.#o.component, host: this.#o.host },
      firstTimestamp: ts, lastTimestamp: ts, count: 1,
      reportingComponent: this.#o.component, reportingInstance: this.#o.host,
    };
    this.#sink.create(ns, body).catch((err: unknown) => this.#o.onError?.(err));
    return true;
  }
}

/** The sink over the core/v1 Events API. */
export function apiEventSink(kc: KubeConfig): EventSink {
  const rest = new KubeRest(kc);
  return { create: async (namespace, body) => { await rest.call('POST', `/api/v1/namespaces/${encodeURIComponent(namespace)}/events`, { body }); } };
}

/** A pod as an event target. */
export const podTarget = (namespace: string, name: string, uid?: string): EventTarget =>
  ({ kind: 'Pod', apiVersion: 'v1', name, namespace, ...(uid ? { uid } : {}) });
