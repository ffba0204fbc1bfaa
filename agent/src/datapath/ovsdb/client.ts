// OVSDB client (RFC 7047) over one persistent stream connection: request ids, per-request timeouts, answers to the
// server's `echo`, a monitor (monitor_cond by default) that keeps an in-memory Replica with change events,
// reconnect with backoff and a full resync, and "wait until ovs-vswitchd applied it" (next_cfg/cur_cfg).
//
// Requests and a dropped connection:
//   - requests issued while disconnected wait (their timeout running) and are sent after the resync;
//   - a request already sent when the connection drops is RETRIED after the resync only when it is idempotent:
//     read-only transactions (select/wait/comment/assert only), get_schema, list_dbs, echo, and any transact the
//     caller marks `idempotent: true` (vswitch.ts does so for transactions guarded by `wait` ops, which make a
//     replay either a no-op or a clean failure);
//   - every other in-flight request is REJECTED with a KOA_OVSDB error saying the transaction may or may not have
//     been applied. Nothing is dropped silently: each request ends in exactly one resolve or reject.
import { EventEmitter } from 'node:events';
import { createConnection } from 'node:net';
import type { Duplex } from 'node:stream';
import { AgentError, agentError } from '../../errors.ts';
import { JsonStreamParser, classify, encodeRequest, encodeResponse } from './jsonrpc.ts';
import type { RpcMessage } from './jsonrpc.ts';
import { decodeTransactResult, mutate, select } from './ops.ts';
import type { OpResult, Operation } from './ops.ts';
import { formatRemote, parseRemotes } from './remote.ts';
import type { Remote } from './remote.ts';
import { Replica } from './replica.ts';
import type { RowChange, TableUpdates, TableUpdates2 } from './replica.ts';
import { missingColumns, parseSchema } from './schema.ts';
import type { Schema } from './schema.ts';
import { optAtom } from './values.ts';

export interface ClientOptions {
  /** `unix:/path`, `tcp:host:port`, or a comma-separated list tried in turn. */
  remote: string;
  database?: string;
  /** Tables and columns to replicate. */
  monitor?: Record<string, readonly string[]>;
  /** `monitor_cond` (update2, diffs) or plain RFC 7047 `monitor` (update). */
  monitorMethod?: 'monitor_cond' | 'monitor';
  /** Columns that must exist in the server's schema (besides the monitored ones). */
  requiredColumns?: Record<string, readonly string[]>;
  requestTimeoutMs?: number;
  connectTimeoutMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Send an echo after this much silence; drop the connection after twice as much. 0 disables. */
  probeIntervalMs?: number;
  /** Observer for metrics: called once per finished request. */
  onRequest?(db: string, method: string, ms: number, ok: boolean): void;
  /** Socket factory (tests); default node:net. */
  connect?(remote: Remote): Duplex;
}

export interface RequestOptions { timeoutMs?: number; idempotent?: boolean }

interface Pending {
  id: number;
  method: string;
  params: unknown[];
  idempotent: boolean;
  started: number;
  timer: NodeJS.Timeout | undefined;
  resolve(v: unknown): void;
  reject(e: Error): void;
  /** Session the request was written to; undefined while queued. */
  session: Session | undefined;
}

interface Session {
  socket: Duplex;
  remote: Remote;
  parser: JsonStreamParser;
  /** Requests written on this socket, by id. */
  inflight: Map<number, Pending>;
  synced: boolean;
  closed: boolean;
  lastRx: number;
  probeSent: boolean;
  /** update/update2 notifications received before the session was synced. */
  early: Array<[string, unknown]>;
}

const MONITOR_ID = 'koa';
const READ_ONLY_OPS = new Set(['select', 'wait', 'comment', 'assert']);

export class OvsdbClient extends EventEmitter {
  readonly db: string;
  readonly replica: Replica;
  schema: Schema | undefined;
  private readonly opts: ClientOptions;
  private readonly remotes: Remote[];
  private remoteIndex = 0;
  private session: Session | undefined;
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private closed = false;
  private backoff: number;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private everSynced = false;
  private firstSync: { resolve(): void; reject(e: Error): void } | undefined;
  private lastError = '';
  /** Number of completed (re)syncs; tests and callers can watch it. */
  syncs = 0;

  constructor(opts: ClientOptions) {
    super();
    this.opts = opts;
    this.db = opts.database ?? 'Open_vSwitch';
    this.remotes = parseRemotes(opts.remote);
    this.replica = new Replica(opts.monitor ?? {});
    this.backoff = opts.backoffInitialMs ?? 100;
    this.setMaxListeners(0);
  }

  get connected(): boolean { return this.session?.synced === true; }

  /** Connects, checks the schema and loads the monitor; resolves after the first full sync. */
  start(timeoutMs = this.opts.connectTimeoutMs ?? 10_000): Promise<void> {
    if (this.everSynced) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.firstSync = undefined;
        this.close();
        reject(agentError('KOA_OVSDB', `connect to ${this.remotes.map(formatRemote).join(',')}`,
          `no synced connection within ${timeoutMs} ms${this.lastError ? ` (last error: ${this.lastError})` : ''}`));
      }, timeoutMs);
      this.firstSync = {
        resolve: () => { clearTimeout(timer); resolve(); },
        reject: (e) => { clearTimeout(timer); this.close(); reject(e); },
      };
      if (!this.session && !this.reconnectTimer) this.connectNow();
    });
  }

  /** Closes the connection for good; every outstanding request is rejected. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.probeTimer);
    const err = agentError('KOA_OVSDB', 'client', 'closed before the reply arrived');
    for (const p of this.queue.splice(0)) this.finish(p, false, err);
    const s = this.session;
    this.session = undefined;
    if (s) {
      for (const p of [...s.inflight.values()]) this.finish(p, false, err);
      s.closed = true;
      s.socket.destroy();
    }
    this.emit('closed');
  }

  // ---- requests ---------------------------------------------------------------------------------------------

  /** Sends a JSON-RPC request; queued until the connection is synced. */
  request(method: string, params: unknown[], ro: RequestOptions = {}): Promise<unknown> {
    return this.enqueue(method, params, ro.idempotent ?? false, ro.timeoutMs ?? this.opts.requestTimeoutMs ?? 10_000, false);
  }

  /** Runs a transaction; resolves with one result per operation, rejects with TransactError on an OVSDB error. */
  async transact(ops: Operation[], ro: RequestOptions = {}): Promise<OpResult[]> {
    const idempotent = ro.idempotent ?? ops.every((o) => READ_ONLY_OPS.has(o.op));
    const result = await this.request('transact', [this.db, ...ops], { ...ro, idempotent });
    return decodeTransactResult(ops, result);
  }

  /**
   * Runs a transaction that bumps Open_vSwitch.next_cfg, then waits (monitor events, no polling) until
   * ovs-vswitchd reports cur_cfg >= the new value, as `ovs-vsctl` without --no-wait does. Needs Open_vSwitch
   * next_cfg/cur_cfg in the monitor. Times out with a clear error when ovs-vswitchd is not running.
   */
  async transactApplied(ops: Operation[], ro: RequestOptions & { applyTimeoutMs?: number } = {}): Promise<OpResult[]> {
    const all = [...ops, mutate('Open_vSwitch', [], [['next_cfg', '+=', 1]]), select('Open_vSwitch', [], ['next_cfg'])];
    const results = await this.transact(all, ro);
    const rows = results[all.length - 1]?.rows ?? [];
    const target = Number(optAtom(rows[0]?.next_cfg));
    if (!Number.isFinite(target)) throw agentError('KOA_OVSDB', 'transact', 'Open_vSwitch.next_cfg missing from the reply');
    const timeoutMs = ro.applyTimeoutMs ?? ro.timeoutMs ?? this.opts.requestTimeoutMs ?? 10_000;
    await this.waitUntil(() => (this.curCfg() >= target ? true : undefined), timeoutMs,
      () => `ovs-vswitchd to apply the change (next_cfg=${target}, cur_cfg=${this.curCfg()}); is ovs-vswitchd running?`);
    return results.slice(0, ops.length);
  }

  private curCfg(): number {
    for (const [, row] of this.replica.rows('Open_vSwitch')) return Number(optAtom(row.cur_cfg) ?? 0);
    return 0;
  }

  /**
   * Resolves with `check()`'s first non-undefined value, re-evaluated after every replica change (events, not
   * polling); rejects with KOA_TIMEOUT after `timeoutMs`.
   */
  waitUntil<T>(check: () => T | undefined, timeoutMs: number, what: () => string): Promise<T> {
    let now: T | undefined;
    try { now = check(); } catch (e) { return Promise.reject(e as Error); }
    if (now !== undefined) return Promise.resolve(now);
    return new Promise<T>((resolve, reject) => {
      const onChanges = (): void => {
        let v: T | undefined;
        try { v = check(); } catch (e) { cleanup(); reject(e as Error); return; }
        if (v !== undefined) { cleanup(); resolve(v); }
      };
      const onClose = (): void => { cleanup(); reject(agentError('KOA_OVSDB', 'client', `closed while waiting for ${what()}`)); };
      const timer = setTimeout(() => { cleanup(); reject(agentError('KOA_TIMEOUT', timeoutMs, what())); }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off('changes', onChanges);
        this.off('closed', onClose);
      };
      this.on('changes', onChanges);
      this.on('closed', onClose);
    });
  }

  private enqueue(method: string, params: unknown[], idempotent: boolean, timeoutMs: number, internal: boolean): Promise<unknown> {
    if (this.closed) return Promise.reject(agentError('KOA_OVSDB', method, 'client is closed'));
    return new Promise((resolve, reject) => {
      const p: Pending = { id: this.nextId++, method, params, idempotent, started: performance.now(), timer: undefined, resolve, reject, session: undefined };
      p.timer = setTimeout(() => {
        const maybe = p.session && !READ_ONLY_METHODS.has(method) && !idempotent ? '; it may still be applied' : '';
        this.finish(p, false, agentError('KOA_TIMEOUT', timeoutMs, `the OVSDB reply to ${method}${maybe}`));
      }, timeoutMs);
      const s = this.session;
      if (s && (s.synced || internal)) this.send(s, p);
      else this.queue.push(p);
    });
  }

  private send(s: Session, p: Pending): void {
    if (s.closed) { this.queue.push(p); return; }
    p.session = s;
    s.inflight.set(p.id, p);
    s.socket.write(encodeRequest(p.method, p.params, p.id));
  }

  private finish(p: Pending, ok: boolean, value: unknown): void {
    clearTimeout(p.timer);
    p.timer = undefined;
    if (p.session) { p.session.inflight.delete(p.id); p.session = undefined; }
    const qi = this.queue.indexOf(p);
    if (qi >= 0) this.queue.splice(qi, 1);
    const settle = ok ? p.resolve : p.reject;
    p.resolve = p.reject = () => {};
    try { this.opts.onRequest?.(this.db, p.method, performance.now() - p.started, ok); } catch { /* observer errors are not ours */ }
    settle(value as Error);
  }

  // ---- connection -------------------------------------------------------------------------------------------

  private connectNow(): void {
    if (this.closed) return;
    this.reconnectTimer = undefined;
    const remote = this.remotes[this.remoteIndex++ % this.remotes.length]!;
    const socket = this.opts.connect ? this.opts.connect(remote)
      : remote.kind === 'unix' ? createConnection({ path: remote.path }) : createConnection({ host: remote.host, port: remote.port });
    const s: Session = { socket, remote, parser: new JsonStreamParser(), inflight: new Map(), synced: false, closed: false, lastRx: Date.now(), probeSent: false, early: [] };
    this.session = s;
    // A TCP connect to an unreachable host can hang for minutes: give up and try the next remote.
    const connectTimer = setTimeout(() => this.drop(s, 'connect timed out'), this.opts.connectTimeoutMs ?? 10_000);
    connectTimer.unref();
    socket.once('close', () => clearTimeout(connectTimer));
    const onConnect = (): void => { clearTimeout(connectTimer); void this.handshake(s); };
    if ((socket as { connecting?: boolean }).connecting === false) queueMicrotask(onConnect);
    else socket.once('connect', onConnect);
    socket.on('data', (chunk: Buffer) => this.onData(s, chunk));
    socket.on('error', (e: Error) => { this.lastError = e.message; this.drop(s, e.message); });
    socket.on('close', () => this.drop(s, 'connection closed by peer'));
  }

  private async handshake(s: Session): Promise<void> {
    try {
      const timeout = this.opts.requestTimeoutMs ?? 10_000;
      const schemaJson = await this.enqueue('get_schema', [this.db], true, timeout, true);
      if (s.closed) return;
      const schema = parseSchema(schemaJson);
      const wanted: Record<string, string[]> = {};
      for (const src of [this.opts.monitor ?? {}, this.opts.requiredColumns ?? {}]) {
        for (const [t, cols] of Object.entries(src)) wanted[t] = [...(wanted[t] ?? []), ...cols];
      }
      const missing = missingColumns(schema, wanted);
      if (missing.length) {
        const err = agentError('KOA_OVSDB', 'schema check', `database ${this.db} (schema ${schema.version}) lacks ${missing.join(', ')}`);
        this.lastError = err.message;
        if (this.firstSync) { const f = this.firstSync; this.firstSync = undefined; f.reject(err); }
        else { this.emit('warning', err); this.drop(s, err.message); }
        return;
      }
      this.schema = schema;
      const fresh = new Replica(this.opts.monitor ?? {}, schema);
      if (this.opts.monitor && Object.keys(this.opts.monitor).length) {
        const cond = (this.opts.monitorMethod ?? 'monitor_cond') === 'monitor_cond';
        const reqs: Record<string, unknown> = {};
        for (const [t, cols] of Object.entries(this.opts.monitor)) reqs[t] = cond ? [{ columns: cols }] : { columns: cols };
        const initial = await this.enqueue(cond ? 'monitor_cond' : 'monitor', [this.db, MONITOR_ID, reqs], true, timeout, true);
        if (s.closed) return;
        if (cond) fresh.applyUpdate2(initial as TableUpdates2); else fresh.applyUpdate(initial as TableUpdates);
      }
      this.replica.setSchema(schema);
      const changes = this.replica.replaceAll(fresh);
      // Updates that arrived in the same read as the monitor reply, before this continuation ran.
      for (const [method, updates] of s.early.splice(0)) changes.push(...this.applyNotification(method, updates));
      s.synced = true;
      this.syncs++;
      this.backoff = this.opts.backoffInitialMs ?? 100;
      this.everSynced = true;
      this.startProbe();
      this.emit('connected', formatRemote(s.remote));
      if (changes.length) this.emitChanges(changes);
      this.emit('synced', this.syncs);
      for (const p of this.queue.splice(0)) this.send(s, p);
      if (this.firstSync) { const f = this.firstSync; this.firstSync = undefined; f.resolve(); }
    } catch (e) {
      if (s.closed) return;
      this.lastError = (e as Error).message;
      this.drop(s, `handshake failed: ${(e as Error).message}`);
    }
  }

  private onData(s: Session, chunk: Buffer): void {
    if (s.closed) return;
    s.lastRx = Date.now();
    s.probeSent = false;
    let values: unknown[];
    try {
      values = s.parser.push(chunk);
    } catch (e) {
      this.drop(s, `protocol error: ${(e as Error).message}`);
      return;
    }
    for (const v of values) {
      let m: RpcMessage;
      try { m = classify(v); } catch (e) { this.drop(s, `protocol error: ${(e as Error).message}`); return; }
      this.dispatch(s, m);
      if (s.closed) return;
    }
  }

  private dispatch(s: Session, m: RpcMessage): void {
    if (m.kind === 'response') {
      const p = typeof m.msg.id === 'number' ? s.inflight.get(m.msg.id) : undefined;
      if (!p) return; // reply to a request that already timed out
      if (m.msg.error !== null && m.msg.error !== undefined) {
        const e = m.msg.error as { error?: string; details?: string } | string;
        const text = typeof e === 'string' ? e : `${e.error ?? JSON.stringify(e)}${e.details ? `: ${e.details}` : ''}`;
        this.finish(p, false, agentError('KOA_OVSDB', p.method, text));
      } else {
        this.finish(p, true, m.msg.result);
      }
      return;
    }
    if (m.kind === 'request') {
      if (m.msg.method === 'echo') s.socket.write(encodeResponse(m.msg.id, m.msg.params));
      else s.socket.write(encodeResponse(m.msg.id, null, { error: 'unknown method', details: m.msg.method }));
      return;
    }
    const { method, params } = m.msg;
    if ((method === 'update' || method === 'update2') && params[0] === MONITOR_ID) {
      if (!s.synced) { s.early.push([method, params[1]]); return; }
      let changes: RowChange[];
      try {
        changes = this.applyNotification(method, params[1]);
      } catch (e) {
        // The replica diverged (should not happen): resync from scratch.
        this.drop(s, `replica out of sync: ${(e as Error).message}`);
        return;
      }
      if (changes.length) this.emitChanges(changes);
    }
  }

  private applyNotification(method: string, updates: unknown): RowChange[] {
    return method === 'update2' ? this.replica.applyUpdate2(updates as TableUpdates2) : this.replica.applyUpdate(updates as TableUpdates);
  }

  private emitChanges(changes: RowChange[]): void {
    for (const c of changes) this.emit('change', c);
    this.emit('changes', changes);
  }

  /** Ends a session: in-flight requests are retried (idempotent) or rejected; then reconnect with backoff. */
  private drop(s: Session, reason: string): void {
    if (s.closed) return;
    s.closed = true;
    this.lastError = reason;
    s.socket.destroy();
    if (this.session === s) this.session = undefined;
    const wasSynced = s.synced;
    for (const p of [...s.inflight.values()]) {
      s.inflight.delete(p.id);
      p.session = undefined;
      if (p.idempotent && !INTERNAL_METHODS.has(p.method)) this.queue.push(p);
      else if (INTERNAL_METHODS.has(p.method)) this.finish(p, false, agentError('KOA_OVSDB', p.method, `connection lost: ${reason}`));
      else {
        this.finish(p, false, agentError('KOA_OVSDB', p.method,
          `connection to ${formatRemote(s.remote)} lost before the reply (${reason}); the transaction may or may not have been applied`));
      }
    }
    clearInterval(this.probeTimer);
    if (wasSynced) this.emit('disconnected', reason);
    if (this.closed) return;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.opts.backoffMaxMs ?? 5000);
    const jitter = delay * 0.2 * Math.random();
    this.reconnectTimer = setTimeout(() => this.connectNow(), delay + jitter);
  }

  private startProbe(): void {
    clearInterval(this.probeTimer);
    const interval = this.opts.probeIntervalMs ?? 0;
    if (interval <= 0) return;
    this.probeTimer = setInterval(() => {
      const s = this.session;
      if (!s || !s.synced) return;
      const idle = Date.now() - s.lastRx;
      if (idle >= 2 * interval && s.probeSent) this.drop(s, `no reply to an echo probe within ${interval} ms`);
      else if (idle >= interval && !s.probeSent) {
        s.probeSent = true;
        s.socket.write(encodeRequest('echo', [], 'koa-probe'));
      }
    }, Math.max(10, Math.floor(interval / 2)));
    this.probeTimer.unref();
  }

  /** Closes the current connection as if it had dropped (tests, and callers that know the server restarted). */
  reconnect(): void { if (this.session) this.drop(this.session, 'reconnect requested'); }

}

const READ_ONLY_METHODS = new Set(['get_schema', 'list_dbs', 'echo']);
const INTERNAL_METHODS = new Set(['get_schema', 'monitor', 'monitor_cond']);

/** True when an error means "the connection dropped before the reply" (the caller may retry after checking state). */
export function isConnectionLost(e: unknown): boolean {
  return e instanceof AgentError && e.code === 'KOA_OVSDB' && /lost before the reply/.test(e.message);
}
