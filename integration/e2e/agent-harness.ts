// End-to-end harness: the real agent process inside a bed node's namespace, and the real CNI executable
// (cni-shim/kube-ovn) called the way a container runtime calls it, also from inside that namespace.
//
//   const agent = await startNodeAgent(bed, node, { annotationWaitTimeout: '5s' });
//   const pod = await createPodNetns(bed, 'p1');                      // `<prefix>p1`, removed at cleanup
//   const r = await cniCall('ADD', { agent, netns: pod.path, containerId, ifName: 'eth0', podName, podNamespace });
//   await agent.stop();
//
// The agent runs `agent/src/main.ts` (or the bundle, with the image's Node flags) with the pinned Node
// (process.execPath) under `ip netns exec <node>`, which
// execs in place: the child's PID is the agent's PID (for VmHWM and for stopping it by PID). Its metrics/health
// server listens on the node namespace's own port 10665 (a private namespace: nothing else listens there); the
// harness reaches it with curl inside the same namespace.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, type WriteStream } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Bed, BedNode } from '../bed/bed.ts';
import { onCleanup } from '../bed/cleanup.ts';
import { isAlive, stopPid } from '../bed/daemon.ts';
import { run, waitFor } from '../bed/exec.ts';
import { createNetns, type Netns } from '../bed/netns.ts';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const SHIM = join(ROOT, 'cni-shim', 'kube-ovn');
export const MAIN = join(ROOT, 'agent', 'src', 'main.ts');
/** The test entry point (integration/support/agent-main.ts): main.ts plus hooks chosen by KOA_TEST_BACKEND / KOA_FAULT_AFTER_STEP. */
export const TEST_MAIN = join(ROOT, 'integration', 'support', 'agent-main.ts');
/** The shipped form (`npm run build:agent`): one ESM file, no type stripping at start, lower RSS. */
export const BUNDLE = join(ROOT, 'dist', 'agent.mjs');

/** The Node/V8 flags the image runs the bundle with (the `node_flags='...'` line of deploy/image/kube-ovn-daemon). */
export function imageNodeFlags(): string[] {
  const m = /^node_flags='([^']*)'$/m.exec(readFileSync(join(ROOT, 'deploy', 'image', 'kube-ovn-daemon'), 'utf8'));
  if (!m) throw new Error('deploy/image/kube-ovn-daemon has no node_flags line');
  return m[1]!.split(/\s+/).filter(Boolean);
}

/** The environment the image sets for Node (`export NAME="${NAME:-value}"` lines of deploy/image/kube-ovn-daemon). */
export function imageNodeEnv(): Record<string, string> {
  const text = readFileSync(join(ROOT, 'deploy', 'image', 'kube-ovn-daemon'), 'utf8');
  return Object.fromEntries([...text.matchAll(/^export ([A-Z_]+)="\$\{\1:-([^}]*)\}"$/gm)].map((m) => [m[1]!, m[2]!]));
}

/** Builds dist/agent.mjs from the current sources. */
export function buildBundle(): void {
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'bundle.ts')], { cwd: ROOT, stdio: 'inherit' });
}
export const METRICS_PORT = 10665;

/** Builds the CNI executable (make is incremental: a no-op when it is current). */
export function buildShim(): void {
  execFileSync('make', ['-s', '-C', join(ROOT, 'cni-shim')], { stdio: 'inherit' });
}

export const rand = (bytes = 3): string => randomBytes(bytes).toString('hex');
/** A 64-hex container id, like containerd's; the first 12 characters name the host veth. */
export const newContainerId = (): string => randomBytes(32).toString('hex');

export interface AgentOptions {
  /** `--annotation-wait-timeout` (Go duration), default 20s */
  annotationWaitTimeout?: string;
  /** `--ovn-installed-timeout`, default 20s */
  ovnInstalledTimeout?: string;
  /** `--gateway-check-timeout`, default 10s */
  gatewayCheckTimeout?: string;
  logLevel?: string;
  /** extra flags */
  args?: string[];
  /** extra environment (e.g. KOA_FAULT_AFTER_STEP) */
  env?: Record<string, string>;
  /** reuse this state dir (socket, delete queue, logs), e.g. to restart an agent on the same socket; it must exist */
  dir?: string;
  /** wait for /readyz (default true) */
  waitReady?: boolean;
  /** run the sources (agent/src/main.ts, default) or the bundle (dist/agent.mjs; build it first with buildBundle) */
  entry?: 'source' | 'bundle';
  /** Node/V8 flags before the entry (default: none for the sources, the image's flags for the bundle) */
  nodeArgs?: string[];
  /** with entry 'bundle': this bundle instead of dist/agent.mjs */
  bundlePath?: string;
}

export type LogLine = Record<string, unknown> & { msg?: string; time?: string };

export interface NodeAgent {
  readonly node: BedNode;
  readonly pid: number;
  readonly dir: string;
  /** the CNI Unix socket (`--bind-socket`) */
  readonly socket: string;
  readonly delQueueDir: string;
  readonly logFile: string;
  readonly lines: LogLine[];
  readonly exited: Promise<number | null>;
  /** first log line (already seen or future) whose msg matches */
  waitForLog(re: RegExp, timeoutMs?: number, from?: number): Promise<LogLine>;
  /** GET on the agent's metrics/health server, from inside the node namespace */
  http(path: string): Promise<{ status: number; body: string }>;
  metrics(): Promise<string>;
  /** VmHWM (peak RSS) of the agent process in MB */
  peakRssMb(): number;
  /** VmRSS (resident now) of the agent process in MB */
  rssMb(): number;
  alive(): boolean;
  /** SIGTERM, then SIGKILL after 30 s (the DaemonSet's grace period); resolves once the PID is gone. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL now (a crash); resolves once the PID is gone. */
  kill(): Promise<void>;
}

export function agentArgs(bed: Bed, node: BedNode, dir: string, o: AgentOptions = {}): string[] {
  return [
    `--node-name=${node.name}`,
    `--kubeconfig=${bed.kube!.kubeconfig}`,
    `--ovs-socket=${node.ovs.dbSock}`,
    `--bind-socket=${join(dir, 'run', 'kube-ovn-daemon.sock')}`,
    `--cni-del-queue-dir=${join(dir, 'del-queue')}`,
    `--pprof-port=${METRICS_PORT}`,
    `--mtu=${bed.mtu}`,
    `--annotation-wait-timeout=${o.annotationWaitTimeout ?? '20s'}`,
    `--ovn-installed-timeout=${o.ovnInstalledTimeout ?? '20s'}`,
    `--gateway-check-timeout=${o.gatewayCheckTimeout ?? '10s'}`,
    `--log-level=${o.logLevel ?? 'info'}`,
    ...(o.args ?? []),
  ];
}

/** Starts the real agent in `node`'s namespace and waits until /readyz answers 200. */
export async function startNodeAgent(bed: Bed, node: BedNode, o: AgentOptions = {}): Promise<NodeAgent> {
  if (!bed.kube) throw new Error('the agent needs the bed with kube-apiserver');
  let dir = o.dir;
  if (!dir) {
    const made = mkdtempSync(`/tmp/${bed.prefix}agent-`);
    // the state dir outlives this process (a restarted agent reuses it); it goes at bed cleanup
    onCleanup({ label: `agent dir ${made}`, run: () => rmSync(made, { recursive: true, force: true }) });
    dir = made;
  }
  const hooked = Boolean(o.env?.KOA_FAULT_AFTER_STEP || o.env?.KOA_TEST_BACKEND);
  if (hooked && o.entry === 'bundle') throw new Error('test hooks need the test entry point, not the bundle');
  const bundle = !hooked && (o.entry ?? process.env.KOA_E2E_AGENT) === 'bundle';
  const entry = hooked ? TEST_MAIN : bundle ? o.bundlePath ?? BUNDLE : MAIN;
  // KOA_AGENT_EXTRA_NODE_ARGS: extra Node flags for a look inside (e.g. `--cpu-prof --cpu-prof-dir=/tmp/p`)
  const extra = (process.env.KOA_AGENT_EXTRA_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  const nodeArgs = [...(o.nodeArgs ?? (bundle ? imageNodeFlags() : [])), ...extra];
  const argv = ['ip', 'netns', 'exec', node.ns.name, process.execPath, ...nodeArgs, entry, ...agentArgs(bed, node, dir, o)];
  return superviseDaemon({
    node, dir, argv, label: 'agent', socket: join(dir, 'run', 'kube-ovn-daemon.sock'), delQueueDir: join(dir, 'del-queue'),
    // a test agent never talks to the host's NetworkManager (it would look its devices up by name): a bus of its own
    // that does not exist, unless the test gives one
    env: { ...process.env, NODE_NAME: node.name, KUBECONFIG: bed.kube.kubeconfig, DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${join(dir, 'no-system-bus')}`,
      ...(bundle ? imageNodeEnv() : {}), ...o.env },
    waitReady: o.waitReady ?? true,
  });
}

export interface DaemonProcess {
  node: BedNode;
  /** the state dir: the log file goes here */
  dir: string;
  /** the full argv, run from the repository root (its PID is the daemon's: `ip netns exec` execs in place) */
  argv: string[];
  env: NodeJS.ProcessEnv;
  /** what to call it in errors and cleanup labels */
  label: string;
  socket: string;
  delQueueDir: string;
  /** wait until /readyz on port 10665 answers 200 */
  waitReady: boolean;
}

/**
 * Spawns a node daemon (our agent, or upstream's for the side-by-side bench), collects its log lines, registers its
 * stop for cleanup, and waits for /readyz on the node namespace's port 10665 (the DaemonSet's readiness probe).
 */
export async function superviseDaemon(d: DaemonProcess): Promise<NodeAgent> {
  const { node, dir, argv } = d;
  const child: ChildProcess = spawn(argv[0]!, argv.slice(1), {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: d.env,
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not spawn the ${d.label}`);
  const logFile = join(dir, `${d.label}-${pid}.log`);
  const log: WriteStream = createWriteStream(logFile);
  const lines: LogLine[] = [];
  const waiters: { re: RegExp; from: number; resolve: (l: LogLine) => void }[] = [];
  const onLine = (text: string) => {
    if (!text.trim()) return;
    log.write(text + '\n');
    let l: LogLine;
    try {
      l = JSON.parse(text) as LogLine;
    } catch {
      l = { msg: text };
    }
    lines.push(l);
    const idx = lines.length - 1;
    for (const w of [...waiters]) if (idx >= w.from && w.re.test(String(l.msg))) { waiters.splice(waiters.indexOf(w), 1); w.resolve(l); }
  };
  const splitter = () => {
    let buf = '';
    return (c: Buffer) => {
      buf += c.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) { onLine(buf.slice(0, i)); buf = buf.slice(i + 1); }
    };
  };
  child.stdout!.on('data', splitter());
  child.stderr!.on('data', splitter());
  const exited = new Promise<number | null>((r) => child.on('exit', (code, sig) => r(code ?? (sig ? 128 : null))));
  void exited.then(() => log.end());

  let stopped = false;
  const stopNow = async (signal: 'SIGTERM' | 'SIGKILL') => {
    if (!stopped) {
      stopped = true;
      if (signal === 'SIGKILL') {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      } else {
        // the kubelet's grace period (30 s): the agent drains calls in flight for up to 20 s before it exits
        await stopPid(pid, 30_000);
      }
    }
    if (child.exitCode === null && child.signalCode === null) await exited;
  };
  const unregister = onCleanup({
    label: `${d.label} ${pid}`,
    run: () => stopNow('SIGTERM'),
    runSync: () => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } },
  });

  const http = async (path: string) => {
    const r = await node.ns.exec(['curl', '-sS', '-m', '5', '-o', '-', '-w', '\n%{http_code}', `http://127.0.0.1:${METRICS_PORT}${path}`], { allowFail: true, timeoutMs: 10_000 });
    const cut = r.stdout.lastIndexOf('\n');
    return { status: Number(r.stdout.slice(cut + 1)) || 0, body: r.stdout.slice(0, Math.max(0, cut)) };
  };
  const agent: NodeAgent = {
    node, pid, dir,
    socket: d.socket,
    delQueueDir: d.delQueueDir,
    logFile, lines, exited,
    waitForLog(re, timeoutMs = 60_000, from = 0) {
      const hit = lines.slice(from).find((l) => re.test(String(l.msg)));
      if (hit) return Promise.resolve(hit);
      return new Promise((res, rej) => {
        const t = setTimeout(() => rej(new Error(`${d.label} did not log ${re} within ${timeoutMs} ms; log tail: ${tail(lines)}`)), timeoutMs);
        waiters.push({ re, from, resolve: (l) => { clearTimeout(t); res(l); } });
        void exited.then((code) => { clearTimeout(t); rej(new Error(`${d.label} exited (${code}) before logging ${re}; log tail: ${tail(lines)}`)); });
      });
    },
    http,
    metrics: async () => (await http('/metrics')).body,
    peakRssMb: () => vmHwmMb(pid),
    rssMb: () => vmRssMb(pid),
    alive: () => isAlive(pid) && child.exitCode === null,
    stop: () => unregister(),
    kill: () => stopNow('SIGKILL'),
  };
  if (d.waitReady) {
    try {
      await waitFor(`${d.label} /readyz`, async () => {
        if (!agent.alive()) throw new Error(`${d.label} exited; log tail: ${tail(lines)}`);
        const r = await http('/readyz');
        return r.status === 200;
      }, 120_000, 100); // start-up (OVS, watches, ovn0 and its gateway check) takes seconds; the bound is for a loaded machine
    } catch (e) {
      const r = await http('/readyz?verbose').catch(() => undefined);
      await agent.stop();
      throw new Error(`${(e as Error).message}\n/readyz: ${r?.status} ${r?.body}\nlog tail: ${tail(lines)}`);
    }
  }
  return agent;
}

const tail = (lines: LogLine[], n = 15) => lines.slice(-n).map((l) => JSON.stringify(l)).join('\n');

export const vmHwmMb = (pid: number): number => procStatusMb(pid, 'VmHWM');
export const vmRssMb = (pid: number): number => procStatusMb(pid, 'VmRSS');

function procStatusMb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} for pid ${pid}`);
  return Number(m[1]) / 1024;
}

/** A pod network namespace `<bed prefix><name>` (prefix starts with koae), deleted at bed cleanup or by `.delete()`. */
export function createPodNetns(bed: Bed, name: string): Promise<Netns> {
  return createNetns(`${bed.prefix}${name}`);
}

/** Creates a Pod object bound to `node` (no kubelet: it stays Pending), optionally pre-annotated. */
export async function createPod(bed: Bed, node: BedNode, name: string, o: { namespace?: string; annotations?: Record<string, string> } = {}): Promise<{ uid: string }> {
  const ns = o.namespace ?? 'default';
  const pod = await bed.kube!.api.post(`/api/v1/namespaces/${ns}/pods`, {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, namespace: ns, ...(o.annotations ? { annotations: o.annotations } : {}) },
    spec: { nodeName: node.name, containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] },
  });
  return { uid: pod.metadata.uid as string };
}

export async function deletePod(bed: Bed, name: string, namespace = 'default'): Promise<void> {
  await bed.kube!.api.delete(`/api/v1/namespaces/${namespace}/pods/${name}`, { gracePeriodSeconds: 0 }).catch(() => undefined);
}

export interface CniCallOptions {
  agent: NodeAgent;
  /** the pod namespace path (`/var/run/netns/<name>`), '' for a DEL without one */
  netns: string;
  containerId: string;
  ifName?: string;
  podName: string;
  podNamespace?: string;
  podUid?: string;
  /** netconf object (default: kube-ovn type, cniVersion 1.0.0, server_socket = agent socket); merged over the default */
  netconf?: Record<string, unknown>;
  /** replaces the default netconf entirely */
  rawNetconf?: Record<string, unknown>;
  /** the executable to run (default our shim); e.g. /usr/lib/cni/macvlan */
  plugin?: string;
  /** CNI_PATH (default: the shim's directory) */
  cniPath?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

export interface CniCallResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON, when it is JSON */
  json: any;
  /** performance.now() at spawn and at exit (same clock as the test's own timestamps) */
  startedAt: number;
  endedAt: number;
  ms: number;
}

export const defaultNetconf = (agent: NodeAgent, extra: Record<string, unknown> = {}): Record<string, unknown> =>
  ({ cniVersion: '1.0.0', name: 'kube-ovn', type: 'kube-ovn', server_socket: agent.socket, ...extra });

/** What a runtime hands a CNI plugin for `command`: the CNI_* environment, the netconf for stdin, the executable. */
export function cniCallInput(command: string, o: CniCallOptions): { env: Record<string, string>; stdin: string; plugin: string } {
  const conf = o.rawNetconf ?? defaultNetconf(o.agent, o.netconf);
  const cniArgs = [`IgnoreUnknown=1`, `K8S_POD_NAMESPACE=${o.podNamespace ?? 'default'}`, `K8S_POD_NAME=${o.podName}`,
    `K8S_POD_INFRA_CONTAINER_ID=${o.containerId}`, ...(o.podUid ? [`K8S_POD_UID=${o.podUid}`] : [])].join(';');
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command, CNI_CONTAINERID: o.containerId, CNI_NETNS: o.netns, CNI_IFNAME: o.ifName ?? 'eth0',
    CNI_ARGS: cniArgs, CNI_PATH: o.cniPath ?? dirname(SHIM),
    // a DEL the shim cannot hand to the agent is queued in this agent's own queue dir, never the host's default
    // /run/openvswitch/kube-ovn-del-queue (where the agent under test would not drain it, and a real one would)
    KOA_DEL_QUEUE_DIR: o.agent.delQueueDir, ...o.env,
  };
  return { env, stdin: JSON.stringify(conf), plugin: o.plugin ?? SHIM };
}

/** Runs a CNI plugin (our executable by default) inside the node namespace with CNI_* env and the netconf on stdin. */
export function cniCall(command: string, o: CniCallOptions): Promise<CniCallResult> {
  const { env, stdin, plugin } = cniCallInput(command, o);
  return new Promise((res, rej) => {
    const startedAt = performance.now();
    const p = spawn('ip', ['netns', 'exec', o.agent.node.ns.name, plugin], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (c: Buffer) => out.push(c));
    p.stderr.on('data', (c: Buffer) => err.push(c));
    p.stdin.on('error', () => undefined);
    const timer = setTimeout(() => p.kill('SIGKILL'), o.timeoutMs ?? 120_000);
    p.on('error', (e) => { clearTimeout(timer); rej(e); });
    p.on('close', (code) => {
      const endedAt = performance.now();
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString();
      let json: unknown;
      try { json = stdout.trim() ? JSON.parse(stdout) : undefined; } catch { json = undefined; }
      res({ code, stdout, stderr: Buffer.concat(err).toString(), json, startedAt, endedAt, ms: endedAt - startedAt });
    });
    p.stdin.end(stdin);
  });
}

/** What a pod's wiring left on its node: OVS ports/interfaces with `_h` names, QoS rows, host veths. */
export interface NodeLeftovers {
  ports: string[];
  qos: string[];
  links: string[];
  ifaceIds: string[];
}

/** Everything on the node that carries one of `containerIds`' veth stems or `ifaceIds` (empty = nothing leaked). */
export async function leftovers(node: BedNode, o: { containerIds?: string[]; ifaceIds?: string[] }): Promise<NodeLeftovers> {
  const stems = (o.containerIds ?? []).map((c) => c.slice(0, 8));
  const ports = (await node.ovs.vsctl(['list-ports', 'br-int'])).split('\n').filter((p) => p && stems.some((s) => p.startsWith(s)));
  const ids = (await node.ovs.vsctl(['--format=json', '--columns=name,external_ids', 'list', 'interface']));
  const rows = (JSON.parse(ids) as { data: [string, [string, [string, string][]]][] }).data;
  const ifaceIds = rows.flatMap(([name, [, kv]]) => {
    const id = kv.find(([k]) => k === 'iface-id')?.[1];
    return id && (o.ifaceIds ?? []).includes(id) ? [`${name}=${id}`] : [];
  });
  const qosJson = JSON.parse(await node.ovs.vsctl(['--format=json', '--columns=_uuid,external_ids', 'list', 'qos'])) as { data: [unknown, [string, [string, string][]]][] };
  const qos = qosJson.data.filter(([, [, kv]]) => kv.some(([k, v]) => (k === 'iface-id' && (o.ifaceIds ?? []).includes(v)) ||
    (k === 'pod' && (o.ifaceIds ?? []).some((i) => i.startsWith(v))))).map((r) => JSON.stringify(r));
  const linkJson = JSON.parse((await node.ns.ip(['-j', 'link', 'show'])).stdout) as { ifname: string }[];
  const links = linkJson.map((l) => l.ifname).filter((n) => stems.some((s) => n.startsWith(s)));
  return { ports, qos, links, ifaceIds };
}

/** Count of all QoS rows in the node's OVS db. */
export async function qosCount(node: BedNode): Promise<number> {
  const j = JSON.parse(await node.ovs.vsctl(['--format=json', '--columns=_uuid', 'list', 'qos'])) as { data: unknown[] };
  return j.data.length;
}

/** Addresses (`ip/len`) on `dev` inside `ns`. */
export async function addressesOf(ns: Netns, dev: string): Promise<string[]> {
  const j = JSON.parse((await ns.ip(['-j', 'addr', 'show', 'dev', dev])).stdout) as { addr_info: { local: string; prefixlen: number; scope: string }[] }[];
  return (j[0]?.addr_info ?? []).filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`);
}

/** The OVS external_ids of an interface, or undefined when it does not exist. */
export async function ifaceExternalIds(node: BedNode, iface: string): Promise<Record<string, string> | undefined> {
  const r = await run(['ovs-vsctl', '--timeout=10', '--format=json', '--columns=external_ids', 'find', 'interface', `name=${iface}`], { env: node.ovs.env });
  const data = (JSON.parse(r.stdout) as { data: [[string, [string, string][]]][] }).data;
  if (data.length === 0) return undefined;
  return Object.fromEntries(data[0]![0]![1]);
}


export interface TestPod {
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
  readonly ns: Netns;
  readonly containerId: string;
}

/** Pod object on `node` + its network namespace + a fresh container id (no annotations yet). */
export async function newPod(bed: Bed, node: BedNode, name: string, namespace = 'default'): Promise<TestPod> {
  const { uid } = await createPod(bed, node, name, { namespace });
  const ns = await createPodNetns(bed, name);
  return { name, namespace, uid, ns, containerId: newContainerId() };
}

/** cniCall for a TestPod (netns, container id, names, uid filled in). */
export function podCall(command: string, agent: NodeAgent, pod: TestPod, o: Partial<CniCallOptions> = {}): Promise<CniCallResult> {
  return cniCall(command, { agent, netns: pod.ns.path, containerId: pod.containerId, podName: pod.name, podNamespace: pod.namespace, podUid: pod.uid, ...o });
}
