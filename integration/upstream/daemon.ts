// Upstream's node daemon, kube-ovn-daemon v1.16.2, and its `kube-ovn` CNI executable, built from the release in
// ../shared/upstream by scripts/build-fixtures.sh (by default; not with KOA_BUILD_UPSTREAM=0). Used only as a reference to measure and
// compare against (bench/sbs.bench.ts, integration/upstream/differential.test.ts); none of its code is used.
//
// It runs on a bed node the way its DaemonSet runs it, with three differences the bed needs:
// - it is in the node's network namespace (`ip netns exec`), whose mount namespace is a slave of the host's;
// - it has hard-coded paths (`unix:/var/run/openvswitch/db.sock`, `/etc/openvswitch/system-id.conf`,
//   `/var/log/kube-ovn/`), so that mount namespace gets the bed's own dirs over them: a private /run (with the
//   host's /run/netns bound in, a slave mount, so pod namespaces created later show up), the node's OVS run dir on
//   /run/openvswitch, its OVS etc dir on /etc/openvswitch, and a private /var/log. Nothing is mounted on the host;
// - the CNI socket is its default, /run/openvswitch/kube-ovn-daemon.sock, which is the OVS run dir seen from outside.
// What it needs from the cluster (Node annotations from the controller, Subnets with Validated/Ready conditions)
// the stand-in controller provides.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Bed, BedNode } from '../bed/bed.ts';
import { onCleanup } from '../bed/cleanup.ts';
import { FIXTURE_BIN } from '../bed/kube.ts';
import { METRICS_PORT, superviseDaemon, type NodeAgent } from '../e2e/agent-harness.ts';

export const UPSTREAM_DAEMON = join(FIXTURE_BIN, 'kube-ovn-daemon');
/** Upstream's CNI executable, alone in its dir (the CNI_PATH of a conflist whose type is `kube-ovn`). */
export const UPSTREAM_CNI = join(FIXTURE_BIN, 'upstream-cni', 'kube-ovn');

/** Why upstream's CNI executable is not here (fixture not built), or undefined. */
export function upstreamCniMissing(): string | undefined {
  return existsSync(UPSTREAM_CNI) ? undefined : `fixture missing (${UPSTREAM_CNI}): build it with \`npm run setup\` (without KOA_BUILD_UPSTREAM=0)`;
}

/** Why upstream's daemon cannot run here (fixture not built), or undefined. */
export function upstreamDaemonMissing(): string | undefined {
  const gone = [UPSTREAM_DAEMON, UPSTREAM_CNI].filter((f) => !existsSync(f));
  return gone.length ? `fixture missing (${gone.join(', ')}): build it with \`npm run setup\` (without KOA_BUILD_UPSTREAM=0)` : undefined;
}

/**
 * The behaviour flags both daemons get in a side-by-side run: the DaemonSet's (charts/kube-ovn/templates/
 * ovncni-ds.yaml) for a one-node geneve bed. `arpProbe` is `--enable-arp-detect-ip-conflict`. Both also get
 * `--kubeconfig`, `--pprof-port` and `--mtu` with the same values (ours through agentArgs, upstream's below).
 */
export function sharedFlags(o: { arpProbe: boolean }): string[] {
  return [
    '--node-switch=join', '--encap-checksum=true', '--service-cluster-ip-range=10.96.0.0/12', '--network-type=geneve',
    '--enable-metrics=true', `--enable-arp-detect-ip-conflict=${o.arpProbe}`,
  ];
}

// Runs as `sh -c SCRIPT sh <private dir> <OVS run dir> <OVS etc dir> <argv...>` inside `ip netns exec`'s mount
// namespace (a slave of the host's: our mounts stay here, the host's new netns mounts still arrive).
const MOUNTS = [
  'set -e',
  'priv=$1 ovsrun=$2 ovsetc=$3; shift 3',
  'mount --rbind /run/netns "$priv/run/netns"',
  'mount --rbind "$priv/run" /run',
  'mount --bind "$ovsrun" /run/openvswitch',
  'mount --bind "$ovsetc" /etc/openvswitch',
  'mount --bind "$priv/log" /var/log',
  // as its start-cniserver.sh does: a socket file left by the previous daemon would make its listen fail
  'rm -f /run/openvswitch/kube-ovn-daemon.sock',
  'exec "$@"',
].join('\n');

export interface UpstreamOptions {
  /** `--enable-arp-detect-ip-conflict` (default true, upstream's default) */
  arpProbe?: boolean;
  /** more flags */
  args?: string[];
  waitReady?: boolean;
}

/** Starts upstream's kube-ovn-daemon on `node`; the result drives the same harness calls as our agent's. */
export async function startUpstreamDaemon(bed: Bed, node: BedNode, o: UpstreamOptions = {}): Promise<NodeAgent> {
  const missing = upstreamDaemonMissing();
  if (missing) throw new Error(missing);
  const dir = mkdtempSync(`/tmp/${bed.prefix}upstream-`);
  onCleanup({ label: `upstream daemon dir ${dir}`, run: () => rmSync(dir, { recursive: true, force: true }) });
  for (const d of ['run/netns', 'run/openvswitch', 'run/ovn', 'log/kube-ovn', 'log/openvswitch', 'del-queue']) mkdirSync(join(dir, d), { recursive: true });
  const flags = [
    `--kubeconfig=${bed.kube!.kubeconfig}`, `--pprof-port=${METRICS_PORT}`, `--mtu=${bed.mtu}`, ...sharedFlags({ arpProbe: o.arpProbe ?? true }),
    '--logtostderr=false', '--alsologtostderr=true', '--log_file=/var/log/kube-ovn/kube-ovn-cni.log', '--log_file_max_size=200',
    ...(o.args ?? []),
  ];
  const argv = ['ip', 'netns', 'exec', node.ns.name, 'sh', '-c', MOUNTS, 'sh', dir, node.ovs.rundir, join(node.ovs.env.OVS_SYSCONFDIR!, 'openvswitch'),
    UPSTREAM_DAEMON, '--ovs-socket=/run/openvswitch/db.sock', '--bind-socket=/run/openvswitch/kube-ovn-daemon.sock', ...flags];
  return superviseDaemon({
    node, dir, argv, label: 'upstream', socket: join(node.ovs.rundir, 'kube-ovn-daemon.sock'), delQueueDir: join(dir, 'del-queue'),
    env: {
      PATH: process.env.PATH, KUBECONFIG: bed.kube!.kubeconfig, NODE_NAME: node.name, POD_NAME: `kube-ovn-cni-${node.name}`,
      POD_NAMESPACE: 'kube-system', POD_IP: node.encapIp, POD_IPS: node.encapIp, ENABLE_SSL: 'false',
    },
    waitReady: o.waitReady ?? true,
  });
}
