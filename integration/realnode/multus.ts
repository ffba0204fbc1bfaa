// Multus v4.3.0 (built by scripts/build-fixtures.sh from ../shared/upstream) on the real node, in either of its two
// forms. containerd reads only the first file of the node's CNI conf dir (max_conf_num = 1): 00-multus.conf, in front
// of 01-kube-ovn.conflist. Multus runs the kube-ovn conflist as the cluster network (eth0) and, for a pod annotated
// k8s.v1.cni.cncf.io/networks, each NetworkAttachmentDefinition's config as net1, net2, ...
// - thin: the `multus` executable in the node's CNI bin dir does all of it, once per CNI call; we write 00-multus.conf.
// - thick: `multus-shim` is the executable (it only forwards each call to a socket); `multus-daemon`, a long-running
//   process in the node's namespaces, answers there, with informers on the node's pods and the NADs. It writes
//   00-multus.conf itself (multusConfigFile "auto": generated from the first other conflist of the dir), as the
//   release's deployments/multus-daemonset-thick.yml runs it.
// The NAD CRD comes from the release's own deployments/multus-daemonset.yml.
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stopPid } from '../bed/daemon.ts';
import { waitFor } from '../bed/exec.ts';
import type { Kube } from '../bed/kube.ts';
import { applyCrds, FIXTURE_BIN } from '../bed/kube.ts';
import type { KubeApi } from '../bed/kubeapi.ts';
import type { DaemonSetAgent } from './daemonset.ts';
import type { NodeProcess, RealNode } from './node.ts';

export const MULTUS_VERSION = process.env.MULTUS_VERSION ?? 'v4.3.0';
const MULTUS_SRC = join(process.env.KOA_FIXTURE_CACHE ?? '/var/cache/kube-ovn-node-agent', 'src', `multus-cni-${MULTUS_VERSION}`);
export const MULTUS_CRDS = join(MULTUS_SRC, 'deployments', 'multus-daemonset.yml');

export type MultusMode = 'thin' | 'thick';
export const MULTUS_MODES: readonly MultusMode[] = ['thin', 'thick'];
/**
 * The form the Multus tests that run one of them use (multus-controller, multus-shapes): thick, the issue's
 * configuration, unless KOA_MULTUS_MODE=thin. multus.test.ts runs both.
 */
export const MULTUS_MODE: MultusMode = multusMode(process.env.KOA_MULTUS_MODE ?? 'thick');

function multusMode(v: string): MultusMode {
  if (v !== 'thin' && v !== 'thick') throw new Error(`KOA_MULTUS_MODE must be thin or thick, not ${JSON.stringify(v)}`);
  return v;
}

const BINARIES: Record<MultusMode, readonly string[]> = { thin: ['multus'], thick: ['multus-daemon', 'multus-shim'] };

/** Why Multus (`mode`) cannot run here (binaries or unpacked release missing; not built with KOA_BUILD_UPSTREAM=0), or undefined. */
export function multusMissing(mode: MultusMode = 'thin'): string | undefined {
  const gone = [...BINARIES[mode].map((b) => join(FIXTURE_BIN, b)), MULTUS_CRDS].filter((f) => !existsSync(f));
  return gone.length ? `fixture missing (${gone.join(', ')}): build it with \`npm run setup\` (without KOA_BUILD_UPSTREAM=0)` : undefined;
}

export function checkMultus(mode: MultusMode = 'thin'): void {
  const missing = multusMissing(mode);
  if (missing) throw new Error(missing);
}

/**
 * The NetworkAttachmentDefinition CRD from the release. Install it before kube-ovn-controller starts, as in a cluster
 * where Multus is deployed first: the controller starts its NAD informer at start when the CRD is there, and
 * otherwise only finds it on a check every 10 s (logging "Network attachment CRD not found at startup").
 */
export async function installNadCrd(kube: Kube): Promise<void> {
  if (!existsSync(MULTUS_CRDS)) throw new Error(`${MULTUS_CRDS} missing: build the fixtures with \`npm run setup\``);
  await applyCrds(kube.api, MULTUS_CRDS);
}

export interface MultusOptions {
  /** Default thin. */
  mode?: MultusMode;
  /**
   * The pods' default network (eth0). Default: our 01-kube-ovn.conflist (thin: that file's path; thick: what the
   * daemon generates from it, also that path). A directory holding a conflist keeps the plugins' own keys for DEL
   * (README, "Multus v4.3.0 and a cluster network given as a .conflist path": the thick daemon runs the same code).
   */
  clusterNetwork?: string;
}

export interface Multus {
  readonly mode: MultusMode;
  /** Multus' log (thin: the executable's; thick: the daemon's and the shim's). */
  readonly log: string;
  /** thick: the multus-daemon process (in the node's namespaces). */
  readonly daemon?: NodeProcess;
  /**
   * thick: stops the daemon by its PID (SIGTERM; it removes the 00-multus.conf it wrote on its way out). thin:
   * nothing runs. The node's stop() kills a daemon nobody stopped, like any process left in its namespaces.
   */
  stop(): Promise<void>;
}

/** Multus as the node's primary CNI config (the NAD CRD is installNadCrd's). */
export async function installMultus(kube: Kube, rn: RealNode, opts: MultusOptions = {}): Promise<Multus> {
  const mode = opts.mode ?? 'thin';
  checkMultus(mode);
  return mode === 'thin' ? installThin(kube, rn, opts.clusterNetwork) : installThick(kube, rn, opts.clusterNetwork);
}

/** The multus binary and 00-multus.conf (atomically: containerd watches the dir). */
function installThin(kube: Kube, rn: RealNode, clusterNetwork = join(rn.cniConfDir, '01-kube-ovn.conflist')): Multus {
  copyFileSync(join(FIXTURE_BIN, 'multus'), join(rn.cniBinDir, 'multus'));
  const log = join(rn.dir, 'multus.log');
  const conf = {
    cniVersion: '0.3.1', name: 'multus-cni-network', type: 'multus',
    kubeconfig: kube.kubeconfig,
    clusterNetwork,
    binDir: rn.cniBinDir,
    logLevel: 'verbose', logFile: log,
  };
  const tmp = join(rn.cniConfDir, '.00-multus.conf.tmp');
  writeFileSync(tmp, JSON.stringify(conf, null, 2));
  renameSync(tmp, join(rn.cniConfDir, '00-multus.conf'));
  return { mode: 'thin', log, stop: async () => undefined };
}

/**
 * multus-shim in the node's CNI bin dir, multus-daemon started inside the node (the holder's mount and network
 * namespaces, as kubelet and containerd run), its config and log under the node's dir; resolves once the daemon
 * listens and has written 00-multus.conf.
 */
async function installThick(kube: Kube, rn: RealNode, clusterNetwork: string | undefined): Promise<Multus> {
  const tmpShim = join(rn.cniBinDir, '.multus-shim.tmp');
  copyFileSync(join(FIXTURE_BIN, 'multus-shim'), tmpShim);
  renameSync(tmpShim, join(rn.cniBinDir, 'multus-shim'));
  // The daemon's API client is always the in-cluster one (KUBERNETES_SERVICE_HOST/PORT, then the token and CA under
  // /var/run/secrets/kubernetes.io/serviceaccount): /var/run is /run, the holder's private run dir. The token is the
  // bed's admin token, where the DaemonSet would mount its ServiceAccount's.
  const sa = join(rn.runDir, 'secrets', 'kubernetes.io', 'serviceaccount');
  mkdirSync(sa, { recursive: true });
  writeFileSync(join(sa, 'token'), kube.adminToken);
  copyFileSync(kube.caFile, join(sa, 'ca.crt'));
  writeFileSync(join(sa, 'namespace'), 'kube-system');
  const api = new URL(kube.server); // https://127.0.0.1:<port>, which the bed exposes inside the node namespace too

  const dir = join(rn.dir, 'multus-daemon');
  mkdirSync(dir);
  const log = join(rn.dir, 'multus.log');
  // the release's daemon-config.json (deployments/multus-daemonset-thick.yml) with the node's own dirs, no chrootDir
  // (the daemon runs in the node's mount namespace, not in a pod), and the delegates' binDir. Every key here is also
  // laid over each call's config by the daemon, so a clusterNetwork given here is the one the calls use.
  const conf = {
    cniVersion: '0.3.1',
    logLevel: 'verbose', logFile: log,
    // inside the node: the holder's /run, private to it. The shim's default socket dir is the same.
    socketDir: '/run/multus/',
    cniConfigDir: rn.cniConfDir,
    multusAutoconfigDir: rn.cniConfDir,
    multusConfigFile: 'auto',
    binDir: rn.cniBinDir,
    ...(clusterNetwork ? { clusterNetwork } : {}),
  };
  const confFile = join(dir, 'daemon-config.json');
  writeFileSync(confFile, JSON.stringify(conf, null, 2));
  const daemon = rn.spawn('multus-daemon', [join(FIXTURE_BIN, 'multus-daemon'), `-config=${confFile}`], {
    ...process.env, KUBERNETES_SERVICE_HOST: api.hostname, KUBERNETES_SERVICE_PORT: api.port, MULTUS_NODE_NAME: rn.node.name,
  });
  const stop = async () => {
    await stopPid(daemon.pid, 10_000);
    await daemon.exited; // the child's exit reaches us a moment after the PID is gone
  };
  try {
    const generated = join(rn.cniConfDir, '00-multus.conf');
    await waitFor('multus-daemon listening and 00-multus.conf written', () => {
      if (!daemon.alive()) throw new Error(`multus-daemon exited; see ${daemon.log} and ${log}`);
      if (!existsSync(join(rn.runDir, 'multus', 'multus.sock')) || !existsSync(generated)) return false;
      // written in place (not renamed): read it until it parses
      try {
        return (JSON.parse(readFileSync(generated, 'utf8')) as { type?: string }).type === 'multus-shim';
      } catch {
        return false;
      }
    }, 120_000, 200);
  } catch (e) {
    await stop();
    throw e;
  }
  return { mode: 'thick', log, daemon, stop };
}

/** thick: the shim forwarded an ADD to the daemon (its log line), i.e. the calls did go through the thick plugin. */
export function shimForwardedAdd(m: Multus): boolean {
  return m.mode === 'thick' && /CmdAdd \(shim\)/.test(readFileSync(m.log, 'utf8'));
}

/** The socket every NAD config names: the conflist's default, inside the holder the agent's. */
export const AGENT_SOCKET = '/run/openvswitch/kube-ovn-daemon.sock';

/** A NetworkAttachmentDefinition whose spec.config is `config` (JSON-encoded). */
export async function createNad(kube: Kube, name: string, config: Record<string, unknown>, namespace = 'default'): Promise<void> {
  await kube.api.post(`/apis/k8s.cni.cncf.io/v1/namespaces/${namespace}/network-attachment-definitions`, {
    apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name, namespace },
    spec: { config: JSON.stringify(config) },
  });
}

/** A NetworkAttachmentDefinition whose config is a Kube-OVN attachment (provider `<name>.<ns>.ovn`). */
export async function createKubeOvnNad(kube: Kube, name: string, namespace = 'default'): Promise<string> {
  const provider = `${name}.${namespace}.ovn`;
  await createNad(kube, name, { cniVersion: '0.3.1', type: 'kube-ovn', server_socket: AGENT_SOCKET, provider }, namespace);
  return provider;
}

/**
 * A NetworkAttachmentDefinition of Debian's `macvlan` (mode bridge on `master`, an interface of the node namespace)
 * whose IPAM is kube-ovn (provider `<name>.<ns>`: IPAM only, the controller allocates from the Subnet of that provider).
 */
export async function createMacvlanIpamNad(kube: Kube, name: string, master: string, namespace = 'default'): Promise<string> {
  const provider = `${name}.${namespace}`;
  await createNad(kube, name, {
    cniVersion: '0.3.1', type: 'macvlan', master, mode: 'bridge',
    ipam: { type: 'kube-ovn', server_socket: AGENT_SOCKET, provider },
  }, namespace);
  return provider;
}

/** What a pod that never finished left behind: its status, and the tails of the Multus, kubelet, containerd and agent logs. */
export async function diagnosePod(api: KubeApi, rn: RealNode, agent: DaemonSetAgent, name: string): Promise<string> {
  const tail = (file: string, n: number, grep?: string): string => {
    try {
      const lines = readFileSync(file, 'utf8').split('\n').filter((l) => !grep || l.includes(grep));
      return lines.slice(-n).join('\n');
    } catch (e) { return `(${String(e)})`; }
  };
  const pod = await api.get(`/api/v1/namespaces/default/pods/${name}`).catch((e: unknown) => String(e));
  return [`pod: ${JSON.stringify((pod as { status?: unknown }).status ?? pod).slice(0, 2000)}`,
    `--- multus.log\n${tail(join(rn.dir, 'multus.log'), 40)}`,
    `--- multus-daemon.log (thick: its stderr)\n${tail(join(rn.dir, 'multus-daemon.log'), 15)}`,
    `--- kubelet.log (${name})\n${tail(rn.kubeletLog, 25, name)}`,
    `--- containerd.log (errors)\n${tail(rn.containerdLog, 25, 'level=error')}`,
    `--- agent\n${tail(agent.proc.log, 40)}`].join('\n');
}
