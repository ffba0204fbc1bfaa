// Instruments the CNI server from the outside: request durations into both the upstream `cni_op_latency_seconds`
// and `kube_ovn_agent_cni_request_duration_seconds`, plus the shim-observed times. `cniMetricsObserver(metrics)` is
// the server's observer (cni-http.ts CniObserver), wired by the composition root.
//
// Shim-observed time arrives two ways (see README "Metrics, health and logs"):
//  - `shim_prev` in the forwarded call's body: {command, ms, result} (or an array of them) describing an earlier
//    invocation of the CNI executable;
//  - a side call `POST /cni/v1/shim-metrics` with the same object (or array), answered 204.

import type { CniExchange, CniObserver } from '../server/cni-http.ts';
import type { AgentMetrics } from './metrics.ts';

/** The own protocol's call route (kept equal to cni-server.ts CALL_PATH; a test checks it). */
export const CNI_CALL_PATH = '/cni/v1/call';
export const SHIM_METRICS_PATH = '/cni/v1/shim-metrics';
const UPSTREAM_ROUTES: Readonly<Record<string, 'ADD' | 'DEL'>> = { '/api/v1/add': 'ADD', '/api/v1/del': 'DEL' };
const MAX_REPORTS_PER_REQUEST = 16;

function commandOf(path: string, body: unknown): string | null {
  if (path === CNI_CALL_PATH) {
    const env = (body as { env?: { CNI_COMMAND?: unknown } } | undefined)?.env;
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

export function cniMetricsObserver(metrics: AgentMetrics): CniObserver {
  return {
    routes: {
      [SHIM_METRICS_PATH]: (body) => (recordShim(metrics, body) > 0 ? { status: 204, body: null }
        : { status: 400, body: JSON.stringify({ error: 'expected {"command","ms","result"} or an array of them' }) }),
    },
    answered(x: CniExchange) {
      const raw = commandOf(x.path, x.body);
      if (raw === null) return;
      const command = raw.toUpperCase();
      const prev = (x.body as { shim_prev?: unknown } | undefined)?.shim_prev;
      if (prev !== undefined) recordShim(metrics, prev);
      const result = resultFromPayload(x.exitStatus, x.status, x.payload);
      const upstreamMethod = command === 'ADD' ? '/api/v1/add' : command === 'DEL' ? '/api/v1/del' : null;
      metrics.observeCni(command, result, x.seconds, upstreamMethod, upstreamStatus(command, result, x.status));
    },
  };
}
