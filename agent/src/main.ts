// Composition root of the node agent: parse the configuration, start logging/metrics/health, build the
// infrastructure and the pod-wiring backend (agent.ts), serve the CNI socket, stop cleanly on SIGTERM/SIGINT.
// Every other module receives what it needs as arguments.
import type { LevelWithSilent } from 'pino';
import { parseArgs, startAgent, type Agent, type AgentConfig } from './agent.ts';
import { startObservability, type Observability } from './observe/index.ts';
import { agentRevision, agentVersion } from './observe/version.ts';
import { instrumentCniApp } from './server/metrics-cni-hook.ts';
import { runInstallCniConfig, wantsInstallCniConfig } from './install-cni-config.ts';

export { BACKEND_NAMES, parseArgs, startAgent, type Agent, type AgentConfig } from './agent.ts';

async function main(): Promise<void> {
  const fatal = (e: unknown, code: number): never => {
    process.stderr.write(`kube-ovn node agent: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(code);
  };
  // `kube-ovn-daemon --install-cni-config` (the install-cni init container): install the conflist and exit
  if (wantsInstallCniConfig(process.argv.slice(2))) process.exit(await runInstallCniConfig(process.argv.slice(2)));
  let cfg: AgentConfig;
  try {
    cfg = parseArgs(process.argv.slice(2));
  } catch (e) {
    return fatal(e, 2);
  }
  // logger, metrics and the health server (--pprof-port) first, so start-up is logged and probed
  let obs: Observability;
  try {
    obs = await startObservability({
      nodeName: cfg.nodeName, version: agentVersion(process.env), revision: agentRevision(process.env),
      cniSocketPath: cfg.bindSocket, port: cfg.pprofPort, enableMetrics: cfg.enableMetrics, addresses: cfg.listenAddresses,
      logLevel: cfg.logLevel as LevelWithSilent,
    });
  } catch (e) {
    return fatal(e, 2);
  }
  const log = obs.logger;
  const initialised = obs.readiness.flag('node-initialised', 'starting');
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
    agent = await startAgent(cfg, log, { onCniApp: (app) => instrumentCniApp(app, obs.metrics), metrics: obs.metrics, readiness: obs.readiness });
    initialised.set(true);
    if (stopping) await agent.stop();
  } catch (e) {
    log.fatal({ err: e }, 'start-up failed');
    process.exit(1);
  }
}

if (import.meta.main) await main();
