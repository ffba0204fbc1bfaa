// The agent on a real node the way the kube-ovn-cni DaemonSet runs it: the image's runtime tree (assembled by
// scripts/image-rootfs.sh, the Dockerfile's own source), its install-cni.sh (init container) copying `kube-ovn`,
// `portmap`, `loopback` ... into the node's CNI bin dir and installing 01-kube-ovn.conflist, then its
// start-cniserver.sh (main container) waiting for OVS at /run/openvswitch and exec'ing the agent there. Inside the
// holder /run/openvswitch is the bed's OVS run dir, so the conflist's default server_socket
// /run/openvswitch/kube-ovn-daemon.sock is the agent's socket, and containerd's `kube-ovn` calls reach it.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Bed } from '../bed/bed.ts';
import { stopPid } from '../bed/daemon.ts';
import { waitFor } from '../bed/exec.ts';
import { agentArgs, buildBundle, buildShim, METRICS_PORT, ROOT, type AgentOptions } from '../e2e/agent-harness.ts';
import type { NodeProcess, RealNode } from './node.ts';

/** Builds the shim and the bundle, then assembles the image tree into `out` (node left unstripped: faster). */
export function assembleRootfs(out: string): void {
  buildShim();
  buildBundle();
  execFileSync('bash', [join(ROOT, 'scripts', 'image-rootfs.sh'), out], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, KOA_KEEP_NODE_SYMBOLS: '1' } });
}

/** install-cni.sh into the node's private CNI dirs (POD_IPS = the node IP, as for a hostNetwork pod). */
export async function installCni(rn: RealNode, rootfs: string): Promise<void> {
  await rn.exec(['env', `KOA_CNI_BIN_DIR=${rn.cniBinDir}`, `KOA_KUBECTL_DIR=${join(rn.dir, 'no-kubectl')}`, `POD_IPS=${rn.nodeIp}`,
    'bash', join(rootfs, 'kube-ovn', 'install-cni.sh'),
    `--cni-conf-dir=${rn.cniConfDir}`, `--cni-conf-file=${join(rootfs, 'kube-ovn', '01-kube-ovn.conflist')}`, '--cni-conf-name=01-kube-ovn.conflist']);
}

export interface DaemonSetAgent {
  /** the agent process running now (a new one after `restart()`) */
  readonly proc: NodeProcess;
  http(path: string): Promise<{ status: number; body: string }>;
  metrics(): Promise<string>;
  /** waits for /readyz 200 from the agent running now */
  ready(): Promise<void>;
  /** SIGKILL the agent by its PID (a crash: no drain, its socket file stays); resolves once it has exited */
  kill(): Promise<void>;
  /**
   * Starts the container's entrypoint again with the same flags and environment, as the kubelet restarts a
   * cni-server container that exited (restartPolicy Always); the previous process must have exited.
   */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** start-cniserver.sh inside the node with the bed's flags (socket and OVS paths are the script's defaults). */
export async function startDaemonSetAgent(bed: Bed, rn: RealNode, rootfs: string, o: AgentOptions = {}): Promise<DaemonSetAgent> {
  const state = join(rn.dir, 'agent');
  // socket, OVS socket and delete queue at the defaults the DaemonSet runs with: the CNI executable queues a DEL it
  // cannot deliver under /run/openvswitch/kube-ovn-del-queue (its default, the agent's too), which inside the
  // holder is the bed node's OVS run dir
  const args = agentArgs(bed, rn.node, state, o)
    .filter((a) => !a.startsWith('--ovs-socket=') && !a.startsWith('--bind-socket=') && !a.startsWith('--cni-del-queue-dir='));
  const argv = ['bash', join(rootfs, 'kube-ovn', 'start-cniserver.sh'), ...args];
  // no system bus: a test agent never talks to the host's NetworkManager
  const env = { ...process.env, NODE_NAME: rn.node.name, KUBECONFIG: bed.kube!.kubeconfig, POD_IPS: rn.nodeIp,
    DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${join(rn.dir, 'no-system-bus')}`, ...o.env };
  // bash execs the agent (start-cniserver.sh -> kube-ovn-daemon -> node): this PID is the agent's
  let proc = rn.spawn('agent', argv, env);
  const http = async (path: string) => {
    const r = await rn.node.ns.exec(['curl', '-sS', '-m', '5', '-o', '-', '-w', '\n%{http_code}', `http://127.0.0.1:${METRICS_PORT}${path}`], { allowFail: true, timeoutMs: 10_000 });
    const cut = r.stdout.lastIndexOf('\n');
    return { status: Number(r.stdout.slice(cut + 1)) || 0, body: r.stdout.slice(0, Math.max(0, cut)) };
  };
  const ready = async () => {
    await waitFor('agent /readyz', async () => {
      if (!proc.alive()) throw new Error(`agent exited; see ${proc.log}`);
      return (await http('/readyz')).status === 200;
    }, 180_000, 200);
  };
  // waitReady: false when the controller that annotates the Node starts later (it needs the agent's chassis annotation)
  if (o.waitReady ?? true) await ready();
  return {
    get proc() { return proc; },
    http, ready,
    metrics: async () => (await http('/metrics')).body,
    kill: async () => {
      if (proc.alive()) process.kill(proc.pid, 'SIGKILL');
      await proc.exited;
    },
    restart: async () => {
      if (proc.alive()) throw new Error(`the agent (pid ${proc.pid}) is still running`);
      proc = rn.spawn('agent', argv, env);
    },
    // the DaemonSet's grace period: the agent drains calls in flight before it exits
    stop: () => stopPid(proc.pid, 30_000),
  };
}

/** CNI requests the agent answered, by `command/result` (e.g. `DEL/ok`), from its own /metrics. */
export async function cniRequestCounts(agent: DaemonSetAgent): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const m of (await agent.metrics()).matchAll(/^kube_ovn_agent_cni_request_duration_seconds_count\{([^}]*)\} (\d+)/gm)) {
    const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    const key = `${labels.command}/${labels.result}`;
    counts.set(key, (counts.get(key) ?? 0) + Number(m[2]));
  }
  return counts;
}

/** Sum of `command` requests in `counts`; `ok` true/false keeps only the successful/failed ones. */
export const countOf = (counts: Map<string, number>, command: string, ok?: boolean): number =>
  [...counts].filter(([k]) => k.startsWith(`${command}/`) && (ok === undefined || (k === `${command}/ok`) === ok)).reduce((s, [, n]) => s + n, 0);
