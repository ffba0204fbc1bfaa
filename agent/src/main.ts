// Composition root of the node agent: parse the configuration, start logging/metrics/health, start the agent's
// components (agent.ts), stop cleanly on SIGTERM/SIGINT. Every other module receives what it needs as arguments.
// Test entry points (integration/support/) call runMain() with hooks; production runs it with none.
import type { LevelWithSilent } from 'pino';
import { parseArgs, startAgent, type Agent, type AgentConfig, type AgentHooks } from './agent.ts';
import { startObservability, type Observability } from './observe/index.ts';
import { agentRevision, agentVersion } from './observe/version.ts';
import { cniMetricsObserver } from './observe/cni-hook.ts';
import { levelFromVerbosity } from './observe/log.ts';
import { runInstallCniConfig, wantsInstallCniConfig } from './install-cni-config.ts';
import { flagsUsage, wantsHelp } from './config/flags-doc.ts';

export { parseArgs, startAgent, type Agent, type AgentConfig, type AgentHooks } from './agent.ts';

/** Hooks a test entry point may pass: everything but what main wires itself. */
export type MainHooks = Pick<AgentHooks, 'backend' | 'beforeStep'>;

/** --log-level / KOA_LOG_LEVEL when given; else klog's --v as upstream's DaemonSet passes it (≤3 info, 4-5 debug, ≥6 trace). */
export function logLevelOf(cfg: AgentConfig, argv: readonly string[], env: NodeJS.ProcessEnv): LevelWithSilent {
  const explicit = argv.some((a) => /^--?log-level(=|$)/.test(a)) || (env.KOA_LOG_LEVEL ?? '') !== '';
  return explicit ? cfg.logLevel as LevelWithSilent : levelFromVerbosity(cfg.logVerbosity);
}

export async function runMain(argv: readonly string[], hooks: MainHooks = {}): Promise<void> {
  const fatal = (e: unknown, code: number): never => {
    process.stderr.write(`kube-ovn node agent: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(code);
  };
  // `kube-ovn-daemon --help`: the flags, on stdout, exit 0 (upstream's Go binary prints its flags too)
  if (wantsHelp(argv)) {
    // exit only once written: a runtime's stdout can be a non-blocking FIFO (containerd), where a write of the
    // 8+ KB text is partly queued and process.exit() would cut it (seen in CI under load)
    await new Promise<void>((resolve) => process.stdout.write(flagsUsage(), () => resolve()));
    process.exit(0);
  }
  // `kube-ovn-daemon --install-cni-config` (the install-cni init container): install the conflist and exit
  if (wantsInstallCniConfig(argv)) process.exit(await runInstallCniConfig([...argv]));
  let cfg: AgentConfig;
  try {
    cfg = parseArgs(argv);
  } catch (e) {
    return fatal(e, 2);
  }
  // logger, metrics and the health server (--pprof-port) first, so start-up is logged and probed
  let obs: Observability;
  try {
    obs = await startObservability({
      nodeName: cfg.nodeName, version: agentVersion(process.env), revision: agentRevision(process.env),
      cniSocketPath: cfg.bindSocket, port: cfg.pprofPort, enableMetrics: cfg.enableMetrics, addresses: cfg.listenAddresses,
      logLevel: logLevelOf(cfg, argv, process.env),
    });
  } catch (e) {
    return fatal(e, 2);
  }
  const log = obs.logger;
  let agent: Agent | undefined;
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    obs.readiness.shutdown();
    (agent?.stop() ?? Promise.resolve()).then(() => obs.close())
      .then(() => process.exit(0), (e: unknown) => { log.error({ err: e }, 'shutdown failed'); process.exit(1); });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    agent = await startAgent(cfg, log, {
      ...hooks, cniObserver: cniMetricsObserver(obs.metrics), metrics: obs.metrics, readiness: obs.readiness,
    });
    log.info({ components: agent.components }, 'agent started');
    if (stopping) await agent.stop();
  } catch (e) {
    log.fatal({ err: e }, 'start-up failed');
    process.exit(1);
  }
}

if (import.meta.main) await runMain(process.argv.slice(2));
