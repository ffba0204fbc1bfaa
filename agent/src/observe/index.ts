// One call for main.ts: logger, metrics, readiness registry and the metrics/health server, wired together.
//
//   const obs = await startObservability({ nodeName, version, cniSocketPath, port: cfg.pprofPort });
//   obs.readiness.flag('node-initialised') ...; pass obs.metrics.observeX callbacks to the modules;
//   on shutdown: await obs.close() (readiness fails first, then the server stops).

import type { LevelWithSilent } from 'pino';
import { createAgentMetrics, type AgentMetrics, type AgentMetricsOptions } from './metrics.ts';
import { createLogger, type LogControl, type Logger, type LoggerOptions } from './log.ts';
import { Readiness, probeUnixSocket, type SocketProbeMode } from '../server/health.ts';
import { DEFAULT_METRICS_PORT, listenAddressesFromEnv, startMetricsServer, type MetricsServer } from '../server/metrics-server.ts';

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
        logger.info('metrics server stopped');
      })();
      return closing;
    },
  };
}
