// The CNI dispatcher: one forwarded call (CNI_* environment + stdin) in, the bytes to print and the exit status
// out. It parses and validates, applies the spec's per-version rules (CHECK >= 0.4.0, STATUS/GC >= 1.1.0),
// serializes per container, calls the backend and converts the result to the netconf's version. Every failure
// becomes a CNI error JSON with the code from agent/src/errors.ts; nothing here throws to the caller.
import type { Logger } from 'pino';
import { agentError, AgentError, toAgentError } from '../errors.ts';
import type { CniBackend } from './backend.ts';
import { atLeast, decodeResult, encodeError, encodeResult, VERSION_INFO_JSON } from './codec.ts';
import { parseCommand, parseEnv, requirePod } from './env.ts';
import { KeyedLock } from './lock.ts';
import { parseNetconf, sniffVersion } from './netconf.ts';
import {
  LATEST_VERSION, type CallOutcome, type CniCommand, type CniRequest, type CniResult, type ForwardedCall,
  type SpecVersion,
} from './types.ts';

/** stdin larger than this is refused (code 5); the shim enforces the same bound before sending. */
export const MAX_STDIN_BYTES = 1024 * 1024;

const MIN_VERSION: Partial<Record<CniCommand, SpecVersion>> = { CHECK: '0.4.0', STATUS: '1.1.0', GC: '1.1.0' };

export interface DispatcherOptions {
  backend: CniBackend;
  log?: Logger;
  maxStdinBytes?: number;
  /** a call starts: returns its end (the metrics' event-loop lag sampling runs while calls are in flight) */
  busy?: () => () => void;
}

export class Dispatcher {
  readonly backend: CniBackend;
  readonly lock = new KeyedLock();
  /** aborted at shutdown once the drain period is over: ADDs still running roll back and answer code 11 */
  readonly #stop = new AbortController();
  #inFlight = 0;
  private readonly log: Logger | undefined;
  private readonly maxStdin: number;
  private readonly busy: (() => () => void) | undefined;

  constructor(opts: DispatcherOptions) {
    this.backend = opts.backend;
    this.log = opts.log;
    this.maxStdin = opts.maxStdinBytes ?? MAX_STDIN_BYTES;
    this.busy = opts.busy;
  }

  /** ADD/DEL/CHECK calls being handled now (both protocols) */
  get inFlight(): number { return this.#inFlight; }

  /** Stops every ADD in flight (shutdown after the drain period); later calls still run (DELs must). */
  abortAll(reason: Error): void { this.#stop.abort(reason); }

  /** Handles one forwarded CNI call. Never throws. */
  async call(call: ForwardedCall): Promise<CallOutcome> {
    const version = sniffVersion(call.stdin) ?? LATEST_VERSION;
    const t0 = performance.now();
    let command: CniCommand | undefined;
    try {
      command = parseCommand(call.env.CNI_COMMAND);
      const stdout = await this.run(command, call);
      this.log?.debug({ command, containerId: call.env.CNI_CONTAINERID, ms: performance.now() - t0 }, 'cni call done');
      return { stdout, exitCode: 0 };
    } catch (e) {
      const err = toAgentError(e);
      const level = err.code === 'KOA_INTERNAL' ? 'error' : 'warn';
      this.log?.[level]({ command, containerId: call.env.CNI_CONTAINERID, ifName: call.env.CNI_IFNAME, code: err.code, err: err.cause ?? undefined, ms: performance.now() - t0 }, err.message);
      return { stdout: JSON.stringify(encodeError(err, version)), exitCode: 1 };
    }
  }

  private async run(command: CniCommand, call: ForwardedCall): Promise<string> {
    if (command === 'VERSION') return VERSION_INFO_JSON;
    const size = Buffer.byteLength(call.stdin);
    if (size > this.maxStdin) throw agentError('KOA_TOO_LARGE', size, this.maxStdin);
    const netconf = parseNetconf(call.stdin, { lenientPrevResult: command === 'DEL' });
    const min = MIN_VERSION[command];
    if (min && !atLeast(netconf.cniVersion, min)) throw agentError('KOA_VERSION_FORBIDS', netconf.cniVersion, command, min);
    const env = parseEnv(call.env);
    if (command === 'STATUS') { await this.backend.status(netconf); return ''; }
    if (command === 'GC') { await this.backend.gc({ netconf, validAttachments: netconf.validAttachments ?? [] }); return ''; }

    // a DEL without it still goes on: the call reached this agent, and Multus (v4 thin plugin) sends its cluster
    // network's DEL from a cached copy of the conflist re-encoded without the keys it does not know, server_socket
    // among them; refusing it (as upstream does) leaves kubelet retrying the DEL forever and the pod never finished
    if (netconf.serverSocket === '' && command !== 'DEL') {
      throw agentError('KOA_BAD_NETCONF', `server_socket is required in cni.conf${netconf.ipamMode ? ' (in the ipam object in IPAM-only mode)' : ''}`);
    }
    if (env.delIgnoredBecause) {
      // an input ADD rejects: no ADD can have created anything for it
      this.log?.info({ containerId: call.env.CNI_CONTAINERID, ifName: call.env.CNI_IFNAME, why: env.delIgnoredBecause }, 'DEL: nothing to remove (no ADD accepts this input)');
      return '';
    }
    let pod: ReturnType<typeof requirePod>;
    try {
      pod = requirePod(env.args);
    } catch (e) {
      if (command !== 'DEL') throw e;
      // ADD refuses a call without the pod's name, so no ADD can have wired anything for this one
      this.log?.info({ containerId: call.env.CNI_CONTAINERID, ifName: call.env.CNI_IFNAME, why: (e as Error).message }, 'DEL: nothing to remove (no ADD accepts this input)');
      return '';
    }
    const req: CniRequest = {
      command: command as CniRequest['command'],
      containerId: env.containerId,
      netns: env.netns,
      ifName: env.ifName,
      podName: pod.podName,
      podNamespace: pod.podNamespace,
      args: env.args,
      cniPath: env.cniPath,
      netconf,
      via: 'cni',
    };
    if (env.args.podUid) req.podUid = env.args.podUid;
    if (env.args.infraContainerId) req.infraContainerId = env.args.infraContainerId;

    switch (req.command) {
      case 'ADD': return JSON.stringify(encodeResult(await this.add(req), netconf.cniVersion));
      case 'DEL': await this.del(req); return '';
      case 'CHECK': {
        if (!netconf.prevResult) throw agentError('KOA_BAD_NETCONF', 'CHECK requires prevResult');
        await this.check(req, netconf.prevResult);
        return '';
      }
    }
  }

  /** ADD under the container's lock; the backend's result is validated before anyone prints it. */
  async add(req: CniRequest): Promise<CniResult> {
    const r = await this.#counted(() => this.lock.run(req.containerId, () => {
      if (this.#stop.signal.aborted) throw agentError('KOA_TRY_AGAIN', 'the agent is shutting down; retry');
      return this.backend.add(req, this.#stop.signal);
    }));
    try {
      decodeResult(encodeResult(r, LATEST_VERSION), LATEST_VERSION, 'result');
    } catch (e) {
      throw agentError('KOA_INTERNAL', `backend returned an invalid result: ${e instanceof AgentError ? e.message : String(e)}`);
    }
    return r;
  }

  async del(req: CniRequest): Promise<void> {
    await this.#counted(() => this.lock.run(req.containerId, () => this.backend.del(req)));
  }

  async check(req: CniRequest, prev: CniResult): Promise<void> {
    await this.#counted(() => this.lock.run(req.containerId, () => this.backend.check(req, prev)));
  }

  async #counted<T>(f: () => Promise<T>): Promise<T> {
    this.#inFlight++;
    const done = this.busy?.();
    try {
      return await f();
    } finally {
      this.#inFlight--;
      done?.();
    }
  }
}

