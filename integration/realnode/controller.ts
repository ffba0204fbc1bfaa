// The real kube-ovn-controller (v1.16.2, built by scripts/build-fixtures.sh from ../shared/upstream) for the
// real-node bed, in place of the stand-in (integration/bed/controller.ts). What it needs, from
// ../shared/upstream/README.md: OVN NB/SB created from the schemas its libovsdb models embed (newer than Debian's),
// all 24 upstream CRDs, the ClusterRole system:ovn, an SB Chassis whose hostname is the Node name, and a Node
// annotation ovn.kubernetes.io/chassis (written by our agent) or it garbage-collects the chassis. It always writes
// /var/log/kube-ovn/kube-ovn-controller.log and listens on *:10660, so it runs in a network namespace of its own
// with a private /var/log. Only its release files are read here (schemas, CRDs, RBAC); none of its code is used.
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
 * (they are built only with KOA_BUILD_UPSTREAM=1). Tests skip with this reason, so the skip shows in the report.
 */
export function upstreamMissing(): string | undefined {
  const gone = [join(FIXTURE_BIN, 'kube-ovn-controller'), UPSTREAM_CRDS].filter((f) => !existsSync(f));
  return gone.length ? `fixture missing (${gone.join(', ')}): build it with \`KOA_BUILD_UPSTREAM=1 npm run setup\`` : undefined;
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

export async function startRealController(bed: Bed): Promise<RealController> {
  checkUpstream();
  const kube: Kube = bed.kube!;
  const dir = mkdtempSync(`/tmp/${bed.prefix}kube-ovn-controller-`);
  const logDir = join(dir, 'log');
  // it opens /var/log/kube-ovn/kube-ovn-controller.log without creating the directory (exits otherwise)
  mkdirSync(join(logDir, 'kube-ovn'), { recursive: true });
  const ns = await createNetns(`${bed.prefix}ctl`);
  await kube.exposeIn(ns);
  await applyControllerRbac(kube.api, CONTROLLER_USER);
  const kubeconfig = await kube.kubeconfigFor(CONTROLLER_USER);
  const flags = [
    `--kubeconfig=${kubeconfig}`, `--ovn-nb-addr=${bed.central.nbDb}`, `--ovn-sb-addr=${bed.central.sbDb}`,
    '--default-cidr=10.16.0.0/16', '--default-gateway=10.16.0.1', '--node-switch-cidr=100.64.0.0/16',
    '--service-cluster-ip-range=10.96.0.0/12', '--network-type=geneve', '--default-logical-gateway=false',
    '--enable-lb=true', '--enable-np=true', '--gc-interval=360', '--v=3',
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
      !alive() ? 'exited' : (await subnetReady(kube.api, 'join')) && (await subnetReady(kube.api, 'ovn-default')) && 'ready', 300_000, 500);
    if (r === 'exited') throw new Error(`kube-ovn-controller exited; see ${log} and ${logDir}`);
  } catch (e) {
    const tail = readFileSync(log, 'utf8').split('\n').slice(-20).join('\n');
    await stop();
    throw new Error(`${(e as Error).message}\n--- kube-ovn-controller (tail)\n${tail}`);
  }
  return { pid, log, logDir, alive, stop };
}
