// The agent's Kubernetes REST calls, plain JSON over node:https with one shared keep-alive Agent: list, get, put,
// patch, post, and a watch stream. client-node's generated API classes decode every response through its
// ObjectSerializer into model classes; bundling them (and the ~700 model classes they reference) cost the agent more
// resident memory than anything else it loads (README "Memory"). Authentication stays client-node's: each request
// asks the KubeConfig for its headers and TLS material (tokens and token files re-read, exec plugins, client
// certificates), and its answer serves for AUTH_TTL_MS.
// The transport is node:https (node:http for an http:// server), not undici: loading undici's dispatchers and request
// API held ~7 MB more RSS than node:https in the agent (README "Memory"). The connection pool is ours to keep:
// client-node 2.0.1's applySecurityAuthentication builds a new undici Agent for every request, so every call opened a
// new TCP connection with a full TLS handshake. One keep-alive Agent per distinct TLS material is kept and shared by
// every KubeRest of the KubeConfig; a rotated certificate or CA gets a new one, and the old one is destroyed once its
// last request (a long watch included) has finished.

import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { Slots } from '../limits.ts';

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

/**
 * A kubeconfig's `proxy-url` is refused, not honoured: the agent runs on the node's host network next to the API
 * server it reaches (in-cluster, through the kubernetes Service or a node-local address), where upstream's manifests
 * set no proxy, and a tunnel would be one more hop that every CNI ADD waits on. SOCKS (which client-node supports
 * through undici and the socks library, both left out of the bundle) could not be carried over node:https anyway.
 */
export function refuseProxy(kc: KubeConfig): void {
  const proxy = kc.getCurrentCluster()?.proxyUrl;
  if (proxy) {
    throw new Error(`the kubeconfig's cluster "${kc.getCurrentCluster()?.name}" sets proxy-url (${proxy}): the agent does not ` +
      'connect to the API server through a proxy; remove proxy-url from the kubeconfig');
  }
}

/** The `auth-provider` names of client-node's azure, gcp and oidc token refreshers. */
const REFUSED_AUTH_PROVIDERS: readonly string[] = ['azure', 'gcp', 'oidc'];

/**
 * A kubeconfig user whose `auth-provider` is azure, gcp or oidc (client-node's token refreshers) is refused at start:
 * upstream's daemon builds client-go without those plugins (it answers `no Auth Provider found`), and a kubeconfig can
 * carry a token, a client certificate or an exec plugin instead. The bundle leaves the three providers and their
 * libraries out (scripts/bundle-stubs/client-node-auth-providers.ts). Other auth-provider users are client-node's own
 * shapes and stay: the in-cluster service account (`tokenFile`, what loadFromCluster makes for the DaemonSet), and the
 * `exec` / `tokenFile` configs its ExecAuth and FileAuth serve.
 */
export function refuseAuthProvider(kc: KubeConfig): void {
  const user = kc.getCurrentUser();
  if (user?.authProvider && REFUSED_AUTH_PROVIDERS.includes(String(user.authProvider.name))) {
    throw new Error(`the kubeconfig's user "${user.name}" sets auth-provider (${String(user.authProvider.name)}): the agent, like upstream's ` +
      'daemon, has no auth-provider plugins; give the user a token, a client certificate or an exec plugin');
  }
}

/** What the agent refuses in a kubeconfig, at start and each time it is asked: refuseProxy, refuseAuthProvider. */
export function refuseUnsupported(kc: KubeConfig): void {
  refuseProxy(kc);
  refuseAuthProvider(kc);
}

/** No response headers within this long: the request fails (undici's headersTimeout, as before). Bodies have no
 * timeout: a watch is quiet for minutes by design, and its liveness is the watch layer's idle timer. */
export const HEADERS_TIMEOUT_MS = 60_000;
/** A REST call's whole answer, headers and body (a connection that stalls mid-body must not hold a pass forever;
 * undici's default body timeout used to bound it). Watches have their own idle bound instead. */
export const CALL_TIMEOUT_MS = 120_000;
/** An error answer's body (its Status message) on a watch: read for at most this long, then reported without it. */
export const ERROR_BODY_MS = 10_000;
/** A pooled connection unused this long is closed by us (kube-apiserver closes idle ones after 90 s; a request sent
 * on a socket the server is closing at that moment fails). Only free sockets: Node's Agent leaves busy ones alone. */
export const IDLE_SOCKET_MS = 30_000;
/** A new connection's TCP and TLS handshakes. Node's https has no bound of its own (undici's was 10 s): a handshake
 * the server never finishes (seen under a kill -9 storm) held every request on it until the headers bound, and a
 * list retried on it forever. Its error is not a TimeoutError: it is a failure, logged and backed off. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** Calls (lists, gets, puts, patches, Events) in flight at once, so connections for them; more calls wait their turn. Without a cap a
 * burst of 500 ADDs (an IP CR get and put and an Event each) opened a connection per call in flight: hundreds of TLS
 * handshakes at once against the API server, and against the agent's own event loop. Watches hold their connection
 * for minutes, so they have a pool of their own and never take a call's place. */
export const MAX_CALL_SOCKETS = 32;

/**
 * One keep-alive Agent for one TLS material. `active` counts requests not yet closed, so a retired transport (the
 * TLS material changed) destroys its sockets only after the last of them: Agent.destroy() would cut running watches.
 */
export class Transport {
  /** the pool of calls, at most MAX_CALL_SOCKETS connections */
  readonly agent: http.Agent;
  /** the pool of watches: one connection each, as many as there are watches */
  readonly streams: http.Agent;
  readonly #request: typeof http.request;
  /** connections whose handshakes are done */
  readonly #up = new WeakSet<object>();
  /** calls in flight, the rest waiting in arrival order */
  readonly #calls = new Slots(MAX_CALL_SOCKETS);
  #active = 0;
  #retired = false;
  #closed = false;

  constructor(server: string, tls: Pick<HttpsMaterial, 'ca' | 'cert' | 'key' | 'pfx' | 'passphrase' | 'rejectUnauthorized' | 'servername'>) {
    // keepAliveMsecs: the TCP keep-alive probe delay, 30 s as client-node and client-go use
    const common = { keepAlive: true, keepAliveMsecs: 30_000, timeout: IDLE_SOCKET_MS };
    const calls = { ...common, maxSockets: MAX_CALL_SOCKETS, maxFreeSockets: MAX_CALL_SOCKETS };
    if (server.startsWith('http:')) {
      this.agent = new http.Agent(calls);
      this.streams = new http.Agent(common);
      this.#request = http.request;
    } else {
      const o: https.AgentOptions = {};
      for (const k of ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'] as const) {
        if (tls[k] !== undefined) (o as Record<string, unknown>)[k] = tls[k];
      }
      this.agent = new https.Agent({ ...o, ...calls });
      this.streams = new https.Agent({ ...o, ...common });
      this.#request = https.request;
    }
  }

  /** true once the Agent's sockets are destroyed (retired and no request left) */
  get closed(): boolean { return this.#closed; }

  /**
   * Sends one request (a watch: `stream`); resolves with the response once its headers arrived. A call first waits
   * for one of the MAX_CALL_SOCKETS call slots (here, not in the Agent's queue: a request waiting there cannot be
   * failed until a connection frees); the headers bound and `signal` count from the start and end the wait too. The
   * Agent keeps the same cap: a slot is handed on at the request's close, and an uncapped Agent that saw the next
   * call before the freed socket was back in its pool would open a new connection.
   */
  send(url: URL, method: string, headers: Record<string, string>, body?: string, signal?: AbortSignal, stream = false): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const what = `${method} ${url.pathname}`;
      let req: http.ClientRequest | undefined;
      // ends a call's wait for a slot: the headers bound or the caller's signal
      const waiting = new AbortController();
      const onAbort = (): void => waiting.abort(Object.assign(new Error(`${what}: aborted while waiting for a connection`), { name: 'AbortError', code: 'ABORT_ERR' }));
      this.#active++;
      const timer = setTimeout(() => {
        const e = Object.assign(new Error(`${what}: no response headers within ${HEADERS_TIMEOUT_MS} ms`), { name: 'TimeoutError' });
        if (req) req.destroy(e); else waiting.abort(e);
      }, HEADERS_TIMEOUT_MS);
      const go = (release: () => void): void => {
        signal?.removeEventListener('abort', onAbort);
        const r = this.#request(url, { method, headers, agent: stream ? this.streams : this.agent, ...(signal ? { signal } : {}) });
        req = r;
        r.once('close', () => { release(); this.#active--; this.#closeIfDone(); });
        r.once('socket', (s) => {
          // a pooled connection is already up (`reusedSocket` is not set on one handed over after a wait)
          if (this.#up.has(s)) return;
          const up = setTimeout(() => {
            r.destroy(Object.assign(new Error(`${what}: no connection to ${url.host} within ${CONNECT_TIMEOUT_MS} ms`), { name: 'ConnectTimeoutError' }));
          }, CONNECT_TIMEOUT_MS);
          const done = (): void => clearTimeout(up);
          s.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => { this.#up.add(s); done(); });
          s.once('close', done);
        });
        r.once('response', (res) => { clearTimeout(timer); resolve(res); });
        // stays attached: a socket error after the headers is the response stream's error too, and must not be unhandled
        r.on('error', (e) => { clearTimeout(timer); reject(e); });
        r.end(body);
      };
      if (stream) { go(() => {}); return; }
      if (signal?.aborted) onAbort(); else signal?.addEventListener('abort', onAbort, { once: true });
      this.#calls.acquire(waiting.signal).then(go, (e: Error) => {
        signal?.removeEventListener('abort', onAbort);
        clearTimeout(timer);
        this.#active--;
        this.#closeIfDone();
        reject(e);
      });
    });
  }

  /** calls waiting for a slot */
  get queuedCalls(): number { return this.#calls.waiting; }

  /** The TLS material changed: new requests go elsewhere; the sockets go after the running requests. */
  retire(): void {
    this.#retired = true;
    this.#closeIfDone();
  }

  // also after a request that was given this transport just before the rotation and sent after it: its socket would
  // otherwise stay in the pool of an Agent nobody uses
  #closeIfDone(): void {
    if (!this.#retired || this.#active > 0) return;
    this.#closed = true;
    this.agent.destroy();
    this.streams.destroy();
  }
}

const shared = new WeakMap<KubeConfig, { fingerprint: string; transport: Transport }>();

/**
 * How long one answer of the KubeConfig serves later requests. Asking it re-reads the CA, certificate and key files
 * with synchronous reads on the event loop, and the answer is hashed: about 1 ms per request, 2 requests per ADD (the
 * IP CR). A 401 answer drops the cached answer at once (client-node's in-cluster token file has its own 60 s cache on
 * top; client-go re-reads a token file once a minute too). Monotonic time: a clock step cannot stretch the 10 s.
 */
export const AUTH_TTL_MS = 10_000;
type Auth = { headers: Readonly<Record<string, string>>; transport: Transport };
/** the last answer, or the ask in flight that every concurrent request shares */
const recent = new WeakMap<KubeConfig, { at: number; answer: Promise<Auth> }>();

/** The next request asks the KubeConfig again (its answer was refused). */
export function forgetAuth(kc: KubeConfig): void { recent.delete(kc); }

/**
 * Headers and transport for one request to the KubeConfig's current cluster: the headers at most AUTH_TTL_MS old
 * (a token file or exec plugin may rotate the token), the transport shared while the TLS material stays the same.
 */
export async function requestAuth(kc: KubeConfig): Promise<{ headers: Record<string, string>; transport: Transport }> {
  let r = recent.get(kc);
  if (!r || performance.now() - r.at >= AUTH_TTL_MS) {
    const entry = { at: performance.now(), answer: askKubeConfig(kc) };
    recent.set(kc, entry);
    entry.answer.catch(() => { if (recent.get(kc) === entry) recent.delete(kc); });
    r = entry;
  }
  const a = await r.answer;
  return { headers: { ...a.headers }, transport: a.transport };
}

async function askKubeConfig(kc: KubeConfig): Promise<Auth> {
  refuseUnsupported(kc);
  const m: HttpsMaterial = {};
  // (it also builds and caches client-node's own https.Agent per cluster/user, which is never used: no socket)
  await kc.applyToHTTPSOptions(m as never);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.headers ?? {})) headers[k] = String(v);
  if (m.auth) headers.Authorization = `Basic ${Buffer.from(m.auth).toString('base64')}`;
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster');
  const h = createHash('sha256');
  for (const part of [cluster.server, m.ca, m.cert, m.key, m.pfx, m.passphrase, String(m.rejectUnauthorized), m.servername]) {
    h.update(part === undefined ? '\0u' : part).update('\0');
  }
  const fingerprint = h.digest('hex');
  const have = shared.get(kc);
  if (have?.fingerprint === fingerprint) return { headers, transport: have.transport };
  const transport = new Transport(cluster.server, m);
  shared.set(kc, { fingerprint, transport });
  // requests still running on the old one finish; its sockets are destroyed after them
  have?.transport.retire();
  return { headers, transport };
}

/** The whole body as text (rejects when the connection ends before it). */
async function readText(res: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

/** An error answer's body, for its Status message; a body that stalls is given up after ERROR_BODY_MS (the status
 * code is what matters). */
async function errorBody(res: http.IncomingMessage): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((resolve) => { timer = setTimeout(() => { res.destroy(); resolve(''); }, ERROR_BODY_MS); });
  try {
    return await Promise.race([readText(res).catch(() => ''), late]);
  } finally {
    clearTimeout(timer);
  }
}

export class KubeRest {
  readonly #kc: KubeConfig;
  readonly #server: string;

  constructor(kc: KubeConfig) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    refuseUnsupported(kc);
    this.#kc = kc;
    this.#server = cluster.server.replace(/\/+$/, '');
  }

  url(path: string, query: Query = {}): URL {
    const u = new URL(this.#server + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) u.searchParams.set(k, String(v));
    return u;
  }

  /** One JSON request; resolves with the decoded body, rejects with KubeApiError on a non-2xx answer. */
  async call<T = unknown>(method: 'GET' | 'PUT' | 'PATCH' | 'POST', path: string,
    o: { query?: Query; body?: unknown; contentType?: string } = {}): Promise<T> {
    const { headers, transport } = await requestAuth(this.#kc);
    headers.accept = 'application/json';
    if (o.body !== undefined) headers['content-type'] = o.contentType ?? 'application/json';
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), CALL_TIMEOUT_MS);
    let text: string;
    let r: http.IncomingMessage;
    try {
      r = await transport.send(this.url(path, o.query), method, headers, o.body !== undefined ? JSON.stringify(o.body) : undefined, deadline.signal);
      text = await readText(r);
    } catch (e) {
      if (deadline.signal.aborted) throw Object.assign(new Error(`${method} ${path}: no complete answer within ${CALL_TIMEOUT_MS} ms`), { name: 'TimeoutError' });
      throw e;
    } finally {
      clearTimeout(timer);
    }
    const status = r.statusCode ?? 0;
    if (status === 401) forgetAuth(this.#kc);
    if (status < 200 || status > 299) throw statusError(`${method} ${path}`, status, text);
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  /**
   * GET path?watch=true: calls `onEvent` for each line until the server ends the stream (resolves) or `signal`
   * aborts (resolves). Rejects with KubeApiError on a non-200 answer (410: the resourceVersion is too old), a
   * TimeoutError after `idleTimeoutMs` without a byte, or the transport's error.
   */
  async watch(path: string, query: Query, onEvent: (e: WatchEvent) => void, o: WatchStreamOptions): Promise<void> {
    const { headers, transport } = await requestAuth(this.#kc);
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
      const r = await transport.send(this.url(path, { ...query, watch: true }), 'GET', headers, undefined, abort.signal, true);
      if (r.statusCode === 401) forgetAuth(this.#kc);
      if (r.statusCode !== 200) {
        clearTimeout(timer); // the answer came: the status is the outcome, however slowly its body follows
        throw statusError(`watch ${path}`, r.statusCode ?? 0, await errorBody(r));
      }
      arm();
      let buf = '';
      r.setEncoding('utf8');
      for await (const chunk of r as AsyncIterable<string>) {
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
