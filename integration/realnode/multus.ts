// Multus (thin plugin, v4.3.0 built by scripts/build-fixtures.sh from ../shared/upstream) on the real node:
// its binary in the node's CNI bin dir and 00-multus.conf in front of 01-kube-ovn.conflist (containerd reads only
// the first file: max_conf_num = 1). Multus runs the kube-ovn conflist as the cluster network (eth0) and, for a pod
// annotated k8s.v1.cni.cncf.io/networks, each NetworkAttachmentDefinition's config as net1, net2, ...
// The NAD CRD comes from the release's own deployments/multus-daemonset.yml.
import { copyFileSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Kube } from '../bed/kube.ts';
import { applyCrds, FIXTURE_BIN } from '../bed/kube.ts';
import type { KubeApi } from '../bed/kubeapi.ts';
import type { DaemonSetAgent } from './daemonset.ts';
import type { RealNode } from './node.ts';

export const MULTUS_VERSION = process.env.MULTUS_VERSION ?? 'v4.3.0';
const MULTUS_SRC = join(process.env.KOA_FIXTURE_CACHE ?? '/var/cache/kube-ovn-node-agent', 'src', `multus-cni-${MULTUS_VERSION}`);
export const MULTUS_CRDS = join(MULTUS_SRC, 'deployments', 'multus-daemonset.yml');

/** Why Multus cannot run here (binary or unpacked release missing; not built with KOA_BUILD_UPSTREAM=0), or undefined. */
export function multusMissing(): string | undefined {
  const gone = [join(FIXTURE_BIN, 'multus'), MULTUS_CRDS].filter((f) => !existsSync(f));
  return gone.length ? `fixture missing (${gone.join(', ')}): build it with \`npm run setup\` (without KOA_BUILD_UPSTREAM=0)` : undefined;
}

export function checkMultus(): void {
  const missing = multusMissing();
  if (missing) throw new Error(missing);
}

/**
 * The NetworkAttachmentDefinition CRD from the release. Install it before kube-ovn-controller starts, as in a cluster
 * where Multus is deployed first: the controller starts its NAD informer at start when the CRD is there, and
 * otherwise only finds it on a check every 10 s (logging "Network attachment CRD not found at startup").
 */
export async function installNadCrd(kube: Kube): Promise<void> {
  checkMultus();
  await applyCrds(kube.api, MULTUS_CRDS);
}

/**
 * The multus binary and 00-multus.conf (atomically: containerd watches the dir); the NAD CRD is installNadCrd's.
 * `clusterNetwork`: the conflist file of the pods' default network (eth0); default our 01-kube-ovn.conflist.
 */
export async function installMultus(kube: Kube, rn: RealNode, clusterNetwork = join(rn.cniConfDir, '01-kube-ovn.conflist')): Promise<void> {
  checkMultus();
  copyFileSync(join(FIXTURE_BIN, 'multus'), join(rn.cniBinDir, 'multus'));
  const conf = {
    cniVersion: '0.3.1', name: 'multus-cni-network', type: 'multus',
    kubeconfig: kube.kubeconfig,
    clusterNetwork,
    binDir: rn.cniBinDir,
    logLevel: 'verbose', logFile: join(rn.dir, 'multus.log'),
  };
  const tmp = join(rn.cniConfDir, '.00-multus.conf.tmp');
  writeFileSync(tmp, JSON.stringify(conf, null, 2));
  renameSync(tmp, join(rn.cniConfDir, '00-multus.conf'));
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
    `--- kubelet.log (${name})\n${tail(rn.kubeletLog, 25, name)}`,
    `--- containerd.log (errors)\n${tail(rn.containerdLog, 25, 'level=error')}`,
    `--- agent\n${tail(agent.proc.log, 40)}`].join('\n');
}
