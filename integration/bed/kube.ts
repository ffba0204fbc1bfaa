// A real kube-apiserver + etcd for the bed, built from the Go module proxy by scripts/build-fixtures.sh.
// Loopback only, free ports picked at start, a throw-away CA with serving + client certificates (openssl,
// argv only), RBAC and the Node authorizer on, service-account keys, an admin kubeconfig, our CRDs applied.
// No controller-manager or scheduler runs: pods stay Pending, namespaces' default ServiceAccount is never
// created (so the ServiceAccount admission plugin is off unless `serviceAccounts` asks for it, for pods that use
// in-cluster config; the caller then creates the ServiceAccounts and kube-root-ca.crt a controller-manager would),
// and a pod bound to a node needs gracePeriodSeconds=0 to be deleted (no kubelet confirms it).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { loadAllYaml } from '@kubernetes/client-node';
import { onCleanup } from './cleanup.ts';
import { isAlive, killPidSync, stopPid } from './daemon.ts';
import { run, trace, waitFor } from './exec.ts';
import { kubeApi, type KubeApi, type KubeCredentials } from './kubeapi.ts';
import type { Netns } from './netns.ts';

export const FIXTURE_BIN = join(process.env.KOA_FIXTURE_CACHE ?? '/var/cache/kube-ovn-node-agent', 'bin');
export const CRD_FILE = new URL('../../deploy/crds/kube-ovn-crds.yaml', import.meta.url).pathname;

export interface Kube {
  readonly dir: string;
  readonly server: string;
  /** Admin (system:masters) kubeconfig path, for @kubernetes/client-node KubeConfig.loadFromFile. */
  readonly kubeconfig: string;
  /** Bearer token of the same admin user (from --token-auth-file). */
  readonly adminToken: string;
  readonly caFile: string;
  readonly api: KubeApi;
  /**
   * Makes the apiserver reachable at the same https://127.0.0.1:<port> from inside `ns` (a namespace has its own
   * loopback), so an agent started in a node namespace can use the same kubeconfig. Idempotent per namespace.
   */
  exposeIn(ns: Netns): Promise<void>;
  /** Writes a kubeconfig for a client certificate with this user/groups (e.g. system:node:<n>, [system:nodes]). */
  kubeconfigFor(user: string, groups?: string[]): Promise<string>;
  pids(): number[];
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await run(['openssl', ...args.map((a) => (a.startsWith('@') ? join(cwd, a.slice(1)) : a))]);
}

/** EC P-256 key + certificate signed by the bed CA; `@x` means a file in `dir`. */
async function issueCert(dir: string, name: string, subject: string, ext: string): Promise<void> {
  writeFileSync(join(dir, `${name}.ext`), ext);
  await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `@${name}.key`, '-out', `@${name}.csr`, '-subj', subject], dir);
  await openssl(['x509', '-req', '-in', `@${name}.csr`, '-CA', '@ca.crt', '-CAkey', '@ca.key', '-CAcreateserial', '-days', '7', '-out', `@${name}.crt`, '-extfile', `@${name}.ext`], dir);
}

function writeKubeconfig(path: string, server: string, dir: string, user: string, name: string): void {
  // JSON is valid YAML; file paths keep the certs in one place.
  const cfg = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'koa-bed', cluster: { server, 'certificate-authority': join(dir, 'ca.crt') } }],
    users: [{ name: user, user: { 'client-certificate': join(dir, `${name}.crt`), 'client-key': join(dir, `${name}.key`) } }],
    contexts: [{ name: 'koa-bed', context: { cluster: 'koa-bed', user } }],
    'current-context': 'koa-bed',
  };
  writeFileSync(path, JSON.stringify(cfg, null, 2));
}

function startChild(argv: string[], logPath: string): ChildProcess {
  const log = createWriteStream(logPath);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  return child;
}

export interface KubeOptions {
  prefix: string;
  crds?: boolean;
  crdFile?: string;
  /** The ServiceAccount admission plugin on: pods get their token volume (default off, see above). */
  serviceAccounts?: boolean;
}

export async function startKube(opts: KubeOptions): Promise<Kube> {
  for (const b of ['etcd', 'kube-apiserver']) {
    if (!existsSync(join(FIXTURE_BIN, b))) throw new Error(`${join(FIXTURE_BIN, b)} missing: run \`npm run setup\` (scripts/build-fixtures.sh)`);
  }
  const dir = mkdtempSync(`/tmp/${opts.prefix}kube-`);
  const children: ChildProcess[] = [];
  const pids = () => children.map((c) => c.pid).filter((p): p is number => !!p);
  let stopped = false;
  const unregister = onCleanup({
    label: `kube ${dir}`,
    run: async () => {
      if (stopped) return;
      stopped = true;
      await stopForwarders(dir);
      for (const pid of pids().reverse()) await stopPid(pid, 5000);
      rmSync(dir, { recursive: true, force: true });
    },
    runSync: () => {
      for (const pid of pids()) killPidSync(pid);
      rmSync(dir, { recursive: true, force: true });
    },
  });

  try {
    return await boot(dir, children, pids, unregister, opts.crds !== false, opts.crdFile, opts.serviceAccounts === true);
  } catch (e) {
    await unregister();
    throw e;
  }
}

async function boot(dir: string, children: ChildProcess[], pids: () => number[], unregister: () => Promise<void>, crds: boolean, crdFile: string | undefined,
  serviceAccounts: boolean): Promise<Kube> {
  // PKI: CA, apiserver serving cert (SAN 127.0.0.1 so it is valid through netns forwarders too), admin client cert, SA key.
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', '@ca.key', '-out', '@ca.crt', '-days', '7', '-subj', '/CN=koa-bed-ca'], dir);
  await issueCert(dir, 'apiserver', '/CN=kube-apiserver',
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1\nextendedKeyUsage=serverAuth\n');
  await issueCert(dir, 'admin', '/O=system:masters/CN=koa-admin', 'extendedKeyUsage=clientAuth\n');
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', '@sa.key'], dir);
  await openssl(['ec', '-in', '@sa.key', '-pubout', '-out', '@sa.pub'], dir);
  const adminToken = `koa-${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
  writeFileSync(join(dir, 'tokens.csv'), `${adminToken},koa-admin,koa-admin,"system:masters"\n`);

  trace('kube: certificates ready');
  const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${etcdClient}`;
  children.push(startChild([
    join(FIXTURE_BIN, 'etcd'), '--name', 'koa', '--data-dir', join(dir, 'etcd'), '--logger=zap', '--log-level=warn',
    '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl,
    '--listen-peer-urls', `http://127.0.0.1:${etcdPeer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${etcdPeer}`,
    '--initial-cluster', `koa=http://127.0.0.1:${etcdPeer}`, '--unsafe-no-fsync',
  ], join(dir, 'etcd.log')));
  await waitFor('etcd /health', async () => {
    const r = await fetch(`${etcdUrl}/health`).catch(() => undefined);
    return r?.ok;
  }, 20_000);

  trace('kube: etcd healthy');
  const server = `https://127.0.0.1:${apiPort}`;
  children.push(startChild([
    join(FIXTURE_BIN, 'kube-apiserver'),
    `--etcd-servers=${etcdUrl}`, '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', `--secure-port=${apiPort}`,
    `--tls-cert-file=${join(dir, 'apiserver.crt')}`, `--tls-private-key-file=${join(dir, 'apiserver.key')}`, `--cert-dir=${dir}`,
    `--client-ca-file=${join(dir, 'ca.crt')}`, `--token-auth-file=${join(dir, 'tokens.csv')}`,
    '--authorization-mode=Node,RBAC', '--anonymous-auth=false',
    `--service-account-key-file=${join(dir, 'sa.pub')}`, `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    '--service-cluster-ip-range=10.96.0.0/12', ...(serviceAccounts ? [] : ['--disable-admission-plugins=ServiceAccount']),
    '--enable-priority-and-fairness=false', '--profiling=false', '--allow-privileged=true', '--v=0',
    // extra flags for experiments, e.g. KOA_BED_APISERVER_ARGS="--feature-gates=X=true --v=4"
    ...(process.env.KOA_BED_APISERVER_ARGS?.split(/\s+/).filter(Boolean) ?? []),
  ], join(dir, 'kube-apiserver.log')));

  const creds: KubeCredentials = {
    server,
    ca: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    cert: readFileSync(join(dir, 'admin.crt'), 'utf8'),
    key: readFileSync(join(dir, 'admin.key'), 'utf8'),
  };
  const api = kubeApi(creds);
  try {
    await waitFor('kube-apiserver /readyz', async () => {
      for (const c of children) if (c.exitCode !== null) throw new Error(`process exited (${c.exitCode}); see ${dir}/*.log`);
      return (await api.get<string>('/readyz').catch(() => undefined)) === 'ok';
    }, 60_000, 100);
  } catch (e) {
    const tail = readFileSync(join(dir, 'kube-apiserver.log'), 'utf8').split('\n').slice(-15).join('\n');
    throw new Error(`${(e as Error).message}\n--- kube-apiserver.log (tail)\n${tail}`);
  }
  trace('kube: apiserver ready');
  const kubeconfig = join(dir, 'admin.kubeconfig');
  writeKubeconfig(kubeconfig, server, dir, 'koa-admin', 'admin');
  if (crds) await applyCrds(api, crdFile);
  trace('kube: CRDs established');

  let n = 0;
  return {
    dir,
    server,
    kubeconfig,
    adminToken,
    caFile: join(dir, 'ca.crt'),
    api,
    kubeconfigFor: async (user, groups = []) => {
      const name = `user${++n}`;
      const subject = `${groups.map((g) => `/O=${g}`).join('')}/CN=${user}`;
      await issueCert(dir, name, subject, 'extendedKeyUsage=clientAuth\n');
      const path = join(dir, `${name}.kubeconfig`);
      writeKubeconfig(path, server, dir, user, name);
      return path;
    },
    exposeIn: (ns) => exposeIn(ns, dir, Number(new URL(server).port)),
    pids: () => pids().filter(isAlive),
    stop: unregister,
  };
}

// Per apiserver dir: namespace name -> its forwarder's start promise and stop step.
type Forwarder = { started: Promise<void>; stop: () => Promise<void>; report: () => string };
const forwarders = new Map<string, Map<string, Forwarder>>();

function exposeIn(ns: Netns, dir: string, port: number): Promise<void> {
  let mine = forwarders.get(dir);
  if (!mine) forwarders.set(dir, (mine = new Map()));
  const existing = mine.get(ns.name);
  if (existing) return existing.started;
  const f = startForwarder(ns, dir, port);
  mine.set(ns.name, f);
  return f.started;
}

async function stopForwarders(dir: string): Promise<void> {
  for (const f of forwarders.get(dir)?.values() ?? []) await f.stop();
  forwarders.delete(dir);
}

function startForwarder(ns: Netns, dir: string, port: number): Forwarder {
  const sock = join(dir, `fwd-${ns.name}.sock`);
  // host half: unix socket -> 127.0.0.1:port, served by this process
  const open = new Set<Socket>();
  const stats = { accepted: 0, errors: new Map<string, number>() };
  const count = (what: string, e: NodeJS.ErrnoException): void => {
    const k = `${what} ${e.code ?? e.message}`;
    stats.errors.set(k, (stats.errors.get(k) ?? 0) + 1);
  };
  const relay = createServer((c) => {
    stats.accepted++;
    const up = connect(port, '127.0.0.1');
    // long-lived watches would keep close() waiting forever: remember both ends to destroy them on stop
    for (const s of [c, up]) {
      open.add(s);
      s.on('close', () => open.delete(s));
    }
    let connected = false;
    up.once('connect', () => { connected = true; });
    c.pipe(up).pipe(c);
    c.on('error', (e) => { count('unix', e); up.destroy(); });
    up.on('error', (e) => { count(connected ? 'api' : 'api-connect', e); c.destroy(); });
  });
  relay.on('error', (e) => count('listener', e));
  let child: ChildProcess | undefined;
  const stop = onCleanup({
    label: `apiserver forwarder in ${ns.name}`,
    run: async () => {
      if (child?.pid) await stopPid(child.pid, 2000);
      for (const s of open) s.destroy();
      if (relay.listening) await new Promise<void>((r) => relay.close(() => r()));
    },
    runSync: () => {
      if (child?.pid) killPidSync(child.pid);
      relay.close();
    },
  });
  const started = (async () => {
    await new Promise<void>((resolve, reject) => relay.once('error', reject).listen(sock, resolve));
    // namespace half: a small Node process inside the namespace
    child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, new URL('./netns-forward.ts', import.meta.url).pathname, String(port), sock], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const c = child;
    await new Promise<void>((resolve, reject) => {
      c.once('exit', (code) => reject(new Error(`netns forwarder in ${ns.name} exited (${code})`)));
      c.stdout!.once('data', () => resolve());
    });
  })();
  const report = (): string => {
    let nodeSide = '';
    try {
      const lines = readFileSync(`${sock}.errors`, 'utf8').trim().split('\n');
      const byKind = new Map<string, number>();
      for (const l of lines) { const k = l.split(' ').slice(1).join(' '); byKind.set(k, (byKind.get(k) ?? 0) + 1); }
      nodeSide = `${JSON.stringify(Object.fromEntries(byKind))}, last at ${lines.at(-1)?.split(' ')[0]}`;
    } catch { nodeSide = 'none'; }
    return `${ns.name}: host relay accepted ${stats.accepted}, ${open.size} sockets open, errors ${JSON.stringify(Object.fromEntries(stats.errors))}; namespace relay errors ${nodeSide}`;
  };
  return { started, stop, report };
}

/**
 * What the apiserver forwarders saw, for a test whose agent's API connections failed: per namespace, the host
 * relay's accepted connections, open sockets and errors by hop and code, and the namespace relay's errors; then this
 * process's open fds and the host namespace's TCP sockets in TIME_WAIT (read from /proc, nothing changed).
 */
export function forwarderReport(): string {
  const lines = [...forwarders.values()].flatMap((m) => [...m.values()].map((f) => f.report()));
  let fds = -1;
  try { fds = readdirSync('/proc/self/fd').length; } catch { /* not Linux */ }
  let timeWait = 0;
  for (const f of ['/proc/self/net/tcp', '/proc/self/net/tcp6']) {
    // columns: sl local_address rem_address st ...; the slot is printed as %4d, so trim before splitting
    try { timeWait += readFileSync(f, 'utf8').split('\n').filter((l) => l.trim().split(/\s+/)[3] === '06').length; } catch { /* no IPv6 */ }
  }
  return [...lines, `test process: ${fds} open fds; host namespace: ${timeWait} TCP sockets in TIME_WAIT`].join('\n');
}

/**
 * Creates (or updates) every CRD in deploy/crds and waits until each is Established and served. Each document goes
 * to the apiserver as the YAML text of the file (server-side apply): client-node's typed loader renames
 * `x-kubernetes-preserve-unknown-fields` to a camel-case key the apiserver ignores, which would make it prune every
 * field the schema does not list (e.g. a Subnet's natOutgoingPolicyRules). The typed parse only gives the names.
 */
export async function applyCrds(api: KubeApi, file = CRD_FILE): Promise<string[]> {
  // empty documents (upstream charts have some) make loadAllYaml throw: leave them out first
  const parts = readFileSync(file, 'utf8').split(/^---[ \t]*$/m)
    .filter((d) => d.split('\n').some((l) => l.trim() !== '' && !l.trim().startsWith('#')));
  const docs = (loadAllYaml(parts.join('\n---\n')) as any[]).filter((d) => d?.kind === 'CustomResourceDefinition');
  const raw = parts.filter((d) => /^kind: CustomResourceDefinition[ \t]*$/m.test(d));
  const base = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
  for (const crd of docs) {
    const name = crd.metadata.name as string;
    const yaml = raw.find((d) => new RegExp(`^  name: ${name.replaceAll('.', '\\.')}[ \t]*$`, 'm').test(d));
    if (!yaml) throw new Error(`CRD ${name}: its YAML document was not found in ${file}`);
    await api.request('PATCH', `${base}/${name}?fieldManager=koa-bed&force=true`, Buffer.from(yaml), 'application/apply-patch+yaml');
  }
  for (const crd of docs) {
    const name = crd.metadata.name as string;
    await waitFor(`CRD ${name} Established`, async () => {
      const c = await api.get(`${base}/${name}`);
      return c.status?.conditions?.some((x: { type: string; status: string }) => x.type === 'Established' && x.status === 'True');
    }, 30_000);
    await waitFor(`${name} served`, async () => !!(await api.get(`/apis/${crd.spec.group}/v1/${crd.spec.names.plural}`)), 30_000);
  }
  // Right after a CRD is established, the first create of a custom object blocks for about 2 s inside the
  // apiserver (measured; reads are not affected). A dry-run create per kind takes that wait here, so "up" means
  // writes are fast too.
  await Promise.all(docs.map((crd) =>
    api.post(`/apis/${crd.spec.group}/v1/${crd.spec.names.plural}?dryRun=All`, {
      apiVersion: `${crd.spec.group}/v1`, kind: crd.spec.names.kind, metadata: { name: 'koa-bed-warm-up' }, spec: {},
    }).catch(() => undefined)));
  return docs.map((d) => d.metadata.name as string);
}
