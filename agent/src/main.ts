// Composition root of the node agent: parse the configuration, build the logger and the infrastructure, wire them
// to the logic, start serving. Later issues add the k8s client, datapath executors and the real pod-wiring backend
// here; every other module receives what it needs as arguments.
import type { Logger, LevelWithSilent } from 'pino';
import { NotReadyBackend, type BackendFactory } from './cni/backend.ts';
import { Dispatcher } from './cni/dispatcher.ts';
import { FakeBackend } from './cni/fake-backend.ts';
import { DEFAULT_SERVER_SOCKET } from './cni/netconf.ts';
import { DEFAULT_DEL_QUEUE_DIR, drainDeleteQueue, startCniServer, type CniApp, type CniServer } from './server/cni-server.ts';
import { instrumentCniApp } from './server/metrics-cni-hook.ts';
import { observabilityFromArgs, startObservability, type Observability } from './observe/index.ts';

/**
 * CNI backends by `--backend` name. `not-ready` (the default until pod wiring lands) refuses ADD with a clear
 * "pod wiring not implemented yet" (code 50); `fake` is the in-memory backend the CNI tests drive.
 */
export const BACKENDS: Record<string, BackendFactory> = {
  'not-ready': () => new NotReadyBackend(),
  fake: () => new FakeBackend(),
};

export interface MainConfig {
  bindSocket: string;
  backend: string;
  delQueueDir: string;
  logLevel: string;
  /** flags we do not handle (yet): upstream passes many; they are reported, not fatal */
  ignored: string[];
}

const FLAGS: Record<string, keyof Omit<MainConfig, 'ignored'>> = {
  'bind-socket': 'bindSocket',
  backend: 'backend',
  'cni-del-queue-dir': 'delQueueDir',
  'log-level': 'logLevel',
};

/** Flags other modules parse from the same argv (observe/index.ts): skipped here, not reported as ignored. */
const HANDLED_ELSEWHERE: Record<string, 'value' | 'bool'> = { 'pprof-port': 'value', 'enable-metrics': 'bool', 'node-name': 'value' };

/** Parses `--flag=value` / `--flag value` (upstream flag names where they exist: `--bind-socket`). */
export function parseArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): MainConfig {
  const cfg: MainConfig = {
    bindSocket: DEFAULT_SERVER_SOCKET,
    backend: 'not-ready',
    delQueueDir: env.KOA_DEL_QUEUE_DIR || DEFAULT_DEL_QUEUE_DIR,
    logLevel: env.KOA_LOG_LEVEL || 'info',
    ignored: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^--?([a-zA-Z0-9_-]+)(?:=(.*))?$/s.exec(a);
    if (!m) throw new Error(`unexpected argument "${a}"`);
    const name = m[1]!;
    const elsewhere = HANDLED_ELSEWHERE[name];
    if (elsewhere) { if (elsewhere === 'value' && m[2] === undefined) i++; continue; }
    const key = FLAGS[name];
    if (!key) { cfg.ignored.push(a); continue; }
    let value = m[2];
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new Error(`flag --${name} needs a value`);
    }
    if (value === '') throw new Error(`flag --${name} must not be empty`);
    cfg[key] = value;
  }
  if (!BACKENDS[cfg.backend]) throw new Error(`--backend must be one of ${Object.keys(BACKENDS).join(', ')} (got "${cfg.backend}")`);
  if (!cfg.bindSocket.startsWith('/')) throw new Error(`--bind-socket must be an absolute path (got "${cfg.bindSocket}")`);
  if (!cfg.delQueueDir.startsWith('/')) throw new Error(`--cni-del-queue-dir must be an absolute path (got "${cfg.delQueueDir}")`);
  return cfg;
}

export interface Agent { cni: CniServer; dispatcher: Dispatcher; log: Logger; stop(): Promise<void> }

/** Builds and starts the agent for `cfg`; `onCniApp` sees the CNI app before it listens (instrumentation). */
export async function startAgent(cfg: MainConfig, log: Logger, onCniApp?: (app: CniApp) => void): Promise<Agent> {
  if (cfg.ignored.length) log.warn({ flags: cfg.ignored }, 'ignoring flags this agent does not handle yet');
  const backend = BACKENDS[cfg.backend]!();
  if (cfg.backend === 'fake') log.warn('using the in-memory fake CNI backend: no pod is really wired (tests only)');
  const dispatcher = new Dispatcher({ backend, log });
  const cni = await startCniServer({ socketPath: cfg.bindSocket, dispatcher, log, ...(onCniApp ? { onApp: onCniApp } : {}) });
  const drained = await drainDeleteQueue(cfg.delQueueDir, dispatcher, log);
  if (drained.completed + drained.kept + drained.discarded > 0) log.info({ ...drained, dir: cfg.delQueueDir }, 'delete queue drained');
  return { cni, dispatcher, log, stop: () => cni.close() };
}

async function main(): Promise<void> {
  let cfg: MainConfig;
  try {
    cfg = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`kube-ovn node agent: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(2);
  }
  // logger, metrics and the health server (:10665) first, so start-up is logged and probed (observe/index.ts)
  let obs: Observability;
  try {
    obs = await startObservability({ ...observabilityFromArgs(process.argv.slice(2)), cniSocketPath: cfg.bindSocket, logLevel: cfg.logLevel as LevelWithSilent });
  } catch (e) {
    process.stderr.write(`kube-ovn node agent: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(2);
  }
  const log = obs.logger;
  const initialised = obs.readiness.flag('node-initialised', 'starting');
  obs.readiness.register('backend', () => cfg.backend !== 'not-ready' || 'pod wiring not available (--backend=not-ready)');
  let agent: Agent;
  try {
    agent = await startAgent(cfg, log, (app) => instrumentCniApp(app, obs.metrics));
    initialised.set(true);
  } catch (e) {
    log.fatal({ err: e }, 'start-up failed');
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    obs.readiness.shutdown();
    agent.stop().then(() => obs.close()).then(() => process.exit(0), (e: unknown) => { log.error({ err: e }, 'shutdown failed'); process.exit(1); });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

if (import.meta.main) await main();
