// One call for main.ts: logger, metrics, readiness registry and the metrics/health server, wired together.
//
//   const obs = await startObservability({ nodeName, version, cniSocketPath, port: cfg.pprofPort });
//   obs.readiness.flag('node-initialised') ...; pass obs.metrics.observeX callbacks to the modules;
//   on shutdown: await obs.close() (readiness fails first, then the server stops).

import { hostname } from 'node:os';
import type { LevelWithSilent } from 'pino';
import { parseFlags, parseGoBool, parseInteger } from '../config/flags.ts';
import { createAgentMetrics, type AgentMetrics, type AgentMetricsOptions } from './metrics.ts';
import { createLogger, type LogControl, type Logger, type LoggerOptions } from './log.ts';
import { Readiness, probeUnixSocket, type SocketProbeMode } from './health.ts';
import { DEFAULT_METRICS_PORT, listenAddressesFromEnv, startMetricsServer, type MetricsServer } from './metrics-server.ts';
import { agentRevision, agentVersion } from './version.ts';

export interface ObservabilityOptions {
  /** NODE_NAME (upstream label value of node_name / hostname). */
  nodeName: string;
  version: string;
  revision?: string;
  /** The CNI Unix socket (`--bind-socket`): /livez and the built-in `cni-socket` readiness check probe it. */
  cniSocketPath: string;
  /** `--pprof-port`, default 10665; 0 = ephemeral. */
  port?: number;
  /** Default: upstream rule (ENABLE_BIND_LOCAL_IP / POD_IPS, else 0.0.0.0). */
  addresses?: readonly string[];
  /** `--enable-metrics` (default true). */
  enableMetrics?: boolean;
  logLevel?: LevelWithSilent;
  logDestination?: LoggerOptions['destination'];
  /** Install the SIGUSR2 level toggle (default true). */
  handleSignals?: boolean;
  /** How /livez probes the CNI socket (default `http`: any HTTP answer). */
  livenessMode?: SocketProbeMode;
  allowRemoteLogLevel?: boolean;
  /** Passed to createAgentMetrics (tests: `defaultMetrics: false`, a fake `/proc`). */
  metricsOptions?: Pick<AgentMetricsOptions, 'defaultMetrics' | 'sysctls' | 'registry'>;
}

export interface Observability {
  metrics: AgentMetrics;
  logger: Logger;
  log: LogControl;
  readiness: Readiness;
  server: MetricsServer;
  /** Readiness fails from now on, the server closes, the signal handler goes. Idempotent. */
  close(): Promise<void>;
}

export async function startObservability(o: ObservabilityOptions): Promise<Observability> {
  const metrics = createAgentMetrics({ nodeName: o.nodeName, version: o.version, revision: o.revision, ...o.metricsOptions });
  const log = createLogger({
    level: o.logLevel ?? 'info', destination: o.logDestination, base: { node: o.nodeName }, onLine: metrics.countLogLine,
  });
  const logger = log.logger;
  const readiness = new Readiness({
    onEvaluated: (e) => {
      for (const c of e.checks) metrics.setReadiness(c.name, c.ok);
      if (e.ok) metrics.markReady(process.uptime());
    },
  });
  const probe = (): Promise<true | string> => probeUnixSocket(o.cniSocketPath, 2000, o.livenessMode ?? 'http');
  readiness.register('cni-socket', probe);
  const unhook = o.handleSignals === false ? () => {} : log.handleSignal('SIGUSR2');
  let server: MetricsServer;
  try {
    server = await startMetricsServer({
      addresses: o.addresses ?? listenAddressesFromEnv(), port: o.port ?? DEFAULT_METRICS_PORT,
      enableMetrics: o.enableMetrics ?? true, metrics, readiness, liveness: probe, log, logger,
      allowRemoteLogLevel: o.allowRemoteLogLevel ?? false,
    });
  } catch (e) {
    unhook();
    throw e;
  }
  let closing: Promise<void> | undefined;
  return {
    metrics, logger, log, readiness, server,
    close: () => {
      closing ??= (async () => {
        readiness.shutdown();
        unhook();
        await server.close();
        metrics.close();
        logger.info('metrics server stopped');
      })();
      return closing;
    },
  };
}

/** The observability settings from the upstream flags and environment, for a main.ts that does not use the config
 * module yet: `--pprof-port` (10665), `--enable-metrics` (true), `--node-name` / KUBE_NODE_NAME / NODE_NAME /
 * hostname, ENABLE_BIND_LOCAL_IP + POD_IPS, version and revision. Other flags are ignored here. Throws on a bad
 * value of one of these flags. (With the config module: nodeName, pprofPort, enableMetrics, listenAddresses.) */
export function observabilityFromArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env):
  Pick<ObservabilityOptions, 'nodeName' | 'port' | 'enableMetrics' | 'addresses' | 'version' | 'revision'> {
  const { values } = parseFlags(argv, [
    { name: 'pprof-port', kind: 'int' }, { name: 'enable-metrics', kind: 'bool' }, { name: 'node-name', kind: 'string' },
  ]);
  const portText = values.get('pprof-port');
  const port = portText === undefined ? DEFAULT_METRICS_PORT : parseInteger(portText);
  if (port === undefined || port < 0 || port > 65535) throw new Error(`--pprof-port=${JSON.stringify(portText)}: expected a port number`);
  const metricsText = values.get('enable-metrics');
  const enableMetrics = metricsText === undefined ? true : parseGoBool(metricsText);
  if (enableMetrics === undefined) throw new Error(`--enable-metrics=${JSON.stringify(metricsText)}: not a boolean`);
  const nodeName = (values.get('node-name') || env.KUBE_NODE_NAME || env.NODE_NAME || hostname()).trim().toLowerCase();
  return { nodeName, port, enableMetrics, addresses: listenAddressesFromEnv(env), version: agentVersion(env), revision: agentRevision(env) };
}
