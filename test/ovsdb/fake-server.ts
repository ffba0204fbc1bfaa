// A scriptable in-process JSON-RPC server on a temporary unix socket, speaking just enough OVSDB for client tests:
// get_schema, monitor/monitor_cond with an initial dump of `rows`, transact through a test-supplied handler,
// server-initiated echo, and hooks to drop connections or stay silent.
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JsonStreamParser } from '../../agent/src/datapath/ovsdb/jsonrpc.ts';

export const SCHEMA = {
  name: 'Open_vSwitch', version: '8.3.1', tables: {
    Open_vSwitch: { columns: {
      next_cfg: { type: 'integer' }, cur_cfg: { type: 'integer' },
      external_ids: { type: { key: 'string', value: 'string', min: 0, max: 'unlimited' } },
    } },
    Interface: { columns: {
      name: { type: 'string' },
      ofport: { type: { key: 'integer', min: 0, max: 1 } },
      external_ids: { type: { key: 'string', value: 'string', min: 0, max: 'unlimited' } },
    } },
  },
};

export type Rows = Record<string, Record<string, Record<string, unknown>>>;
export interface Req { method: string; params: unknown[]; id: unknown }

export class FakeOvsdbServer {
  readonly dir = mkdtempSync(join(tmpdir(), 'koao-fake-'));
  readonly path = join(this.dir, 'db.sock');
  readonly server: Server;
  readonly sockets = new Set<Socket>();
  /** Current table contents, dumped as the monitor's initial reply. */
  rows: Rows = {};
  schema: unknown = SCHEMA;
  /** Return a result, or undefined to leave the request unanswered. */
  onTransact: (params: unknown[], sock: Socket) => unknown = (params) => params.slice(1).map(() => ({}));
  /** Seen requests, for assertions. */
  readonly requests: Req[] = [];
  /** Replies the server got to its own requests (echo). */
  readonly replies: unknown[] = [];
  connections = 0;
  /** Extra raw text written right after the monitor reply, in the same write. */
  afterMonitor: ((monitorId: unknown) => string) | undefined;

  /** Listen on 127.0.0.1 (random port) instead of the unix socket. */
  readonly tcp: boolean;

  constructor(opts: { tcp?: boolean } = {}) {
    this.tcp = opts.tcp ?? false;
    this.server = createServer((sock) => this.accept(sock));
  }

  listen(): Promise<void> {
    return new Promise((r) => (this.tcp ? this.server.listen(0, '127.0.0.1', () => r()) : this.server.listen(this.path, () => r())));
  }

  /** The OVS remote string for this server. */
  get remote(): string {
    if (!this.tcp) return `unix:${this.path}`;
    const a = this.server.address();
    return `tcp:127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
  }

  private accept(sock: Socket): void {
    this.connections++;
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => {});
    const parser = new JsonStreamParser();
    sock.on('data', (chunk) => {
      for (const m of parser.push(chunk) as Array<Record<string, unknown>>) {
        if (typeof m.method !== 'string') { this.replies.push(m); continue; }
        const req: Req = { method: m.method, params: m.params as unknown[], id: m.id };
        this.requests.push(req);
        this.handle(sock, req);
      }
    });
  }

  private handle(sock: Socket, req: Req): void {
    const reply = (result: unknown, error: unknown = null, extra = ''): void => {
      if (!sock.destroyed) sock.write(JSON.stringify({ id: req.id, result, error }) + extra);
    };
    switch (req.method) {
      case 'get_schema': return reply(this.schema);
      case 'echo': return reply(req.params);
      case 'monitor_cond': case 'monitor': {
        const wanted = req.params[2] as Record<string, unknown>;
        const out: Record<string, Record<string, unknown>> = {};
        for (const t of Object.keys(wanted)) {
          out[t] = {};
          for (const [u, row] of Object.entries(this.rows[t] ?? {})) out[t][u] = req.method === 'monitor' ? { new: row } : { initial: row };
        }
        return reply(out, null, this.afterMonitor?.(req.params[1]) ?? '');
      }
      case 'transact': {
        const r = this.onTransact(req.params, sock);
        if (r !== undefined) reply(r);
        return;
      }
      default: return reply(null, { error: 'unknown method' });
    }
  }

  /** Sends an update2 notification to every connection. */
  notify2(updates: unknown, monitorId = 'koa'): void {
    for (const s of this.sockets) s.write(JSON.stringify({ method: 'update2', params: [monitorId, updates], id: null }));
  }

  sendRaw(text: string): void { for (const s of this.sockets) s.write(text); }

  dropAll(): void { for (const s of this.sockets) s.destroy(); }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((r) => this.server.close(() => r()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export const until = async (cond: () => boolean, ms = 2000): Promise<void> => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 5));
  }
};
