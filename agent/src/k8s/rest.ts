// The agent's Kubernetes REST calls, plain JSON over one shared undici dispatcher: list, get, put, patch, post,
// and a watch stream. client-node's generated API classes decode every response through its ObjectSerializer into
// model classes; bundling them (and the ~700 model classes they reference) cost the agent more resident memory than
// anything else it loads (README "Memory"). Authentication stays client-node's: each request asks the KubeConfig
// for its headers and TLS material (tokens and token files re-read, exec plugins, client certificates), and its
// answer serves for AUTH_TTL_MS.
// The dispatcher is ours to keep: client-node 2.0.1's applySecurityAuthentication builds a new undici Agent for every
// request, so every call opened a new TCP connection with a full TLS handshake (CPU on both ends; in a 50-pod burst
// the handshakes were a large part of the agent's and the API server's CPU). One Agent per distinct TLS material
// is kept and shared by every KubeRest of the KubeConfig; a rotated certificate or CA gets a new one.

import { createHash } from 'node:crypto';
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

/** What KubeConfig.applyToHTTPSOptions fills in (the subset read here). */
interface HttpsMaterial {
  headers?: Record<string, unknown>;
  auth?: string;
  ca?: Buffer | string;
  cert?: Buffer | string;
  key?: Buffer | string;
  pfx?: Buffer | string;
  passphrase?: string;
  rejectUnauthorized?: boolean;
  servername?: string;
}

/** client-node builds the dispatcher for a cluster (plain, proxy or SOCKS) in a method its typings keep private. */
interface DispatcherFactory {
  createDispatcher(cluster: ReturnType<KubeConfig['getCurrentCluster']>, agentOptions: Record<string, unknown>): Dispatcher | undefined;
}

const shared = new WeakMap<KubeConfig, { fingerprint: string; dispatcher: Dispatcher | undefined }>();

/**
 * How long one answer of the KubeConfig serves later requests. Asking it re-reads the CA, certificate and key files
 * with synchronous reads on the event loop, and the answer is hashed: about 1 ms per request, 2 requests per ADD (the
 * IP CR). A 401 answer drops the cached answer at once (client-node's in-cluster token file has its own 60 s cache on
 * top; client-go re-reads a token file once a minute too). Monotonic time: a clock step cannot stretch the 10 s.
 */
export const AUTH_TTL_MS = 10_000;
type Auth = { headers: Readonly<Record<string, string>>; dispatcher: Dispatcher | undefined };
/** the last answer, or the ask in flight that every concurrent request shares */
const recent = new WeakMap<KubeConfig, { at: number; answer: Promise<Auth> }>();

/** The next request asks the KubeConfig again (its answer was refused). */
export function forgetAuth(kc: KubeConfig): void { recent.delete(kc); }

/**
 * Headers and dispatcher for one request to the KubeConfig's current cluster: the headers at most AUTH_TTL_MS old
 * (a token file or exec plugin may rotate the token), the dispatcher shared while the TLS material stays the same.
 */
export async function requestAuth(kc: KubeConfig): Promise<{ headers: Record<string, string>; dispatcher: Dispatcher | undefined }> {
  let r = recent.get(kc);
  if (!r || performance.now() - r.at >= AUTH_TTL_MS) {
    const entry = { at: performance.now(), answer: askKubeConfig(kc) };
    recent.set(kc, entry);
    entry.answer.catch(() => { if (recent.get(kc) === entry) recent.delete(kc); });
    r = entry;
  }
  const a = await r.answer;
  return { headers: { ...a.headers }, dispatcher: a.dispatcher };
}

async function askKubeConfig(kc: KubeConfig): Promise<{ headers: Record<string, string>; dispatcher: Dispatcher | undefined }> {
  const m: HttpsMaterial = {};
  await kc.applyToHTTPSOptions(m as never);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.headers ?? {})) headers[k] = String(v);
  if (m.auth) headers.Authorization = `Basic ${Buffer.from(m.auth).toString('base64')}`;
  const cluster = kc.getCurrentCluster();
  const h = createHash('sha256');
  for (const part of [cluster?.server, cluster?.proxyUrl, m.ca, m.cert, m.key, m.pfx, m.passphrase, String(m.rejectUnauthorized), m.servername]) {
    h.update(part === undefined ? '\0u' : part).update('\0');
  }
  const fingerprint = h.digest('hex');
  const have = shared.get(kc);
  if (have?.fingerprint === fingerprint) return { headers, dispatcher: have.dispatcher };
  const agentOptions: Record<string, unknown> = { ca: m.ca, cert: m.cert, key: m.key, pfx: m.pfx, passphrase: m.passphrase };
  if (m.rejectUnauthorized !== undefined) agentOptions.rejectUnauthorized = m.rejectUnauthorized;
  if (m.servername !== undefined) agentOptions.servername = m.servername;
  const dispatcher = (kc as unknown as DispatcherFactory).createDispatcher(cluster, agentOptions);
  shared.set(kc, { fingerprint, dispatcher });
  // requests still running on the old one finish; it closes its connections after them
  if (have?.dispatcher && have.dispatcher !== dispatcher) void have.dispatcher.close().catch(() => undefined);
  return { headers, dispatcher };
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

  #auth(): Promise<{ headers: Record<string, string>; dispatcher: Dispatcher | undefined }> {
    return requestAuth(this.#kc);
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
    if (r.statusCode === 401) forgetAuth(this.#kc);
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
      if (r.statusCode === 401) forgetAuth(this.#kc);
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
