// The agent's Kubernetes REST calls, plain JSON over the KubeConfig's shared undici dispatcher: list, get, put,
// patch, post, and a watch stream. client-node's generated API classes decode every response through its
// ObjectSerializer into model classes; bundling them (and the ~700 model classes they reference) cost the agent
// more resident memory than anything else it loads (README "Memory"). Authentication stays client-node's: each
// request asks the KubeConfig for its headers and dispatcher (tokens, token files re-read, exec plugins, client
// certificates), so only the transport and the decoding are ours.

import type { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { request, type Dispatcher } from 'undici';

export type Query = Record<string, string | number | boolean | undefined>;

/** A non-2xx answer: the status code and the API server's Status message. */
export class KubeApiError extends Error {
  readonly statusCode: number;
  /** the Status object's message (or the body's start) */
  readonly serverMessage: string;
  readonly reason: string | undefined;
  constructor(what: string, statusCode: number, serverMessage: string, reason?: string) {
    super(`${what}: HTTP ${statusCode}: ${serverMessage}`);
    this.name = 'KubeApiError';
    this.statusCode = statusCode;
    this.serverMessage = serverMessage;
    this.reason = reason;
  }
}

/** One line of a watch stream. */
export interface WatchEvent {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR' | string;
  readonly object: { metadata?: { resourceVersion?: string }; code?: number; message?: string; [k: string]: unknown };
}

export interface WatchStreamOptions {
  /** ends the stream (the promise resolves) */
  readonly signal: AbortSignal;
  /** no byte for this long: the request is aborted and the promise rejects with a TimeoutError */
  readonly idleTimeoutMs: number;
}

/** What the KubeConfig fills in per request (the subset of client-node's RequestContext it calls). */
interface AuthContext {
  setHeaderParam(key: string, value: string): void;
  setDispatcher(d: Dispatcher): void;
}

export class KubeRest {
  readonly #kc: KubeConfig;
  readonly #server: string;

  constructor(kc: KubeConfig) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    this.#kc = kc;
    this.#server = cluster.server.replace(/\/+$/, '');
  }

  url(path: string, query: Query = {}): URL {
    const u = new URL(this.#server + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) u.searchParams.set(k, String(v));
    return u;
  }

  async #auth(): Promise<{ headers: Record<string, string>; dispatcher: Dispatcher | undefined }> {
    const headers: Record<string, string> = {};
    let dispatcher: Dispatcher | undefined;
    const ctx: AuthContext = { setHeaderParam: (k, v) => { headers[k] = v; }, setDispatcher: (d) => { dispatcher = d; } };
    await this.#kc.applySecurityAuthentication(ctx as never);
    return { headers, dispatcher };
  }

  /** One JSON request; resolves with the decoded body, rejects with KubeApiError on a non-2xx answer. */
  async call<T = unknown>(method: 'GET' | 'PUT' | 'PATCH' | 'POST', path: string,
    o: { query?: Query; body?: unknown; contentType?: string } = {}): Promise<T> {
    const { headers, dispatcher } = await this.#auth();
    headers.accept = 'application/json';
    if (o.body !== undefined) headers['content-type'] = o.contentType ?? 'application/json';
    const r = await request(this.url(path, o.query), {
      method, headers, ...(dispatcher ? { dispatcher } : {}), ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
    });
    const text = await r.body.text();
    if (r.statusCode < 200 || r.statusCode > 299) throw statusError(`${method} ${path}`, r.statusCode, text);
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  /**
   * GET path?watch=true: calls `onEvent` for each line until the server ends the stream (resolves) or `signal`
   * aborts (resolves). Rejects with KubeApiError on a non-200 answer (410: the resourceVersion is too old), a
   * TimeoutError after `idleTimeoutMs` without a byte, or the transport's error.
   */
  async watch(path: string, query: Query, onEvent: (e: WatchEvent) => void, o: WatchStreamOptions): Promise<void> {
    const { headers, dispatcher } = await this.#auth();
    headers.accept = 'application/json';
    const abort = new AbortController();
    const onOuterAbort = (): void => abort.abort();
    o.signal.addEventListener('abort', onOuterAbort, { once: true });
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => { timedOut = true; abort.abort(); }, o.idleTimeoutMs);
      timer.unref();
    };
    try {
      if (o.signal.aborted) return;
      arm();
      const r = await request(this.url(path, { ...query, watch: true }), {
        method: 'GET', headers, signal: abort.signal, ...(dispatcher ? { dispatcher } : {}),
      });
      if (r.statusCode !== 200) throw statusError(`watch ${path}`, r.statusCode, await r.body.text().catch(() => ''));
      arm();
      let buf = '';
      r.body.setEncoding('utf8');
      for await (const chunk of r.body as AsyncIterable<string>) {
        arm();
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.trim() === '') continue;
          let e: WatchEvent;
          try { e = JSON.parse(line) as WatchEvent; } catch { continue; } // a torn line: the relist repairs it
          onEvent(e);
        }
      }
    } catch (e) {
      if (timedOut) throw Object.assign(new Error(`watch ${path}: nothing received for ${o.idleTimeoutMs} ms`), { name: 'TimeoutError' });
      if (o.signal.aborted) return;
      throw e;
    } finally {
      clearTimeout(timer);
      o.signal.removeEventListener('abort', onOuterAbort);
    }
  }
}

function statusError(what: string, code: number, text: string): KubeApiError {
  let message = text.slice(0, 512);
  let reason: string | undefined;
  try {
    const s = JSON.parse(text) as { message?: string; reason?: string };
    if (s.message) message = s.message;
    reason = s.reason;
  } catch { /* not a Status object */ }
  return new KubeApiError(what, code, message || `status ${code}`, reason);
}

/** `<what>: HTTP <code>: <server's message>` with statusCode for an API answer; `<what>: <error>` otherwise. */
export function apiError(what: string, e: unknown): Error {
  if (e instanceof KubeApiError) return new KubeApiError(what, e.statusCode, e.serverMessage, e.reason);
  return new Error(`${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}
