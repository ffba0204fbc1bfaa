// An object cache keyed `ns/name` that emits add/update/delete once per real change (resourceVersion decides),
// so a relist after a restart produces exactly the differences, and duplicate deliveries are silent.

import { objectKey, type KubeObject } from './types.ts';

export type StoreEvent = 'add' | 'update' | 'delete';
export type StoreListener<T> = (event: StoreEvent, obj: T, old: T | undefined) => void;

export class ObjectStore<T extends KubeObject> {
  readonly #items = new Map<string, T>();
  readonly #listeners = new Set<StoreListener<T>>();

  get size(): number { return this.#items.size; }
  get(key: string): T | undefined { return this.#items.get(key); }
  list(): T[] { return [...this.#items.values()]; }
  keys(): string[] { return [...this.#items.keys()]; }

  /** Subscribes; returns the unsubscribe function. */
  subscribe(listener: StoreListener<T>): () => void {
    this.#listeners.add(listener);
    return () => { this.#listeners.delete(listener); };
  }

  upsert(obj: T): void {
    const key = objectKey(obj);
    const old = this.#items.get(key);
    if (old && rv(old) !== '' && rv(old) === rv(obj)) return;
    this.#items.set(key, obj);
    this.#emit(old ? 'update' : 'add', obj, old);
  }

  remove(obj: T): void {
    const key = objectKey(obj);
    const old = this.#items.get(key);
    if (!old) return;
    this.#items.delete(key);
    this.#emit('delete', old, old);
  }

  /** Makes the store equal to a fresh list: deletes what is gone, adds/updates what changed. */
  replace(items: readonly T[]): void {
    const fresh = new Set(items.map(objectKey));
    for (const [key, old] of [...this.#items]) {
      if (!fresh.has(key)) { this.#items.delete(key); this.#emit('delete', old, old); }
    }
    for (const obj of items) this.upsert(obj);
  }

  #emit(event: StoreEvent, obj: T, old: T | undefined): void {
    for (const l of [...this.#listeners]) {
      try { l(event, obj, old); } catch { /* a listener's failure must not break the cache */ }
    }
  }
}

const rv = (o: KubeObject): string => o.metadata?.resourceVersion ?? '';
