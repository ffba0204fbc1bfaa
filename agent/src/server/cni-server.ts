// The agent's CNI server: node:http on the Unix socket, speaking two protocols (routes and bodies: cni-http.ts).
//   POST /cni/v1/call   the project's own: body {env: {CNI_*...}, stdin: "..."} as forwarded by cni-shim/kube-ovn;
//                       answer 200 with the bytes the shim must print and header `x-cni-exit-status` (0 or 1).
//   POST /api/v1/add    the upstream kube-ovn protocol (CniRequest -> CniResponse), see agent/src/cni/upstream.ts.
//   POST /api/v1/del
// Socket hygiene: the directory is created 0700 when we create it, the socket is chmod 0600, a stale socket left
// by a crashed agent is removed, but start-up is refused when a live agent still answers on it.
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { chmod, lstat, mkdir, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { agentError } from '../errors.ts';
import type { Dispatcher } from '../cni/dispatcher.ts';
import type { ForwardedCall } from '../cni/types.ts';
import { createCniHttp, type CniObserver } from './cni-http.ts';
import { installReadDeadlines, SWEEP_DISABLED_MS } from './read-deadline.ts';

export { CALL_PATH, EXIT_HEADER, type CniExchange, type CniObserver } from './cni-http.ts';
/** Forwarded stdin is bounded to 1 MiB by the shim; JSON escaping grows a netconf by its quotes, so 2 MiB. */
export const BODY_LIMIT = 2 * 1024 * 1024;
/** Bytes of request bodies held at once (raw, decoded and parsed: a few times this): 100 clients sending 1 MiB
 * each wait their turn instead of taking a gigabyte (issue 14). Typical calls are a few KiB: thousands fit. */
export const BODY_BUDGET = 16 * 1024 * 1024;
/** Bound of receiving one request's body, counted from the moment its budget is granted (generous: on a machine at
 * load 30, 10 s cut 19 of 100 simultaneous 1 MiB calls). */
const RECEIVE_MS = 30_000;
/** How long SIGTERM lets in-flight calls finish before the rest are stopped and rolled back (below the DaemonSet's
 * terminationGracePeriodSeconds, 30 s by default). */
export const DEFAULT_DRAIN_MS = 20_000;
export const DEFAULT_DEL_QUEUE_DIR = '/run/openvswitch/kube-ovn-del-queue';

export interface CniServerOptions {
  socketPath: string;
  dispatcher: Dispatcher;
  log: Logger;
  bodyLimit?: number;
  bodyBudget?: number;
  /** bound of receiving a body once its budget is granted (default 30 s) */
  receiveMs?: number;
  /** Sees every exchange and may add routes: metrics (observe/cni-hook.ts). */
  observer?: CniObserver;
}

export interface CniServer {
  readonly server: Server;
  socketPath: string;
  /**
   * Stops accepting at once (new calls see no server: the shim answers code 11, and queues DELs), lets the calls in
   * flight finish for up to `drainMs`, then aborts the rest (each ADD rolls back and answers code 11) and waits for
   * their answers. Idempotent.
   */
  close(drainMs?: number): Promise<void>;
}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Validates the own protocol's body shape; throws KOA_BAD_JSON. */
export function parseForwardedCall(body: unknown): ForwardedCall {
  if (!isObj(body) || !isObj(body.env) || typeof body.stdin !== 'string') {
    throw agentError('KOA_BAD_JSON', 'forwarded call', 'expected {"env": {...}, "stdin": "..."}');
  }
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(body.env)) {
    if (typeof v !== 'string') throw agentError('KOA_BAD_JSON', 'forwarded call', `env.${k} must be a string`);
    env[k] = v;
  }
  return { env, stdin: body.stdin };
}

/** True when something accepts connections on the Unix socket `path` (within `timeoutMs`). */
export function socketAnswers(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ path });
    const done = (v: boolean) => { clearTimeout(t); s.destroy(); resolve(v); };
    const t = setTimeout(() => done(true), timeoutMs); // accepted into the backlog but slow: treat as alive
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Creates the socket directory (0700) and removes a stale socket; refuses a live one or a non-socket file. */
export async function prepareSocketPath(path: string, log?: Logger): Promise<void> {
  const dir = dirname(path);
  const existed = await stat(dir).then((s) => s.isDirectory(), () => false);
  if (!existed) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700); // the umask may have cut bits we do not want anyway; make it exact
  } else {
    // A shared directory such as /run/openvswitch belongs to Open vSwitch too: leave its mode alone.
    const m = (await stat(dir)).mode & 0o777;
    if (m & 0o022) log?.warn({ dir, mode: m.toString(8) }, 'socket directory is writable by group or others');
  }
  const st = await lstat(path).catch((e: NodeJS.ErrnoException) => { if (e.code === 'ENOENT') return null; throw e; });
  if (!st) return;
  if (!st.isSocket()) throw agentError('KOA_IO', `${path} exists and is not a socket; refusing to replace it`);
  if (await socketAnswers(path)) throw agentError('KOA_IO', `another agent is answering on ${path}; refusing to start a second one`);
  log?.info({ path }, 'removing stale CNI socket left by a previous agent');
  await unlink(path).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e; });
}

/** Kept-alive connections idle this long are closed (as with fastify before: `Keep-Alive: timeout=72`). */
const KEEP_ALIVE_MS = 72_000;

/** Builds the HTTP server (not listening) and its closing switch. */
function buildCniServer(opts: Omit<CniServerOptions, 'socketPath'>): { server: Server; startClosing(): void } {
  const http = createCniHttp({
    dispatcher: opts.dispatcher, log: opts.log, bodyLimit: opts.bodyLimit ?? BODY_LIMIT, bodyBudget: opts.bodyBudget ?? BODY_BUDGET,
    receiveMs: opts.receiveMs ?? RECEIVE_MS, validate: parseForwardedCall, ...(opts.observer ? { observer: opts.observer } : {}),
  });
  // read deadlines are per-connection timers, not Node's periodic sweep (read-deadline.ts): 3 s for the headers, as
  // upstream's ReadHeaderTimeout. The body's bound (RECEIVE_MS) starts once its budget is granted (cni-http.ts): a
  // request waiting for the budget has not started sending its body, and a deadline counted from its headers reset
  // it (Node's requestTimeout answered 408 to 68 of 100 simultaneous 1 MiB calls on a loaded machine)
  const server = createServer({ connectionsCheckingInterval: SWEEP_DISABLED_MS, requestTimeout: 0, keepAliveTimeout: KEEP_ALIVE_MS }, http.handle);
  server.on('clientError', http.clientError);
  installReadDeadlines(server, { headersMs: 3000 });
  return { server, startClosing: http.startClosing };
}

/** Prepares the socket path, listens, sets the socket mode to 0600. */
export async function startCniServer(opts: CniServerOptions): Promise<CniServer> {
  await prepareSocketPath(opts.socketPath, opts.log);
  const { server, startClosing } = buildCniServer(opts);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.socketPath, () => { server.off('error', reject); resolve(); });
  });
  await chmod(opts.socketPath, 0o600);
  const ino = (await lstat(opts.socketPath)).ino;
  opts.log.info({ socket: opts.socketPath }, 'CNI server listening');
  let closing: Promise<void> | undefined;
  return {
    server,
    socketPath: opts.socketPath,
    async close(drainMs = DEFAULT_DRAIN_MS) {
      closing ??= (async () => {
        const inFlight = opts.dispatcher.inFlight;
        opts.log.info({ inFlight, drainMs }, 'CNI server stops accepting; draining the calls in flight');
        // new connections are refused at once (the listening socket goes, and Node unlinks its file); idle kept-alive
        // ones are closed; busy ones close with their answer (cni-http.ts), so the server's close ends with the calls
        startClosing();
        const closed = new Promise<void>((r) => server.close(() => r()));
        server.closeIdleConnections();
        let timer: NodeJS.Timeout | undefined;
        const drained = await Promise.race([closed.then(() => true), new Promise<false>((r) => { timer = setTimeout(() => r(false), drainMs); })]);
        clearTimeout(timer);
        if (!drained) {
          opts.log.warn({ inFlight: opts.dispatcher.inFlight }, 'drain period over: stopping the calls still in flight (they roll back and answer code 11)');
          opts.dispatcher.abortAll(new Error('the agent is shutting down'));
          await closed;
        }
      })();
      await closing;
      // Remove the socket only if it is still ours (not one a newer agent has bound since).
      const st = await lstat(opts.socketPath).catch(() => null);
      if (st && st.ino === ino) await unlink(opts.socketPath).catch(() => undefined);
    },
  };
}

export interface DrainSummary { completed: number; kept: number; discarded: number }

/**
 * Completes the DELs the shim queued while the agent was unreachable (files `<containerid>-<ifname>.json`, each a
 * forwarded call). Done or permanently invalid entries are removed; those that fail with "try again later" (11)
 * stay for the next start.
 */
export async function drainDeleteQueue(dir: string, dispatcher: Dispatcher, log?: Logger): Promise<DrainSummary> {
  const sum: DrainSummary = { completed: 0, kept: 0, discarded: 0 };
  const names = await readdir(dir).catch((e: NodeJS.ErrnoException) => { if (e.code === 'ENOENT') return [] as string[]; throw e; });
  for (const name of names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort()) {
    const file = join(dir, name);
    let call: ForwardedCall;
    try {
      const st = await stat(file);
      if (!st.isFile() || st.size > BODY_LIMIT) throw new Error(`not a regular file of at most ${BODY_LIMIT} bytes`);
      call = parseForwardedCall(JSON.parse(await readFile(file, 'utf8')));
      if (call.env.CNI_COMMAND !== 'DEL') throw new Error(`CNI_COMMAND is ${call.env.CNI_COMMAND ?? 'missing'}, not DEL`);
    } catch (e) {
      log?.error({ file, err: e }, 'discarding unreadable delete-queue entry');
      await unlink(file).catch(() => undefined);
      sum.discarded++;
      continue;
    }
    const out = await dispatcher.call(call);
    if (out.exitCode === 0) {
      await unlink(file).catch(() => undefined);
      sum.completed++;
      log?.info({ file, containerId: call.env.CNI_CONTAINERID }, 'completed queued DEL');
      continue;
    }
    let code = 0;
    try { code = (JSON.parse(out.stdout) as { code?: number }).code ?? 0; } catch { /* keep 0 */ }
    if (code === 11) {
      sum.kept++;
      log?.warn({ file, answer: out.stdout }, 'queued DEL must be retried later; keeping it');
    } else {
      await unlink(file).catch(() => undefined);
      sum.discarded++;
      log?.error({ file, answer: out.stdout }, 'queued DEL failed permanently; discarding it');
    }
  }
  return sum;
}
