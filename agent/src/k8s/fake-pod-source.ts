// In-memory PodSource for unit tests (never imported by production code): set()/annotate()/delete() emit like the
// watch would.
import type { PodChange, PodSource } from './pods.ts';
import { keyOf, objectKey, type Pod } from './types.ts';

export class InMemoryPodSource implements PodSource {
  readonly #pods = new Map<string, Pod>();
  readonly #listeners = new Set<(key: string, change: PodChange, pod: Pod) => void>();
  get(ns: string, name: string): Pod | undefined { return this.#pods.get(keyOf(ns, name)); }
  subscribe(listener: (key: string, change: PodChange, pod: Pod) => void): () => void {
    this.#listeners.add(listener);
    return () => { this.#listeners.delete(listener); };
  }
  get listenerCount(): number { return this.#listeners.size; }
  set(pod: Pod): void {
    const key = objectKey(pod);
    const change: PodChange = this.#pods.has(key) ? 'update' : 'add';
    this.#pods.set(key, pod);
    for (const l of [...this.#listeners]) l(key, change, pod);
  }
  /** Merges annotations into a pod (creating it when absent), like a controller's patch arriving through the watch. */
  annotate(ns: string, name: string, annotations: Record<string, string>): void {
    const old = this.get(ns, name);
    this.set({ ...old, metadata: { ...old?.metadata, namespace: ns, name, annotations: { ...old?.metadata?.annotations, ...annotations } } });
  }
  delete(ns: string, name: string): void {
    const key = keyOf(ns, name);
    const pod = this.#pods.get(key);
    if (!pod) return;
    this.#pods.delete(key);
    for (const l of [...this.#listeners]) l(key, 'delete', pod);
  }
}

