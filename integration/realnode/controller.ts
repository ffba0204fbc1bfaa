// The real kube-ovn-controller (v1.16.2, built by scripts/build-fixtures.sh from ../shared/upstream) for the
// real-node bed, in place of the stand-in (integration/bed/controller.ts). What it needs, from
// ../shared/upstream/README.md: OVN NB/SB created from the schemas its libovsdb models embed (newer than Debian's),
// all 24 upstream CRDs, the ClusterRole system:ovn, an SB Chassis whose hostname is the Node name, and a Node
// annotation ovn.kubernetes.io/chassis (written by our agent) or it garbage-collects the chassis. Against a start-up
// race of v1.16.2, its default Vpc exists beforehand with the status it would write (seedDefaultVpc). It always
// writes /var/log/kube-ovn/kube-ovn-controller.log and listens on *:10660, so it runs in a network namespace of its
// own with a private /var/log. Only its release files are read here (schemas, CRDs, RBAC); none of its code is used.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAllYaml } from '@kubernetes/client-node';
import type { Bed } from '../bed/bed.ts';
import { onCleanup } from '../bed/cleanup.ts';
import { killPidSync, stopPid } from '../bed/daemon.ts';
import { waitFor } from '../bed/exec.ts';
import { FIXTURE_BIN, type Kube } from '../bed/kube.ts';
import type { KubeApi } from '../bed/kubeapi.ts';
import { createNetns } from '../bed/netns.ts';
import type { OvnSchemas } from '../bed/ovn.ts';

export const KUBE_OVN_VERSION = process.env.KUBE_OVN_VERSION ?? 'v1.16.2';
/** The unpacked release the controller was built from (the fixture cache keeps it). */
export const UPSTREAM_SRC = join(process.env.KOA_FIXTURE_CACHE ?? '/var/cache/kube-ovn-node-agent', 'src', `kube-ovn-${KUBE_OVN_VERSION}`);
export const UPSTREAM_CRDS = join(UPSTREAM_SRC, 'charts', 'kube-ovn', 'templates', 'kube-ovn-crd.yaml');
const CONTROLLER_USER = 'koa-kube-ovn-controller';

/**
 * Why the real controller cannot run here, or undefined when it can: its binary or unpacked release is missing
 * (not built with KOA_BUILD_UPSTREAM=0). Tests skip with this reason, so the skip shows in the report.
 */
export function upstreamMissing(): string | undefined {
  const gone = [join(FIXTURE_BIN, 'kube-ovn-controller'), UPSTREAM_CRDS].filter((f) => !existsSync(f));
  return gone.length ? `fixture missing (${gone.join(', ')}): build it with \`npm run setup\` (without KOA_BUILD_UPSTREAM=0)` : undefined;
}

export function checkUpstream(): void {
  const missing = upstreamMissing();
  if (missing) throw new Error(missing);
}

/** Writes the NB and SB schemas embedded in the release's libovsdb models (`var schema = \`...\``) into `dir`. */
export function writeUpstreamSchemas(dir: string): OvnSchemas {
  const out = (name: string) => {
    const src = readFileSync(join(UPSTREAM_SRC, 'pkg', 'ovsdb', name, 'model.go'), 'utf8');
    const m = /^var schema = `([\s\S]*?)`/m.exec(src);
    if (!m) throw new Error(`no embedded schema in pkg/ovsdb/${name}/model.go`);
    const file = join(dir, `${name}.ovsschema`);
    writeFileSync(file, m[1]!);
    return file;
  };
  return { nb: out('ovnnb'), sb: out('ovnsb') };
}

/** ClusterRole system:ovn (the first document of the chart's ovn-CR.yaml; later ones are templated) bound to `user`. */
export async function applyControllerRbac(api: KubeApi, user: string): Promise<void> {
  const text = readFileSync(join(UPSTREAM_SRC, 'charts', 'kube-ovn', 'templates', 'ovn-CR.yaml'), 'utf8');
  const first = text.split(/^---\s*$/m).find((d) => /kind:\s*ClusterRole/.test(d) && /name:\s*system:ovn\s*$/m.test(d));
  if (!first) throw new Error('ClusterRole system:ovn not found in ovn-CR.yaml');
  const role = (loadAllYaml(first) as any[])[0];
  await api.post('/apis/rbac.authorization.k8s.io/v1/clusterroles', role);
  await api.post('/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'koa-system-ovn' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:ovn' },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
  });
}

export interface RealController {
  readonly pid: number;
  readonly log: string;
  readonly logDir: string;
  alive(): boolean;
  stop(): Promise<void>;
}

/** Subnet `name` has condition Ready=True (the controller's own signal that it is set up). */
export async function subnetReady(api: KubeApi, name: string): Promise<boolean> {
  const s = await api.get(`/apis/kubeovn.io/v1/subnets/${name}`).catch(() => undefined);
  return !!s?.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True');
}

/** The controller's default VPC (its router) and default subnet; its own defaults, passed as flags. */
export const CLUSTER_ROUTER = 'ovn-cluster';
export const DEFAULT_SUBNET = 'ovn-default';

/**
 * Creates the default Vpc with the status the controller writes for it at start (InitDefaultVpc: standby, default,
 * router, default subnet), before the controller's first start. Why: on a first start v1.16.2 can deadlock (6 of
 * 29 fresh bring-ups here; README, "Why the Vpc is created beforehand"). InitDefaultVpc creates the Vpc and writes that status through the API; right after,
 * initLoadBalancer merge-patches the Vpc's whole status as its informer holds it, and when the watch has delivered
 * the create but not yet the status write, that patch writes standby=false, router="" back. Its subnet worker then
 * refuses join and ovn-default ("the vpc 'ovn-cluster' not standby yet", retried with growing back-off) and its Vpc
 * worker waits for the join switch, which only the subnet worker creates ("logical switch join not ready") for
 * ever. Upstream fixed it on master (kubeovn/kube-ovn#6650: the patch carries the load-balancer fields only) and on
 * release-1.16 after v1.16.2 (#7300). With the Vpc already there, the controller's first list has the full status
 * (as on any restart in a cluster): InitDefaultVpc writes nothing and the status it patches keeps standby.
 */
export async function seedDefaultVpc(api: KubeApi): Promise<void> {
  await api.post('/apis/kubeovn.io/v1/vpcs', { apiVersion: 'kubeovn.io/v1', kind: 'Vpc', metadata: { name: CLUSTER_ROUTER }, spec: {} });
  // status is a subresource: the create ignores it
  await api.mergePatch(`/apis/kubeovn.io/v1/vpcs/${CLUSTER_ROUTER}/status`, {
    status: { standby: true, default: true, router: CLUSTER_ROUTER, defaultLogicalSwitch: DEFAULT_SUBNET },
  });
}

/** Each distinct error the controller logged (klog `E` lines without their header), most frequent first, with counts. */
export function loggedErrors(text: string, max = 8): string[] {
  const counts = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^E\d{4} [\d:.]+\s+\d+ (.*)$/.exec(line);
    if (m) counts.set(m[1]!.slice(0, 300), (counts.get(m[1]!.slice(0, 300)) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).slice(0, max).map(([msg, n]) => `${n}x ${msg}`);
}

/** `extraFlags` go after the bed's own (e.g. `--non-primary-cni-mode=true`, as the chart passes it to both the controller and the agent). */
export async function startRealController(bed: Bed, extraFlags: readonly string[] = []): Promise<RealController> {
  checkUpstream();
  const kube: Kube = bed.kube!;
  const dir = mkdtempSync(`/tmp/${bed.prefix}kube-ovn-controller-`);
  const logDir = join(dir, 'log');
  // it opens /var/log/kube-ovn/kube-ovn-controller.log without creating the directory (exits otherwise)
  mkdirSync(join(logDir, 'kube-ovn'), { recursive: true });
  const ns = await createNetns(`${bed.prefix}ctl`);
  await kube.exposeIn(ns);
  await applyControllerRbac(kube.api, CONTROLLER_USER);
  await seedDefaultVpc(kube.api);
  const kubeconfig = await kube.kubeconfigFor(CONTROLLER_USER);
  const flags = [
    `--kubeconfig=${kubeconfig}`, `--ovn-nb-addr=${bed.central.nbDb}`, `--ovn-sb-addr=${bed.central.sbDb}`,
    '--default-cidr=10.16.0.0/16', '--default-gateway=10.16.0.1', '--node-switch-cidr=100.64.0.0/16',
    '--service-cluster-ip-range=10.96.0.0/12', '--network-type=geneve', '--default-logical-gateway=false',
    '--enable-lb=true', '--enable-np=true', '--gc-interval=360', '--v=3',
    // its defaults, spelled out because seedDefaultVpc writes them too
    `--cluster-router=${CLUSTER_ROUTER}`, `--default-ls=${DEFAULT_SUBNET}`,
    ...extraFlags,
  ];
  // a private /var/log for its hard-coded log file; the program keeps its name (it picks its role from it)
  const argv = ['ip', 'netns', 'exec', ns.name, 'unshare', '-m', '--propagation', 'private', 'sh', '-c',
    'mount --bind "$1" /var/log && shift && exec "$@"', 'sh', logDir, join(FIXTURE_BIN, 'kube-ovn-controller'), ...flags];
  const log = join(dir, 'stdout.log');
  const out = createWriteStream(log);
  const child = spawn(argv[0]!, argv.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env, KUBECONFIG: kubeconfig, POD_NAME: 'kube-ovn-controller-koa', POD_NAMESPACE: 'kube-system',
      NODE_NAME: bed.nodes[0]!.name, POD_IP: '127.0.0.1', POD_IPS: '127.0.0.1', ENABLE_SSL: 'false',
    },
  });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  const pid = child.pid ?? 0;
  const alive = () => child.exitCode === null && child.signalCode === null;
  const stop = onCleanup({
    label: `kube-ovn-controller ${dir}`,
    run: async () => {
      if (pid) await stopPid(pid, 10_000);
      rmSync(dir, { recursive: true, force: true });
      await ns.delete();
    },
    runSync: () => {
      if (pid) killPidSync(pid);
      rmSync(dir, { recursive: true, force: true });
    },
  });
  try {
    // waitFor retries through a throwing check: an exit ends the wait as a result instead, reported right away
    const r = await waitFor('kube-ovn-controller: subnets join and ovn-default Ready', async () =>
      !alive() ? 'exited' : (await subnetReady(kube.api, 'join')) && (await subnetReady(kube.api, DEFAULT_SUBNET)) && 'ready', 300_000, 500);
    if (r === 'exited') throw new Error(`kube-ovn-controller exited; see ${log} and ${logDir}`);
  } catch (e) {
    // the tail alone can hide the cause (a worker in back-off logs nothing): the errors it logged come first
    const text = readFileSync(log, 'utf8');
    const tail = text.split('\n').slice(-20).join('\n');
    await stop();
    throw new Error(`${(e as Error).message}\n--- kube-ovn-controller errors (distinct)\n${loggedErrors(text).join('\n')}` +
      `\n--- kube-ovn-controller (tail)\n${tail}`);
  }
  return { pid, log, logDir, alive, stop };
}
