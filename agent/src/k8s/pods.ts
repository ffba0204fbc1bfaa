// Pods of this node as the CNI path sees them: a PodSource (the watch-fed cache, or an in-memory fake in tests)
// and the event-driven wait for the controller's annotations. No polling: the wait re-checks on each change of
// that one pod and resolves in the same tick the annotation lands in the cache.

import { agentError, agentErrorCause, type AgentError } from '../errors.ts';
import { decodePodNic, type PodNicAnnotations } from '../pod/annotations.ts';
import type { ObjectStore } from './store.ts';
import { keyOf, objectKey, type Pod } from './types.ts';

export type PodChange = 'add' | 'update' | 'delete';

export interface PodSource {
  /** the cached pod, or undefined */
  get(namespace: string, name: string): Pod | undefined;
  /** calls `listener` after every change of any pod; returns the unsubscribe function */
  subscribe(listener: (key: string, change: PodChange, pod: Pod) => void): () => void;
}

/** A PodSource over a watch-fed ObjectStore. */
export function storePodSource(store: ObjectStore<Pod>): PodSource {
  return {
    get: (ns, name) => store.get(keyOf(ns, name)),
    subscribe: (listener) => store.subscribe((event, pod) => listener(objectKey(pod), event, pod)),
  };
}

export interface WaitOptions {
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
  /** the pod UID from CNI_ARGS K8S_POD_UID: a cached pod with another UID is a stale namesake, so keep waiting */
  readonly uid?: string;
}

export interface AnnotatedPod {
  readonly pod: Pod;
  readonly nic: PodNicAnnotations;
  /** ms spent waiting (0 when the cache already had everything) */
  readonly waitedMs: number;
  /** 'cache': complete when the wait began; 'event': completed by a watch event while waiting */
  readonly via: 'cache' | 'event';
}

/**
 * Resolves with the pod and its decoded NIC as soon as the annotations for (provider, ifName) are complete and
 * valid. Checks the cache first, then re-checks on each change of this pod. Rejects with:
 * - KOA_TRY_AGAIN (CNI 11) at the timeout, naming the missing or invalid annotation;
 * - KOA_BAD_ANNOTATION when an annotation is invalid in a way waiting cannot fix (e.g. `routes` not JSON);
 * - KOA_K8S when the pod was deleted while waiting;
 * - KOA_TRY_AGAIN when `signal` aborts (the reason is kept as the cause).
 */
export function waitForPodAnnotations(source: PodSource, namespace: string, name: string, provider: string, ifName: string,
  options: WaitOptions): Promise<AnnotatedPod> {
  const key = keyOf(namespace, name);
  const started = Date.now();
  const who = `pod ${key}`;
  return new Promise<AnnotatedPod>((resolve, reject) => {
    let lastReason = `${who} is not in this node's pod cache yet`;
    let done = false;
    let unsubscribe: () => void = () => {};
    let timer: NodeJS.Timeout | undefined;
    const finish = (err: AgentError | undefined, value?: AnnotatedPod): void => {
      if (done) return;
      done = true;
      unsubscribe();
      if (timer) clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      if (err) reject(err); else resolve(value!);
    };
    let via: 'cache' | 'event' = 'cache';
    const check = (pod: Pod | undefined): void => {
      if (!pod) return;
      const uid = pod.metadata?.uid;
      if (options.uid && uid && uid !== options.uid) {
        lastReason = `the cached ${who} has UID ${uid}, the request is for UID ${options.uid}`;
        return;
      }
      const r = decodePodNic(pod.metadata?.annotations ?? {}, provider, ifName);
      if (r.ok) { finish(undefined, { pod, nic: r.nic, waitedMs: Date.now() - started, via }); return; }
      if (!r.retry) { finish(agentError('KOA_BAD_ANNOTATION', key, r.key, r.reason)); return; }
      lastReason = `missing or invalid annotation ${r.key}: ${r.reason}`;
    };
    const onAbort = (): void => {
      const why = options.signal?.reason instanceof Error ? options.signal.reason.message : String(options.signal?.reason ?? 'aborted');
      finish(agentErrorCause('KOA_TRY_AGAIN', options.signal?.reason, `gave up waiting for ${who} (${why}); last state: ${lastReason}`));
    };
    if (options.signal?.aborted) { onAbort(); return; }
    unsubscribe = source.subscribe((k, change, pod) => {
      if (k !== key) return;
      if (change === 'delete' && !(options.uid && pod.metadata?.uid && pod.metadata.uid !== options.uid)) { finish(agentError('KOA_K8S', `${who} was deleted while waiting for its annotations`)); return; }
      via = 'event';
      check(pod);
    });
    check(source.get(namespace, name));
    via = 'event';
    if (done) return;
    options.signal?.addEventListener('abort', onAbort, { once: true });
    timer = setTimeout(() => {
      finish(agentError('KOA_TRY_AGAIN', `timed out after ${options.timeoutMs} ms waiting for ${who}: ${lastReason}`));
    }, options.timeoutMs);
  });
}
