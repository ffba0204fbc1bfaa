// Per-connection read deadlines for an http.Server, in place of Node's connection sweep.
//
// Node enforces `headersTimeout` / `requestTimeout` only from a sweep over all connections that runs every
// `connectionsCheckingInterval` ms for as long as the server listens, busy or idle. With the 1 s sweep a 3 s
// header deadline needs, an idle agent woke every second for nothing. Here each connection carries its own
// one-shot timer instead: armed at connect (the headers must arrive within `headersMs`), re-armed when a request's
// headers are in (its body must arrive within `requestMs`), cleared once the body is read. A connection that is
// waiting for its answer holds no timer (handler time is bounded by the backend); after the answer, a kept-alive
// connection gets the header deadline again. No connection, no timer. Node's own sweep is pushed out of the way.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

export interface ReadDeadlines {
  /** from connect (or from the previous answer) to the end of the request headers */
  readonly headersMs: number;
  /** from the end of the headers to the end of the body; absent: the server bounds the body itself (cni-server.ts
   * starts that bound when the request's body budget is granted) */
  readonly requestMs?: number;
}

/** Node's sweep interval once our deadlines are installed: the largest timer Node accepts (about 24.8 days). */
export const SWEEP_DISABLED_MS = 2 ** 31 - 1;

export function installReadDeadlines(server: Server, d: ReadDeadlines): void {
  const timers = new WeakMap<Socket, NodeJS.Timeout>();
  const arm = (socket: Socket, ms: number, what: string): void => {
    clear(socket);
    const t = setTimeout(() => { timers.delete(socket); socket.destroy(new Error(`${what} not received within ${ms} ms`)); }, ms);
    t.unref();
    timers.set(socket, t);
  };
  const clear = (socket: Socket): void => {
    const t = timers.get(socket);
    if (t) { clearTimeout(t); timers.delete(socket); }
  };
  // read by Node when the server starts listening (typed only as a constructor option)
  (server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = SWEEP_DISABLED_MS;
  server.on('connection', (socket: Socket) => {
    arm(socket, d.headersMs, 'request headers');
    socket.once('close', () => clear(socket));
  });
  server.on('request', (req, res) => {
    const socket = req.socket;
    if (req.complete || d.requestMs === undefined) clear(socket);
    else {
      arm(socket, d.requestMs, 'request body');
      req.once('end', () => clear(socket));
    }
    res.once('finish', () => { if (!socket.destroyed) arm(socket, d.headersMs, 'request headers'); });
  });
}
