// Per-container serialization: calls for the same key run one after another in arrival order; different keys run
// in parallel. Kubelet may retry an ADD or send DEL while a slow ADD is still running for the same sandbox; both
// touch the same veth/OVS port, so they must not interleave.
export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  /** Runs `fn` once every earlier call with the same key has settled. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key);
    let release!: () => void;
    const mine = new Promise<void>((r) => { release = r; });
    const tail = prev ? prev.then(() => mine) : mine;
    this.tails.set(key, tail);
    if (prev) await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** Keys with a running or waiting call. */
  get size(): number { return this.tails.size; }
}
