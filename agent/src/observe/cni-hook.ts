// Instruments the CNI server (fastify on the Unix socket) from the outside: request durations into both the
// upstream `cni_op_latency_seconds` and `kube_ovn_agent_cni_request_duration_seconds`, plus the shim-observed
// times. Call `instrumentCniApp(app, metrics)` on the app before it listens (fastify refuses hooks after ready).
//
// Shim-observed time arrives two ways (see README "Metrics, health and logs"):
//  - `shim_prev` in the forwarded call's body: {command, ms, result} (or an array of them) describing an earlier
//    invocation of the CNI executable;
//  - a side call `POST /cni/v1/shim-metrics` with the same object (or array), answered 204.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AgentMetrics } from './metrics.ts';

/** The own protocol's call route (kept equal to cni-server.ts CALL_PATH; a test checks it). */
export const CNI_CALL_PATH = '/cni/v1/call';
export const SHIM_METRICS_PATH = '/cni/v1/shim-metrics';
const UPSTREAM_ROUTES: Readonly<Record<string, 'ADD' | 'DEL'>> = { '/api/v1/add': 'ADD', '/api/v1/del': 'DEL' };
const EXIT_HEADER = 'x-cni-exit-status';
const MAX_REPORTS_PER_REQUEST = 16;

// The hooks only need these members; typed loosely so any fastify generic instantiation fits.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyFastify = FastifyInstance<any, any, any, any, any>;

interface CallState { command: string; result: string }
const STATE = Symbol('koaCniMetrics');
type Req = FastifyRequest & { [STATE]?: CallState };

function commandOf(req: FastifyRequest): string | null {
  const path = req.routeOptions.url ?? req.url;
  if (path === CNI_CALL_PATH) {
    const env = (req.body as { env?: { CNI_COMMAND?: unknown } } | undefined)?.env;
    return typeof env?.CNI_COMMAND === 'string' ? env.CNI_COMMAND : 'other';
  }
  return UPSTREAM_ROUTES[path] ?? null;
}

/** `result` of a finished call: `ok`, or `cni_<code>` from the CNI error JSON the shim will print, else `error`. */
export function resultFromPayload(exitStatus: string | undefined, statusCode: number, payload: unknown): string {
  if (exitStatus === undefined ? statusCode < 300 : exitStatus === '0') return 'ok';
  if (typeof payload === 'string' && payload.length < 65536) {
    try {
      const code = (JSON.parse(payload) as { code?: unknown }).code;
      if (typeof code === 'number' && Number.isInteger(code) && code > 0 && code < 1000) return `cni_${code}`;
    } catch { /* not JSON */ }
  }
  return 'error';
}

/** What upstream would have answered: 200 (ADD) / 204 (DEL) on success, the HTTP status or 500 on failure. */
export function upstreamStatus(command: string, result: string, httpStatus: number): number {
  if (result === 'ok') return command === 'DEL' ? 204 : 200;
  return httpStatus >= 400 ? httpStatus : 500;
}

function recordShim(metrics: AgentMetrics, x: unknown): number {
  const list = Array.isArray(x) ? x.slice(0, MAX_REPORTS_PER_REQUEST) : [x];
  let n = 0;
  for (const r of list) if (metrics.observeShimReport(r)) n++;
  return n;
}

export function instrumentCniApp(app: AnyFastify, metrics: AgentMetrics): void {
  app.addHook('preHandler', async (req: Req) => {
    const command = commandOf(req);
    if (command === null) return;
    req[STATE] = { command: command.toUpperCase(), result: 'error' };
    const prev = (req.body as { shim_prev?: unknown } | undefined)?.shim_prev;
    if (prev !== undefined) recordShim(metrics, prev);
  });
  app.addHook('onSend', async (req: Req, reply: FastifyReply, payload: unknown) => {
    const st = req[STATE];
    if (st) {
      const exit = reply.getHeader(EXIT_HEADER);
      st.result = resultFromPayload(exit === undefined ? undefined : String(exit), reply.statusCode, payload);
    }
    return payload;
  });
  app.addHook('onResponse', async (req: Req, reply: FastifyReply) => {
    const st = req[STATE];
    if (!st) return;
    const seconds = reply.elapsedTime / 1000;
    const upstreamMethod = st.command === 'ADD' ? '/api/v1/add' : st.command === 'DEL' ? '/api/v1/del' : null;
    metrics.observeCni(st.command, st.result, seconds, upstreamMethod, upstreamStatus(st.command, st.result, reply.statusCode));
  });
  app.post(SHIM_METRICS_PATH, async (req: FastifyRequest, reply: FastifyReply) => {
    const n = recordShim(metrics, req.body);
    return n > 0 ? reply.code(204).send() : reply.code(400).send({ error: 'expected {"command","ms","result"} or an array of them' });
  });
}
