// The datapath connections as lifecycle components: in-process netlink (after the addon's warm-up) and the OVSDB
// connection to the local ovsdb-server with its monitor replica.

import type { Component } from '../lifecycle.ts';
import { warmUp } from '../native.ts';
import { instrument } from '../observe/instrument.ts';
import { createNetlink } from './netlink/index.ts';
import type { Netlink, PodNet } from './netlink/port.ts';
import { OvsVswitch } from './ovsdb/vswitch.ts';

type Observe = (op: string, seconds: number, ok: boolean) => void;

export class NetlinkComponent implements Component {
  readonly name = 'netlink';
  #nl: { netlink: Netlink; podNet: PodNet } | undefined;
  readonly #observe: Observe | undefined;
  constructor(observe?: Observe) { this.#observe = observe; }

  get netlink(): Netlink { return this.#get().netlink; }
  get podNet(): PodNet { return this.#get().podNet; }
  #get(): { netlink: Netlink; podNet: PodNet } {
    if (!this.#nl) throw new Error('netlink is not started');
    return this.#nl;
  }

  async start(): Promise<void> {
    // threads inherit the namespace of their creator: the libuv pool and the addon come up before any netns switch
    await warmUp();
    const raw = createNetlink();
    this.#nl = this.#observe
      ? { netlink: instrument(raw.netlink, this.#observe), podNet: instrument(raw.podNet, this.#observe) }
      : raw;
  }

  async stop(): Promise<void> { this.#nl?.netlink.close(); }
}

export class OvsdbComponent implements Component {
  readonly name = 'ovsdb';
  #vs: OvsVswitch | undefined;
  readonly #socket: string;
  readonly #connectTimeoutMs: number;
  readonly #onRequest: ((db: string, method: string, ms: number, ok: boolean) => void) | undefined;

  constructor(socket: string, o: { connectTimeoutMs?: number; onRequest?: (db: string, method: string, ms: number, ok: boolean) => void } = {}) {
    this.#socket = socket;
    this.#connectTimeoutMs = o.connectTimeoutMs ?? 30_000;
    this.#onRequest = o.onRequest;
  }

  get vswitch(): OvsVswitch {
    if (!this.#vs) throw new Error('OVSDB is not connected');
    return this.#vs;
  }

  async start(): Promise<void> {
    this.#vs = await OvsVswitch.connect({
      remote: `unix:${this.#socket}`, connectTimeoutMs: this.#connectTimeoutMs,
      ...(this.#onRequest ? { onRequest: this.#onRequest } : {}),
    });
  }

  async stop(): Promise<void> { this.#vs?.close(); }

  ready(): true | string {
    return this.#vs?.client.connected ? true : `no synced OVSDB connection to ${this.#socket}`;
  }
}
