// The CNI socket server and the delete queue as lifecycle components.

import { watch, type FSWatcher } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Dispatcher } from '../cni/dispatcher.ts';
import type { Component } from '../lifecycle.ts';
import { drainDeleteQueue, startCniServer, type CniObserver, type CniServer } from './cni-server.ts';

export class CniServerComponent implements Component {
  readonly name = 'cni-server';
  #server: CniServer | undefined;
  readonly #o: { socketPath: string; dispatcher: () => Dispatcher; log: Logger; observer?: CniObserver; drainMs?: number };

  constructor(o: { socketPath: string; dispatcher: () => Dispatcher; log: Logger; observer?: CniObserver; drainMs?: number }) {
    this.#o = o;
  }

  get server(): CniServer {
    if (!this.#server) throw new Error('the CNI server is not started');
    return this.#server;
  }

  async start(): Promise<void> {
    this.#server = await startCniServer({
      socketPath: this.#o.socketPath, dispatcher: this.#o.dispatcher(), log: this.#o.log,
      ...(this.#o.observer ? { observer: this.#o.observer } : {}),
    });
  }

  async stop(): Promise<void> { await this.#server?.close(this.#o.drainMs); }
}

/**
 * Runs the DELs the CNI executable queued while no agent answered it: at start, and while running on an inotify
 * event of the queue directory (a DEL that timed out under load is queued by the shim while this agent runs), with
 * a slow periodic pass in case an event was missed. Passes never overlap; triggers during a pass cause one more.
 */
export class DeleteQueueComponent implements Component {
  readonly name = 'delete-queue';
  readonly #o: { dir: string; dispatcher: () => Dispatcher; log: Logger; periodMs?: number };
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(o: { dir: string; dispatcher: () => Dispatcher; log: Logger; periodMs?: number }) { this.#o = o; }

  async start(): Promise<void> {
    // the directory exists from now on, so it can be watched (0700: only root writes DELs for root to run)
    await mkdir(this.#o.dir, { recursive: true, mode: 0o700 });
    await this.#drain();
    try {
      this.#watcher = watch(this.#o.dir, { persistent: false }, (_event, name) => {
        if (name === null || (String(name).endsWith('.json') && !String(name).startsWith('.'))) this.#kick();
      });
      this.#watcher.on('error', (e) => this.#o.log.warn({ err: e.message, dir: this.#o.dir }, 'delete queue watch failed; periodic drains only'));
    } catch (e) {
      this.#o.log.warn({ err: e instanceof Error ? e.message : String(e), dir: this.#o.dir }, 'cannot watch the delete queue; periodic drains only');
    }
    this.#timer = setInterval(() => this.#kick(), this.#o.periodMs ?? 60_000);
    this.#timer.unref();
  }

  #kick(): void {
    if (this.#stopped) return;
    if (this.#running) { this.#again = true; return; }
    this.#running = this.#drain().finally(() => {
      this.#running = undefined;
      if (this.#again) { this.#again = false; this.#kick(); }
    });
  }

  async #drain(): Promise<void> {
    try {
      const drained = await drainDeleteQueue(this.#o.dir, this.#o.dispatcher(), this.#o.log);
      if (drained.completed + drained.kept + drained.discarded > 0) this.#o.log.info({ ...drained, dir: this.#o.dir }, 'delete queue drained');
    } catch (e) {
      this.#o.log.warn({ err: e instanceof Error ? e.message : String(e), dir: this.#o.dir }, 'delete queue drain failed');
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#watcher?.close();
    if (this.#timer) clearInterval(this.#timer);
    await this.#running;
  }
}
