// Components and their lifecycle: the composition root (agent.ts) lists the agent's parts in start order; each has
// start, stop and readiness. Stops run in reverse order, each one even when an earlier stop failed. Readiness is
// registered once per component in the one registry behind /readyz and CNI STATUS, so both always agree.

import type { Readiness } from './observe/health.ts';

export interface Component {
  /** readiness check name: `[a-z0-9._-]+` */
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** true, or why this component is not ready; absent = no readiness of its own */
  ready?(): true | string | Promise<true | string>;
}

export interface LifecycleLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** A component from plain functions (for small parts that need no class). */
export function component(name: string, parts: { start?: () => Promise<void> | void; stop?: () => Promise<void> | void;
  ready?: () => true | string | Promise<true | string> }): Component {
  return {
    name,
    start: async () => { await parts.start?.(); },
    stop: async () => { await parts.stop?.(); },
    ...(parts.ready ? { ready: parts.ready } : {}),
  };
}

export class Lifecycle {
  readonly #components: Component[] = [];
  readonly #started: Component[] = [];
  readonly #unregister: (() => void)[] = [];
  readonly #readiness: Readiness | undefined;
  readonly #log: LifecycleLog | undefined;
  #stopping: Promise<void> | undefined;

  constructor(o: { readiness?: Readiness; log?: LifecycleLog } = {}) {
    this.#readiness = o.readiness;
    this.#log = o.log;
  }

  add(c: Component): this {
    if (this.#components.some((x) => x.name === c.name)) throw new Error(`component "${c.name}" is listed twice`);
    this.#components.push(c);
    return this;
  }

  names(): string[] { return this.#components.map((c) => c.name); }

  /**
   * Starts every component in order. Every component's readiness is registered before the first start, so /readyz
   * fails (naming what is still waiting or starting) until the last one has started; after that a component with
   * its own ready() answers for itself. When a start fails, the components started so far are stopped (reverse
   * order) and the error is rethrown.
   */
  async start(): Promise<void> {
    const state = new Map<Component, 'waiting' | 'starting' | 'started'>(this.#components.map((c) => [c, 'waiting']));
    if (this.#readiness) {
      for (const c of this.#components) {
        const ready = c.ready?.bind(c);
        this.#unregister.push(this.#readiness.register(c.name, () => {
          const s = state.get(c);
          if (s !== 'started') return `${c.name}: ${s}`;
          return ready ? ready() : true;
        }));
      }
    }
    for (const c of this.#components) {
      if (this.#stopping) throw new Error(`start-up interrupted by stop before ${c.name}`);
      state.set(c, 'starting');
      const t0 = performance.now();
      try {
        await c.start();
      } catch (e) {
        this.#log?.error({ component: c.name, err: e instanceof Error ? e.message : String(e) }, 'component failed to start');
        await this.stop();
        throw e;
      }
      state.set(c, 'started');
      this.#started.push(c);
      this.#log?.info({ component: c.name, ms: Math.round(performance.now() - t0) }, 'component started');
    }
  }

  /** Stops the started components in reverse order; idempotent; never throws (failures are logged). */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      for (const c of this.#started.splice(0).reverse()) {
        try {
          await c.stop();
        } catch (e) {
          this.#log?.warn({ component: c.name, err: e instanceof Error ? e.message : String(e) }, 'component failed to stop');
        }
      }
      for (const u of this.#unregister.splice(0)) u();
    })();
    return this.#stopping;
  }
}
