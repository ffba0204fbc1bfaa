// A real Kubernetes node on a bed node: kubelet + containerd + runc inside the node's network namespace and a
// mount namespace of their own (the holder, holder.sh), next to the node's OVS and ovn-controller. Recipe and the
// reason for every step: ../shared/notes/real-node.md. Nothing reaches the host: private /run, an overlay over /var,
// the kubelet's cgroups under a cgroupRoot named after the bed prefix (removed at stop), the global sysctls kubelet
// wants only read (protectKernelDefaults) from files bound over them in the holder.
//
//   const rn = await startRealNode(bed, bed.nodes[0]);   // holder, cgroups, containerd, images, kubelet; Node Ready
//   ...                                                   // install the CNI (install.ts) before pods are created
//   await rn.stop();
import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bed, BedNode } from '../bed/bed.ts';
import { onCleanup } from '../bed/cleanup.ts';
import { isAlive, killPidSync, stopPid } from '../bed/daemon.ts';
import { run, sleep, trace, waitFor, type RunOptions, type RunResult } from '../bed/exec.ts';
import { FIXTURE_BIN } from '../bed/kube.ts';

export const IMAGE_DIR = join(process.env.KOA_FIXTURE_CACHE ?? '/var/cache/kube-ovn-node-agent', 'images');
export const PAUSE_IMAGE = 'registry.k8s.io/pause:3.10';
export const BUSYBOX_IMAGE = 'docker.io/library/busybox:local';
const HOLDER = new URL('./holder.sh', import.meta.url).pathname;
const V1_HIERARCHIES = ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids', 'systemd'];
const CGROUP_FS = '/sys/fs/cgroup';

export interface RealNodeOptions {
  /** The node's InternalIP, on a veth pair inside the node namespace (this kernel has no dummy driver). */
  nodeIp?: string;
  /**
   * false: `nodeIp` is already an address of the node namespace (the two-node bed's underlay address on `br-phy`,
   * which is also its geneve endpoint): no veth pair is made for it. Default true.
   */
  addNodeIp?: boolean;
  /**
   * The kubelet's cgroupRoot (default `/<prefix>kubelet`). cgroup hierarchies are the host's, so two real nodes of
   * one bed need one each; it must start with the bed prefix (the leak checks look for that).
   */
  cgroupRoot?: string;
}

export interface RealNode {
  readonly node: BedNode;
  readonly dir: string;
  readonly nodeIp: string;
  readonly holderPid: number;
  /** CNI dirs containerd reads (private to this node; the install step writes into them). */
  readonly cniBinDir: string;
  readonly cniConfDir: string;
  readonly containerdLog: string;
  readonly kubeletLog: string;
  /** The kubelet's podLogsDir (container output, readable from the host). */
  readonly podLogsDir: string;
  /** The holder's /var overlay upper dir: everything kubelet and containerd wrote under /var. */
  readonly varUpper: string;
  /** What the node's processes see as /run (and /var/run): a private dir bound over it in the holder. */
  readonly runDir: string;
  /** Runs argv inside the node (the holder's mount and network namespaces). */
  exec(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Starts a long-running process inside the node; its output goes to <dir>/<name>.log. */
  spawn(name: string, argv: readonly string[], env?: NodeJS.ProcessEnv): NodeProcess;
  /**
   * Starts containerd (with the images imported) and kubelet, and waits for the Node to be Ready, which needs the CNI
   * installed. `waitReady: false` waits only for the Node to be registered: the CNI comes later, from a DaemonSet.
   */
  startRuntime(opts?: { waitReady?: boolean }): Promise<void>;
  /** The kubelet's --root-dir (its pods/ is what a real node has at /var/lib/kubelet/pods). */
  readonly kubeletDir: string;
  /** A process of the pod with this UID (from its cgroup under the kubelet's cgroupRoot), to enter its namespaces. */
  podPid(uid: string): number | undefined;
  /** Every live process of the pod with this UID (its sandbox and containers). */
  podPids(uid: string): number[];
  /** PIDs in the holder's mount namespace (kubelet, containerd, shims, the agent) and in the pods' cgroups. */
  processes(): number[];
  stop(): Promise<void>;
}

export interface NodeProcess {
  readonly pid: number;
  readonly log: string;
  readonly exited: Promise<number | null>;
  alive(): boolean;
}

/** Hierarchy paths of the kubelet's cgroupRoot (`/<prefix>kubelet`), created before the kubelet starts. */
function cgroupDirs(root: string): string[] {
  return V1_HIERARCHIES.map((h) => join(CGROUP_FS, h, root));
}

/**
 * What stop() removes: the v1 hierarchies, and also the cgroup2 `unified` one, where the kubelet (cgroupfs driver on
 * the hybrid layout the holder mounts) creates `<cgroupRoot>/kubepods/{burstable,besteffort}` of its own.
 */
function cgroupDirsToRemove(root: string): string[] {
  return [...cgroupDirs(root), join(CGROUP_FS, 'unified', root)];
}

/**
 * The cgroups of a bed prefix still present in any hierarchy (empty after a clean stop): every node's kubelet
 * cgroupRoot (`/<prefix>kubelet`, or `/<prefix>nodeNkubelet` with two real nodes), the cgroup2 `unified` one too.
 */
export function cgroupLeaks(prefix: string): string[] {
  return readdirSync(CGROUP_FS).flatMap((h) => {
    try {
      return readdirSync(join(CGROUP_FS, h)).filter((d) => d.startsWith(prefix)).map((d) => join(CGROUP_FS, h, d));
    } catch {
      return [];
    }
  });
}

/** Every PID in the cgroup subtree `dir` (depth first). */
function cgroupPids(dir: string): number[] {
  if (!existsSync(dir)) return [];
  const out: number[] = [];
  const walk = (d: string) => {
    try {
      for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l) out.push(Number(l));
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    } catch {
      // removed while we walked
    }
  };
  walk(dir);
  return out;
}

/** Removes a cgroup subtree bottom-up (cgroup dirs are removed with rmdir, never with their control files). */
function removeCgroupTree(dir: string): boolean {
  if (!existsSync(dir)) return true;
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroupTree(join(dir, e.name));
    rmdirSync(dir);
    return true;
  } catch {
    return false;
  }
}

/** Blocks the thread for `ms` (for process-exit clean-up, which cannot await). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

let clockTicks: number | undefined;
/** Seconds after boot at which `pid` started (/proc/<pid>/stat field 22, in clock ticks), or undefined when gone. */
function startedAtS(pid: number): number | undefined {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]) / clockTicks;
  } catch {
    return undefined;
  }
}
const uptimeS = (): number => Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);

/**
 * PIDs (other than `except`) in the mount namespace `mnt` (a `/proc/<pid>/ns/mnt` link text). With `startedBy`
 * (seconds after boot) only processes started by then: once the namespace is gone its inode number, and so the link
 * text, can name a new namespace (each `ip netns exec` makes one), whose processes are not the node's.
 */
function inMountNs(mnt: string, except: number[], startedBy?: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const p = Number(d);
    if (except.includes(p)) continue;
    try {
      if (readlinkSync(`/proc/${p}/ns/mnt`) === mnt && isAlive(p) && (startedBy === undefined || (startedAtS(p) ?? Infinity) <= startedBy)) out.push(p);
    } catch {
      // gone
    }
  }
  return out;
}

export async function startRealNode(bed: Bed, node: BedNode, opts: RealNodeOptions = {}): Promise<RealNode> {
  for (const i of ['pause.tar', 'busybox.tar']) {
    if (!existsSync(join(IMAGE_DIR, i))) throw new Error(`${join(IMAGE_DIR, i)} missing: run \`npm run setup\` (scripts/build-images.sh)`);
  }
  if (!bed.kube) throw new Error('a real node needs the bed with kube-apiserver');
  const kube = bed.kube;
  const nodeIp = opts.nodeIp ?? '172.31.254.2';
  const cgroupRoot = opts.cgroupRoot ?? `/${bed.prefix}kubelet`;
  if (!cgroupRoot.startsWith(`/${bed.prefix}`)) throw new Error(`cgroupRoot ${cgroupRoot} must start with /${bed.prefix}`);
  const dir = mkdtempSync(`/tmp/${bed.prefix}realnode-`);
  const d = (...p: string[]) => join(dir, ...p);
  for (const p of ['run', 'var-upper', 'var-work', 'sysctl', 'cni/bin', 'cni/net.d', 'containerd', 'kubelet', 'pod-logs']) mkdirSync(d(p), { recursive: true });
  writeFileSync(d('sysctl', 'vm.overcommit_memory'), '1\n');
  writeFileSync(d('sysctl', 'kernel.panic'), '10\n');
  writeFileSync(d('sysctl', 'kernel.panic_on_oops'), '1\n');

  let holderPid = 0;
  // the holder's mount namespace, read once when it is ready (never re-read through a PID that may be reused), and
  // never the host's own: stop() kills what is left in it
  let holderMnt: string | undefined;
  // when the holder was gone (seconds after boot): a process of the node started before; one started later in a
  // namespace of the same inode number belongs to a namespace made since
  let holderGoneAtS: number | undefined;
  const processes = () => {
    const pods = cgroupPids(join(CGROUP_FS, 'pids', cgroupRoot));
    const inNode = holderMnt ? inMountNs(holderMnt, [holderPid, process.pid], holderGoneAtS) : [];
    return [...new Set([...pods, ...inNode])];
  };
  const killAllSync = () => {
    // a killed process leaves its cgroups a moment later (an exit handler cannot await): kill and retry up to 5 s;
    // from the holder's kill on, only processes started before it count as the node's (see holderGoneAtS)
    for (let i = 0; i < 100; i++) {
      for (const p of processes()) killPidSync(p);
      if (holderPid) {
        killPidSync(holderPid);
        holderGoneAtS ??= uptimeS();
      }
      if (cgroupDirsToRemove(cgroupRoot).every(removeCgroupTree)) break;
      sleepSync(50);
    }
  };
  let stopped = false;
  const byName = new Map<string, NodeProcess>();
  const unregister = onCleanup({
    label: `real node ${dir}`,
    run: async () => {
      if (stopped) return;
      stopped = true;
      // kubelet first (it would restart what we stop), then containerd; whatever is left (shims, containers,
      // an agent nobody stopped) is killed by PID; then the holder, whose mount namespace takes every mount with it
      for (const name of ['kubelet', 'containerd']) {
        const p = byName.get(name);
        if (p?.alive()) await stopPid(p.pid, 10_000);
      }
      for (let round = 0; round < 3; round++) {
        const left = processes();
        if (left.length === 0) break;
        for (const p of left) killPidSync(p);
        await sleep(300);
      }
      if (holderPid) await stopPid(holderPid, 2000);
      holderGoneAtS = uptimeS();
      // cgroups empty out a moment after their last process is reaped
      await waitFor('kubelet cgroups removed', () => cgroupDirsToRemove(cgroupRoot).every(removeCgroupTree), 20_000, 100).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
    runSync: () => {
      killAllSync();
      rmSync(dir, { recursive: true, force: true });
    },
  });

  try {
    // cgroupRoot must exist beforehand in each hierarchy (cpuset needs its cpus/mems filled in to take tasks)
    for (const c of cgroupDirs(cgroupRoot)) mkdirSync(c, { recursive: true });
    for (const f of ['cpuset.cpus', 'cpuset.mems']) {
      writeFileSync(join(CGROUP_FS, 'cpuset', cgroupRoot, f), readFileSync(join(CGROUP_FS, 'cpuset', f), 'utf8'));
    }

    // the node's InternalIP
    if (opts.addNodeIp ?? true) {
      await node.ns.ip(['link', 'add', 'rn-node', 'type', 'veth', 'peer', 'name', 'rn-peer']);
      await node.ns.ip(['addr', 'add', `${nodeIp}/24`, 'dev', 'rn-node']);
      for (const l of ['rn-node', 'rn-peer']) await node.ns.ip(['link', 'set', l, 'up']);
    }

    // the holder
    const holder = spawn('ip', ['netns', 'exec', node.ns.name, 'bash', HOLDER, dir, node.ovs.rundir], { stdio: ['ignore', 'pipe', 'pipe'] });
    holderPid = holder.pid ?? 0;
    const holderErr: Buffer[] = [];
    holder.stderr!.on('data', (c: Buffer) => holderErr.push(c));
    await new Promise<void>((resolve, reject) => {
      holder.once('exit', (code) => reject(new Error(`holder exited (${code}): ${Buffer.concat(holderErr).toString()}`)));
      holder.stdout!.once('data', () => resolve());
    });
    const mnt = readlinkSync(`/proc/${holderPid}/ns/mnt`);
    if (mnt === readlinkSync('/proc/self/ns/mnt')) throw new Error('the holder did not get a mount namespace of its own');
    holderMnt = mnt;
    trace('real node: holder ready');
  } catch (e) {
    await unregister();
    throw e;
  }

  const nsenter = (argv: readonly string[]) => ['nsenter', '-t', String(holderPid), '-m', '-n', '--', ...argv];
  const exec = (argv: readonly string[], o?: RunOptions) => run(nsenter(argv), o);
  const spawnIn = (name: string, argv: readonly string[], env: NodeJS.ProcessEnv = process.env): NodeProcess => {
    const log = d(`${name}.log`);
    const out = createWriteStream(log, { flags: 'a' });
    // nsenter without --fork execs the program: the child's PID is the daemon's
    const full = nsenter(argv);
    const child = spawn(full[0]!, full.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env });
    child.stdout!.pipe(out);
    child.stderr!.pipe(out);
    const exited = new Promise<number | null>((r) => child.on('exit', (code, sig) => r(code ?? (sig ? 128 : null))));
    const p: NodeProcess = { pid: child.pid ?? 0, log, exited, alive: () => child.exitCode === null && child.signalCode === null };
    byName.set(name, p);
    return p;
  };

  const startRuntime = async ({ waitReady = true }: { waitReady?: boolean } = {}) => {
    if (!existsSync(join(FIXTURE_BIN, 'kubelet'))) throw new Error(`${join(FIXTURE_BIN, 'kubelet')} missing: run \`npm run setup\` (scripts/build-fixtures.sh)`);
    // containerd (obstacles 5 and 8)
    writeFileSync(d('containerd', 'config.toml'), containerdConfig(dir));
    const ctrd = spawnIn('containerd', ['containerd', '--config', d('containerd', 'config.toml'), '--log-level', 'info']);
    await waitFor('containerd socket', async () => {
      if (!ctrd.alive()) throw new Error(`containerd exited; see ${ctrd.log}`);
      return (await exec(['ctr', '-a', '/run/containerd/containerd.sock', 'version'], { allowFail: true, timeoutMs: 10_000 })).code === 0;
    }, 180_000, 200);
    trace('real node: containerd up');
    for (const img of ['pause.tar', 'busybox.tar']) {
      await exec(['ctr', '-a', '/run/containerd/containerd.sock', '-n', 'k8s.io', 'images', 'import', '--snapshotter', 'overlayfs', join(IMAGE_DIR, img)], { timeoutMs: 120_000 });
    }
    trace('real node: images imported');

    // kubelet (obstacles 1, 3, 4, 5, 7, 9)
    const kubeconfig = await kube.kubeconfigFor(`system:node:${node.name}`, ['system:nodes']);
    writeFileSync(d('kubelet', 'config.json'), JSON.stringify(kubeletConfig(dir, cgroupRoot, kube.caFile, nodeIp), null, 2));
    const kubelet = spawnIn('kubelet', [
      join(FIXTURE_BIN, 'kubelet'), `--config=${d('kubelet', 'config.json')}`, `--kubeconfig=${kubeconfig}`,
      `--root-dir=${d('kubelet')}`, `--cert-dir=${d('kubelet', 'pki')}`, `--hostname-override=${node.name}`, `--node-ip=${nodeIp}`, '--v=2',
    ]);
    await waitFor(`node ${node.name} ${waitReady ? 'Ready' : 'registered'}`, async () => {
      if (!kubelet.alive()) throw new Error(`kubelet exited; see ${kubelet.log}`);
      const n = await kube.api.get(`/api/v1/nodes/${node.name}`);
      const ready = n.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True');
      // registered: the kubelet has written the node's status (the stand-in controller may have created the object)
      return waitReady ? ready : n.status?.nodeInfo?.kubeletVersion;
    }, 300_000, 500);
    trace(`real node: ${waitReady ? 'Ready' : 'registered'}`);
    // This kubelet cannot measure its root filesystem inside the holder (cadvisor has no filesystem stats there, so
    // localStorageCapacityIsolation is off and the node reports no ephemeral-storage). A real node does report it, and
    // the kubelet's admission refuses a pod that requests any (the DaemonSet's cni-server has an ephemeral-storage
    // limit) on a node without it. The kubelet keeps capacities it does not set itself, and derives allocatable.
    const fs = statfsSync(d('kubelet'));
    await kube.api.mergePatch(`/api/v1/nodes/${node.name}/status`, { status: { capacity: { 'ephemeral-storage': String(fs.blocks * fs.bsize) } } });
    await waitFor('node allocatable ephemeral-storage', async () =>
      (await kube.api.get(`/api/v1/nodes/${node.name}`)).status?.allocatable?.['ephemeral-storage'], 60_000, 250);
  };

  const podPids = (uid: string): number[] => {
    // cgroupfs driver: <cgroupRoot>/kubepods[/<qos>]/pod<uid>/<container id>
    const find = (dir: string): string | undefined => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (!e.isDirectory()) continue;
        if (e.name === `pod${uid}`) return join(dir, e.name);
        const hit = find(join(dir, e.name));
        if (hit) return hit;
      }
      return undefined;
    };
    const root = join(CGROUP_FS, 'pids', cgroupRoot);
    const podDir = existsSync(root) ? find(root) : undefined;
    return podDir ? cgroupPids(podDir).filter(isAlive) : [];
  };

  return {
    node, dir, nodeIp, holderPid,
    cniBinDir: d('cni', 'bin'), cniConfDir: d('cni', 'net.d'), kubeletDir: d('kubelet'),
    containerdLog: d('containerd.log'), kubeletLog: d('kubelet.log'), podLogsDir: d('pod-logs'), varUpper: d('var-upper'), runDir: d('run'),
    exec, spawn: spawnIn, startRuntime, processes,
    podPid: (uid) => podPids(uid).at(0),
    podPids,
    stop: unregister,
  };
}

function containerdConfig(dir: string): string {
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return [
    'version = 2',
    `root = ${JSON.stringify(join(dir, 'containerd', 'root'))}`,
    'state = "/run/containerd"',
    'disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",',
    '  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]',
    '[grpc]',
    '  address = "/run/containerd/containerd.sock"',
    '[ttrpc]',
    '  address = "/run/containerd/containerd.sock.ttrpc"',
    `[${cri}]`,
    `  sandbox_image = ${JSON.stringify(PAUSE_IMAGE)}`,
    '  disable_apparmor = true',
    // the VM's bounding set lacks CAP_SYS_RESOURCE: an oom_score_adj below the parent's fails in runc
    '  restrict_oom_score_adj = true',
    `[${cri}.containerd]`,
    '  snapshotter = "overlayfs"',
    '  default_runtime_name = "runc"',
    `[${cri}.containerd.runtimes.runc]`,
    '  runtime_type = "io.containerd.runc.v2"',
    `[${cri}.containerd.runtimes.runc.options]`,
    '  SystemdCgroup = false',
    `[${cri}.cni]`,
    `  bin_dir = ${JSON.stringify(join(dir, 'cni', 'bin'))}`,
    `  conf_dir = ${JSON.stringify(join(dir, 'cni', 'net.d'))}`,
    '  max_conf_num = 1',
    '',
  ].join('\n');
}

function kubeletConfig(dir: string, cgroupRoot: string, caFile: string, nodeIp: string): Record<string, unknown> {
  return {
    kind: 'KubeletConfiguration',
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    failCgroupV1: false,
    cgroupDriver: 'cgroupfs',
    cgroupRoot,
    protectKernelDefaults: true,
    oomScoreAdj: 0,
    failSwapOn: false,
    readOnlyPort: 0,
    address: nodeIp,
    healthzBindAddress: '127.0.0.1',
    containerRuntimeEndpoint: 'unix:///run/containerd/containerd.sock',
    podLogsDir: join(dir, 'pod-logs'),
    authentication: { x509: { clientCAFile: caFile }, webhook: { enabled: false }, anonymous: { enabled: false } },
    authorization: { mode: 'AlwaysAllow' },
    evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '1%', 'nodefs.inodesFree': '1%', 'imagefs.available': '1%' },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    // the pods' images exist only locally
    serializeImagePulls: false,
    registerNode: true,
    resolvConf: '',
    localStorageCapacityIsolation: false,
    // pods show up within a second instead of the default 20 s file/status cadence
    nodeStatusUpdateFrequency: '5s',
  };
}
