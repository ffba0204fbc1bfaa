// Pods of this node as the CNI path sees them: a PodSource (the watch-fed cache, or an in-memory fake in tests)
// and a generic event-driven wait for one pod to satisfy a predicate. No polling: the wait re-checks on each change
// of that one pod and resolves in the same tick the change lands in the cache. What the predicate looks for (the
// controller's annotations) is the pod wing's business (pod/wait.ts); this layer knows nothing of it.

import { agentError, agentErrorCause, type AgentError } from '../errors.ts';
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
  /** what the caller waits for, for messages ("its annotations") */
  readonly what?: string;
}

/** The predicate's answer for one state of the pod. */
export type PodCheck<T> = { readonly done: T } | { readonly wait: string } | { readonly fail: AgentError };

export interface PodWaitResult<T> {
  readonly pod: Pod;
  readonly value: T;
  /** ms spent waiting (0 when the cache already had it) */
  readonly waitedMs: number;
  /** 'cache': satisfied when the wait began; 'event': satisfied by a watch event while waiting */
  readonly via: 'cache' | 'event';
}

/**
 * Resolves as soon as `check` says done for the cached pod (checked at once, then on each change of this pod).
 * Rejects with the check's own failure, KOA_K8S when the pod was deleted while waiting, KOA_TRY_AGAIN (CNI 11) at
 * the timeout naming the last reason, and KOA_TRY_AGAIN when `signal` aborts (the reason kept as the cause).
 */
export function waitForPod<T>(source: PodSource, namespace: string, name: string, check: (pod: Pod) => PodCheck<T>,
  options: WaitOptions): Promise<PodWaitResult<T>> {
  const key = keyOf(namespace, name);
  const started = Date.now();
  const who = `pod ${key}`;
  const what = options.what ?? 'it';
  return new Promise<PodWaitResult<T>>((resolve, reject) => {
    let lastReason = `${who} is not in this node's pod cache yet`;
    let done = false;
    let unsubscribe: () => void = () => {};
    let timer: NodeJS.Timeout | undefined;
    const finish = (err: AgentError | undefined, value?: PodWaitResult<T>): void => {
      if (done) return;
      done = true;
      unsubscribe();
      if (timer) clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      if (err) reject(err); else resolve(value!);
    };
    let via: 'cache' | 'event' = 'cache';
    const test = (pod: Pod | undefined): void => {
      if (!pod) return;
      const uid = pod.metadata?.uid;
      if (options.uid && uid && uid !== options.uid) {
        lastReason = `the cached ${who} has UID ${uid}, the request is for UID ${options.uid}`;
        return;
      }
      const r = check(pod);
      if ('done' in r) finish(undefined, { pod, value: r.done, waitedMs: Date.now() - started, via });
      else if ('fail' in r) finish(r.fail);
      else lastReason = r.wait;
    };
    const onAbort = (): void => {
      const why = options.signal?.reason instanceof Error ? options.signal.reason.message : String(options.signal?.reason ?? 'aborted');
      finish(agentErrorCause('KOA_TRY_AGAIN', options.signal?.reason, `gave up waiting for ${who} (${why}); last state: ${lastReason}`));
    };
    if (options.signal?.aborted) { onAbort(); return; }
    unsubscribe = source.subscribe((k, change, pod) => {
      if (k !== key) return;
      if (change === 'delete' && !(options.uid && pod.metadata?.uid && pod.metadata.uid !== options.uid)) {
        finish(agentError('KOA_K8S', `${who} was deleted while waiting for ${what}`));
        return;
      }
      via = 'event';
      test(pod);
    });
    test(source.get(namespace, name));
    via = 'event';
    if (done) return;
    options.signal?.addEventListener('abort', onAbort, { once: true });
    timer = setTimeout(() => {
      finish(agentError('KOA_TRY_AGAIN', `timed out after ${options.timeoutMs} ms waiting for ${who}: ${lastReason}`));
    }, options.timeoutMs);
  });
}
