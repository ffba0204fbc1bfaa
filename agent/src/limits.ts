// Small admission limits shared by the server and the pod wing.

// A FIFO budget of bytes: requests take their Content-Length from it before their body is read and give it back
// when answered, so the memory held by request bodies (raw, decoded, parsed: a few times the body) is bounded by
// the budget, whatever number of clients send at once. Waiting requests are served in arrival order; none is
// refused for load (a DEL must always get through, just later).

export class ByteBudget {
  readonly #total: number;
  #free: number;
  readonly #queue: { n: number; resolve: () => void }[] = [];

  constructor(total: number) {
    this.#total = total;
    this.#free = total;
  }

  get free(): number { return this.#free; }
  get waiting(): number { return this.#queue.length; }

  /** Waits until `n` bytes (at most the whole budget) are free and takes them; returns what was taken. */
  async acquire(n: number): Promise<number> {
    const want = Math.max(0, Math.min(n, this.#total));
    if (this.#queue.length === 0 && this.#free >= want) {
      this.#free -= want;
      return want;
    }
    await new Promise<void>((resolve) => this.#queue.push({ n: want, resolve }));
    return want;
  }

  release(n: number): void {
    this.#free = Math.min(this.#total, this.#free + n);
    while (this.#queue.length && this.#free >= this.#queue[0]!.n) {
      const w = this.#queue.shift()!;
      this.#free -= w.n;
      w.resolve();
    }
  }
}

/** A FIFO limit on how many of something run at once (ADDs in the datapath, API calls in flight). */
export class Slots {
  readonly #max: number;
  #busy = 0;
  readonly #queue: (() => void)[] = [];
  constructor(max: number) { this.#max = Math.max(1, max); }
  get busy(): number { return this.#busy; }
  get waiting(): number { return this.#queue.length; }

  /**
   * Waits for a slot and takes it; the returned function gives it back (once). A waiter whose `signal` aborts first
   * leaves the queue and rejects with the signal's reason.
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    const release = (): (() => void) => {
      let held = true;
      return () => {
        if (!held) return;
        held = false;
        const next = this.#queue.shift();
        if (next) next(); else this.#busy--;
      };
    };
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#busy < this.#max && this.#queue.length === 0) {
      this.#busy++;
      return Promise.resolve(release());
    }
    return new Promise((resolve, reject) => {
      const grant = (): void => { signal?.removeEventListener('abort', onAbort); resolve(release()); };
      const onAbort = (): void => {
        const i = this.#queue.indexOf(grant);
        if (i >= 0) this.#queue.splice(i, 1);
        reject(signal!.reason);
      };
      this.#queue.push(grant);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  async run<T>(f: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await f();
    } finally {
      release();
    }
  }
}
