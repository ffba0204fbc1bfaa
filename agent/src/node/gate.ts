// The node-ready gate (Antrea's podNetworkWait): pod ADDs may arrive as soon as the CNI socket is served, before the
// node is initialised (OVS and Kubernetes connected, the node's own network set up). Such an ADD waits here, bounded,
// and then fails with CNI code 11 (try again later) naming what the node is still waiting for; kubelet retries.

import { agentError, agentErrorCause } from '../errors.ts';

export class NodeGate {
  #open = false;
  #reason: string;
  #waiters = new Set<() => void>();

  constructor(initialReason = 'the node is being initialised') {
    this.#reason = initialReason;
  }

  get isOpen(): boolean { return this.#open; }
  /** why the gate is closed ('' when open) */
  get reason(): string { return this.#open ? '' : this.#reason; }

  /** Lets every waiting and later ADD through. */
  open(): void {
    this.#open = true;
    for (const w of [...this.#waiters]) w();
  }

  /** Closes (again) with a reason, e.g. while the node's network is being repaired. */
  close(reason: string): void {
    this.#open = false;
    this.#reason = reason;
  }

  /** Updates the reason shown to waiters while closed (start-up progress). */
  progress(reason: string): void {
    if (!this.#open) this.#reason = reason;
  }

  /** Resolves when the gate is open; rejects with KOA_TRY_AGAIN (code 11) after `timeoutMs` or on abort. */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.#open) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(onOpen);
        signal?.removeEventListener('abort', onAbort);
      };
      const onOpen = (): void => { done(); resolve(); };
      const onAbort = (): void => { done(); reject(agentErrorCause('KOA_TRY_AGAIN', signal?.reason, `gave up waiting for the node to be initialised: ${this.#reason}`)); };
      const timer = setTimeout(() => {
        done();
        reject(agentError('KOA_TRY_AGAIN', `the node is not initialised after ${timeoutMs} ms: ${this.#reason}`));
      }, timeoutMs);
      if (signal?.aborted) { onAbort(); return; }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(onOpen);
    });
  }
}
