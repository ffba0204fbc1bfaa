// The CNI server's HTTP side on node:http: three POST routes (plus any an observer adds), the body budget and
// receive bound, the mapping of errors to CNI answers, 503 while closing. cni-server.ts owns the socket.
//
// Request life: route -> media type and declared size checked (413 before anything is read or reserved) -> the
// body's size taken from the budget (waiting in line) -> the body received within `receiveMs` of the grant ->
// decoded -> handled -> answered; the budget is given back when the answer is out or the client is gone.
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { agentError, AgentError } from '../errors.ts';
import { encodeError } from '../cni/codec.ts';
import type { Dispatcher } from '../cni/dispatcher.ts';
import { sniffVersion } from '../cni/netconf.ts';
import { handleUpstream } from '../cni/upstream.ts';
import { LATEST_VERSION, type ForwardedCall } from '../cni/types.ts';
import { ByteBudget } from '../limits.ts';
import { BodyError, bodyKind, ClientGone, bodyReservation, decodeBody, readBody } from './json-body.ts';

export const CALL_PATH = '/cni/v1/call';
export const EXIT_HEADER = 'x-cni-exit-status';
const JSON_TYPE = 'application/json; charset=utf-8';

/** An answer: `body` null sends none (204). */
export interface RouteAnswer { status: number; body: string | null; exitStatus?: string }
/** A POST route: gets the decoded body (undefined when the request had none). */
export type Route = (body: unknown) => RouteAnswer | Promise<RouteAnswer>;

/** One request on a route whose body was decoded, reported once its answer is out (or its client gone). */
export interface CniExchange {
  readonly path: string;
  readonly body: unknown;
  readonly status: number;
  /** the `x-cni-exit-status` header, when the answer has one */
  readonly exitStatus: string | undefined;
  /** the answer's body ('' for none) */
  readonly payload: string;
  /** from the request's headers to the end of its answer */
  readonly seconds: number;
}

/** Watches the server from outside (metrics): extra routes and a report per exchange. Wired by the composition root. */
export interface CniObserver {
  readonly routes?: Readonly<Record<string, Route>>;
  answered?(x: CniExchange): void;
}

export interface CniHttpOptions {
  dispatcher: Dispatcher;
  log: Logger;
  bodyLimit: number;
  bodyBudget: number;
  receiveMs: number;
  validate: (body: unknown) => ForwardedCall;
  observer?: CniObserver;
}

export interface CniHttp {
  handle(req: IncomingMessage, res: ServerResponse): void;
  clientError(err: NodeJS.ErrnoException, socket: Socket): void;
  /** From now on answers close their connection; a request that still reaches the server is answered 503. */
  startClosing(): void;
}

const jsonAnswer = (status: number, x: unknown): RouteAnswer => ({ status, body: JSON.stringify(x) });
const UNAVAILABLE = '{"error":"Service Unavailable","message":"Service Unavailable","statusCode":503}';

function send(res: ServerResponse, a: RouteAnswer, closeConnection: boolean): void {
  if (res.headersSent || res.destroyed) return;
  if (closeConnection) res.setHeader('connection', 'close'); // the client may still be sending a body we refused
  if (a.exitStatus !== undefined) res.setHeader(EXIT_HEADER, a.exitStatus);
  if (a.body !== null) {
    res.setHeader('content-type', JSON_TYPE);
    res.setHeader('content-length', Buffer.byteLength(a.body));
  }
  res.writeHead(a.status);
  res.end(a.body ?? undefined);
}

export function createCniHttp(o: CniHttpOptions): CniHttp {
  const budget = new ByteBudget(o.bodyBudget);
  const routes = new Map<string, Route>([
    [CALL_PATH, async (body) => {
      const out = await o.dispatcher.call(o.validate(body));
      return { status: 200, body: out.stdout, exitStatus: String(out.exitCode) };
    }],
    ['/api/v1/add', async (body) => {
      const r = await handleUpstream(o.dispatcher, 'ADD', body);
      return jsonAnswer(r.status, r.body);
    }],
    ['/api/v1/del', async (body) => {
      const r = await handleUpstream(o.dispatcher, 'DEL', body);
      return r.status === 204 ? { status: 204, body: null } : jsonAnswer(r.status, r.body);
    }],
    ...Object.entries(o.observer?.routes ?? {}),
  ]);
  let closing = false;

  /** The answer to a failed request: a CNI error on the own protocol, the upstream error shape elsewhere. */
  const errorAnswer = (path: string, body: unknown, e: AgentError): RouteAnswer => {
    const status = e.httpStatus === 503 ? 500 : e.httpStatus; // the table decides; 503 is the closing server's
    if (path === CALL_PATH) {
      const stdin = (body as { stdin?: unknown } | undefined)?.stdin;
      const version = typeof stdin === 'string' ? sniffVersion(stdin) ?? LATEST_VERSION : LATEST_VERSION;
      return { status, body: JSON.stringify(encodeError(e, version)), exitStatus: '1' };
    }
    return jsonAnswer(status, { ips: null, mac_address: '', routes: null, mtu: 0, nicname: '', dns: {}, error: e.message });
  };

  async function serve(req: IncomingMessage, res: ServerResponse, path: string, route: Route, t0: number): Promise<void> {
    let held = 0;
    let timer: NodeJS.Timeout | undefined;
    let decoded: { body: unknown } | undefined;
    let answer: RouteAnswer | undefined;
    let closed = false;
    // reported once the answer is known and out, or known after its client went away (the call still ran)
    const report = (): void => {
      if (!closed || !decoded || !answer || !o.observer?.answered) return;
      const x: CniExchange = { path, body: decoded.body, status: answer.status, exitStatus: answer.exitStatus, payload: answer.body ?? '',
        seconds: (performance.now() - t0) / 1000 };
      decoded = undefined;
      try { o.observer.answered(x); } catch (err) { o.log.warn({ err }, 'CNI observer failed'); } // metrics must not take the server down
    };
    res.once('close', () => {
      clearTimeout(timer);
      budget.release(held);
      held = 0;
      closed = true;
      report();
    });
    try {
      const kind = bodyKind(req, o.bodyLimit);
      let body: unknown;
      if (kind !== 'none') {
        const n = await budget.acquire(bodyReservation(req, o.bodyLimit));
        // the client may have gone while it waited: nothing will answer it, so 'close' has already passed
        if (res.destroyed || req.socket.destroyed) { budget.release(n); return; }
        held = n;
        timer = setTimeout(() => {
          o.log.warn({ url: req.url, ms: o.receiveMs }, 'request body not received in time; closing the connection');
          budget.release(held);
          held = 0;
          req.destroy();
        }, o.receiveMs);
        const raw = await readBody(req, o.bodyLimit).finally(() => clearTimeout(timer));
        body = decodeBody(kind, raw);
      }
      decoded = { body };
      answer = await route(body);
    } catch (err) {
      if (err instanceof BodyError) { send(res, errorAnswer(path, undefined, err.error), err.closeConnection || closing); return; }
      if (err instanceof ClientGone) return;
      let e: AgentError;
      if (err instanceof AgentError) e = err;
      else {
        e = agentError('KOA_INTERNAL', err instanceof Error ? err.message : String(err));
        o.log.error({ err, url: req.url }, 'CNI server error');
      }
      answer = errorAnswer(path, decoded?.body, e);
    }
    // while closing, a kept-alive connection is not kept: the server's close waits for it (else it idles until the
    // header deadline)
    send(res, answer, closing);
    report();
  }

  return {
    handle(req, res) {
      const t0 = performance.now();
      if (closing) {
        res.setHeader('Connection', 'close');
        res.writeHead(503, { 'Content-Type': 'application/json', 'Content-Length': String(UNAVAILABLE.length) });
        res.end(UNAVAILABLE);
        return;
      }
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      const route = req.method === 'POST' ? routes.get(path) : undefined;
      if (!route) {
        send(res, jsonAnswer(404, { error: `no route ${req.method} ${url}; use POST ${CALL_PATH}, /api/v1/add or /api/v1/del` }), false);
        return;
      }
      serve(req, res, path, route, t0).catch((err: unknown) => {
        o.log.error({ err, url }, 'CNI server error');
        res.destroy();
      });
    },
    // a request Node's parser refused (garbage, a bad header, headers too large): a short JSON answer, then close
    clientError(err, socket) {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const [status, message] = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Client Timeout']
        : err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Exceeded maximum allowed HTTP header size'] : [400, 'Client Error'];
      const body = `{"error":"${STATUS_CODES[status]}","message":"${message}","statusCode":${status}}`;
      if (socket.writable) socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${body.length}\r\nContent-Type: application/json\r\n\r\n${body}`);
      socket.destroy(err);
    },
    startClosing() { closing = true; },
  };
}
