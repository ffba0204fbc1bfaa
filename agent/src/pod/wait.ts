// The ADD's wait for the controller's annotations (spec §3.2, done as an event): the generic pod wait of the k8s
// layer with the pod wing's decoder as its predicate.

import { agentError } from '../errors.ts';
import { waitForPod, type PodSource, type WaitOptions } from '../k8s/pods.ts';
import type { Pod } from '../k8s/types.ts';
import { decodePodNic, type PodNicAnnotations } from './annotations.ts';

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
 * valid. Rejects with KOA_TRY_AGAIN (CNI 11) at the timeout naming the missing or invalid annotation,
 * KOA_BAD_ANNOTATION when an annotation is invalid in a way waiting cannot fix (e.g. `routes` not JSON), KOA_K8S when
 * the pod was deleted while waiting, and KOA_TRY_AGAIN when `signal` aborts.
 */
export async function waitForPodAnnotations(source: PodSource, namespace: string, name: string, provider: string, ifName: string,
  options: WaitOptions): Promise<AnnotatedPod> {
  const key = `${namespace}/${name}`;
  const r = await waitForPod<PodNicAnnotations>(source, namespace, name, (pod) => {
    const d = decodePodNic(pod.metadata?.annotations ?? {}, provider, ifName);
    if (d.ok) return { done: d.nic };
    if (!d.retry) return { fail: agentError('KOA_BAD_ANNOTATION', key, d.key, d.reason) };
    return { wait: `missing or invalid annotation ${d.key}: ${d.reason}` };
  }, { what: 'its annotations', ...options });
  return { pod: r.pod, nic: r.value, waitedMs: r.waitedMs, via: r.via };
}
