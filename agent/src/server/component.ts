// The CNI socket server and the delete queue as lifecycle components.

import type { Logger } from 'pino';
import type { Dispatcher } from '../cni/dispatcher.ts';
import type { Component } from '../lifecycle.ts';
import { drainDeleteQueue, startCniServer, type CniApp, type CniServer } from './cni-server.ts';

export class CniServerComponent implements Component {
  readonly name = 'cni-server';
  #server: CniServer | undefined;
  readonly #o: { socketPath: string; dispatcher: () => Dispatcher; log: Logger; onApp?: (app: CniApp) => void };

  constructor(o: { socketPath: string; dispatcher: () => Dispatcher; log: Logger; onApp?: (app: CniApp) => void }) {
    this.#o = o;
  }

  get server(): CniServer {
    if (!this.#server) throw new Error('the CNI server is not started');
    return this.#server;
  }

  async start(): Promise<void> {
    this.#server = await startCniServer({
      socketPath: this.#o.socketPath, dispatcher: this.#o.dispatcher(), log: this.#o.log,
      ...(this.#o.onApp ? { onApp: this.#o.onApp } : {}),
    });
  }

  async stop(): Promise<void> { await this.#server?.close(); }
}

/** Runs the DELs the CNI executable queued while the agent was unreachable (at start). */
export class DeleteQueueComponent implements Component {
  readonly name = 'delete-queue';
  readonly #o: { dir: string; dispatcher: () => Dispatcher; log: Logger };
  constructor(o: { dir: string; dispatcher: () => Dispatcher; log: Logger }) { this.#o = o; }

  async start(): Promise<void> {
    const drained = await drainDeleteQueue(this.#o.dir, this.#o.dispatcher(), this.#o.log);
    if (drained.completed + drained.kept + drained.discarded > 0) this.#o.log.info({ ...drained, dir: this.#o.dir }, 'delete queue drained');
  }

  async stop(): Promise<void> {}
}
