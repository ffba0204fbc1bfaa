// Kubernetes Events the agent emits (spec §5.11): PodNetworkConfigured, PodNetworkConfigureFailed,
// PodNetworkRemoved, PodQoSUpdated, ... on pods; InitOVSBridgeSucceeded/Failed on ProviderNetworks. Rate-limited
// like client-go's spam filter (a token bucket per object and reason: a burst, then one per interval), so a pod
// failing in a loop cannot flood the API server; repeats within the bucket are dropped, not queued. Sending never
// blocks or fails the caller: the Event is best effort, as upstream's recorder.
// Sending goes through a short queue with a few requests in flight (client-go's broadcaster sends one at a time from
// a 1000-event queue): a burst of 500 ADDs must not open 500 API connections at once for its Events, a TLS handshake
// storm against the API server that the pod wiring's own calls then queue behind. A full queue drops the new Event.

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
  /** Events sent at once (default 2) */
  readonly inFlight?: number;
  /** Events waiting to be sent before new ones are dropped (default 1000) */
  readonly maxQueued?: number;
  /** objects tracked before the oldest bucket is forgotten (default 4096) */
  readonly maxKeys?: number;
  readonly now?: () => number;
  readonly onError?: (e: unknown) => void;
}

export class EventRecorder {
  readonly #sink: EventSink;
  readonly #o: Required<Pick<RecorderOptions, 'burst' | 'refillMs' | 'maxKeys' | 'inFlight' | 'maxQueued'>> & RecorderOptions;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #queue: { namespace: string; body: Record<string, unknown> }[] = [];
  #sending = 0;
  #dropped = 0;

  constructor(sink: EventSink, o: RecorderOptions) {
    this.#sink = sink;
    this.#o = { burst: 25, refillMs: 300_000, maxKeys: 4096, inFlight: 2, maxQueued: 1000, ...o };
  }

  /** events dropped so far, by the rate limit or a full queue */
  get dropped(): number { return this.#dropped; }

  /** events waiting to be sent */
  get queued(): number { return this.#queue.length; }

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
    if (b.tokens <= 0 || this.#queue.length >= this.#o.maxQueued) { this.#dropped++; return false; }
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
    this.#queue.push({ namespace: ns, body });
    this.#pump();
    return true;
  }

  #pump(): void {
    while (this.#sending < this.#o.inFlight && this.#queue.length > 0) {
      const { namespace, body } = this.#queue.shift()!;
      this.#sending++;
      // through a promise: a sink that throws instead of rejecting must not stall the queue or reach the caller
      Promise.resolve().then(() => this.#sink.create(namespace, body))
        .catch((err: unknown) => { try { this.#o.onError?.(err); } catch { /* best effort */ } })
        .finally(() => { this.#sending--; this.#pump(); });
    }
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
