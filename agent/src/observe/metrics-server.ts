// The metrics / health server (upstream: port 10665, `--pprof-port`): /metrics, /healthz, /livez, /readyz and
// the runtime log level. node:http rather than fastify: six fixed routes, no body schema, and nothing here
// should depend on the CNI server's framework or logger configuration.
//
// Listen addresses follow upstream: 0.0.0.0, or every entry of POD_IPS when ENABLE_BIND_LOCAL_IP=true.
// Changing the log level (PUT) is accepted from loopback peers only unless `allowRemoteLogLevel` (the port is
// reachable from the whole cluster network; use `kubectl exec ... curl 127.0.0.1:10665` or SIGUSR2).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { AgentMetrics } from './metrics.ts';
import type { LogControl } from './log.ts';
import { formatEvaluation, type Readiness } from './health.ts';
import { installReadDeadlines } from '../server/read-deadline.ts';

export const DEFAULT_METRICS_PORT = 10665;
export const LOG_LEVEL_PATHS: readonly string[] = ['/debug/loglevel', '/log-level'];

export interface MetricsServerOptions {
  /** Addresses to listen on (each gets its own listener). */
  addresses: readonly string[];
  /** 0 = ephemeral (tests). */
  port: number;
  /** `--enable-metrics` (default true): false serves health endpoints only. */
  enableMetrics: boolean;
  metrics: AgentMetrics;
  readiness: Readiness;
  /** /livez: true when the CNI socket answers, else the reason. */
  liveness: () => Promise<true | string>;
  log: LogControl;
  logger: Logger;
  allowRemoteLogLevel?: boolean;
}

export interface MetricsServer {
  /** Bound addresses (with the real port when 0 was asked). */
  readonly addresses: readonly AddressInfo[];
  close(): Promise<void>;
}

/** Upstream listen-address rule: POD_IPS entries when ENABLE_BIND_LOCAL_IP=true (error if empty), else 0.0.0.0. */
export function listenAddressesFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.ENABLE_BIND_LOCAL_IP !== 'true') return ['0.0.0.0'];
  const ips = (env.POD_IPS ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (ips.length === 0) throw new Error('ENABLE_BIND_LOCAL_IP=true but POD_IPS is empty');
  return ips;
}

export function isLoopback(addr: string | undefined): boolean {
  if (addr === undefined) return false;
  return addr === '::1' || addr.startsWith('127.') || addr.startsWith('::ffff:127.');
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

async function readBody(req: IncomingMessage, limit = 1024): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) throw new Error(`body larger than ${limit} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Accepts `debug`, `level=debug`, or `{"level":"debug"}`. */
export function parseLevelBody(body: string): string | null {
  const t = body.trim();
  if (t.startsWith('{')) {
    try {
      const v = (JSON.parse(t) as { level?: unknown }).level;
      return typeof v === 'string' ? v.trim() : null;
    } catch { return null; }
  }
  const m = /^(?:level=)?([a-z]+)$/.exec(t);
  return m ? m[1]! : null;
}

async function handle(o: MetricsServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://x');
  const path = url.pathname;
  const verbose = url.searchParams.has('verbose');
  const method = req.method ?? 'GET';
  const read = method === 'GET' || method === 'HEAD';

  if (LOG_LEVEL_PATHS.includes(path)) {
    if (read) return send(res, 200, `${o.log.level()}\n`);
    if (method !== 'PUT' && method !== 'POST') return send(res, 405, 'method not allowed\n');
    if (!o.allowRemoteLogLevel && !isLoopback(req.socket.remoteAddress))
      return send(res, 403, 'log level can only be changed from loopback\n');
    let body: string;
    try { body = await readBody(req); } catch (e) { return send(res, 413, `${(e as Error).message}\n`); }
    const level = parseLevelBody(body);
    if (level === null) return send(res, 400, 'body must be a level name, level=<name> or {"level":"<name>"}\n');
    try { o.log.setLevel(level); } catch (e) { return send(res, 400, `${(e as Error).message}\n`); }
    return send(res, 200, `${o.log.level()}\n`);
  }
  if (!read) return send(res, 405, 'method not allowed\n');
  if (path === '/metrics' && o.enableMetrics) {
    const text = await o.metrics.registry.metrics();
    return send(res, 200, text, o.metrics.registry.contentType);
  }
  if (path === '/healthz') return send(res, 200, 'ok');
  if (path === '/livez') {
    const r = await o.liveness();
    if (r === true) return send(res, 200, 'ok');
    o.logger.warn({ reason: r }, 'liveness probe failed');
    return send(res, 503, verbose ? `probe failed: ${r}\n` : 'probe failed');
  }
  if (path === '/readyz' || path.startsWith('/readyz/')) {
    const only = path === '/readyz' ? undefined : decodeURIComponent(path.slice('/readyz/'.length));
    const e = await o.readiness.evaluate(only);
    return send(res, e.ok ? 200 : 503, formatEvaluation(e, 'readyz', verbose || !e.ok));
  }
  return send(res, 404, 'not found\n');
}

function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(new Error(`metrics server cannot listen on ${host}:${port}: ${e.message}`));
    server.once('error', onError);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

function closeServer(s: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!s.listening) { resolve(); return; }
    s.close(() => resolve());
    s.closeAllConnections();
  });
}

export async function startMetricsServer(o: MetricsServerOptions): Promise<MetricsServer> {
  const servers: Server[] = [];
  const addresses: AddressInfo[] = [];
  try {
    let port = o.port;
    for (const host of o.addresses) {
      const s = createServer((req, res) => {
        handle(o, req, res).catch((e: unknown) => {
          o.logger.error({ err: e, path: req.url }, 'metrics server request failed');
          if (!res.headersSent) send(res, 500, 'internal error\n');
          else res.destroy();
        });
      });
      // upstream ReadHeaderTimeout 3 s; per-connection timers, not Node's periodic sweep (server/read-deadline.ts)
      installReadDeadlines(s, { headersMs: 3000, requestMs: 10_000 });
      servers.push(s);
      const a = await listen(s, host, port);
      if (port === 0) port = a.port; // one ephemeral port shared by every address
      addresses.push(a);
    }
  } catch (e) {
    await Promise.all(servers.map(closeServer));
    throw e;
  }
  o.logger.info({ addresses: addresses.map((a) => `${a.address}:${a.port}`), metrics: o.enableMetrics }, 'metrics server listening');
  return {
    addresses,
    close: async () => { await Promise.all(servers.map(closeServer)); },
  };
}
