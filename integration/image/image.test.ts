// The image's runtime tree, assembled by scripts/image-rootfs.sh (the same script the Dockerfile uses) into a temp
// dir with no node_modules: its install-cni.sh against temp dirs (atomic copies, conflist 0600, an existing 0600
// conflist kept), its kube-ovn-daemon serving the real shim, and start-cniserver.sh waiting for a real Open vSwitch
// inside a `koai*` network namespace before it starts the agent. No Docker engine runs here.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { builtinModules } from 'node:module';
import { chmod, mkdir, mkdtemp, open, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { up, type Bed, type BedNode } from '../bed/bed.ts';
import { cleanupAll, createNetns, newPrefix } from '../bed/netns.ts';
import { waitFor } from '../bed/exec.ts';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
let base = '';
let rootfs = '';
const started = new Set<ChildProcess>();

after(async () => {
  for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  await cleanupAll();
  if (base) await rm(base, { recursive: true, force: true });
});

before(async () => {
  base = await mkdtemp(join(tmpdir(), 'koai-image-'));
  rootfs = join(base, 'rootfs');
  await run('make', ['-s', '-C', join(ROOT, 'cni-shim')], { cwd: ROOT });
  await run('npm', ['run', '--silent', 'build:agent'], { cwd: ROOT });
  await run('bash', [join(ROOT, 'scripts/image-rootfs.sh'), rootfs], { cwd: ROOT });
});

const CNI_BINS = ['loopback', 'portmap', 'kube-ovn', 'macvlan', 'ipvlan'];
const srcOf = (b: string) => (b === 'kube-ovn' ? join(rootfs, 'kube-ovn/kube-ovn') : join(rootfs, b));

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => res(p)); });
  });
}

interface Proc { proc: ChildProcess; out: string[]; exited: Promise<number | null>; waitFor(re: RegExp, ms?: number): Promise<void> }
function spawnLogged(argv: string[], env: NodeJS.ProcessEnv): Proc {
  const proc = spawn(argv[0]!, argv.slice(1), { cwd: '/', env, stdio: ['ignore', 'pipe', 'pipe'] });
  started.add(proc);
  const out: string[] = [];
  const on = (c: Buffer) => { out.push(...c.toString().split('\n').filter((l) => l !== '')); };
  proc.stdout!.on('data', on);
  proc.stderr!.on('data', on);
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  return {
    proc, out, exited,
    async waitFor(re, ms = 20000) {
      const t0 = Date.now();
      while (!out.some((l) => re.test(l))) {
        if (Date.now() - t0 > ms) throw new Error(`no line matching ${re} in ${ms} ms: ${out.join('\n').slice(0, 3000)}`);
        if (proc.exitCode !== null) throw new Error(`exited ${proc.exitCode} before ${re}: ${out.join('\n').slice(0, 3000)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

function runShim(sock: string, command: string, cid: string, netconf: object): Promise<{ code: number | null; stdout: string }> {
  return new Promise((res, rej) => {
    const p = spawn(join(rootfs, 'kube-ovn/kube-ovn'), [], {
      env: { CNI_COMMAND: command, CNI_CONTAINERID: cid, CNI_NETNS: '/var/run/netns/koai-none', CNI_IFNAME: 'eth0',
        CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=p1', CNI_PATH: '/opt/cni/bin' },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let stdout = '';
    p.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
    p.on('error', rej);
    p.on('close', (code) => res({ code, stdout }));
    p.stdin.end(JSON.stringify({ ...netconf, server_socket: sock }));
  });
}

/** Every process below `root` (from /proc/<pid>/stat's parent field). */
function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try { parent.set(Number(d), Number(readFileSync(`/proc/${d}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[1])); } catch { /* gone */ }
  }
  const out: number[] = [];
  const walk = (p: number) => { for (const [c, pp] of parent) if (pp === p) { out.push(c); walk(c); } };
  walk(root);
  return out;
}

describe('image rootfs layout', () => {
  it('has the upstream drop-in paths, executable, and no node_modules', async () => {
    for (const f of ['kube-ovn/kube-ovn', 'kube-ovn/kube-ovn-exec', 'kube-ovn/install-cni.sh', 'kube-ovn/start-cniserver.sh', 'kube-ovn/kube-ovn-daemon',
      'kube-ovn/node', 'loopback', 'portmap', 'macvlan', 'ipvlan']) {
      assert.equal((await stat(join(rootfs, f))).mode & 0o111, 0o111, `${f} executable`);
    }
    for (const f of ['kube-ovn/01-kube-ovn.conflist', 'kube-ovn/dist/agent.mjs', 'kube-ovn/dist/install-cni-config.mjs', 'kube-ovn/build/Release/koa_native.node']) {
      assert.ok((await stat(join(rootfs, f))).isFile(), f);
    }
    assert.equal(existsSync(join(rootfs, 'node_modules')) || existsSync(join(rootfs, 'kube-ovn/node_modules')), false);
    // upstream's DaemonSet mounts the host's /usr/local/bin (install-cni) and an emptyDir at /usr/local/sbin over the
    // image: nothing the agent needs may live there
    assert.equal(existsSync(join(rootfs, 'usr/local')), false, 'nothing under /usr/local');
    const conf = JSON.parse(await readFile(join(rootfs, 'kube-ovn/01-kube-ovn.conflist'), 'utf8')) as { name: string; cniVersion: string; plugins: Record<string, unknown>[] };
    assert.equal(conf.name, 'kube-ovn');
    assert.equal(conf.cniVersion, '0.3.1');
    assert.deepEqual(conf.plugins, [{ type: 'kube-ovn', server_socket: '/run/openvswitch/kube-ovn-daemon.sock' }, { type: 'portmap', capabilities: { portMappings: true } }]);
    const { stdout } = await run(join(rootfs, 'kube-ovn/node'), ['--version']);
    assert.match(stdout, /^v24\./);
  });

  it('the shim is a static executable (no ELF interpreter) and the bundle imports only node: builtins', async () => {
    const elf = await readFile(join(rootfs, 'kube-ovn/kube-ovn'));
    assert.equal(elf.subarray(0, 4).toString('latin1'), '\x7fELF');
    const phoff = Number(elf.readBigUInt64LE(0x20));
    const phentsize = elf.readUInt16LE(0x36);
    const phnum = elf.readUInt16LE(0x38);
    assert.ok(phnum > 0);
    for (let i = 0; i < phnum; i++) assert.notEqual(elf.readUInt32LE(phoff + i * phentsize), 3 /* PT_INTERP */, 'static: no PT_INTERP');
    // the bundle's own static imports (builtins, sometimes without the node: prefix) start a statement: at a line
    // start, or after `;` / `}` in the minified bundle, which has few lines; anything else would need a node_modules
    // the image does not have. (require("x") strings inside bundled code are not checked statically: ajv keeps some in
    // code-generation templates. The tests below run the tree without node_modules.)
    const builtin = new Set(builtinModules);
    for (const b of ['agent.mjs', 'install-cni-config.mjs']) {
      const js = await readFile(join(rootfs, 'kube-ovn/dist', b), 'utf8');
      const top = [...js.matchAll(/(?:^|[;}\n])\s*(?:import|export)\s*(?:[\w$*{}\s,]+?\s*from\s*)?["']([^"']+)["']/g)].map((m) => m[1]!);
      assert.ok(top.length > 0, `${b} has imports`);
      for (const s of top) assert.ok(s.startsWith('node:') || builtin.has(s), `${b} imports only builtins, found ${s}`);
    }
  });
});

describe('install-cni.sh', () => {
  async function env(name: string): Promise<{ dir: string; bin: string; netd: string; sys: string; env: NodeJS.ProcessEnv }> {
    const dir = join(base, name);
    const sys = join(dir, 'proc-sys');
    for (const d of ['net/ipv4/conf/all', 'net/ipv6/conf/all']) await mkdir(join(sys, d), { recursive: true });
    for (const [f, v] of [['net/ipv4/ip_forward', '0'], ['net/ipv4/conf/all/rp_filter', '1'], ['net/ipv6/conf/all/forwarding', '0']] as const) {
      await writeFile(join(sys, f), `${v}\n`);
    }
    const bin = join(dir, 'opt-cni-bin');
    return { dir, bin, netd: join(dir, 'net.d'), sys, env: { PATH: process.env.PATH, KOA_CNI_BIN_DIR: bin, KOA_PROC_SYS: sys, KOA_KUBECTL_DIR: join(dir, 'no-such-dir') } };
  }
  const install = (e: NodeJS.ProcessEnv, netd: string, extra: string[] = []) =>
    run(join(rootfs, 'kube-ovn/install-cni.sh'), [`--cni-conf-dir=${netd}`, `--cni-conf-file=${join(rootfs, 'kube-ovn/01-kube-ovn.conflist')}`, '--cni-conf-name=01-kube-ovn.conflist', ...extra], { env: e, cwd: '/' });

  it('copies the executables, sets forwarding for POD_IPS and installs the conflist with mode 0600', async () => {
    const t = await env('fresh');
    const r = await install({ ...t.env, POD_IPS: '10.0.0.5,fd00::5' }, t.netd);
    assert.match(r.stdout, /"action":"written"/);
    assert.deepEqual((await readdir(t.bin)).sort(), [...CNI_BINS].sort());
    for (const b of CNI_BINS) {
      assert.deepEqual(await readFile(join(t.bin, b)), await readFile(srcOf(b)), `${b} identical`);
      assert.equal((await stat(join(t.bin, b))).mode & 0o777, 0o755);
    }
    const conf = join(t.netd, '01-kube-ovn.conflist');
    assert.equal((await stat(conf)).mode & 0o777, 0o600);
    assert.equal(await readFile(conf, 'utf8'), await readFile(join(rootfs, 'kube-ovn/01-kube-ovn.conflist'), 'utf8'));
    assert.equal((await readFile(join(t.sys, 'net/ipv4/ip_forward'), 'utf8')).trim(), '1');
    assert.equal((await readFile(join(t.sys, 'net/ipv4/conf/all/rp_filter'), 'utf8')).trim(), '0');
    assert.equal((await readFile(join(t.sys, 'net/ipv6/conf/all/forwarding'), 'utf8')).trim(), '1');
    // the installed shim is the real one
    const { stdout } = await run(join(t.bin, 'kube-ovn'), [], { env: { CNI_COMMAND: 'VERSION' } });
    assert.match(stdout, /"supportedVersions"/);
  });

  it('only the families in POD_IPS get sysctls; none without POD_IPS', async () => {
    const t = await env('v4only');
    await install({ ...t.env, POD_IPS: '10.0.0.5' }, t.netd);
    assert.equal((await readFile(join(t.sys, 'net/ipv6/conf/all/forwarding'), 'utf8')).trim(), '0');
    const u = await env('none');
    await install(u.env, u.netd);
    assert.equal((await readFile(join(u.sys, 'net/ipv4/ip_forward'), 'utf8')).trim(), '0');
  });

  it('replaces by rename: a running executable is replaced (no ETXTBSY), an open old file keeps its content, stale temps go', async () => {
    const t = await env('atomic');
    await mkdir(t.bin, { recursive: true });
    // a "kube-ovn" that is running while the init container replaces it (cp over it would fail with ETXTBSY)
    await writeFile(join(t.bin, 'kube-ovn'), await readFile('/bin/sleep'));
    await chmod(join(t.bin, 'kube-ovn'), 0o755);
    const busy = spawn(join(t.bin, 'kube-ovn'), ['30'], { stdio: 'ignore' });
    started.add(busy);
    await new Promise((r) => busy.once('spawn', r));
    const oldIno = (await stat(join(t.bin, 'kube-ovn'))).ino;
    await writeFile(join(t.bin, 'portmap'), 'old portmap');
    const held = await open(join(t.bin, 'portmap'), 'r');
    await writeFile(join(t.bin, 'kube-ovn.tmp.4242'), 'half-written leftover');
    await writeFile(join(t.bin, 'portmap.tmp.1'), 'half-written leftover');
    try {
      await install(t.env, t.netd);
      assert.notEqual((await stat(join(t.bin, 'kube-ovn'))).ino, oldIno, 'new inode: renamed over, not written in place');
      assert.deepEqual(await readFile(join(t.bin, 'kube-ovn')), await readFile(srcOf('kube-ovn')));
      assert.equal((await held.readFile()).toString(), 'old portmap', 'a reader of the old file never sees a mix');
      assert.deepEqual((await readdir(t.bin)).sort(), [...CNI_BINS].sort(), 'no .tmp.* left');
      assert.equal(busy.exitCode, null, 'the running old executable was not disturbed');
    } finally {
      await held.close();
      busy.kill('SIGKILL');
    }
  });

  it('an existing 0600 conflist is not overwritten; another mode is only chmod-ed', async () => {
    const t = await env('existing');
    await mkdir(t.netd, { recursive: true });
    const conf = join(t.netd, '01-kube-ovn.conflist');
    await writeFile(conf, '{"operator":"edited"}');
    await chmod(conf, 0o600);
    const r1 = await install(t.env, t.netd);
    assert.match(r1.stdout, /"action":"kept"/);
    assert.equal(await readFile(conf, 'utf8'), '{"operator":"edited"}');
    await chmod(conf, 0o644);
    const r2 = await install(t.env, t.netd);
    assert.match(r2.stdout, /"action":"chmod"/);
    assert.equal((await stat(conf)).mode & 0o777, 0o600);
    assert.equal(await readFile(conf, 'utf8'), '{"operator":"edited"}');
  });

  it('a broken conflist source fails the init container and writes nothing', async () => {
    const t = await env('broken');
    const bad = join(t.dir, 'bad.conflist');
    await mkdir(t.dir, { recursive: true });
    await writeFile(bad, '{"name": "kube-ovn", "plugins": [');
    await assert.rejects(
      run(join(rootfs, 'kube-ovn/install-cni.sh'), [`--cni-conf-dir=${t.netd}`, `--cni-conf-file=${bad}`], { env: t.env, cwd: '/' }),
      (e: { code?: number; stdout?: string }) => e.code === 1 && /not JSON/.test(e.stdout ?? ''),
    );
    assert.equal(existsSync(t.netd), false);
  });
});

// The product has no fake backend: the daemon runs against a real one-node bed (OVS in the node namespace,
// kube-apiserver reachable there), started once for the daemon and start-cniserver.sh tests.
let bed: Bed | undefined;
async function theBed(): Promise<Bed> {
  bed ??= await up({ prefix: newPrefix('koai'), nodes: 1 });
  return bed;
}
after(async () => { await bed?.down(); });

/** GET inside the node namespace (the agent's metrics/health port listens there). */
async function httpIn(node: BedNode, port: number, path: string): Promise<{ status: number; body: string }> {
  const r = await node.ns.exec(['curl', '-sS', '-m', '5', '-o', '-', '-w', '\n%{http_code}', `http://127.0.0.1:${port}${path}`], { allowFail: true, timeoutMs: 10_000 });
  const i = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i) };
}

const STATUS_CONF = { cniVersion: '1.1.0', name: 'kube-ovn', type: 'kube-ovn' };

describe('kube-ovn-daemon from the image tree', () => {
  it('serves the shim on a temp socket with the upstream chart flags against a real bed, answers probes, stops on SIGTERM', async () => {
    const b = await theBed();
    const node = b.nodes[0]!;
    const dir = join(base, 'daemon');
    await mkdir(dir);
    const sock = join(dir, 'kube-ovn-daemon.sock');
    const port = 10665;
    const chartFlags = ['--enable-mirror=false', '--mirror-iface=mirror0', '--node-switch=join', '--encap-checksum=true',
      '--service-cluster-ip-range=10.96.0.0/12', '--iface=', '--dpdk-tunnel-iface=br-phy', '--network-type=geneve',
      '--default-interface-name=', '--logtostderr=false', '--alsologtostderr=true', `--log_file=${dir}/kube-ovn-cni.log`,
      '--log_file_max_size=200', '--enable-metrics=true', '--kubelet-dir=/var/lib/kubelet', '--enable-tproxy=false',
      '--ovs-vsctl-concurrency=100', '--secure-serving=false', '--enable-ovn-ipsec=false', '--set-vxlan-tx-off=false',
      '--host-tunnel-src=false', '--non-primary-cni-mode=false', '--install-cni-config=false'];
    const a = spawnLogged(['ip', 'netns', 'exec', node.ns.name, join(rootfs, 'kube-ovn/kube-ovn-daemon'), `--pprof-port=${port}`, `--bind-socket=${sock}`,
      `--cni-del-queue-dir=${dir}/q`, `--kubeconfig=${b.kube!.kubeconfig}`, `--ovs-socket=${node.ovs.dbSock}`, `--node-name=${node.name}`,
      '--mtu=1400', ...chartFlags], { PATH: process.env.PATH, NODE_NAME: node.name });
    await a.waitFor(/agent started/, 60_000);
    // "started" is not "ready": the watches' first sync and the node wing (ovn0, routes, netfilter) gate readiness and
    // take 10+ s on a busy machine (a CI run at load 35 got STATUS 50 "underlay: watches not synced: vlans" here);
    // STATUS and /readyz give the same answer, so wait for /readyz (bounded), then check both
    await waitFor('agent /readyz 200', async () => (await httpIn(node, port, '/readyz')).status === 200, 180_000, 500);
    const status = await runShim(sock, 'STATUS', 'koaiimage1', STATUS_CONF);
    assert.equal(status.code, 0, `STATUS: ${status.stdout}`);
    const del = await runShim(sock, 'DEL', 'koaiimage1', { cniVersion: '1.0.0', name: 'kube-ovn', type: 'kube-ovn' });
    assert.equal(del.code, 0, del.stdout);
    for (const path of ['/livez', '/readyz', '/healthz']) {
      const r = await httpIn(node, port, path);
      assert.equal(r.status, 200, `${path}: ${r.body}`);
    }
    const m = (await httpIn(node, port, '/metrics')).body;
    assert.match(m, /kube_ovn_agent_cni_request_duration_seconds_count\{command="DEL",result="ok"\} 1/);
    // the launcher exec'd node itself (same PID) with the image's V8 flags and malloc settings (README "Memory")
    const argv = readFileSync(`/proc/${a.proc.pid}/cmdline`, 'utf8').split('\0');
    for (const f of ['--max-semi-space-size=1', '--v8-pool-size=1', '--max-opt=2', '--max-old-space-size=1024']) assert.ok(argv.includes(f), `${f} in ${argv.join(' ')}`);
    const environ = readFileSync(`/proc/${a.proc.pid}/environ`, 'utf8').split('\0');
    for (const e of ['MALLOC_ARENA_MAX=2', 'MALLOC_MMAP_THRESHOLD_=32768', 'MALLOC_TRIM_THRESHOLD_=32768']) assert.ok(environ.includes(e), `${e} in the agent's environment`);
    // the node wing's netfilter passes (before ready) ran through the image's process launcher, not forks of the agent
    const exes = descendants(a.proc.pid!).map((pid) => { try { return readlinkSync(`/proc/${pid}/exe`); } catch { return ''; } });
    assert.ok(exes.includes(join(rootfs, 'kube-ovn/kube-ovn-exec')), `a kube-ovn-exec under the agent: ${exes.join(', ')}`);
    a.proc.kill('SIGTERM');
    assert.equal(await a.exited, 0);
    assert.equal(existsSync(sock), false, 'socket removed at shutdown');
  });
});

describe('start-cniserver.sh', () => {
  for (const probe of ['ovs-appctl', 'node (the image has no ovs-appctl)']) it(`waits for a real Open vSwitch (probe: ${probe}), then execs the agent on the socket (inside the bed's node netns)`, async () => {
    const b = await theBed();
    const node = b.nodes[0]!;
    const dir = await mkdtemp(join(base, 'start-'));
    const link = join(dir, 'run-openvswitch');
    const sock = join(dir, 'kube-ovn-daemon.sock');
    const p = spawnLogged(['ip', 'netns', 'exec', node.ns.name, 'bash', join(rootfs, 'kube-ovn/start-cniserver.sh'),
      `--pprof-port=${probe.startsWith('node') ? 10667 : 10666}`, `--cni-del-queue-dir=${dir}/q`, `--kubeconfig=${b.kube!.kubeconfig}`, `--node-name=${node.name}`, '--mtu=1400'],
    { PATH: process.env.PATH, OVS_RUNDIR: link, KOA_CNI_SOCK: sock, KOA_OVS_WAIT_LOG_EVERY: '1', NODE_NAME: node.name, ...(probe.startsWith('node') ? { KOA_OVS_APPCTL: 'none' } : {}) });
    await p.waitFor(/waiting for Open vSwitch/);
    assert.equal(existsSync(sock), false, 'no agent before OVS is up');
    // OVS "comes up": its run dir appears where the script looks
    await symlink(node.ovs.rundir, link);
    await p.waitFor(/CNI server listening/, 60_000);
    const pid = p.proc.pid!;
    // exec chain: ip netns exec -> bash -> sh wrapper -> node, all the same process (signals reach the agent)
    assert.match(await readFile(`/proc/${pid}/cmdline`, 'utf8'), /node.*dist\/agent\.mjs.*--ovs-socket=.*db\.sock.*--bind-socket=/);
    await p.waitFor(/agent started/, 60_000);
    // started is not ready (the watches' first sync gates STATUS, as in the test above): wait for /readyz, bounded
    const port = probe.startsWith('node') ? 10667 : 10666;
    await waitFor('agent /readyz 200', async () => (await httpIn(node, port, '/readyz')).status === 200, 180_000, 500);
    const r = await runShim(sock, 'STATUS', 'koaistart1', STATUS_CONF);
    assert.equal(r.code, 0, r.stdout);
    p.proc.kill('SIGTERM');
    assert.equal(await p.exited, 0);
  });
});

describe('iptables-wrapper (hostpath-init runs `iptables -V` once; cni-server uses the links)', () => {
  const LINKS = ['iptables', 'iptables-save', 'iptables-restore', 'ip6tables', 'ip6tables-save', 'ip6tables-restore'];
  it('the tree links iptables* to the wrapper', async () => {
    for (const c of LINKS) assert.equal(await readlink(join(rootfs, 'usr/sbin', c)), 'iptables-wrapper', c);
  });

  const cases: [string, string[], 'legacy' | 'nft'][] = [
    ['nft kubelet hint', ['iptables-nft -t mangle -N KUBE-IPTABLES-HINT', 'iptables-legacy -A INPUT -j ACCEPT', 'iptables-legacy -A INPUT -j ACCEPT'], 'nft'],
    ['legacy kubelet hint', ['iptables-legacy -t mangle -N KUBE-IPTABLES-HINT', 'iptables-nft -A INPUT -j ACCEPT'], 'legacy'],
    ['old kubelet canary (ip6tables)', ['ip6tables-legacy -t mangle -N KUBE-KUBELET-CANARY'], 'legacy'],
    ['more legacy rules', ['iptables-legacy -A INPUT -j ACCEPT', 'iptables-legacy -A FORWARD -j ACCEPT', 'iptables-nft -A INPUT -j ACCEPT'], 'legacy'],
    ['nothing anywhere', [], 'nft'],
  ];
  for (const [name, setup, want] of cases) {
    it(`picks ${want}: ${name} (own koai netns)`, async () => {
      const ns = await createNetns(`${newPrefix('koai')}ipt`);
      try {
        for (const cmd of setup) await ns.exec(cmd.split(' '));
        const links = join(base, `links-${ns.name}`);
        await mkdir(links);
        const r = await ns.exec([join(rootfs, 'usr/sbin/iptables'), '-V'], { env: { ...process.env, KOA_IPTABLES_LINK_DIR: links } });
        assert.match(r.stdout, want === 'nft' ? /\(nf_tables\)/ : /\(legacy\)/);
        for (const c of LINKS) assert.equal(await readlink(join(links, c)), `/usr/sbin/${c.replace('tables', `tables-${want}`)}`, c);
        assert.deepEqual((await readdir(links)).sort(), [...LINKS].sort(), 'no temp links left');
        // through the wrapper, a restore lands in the chosen backend
        const save = await ns.exec([join(rootfs, 'usr/sbin/iptables-save'), '-t', 'filter'], { env: { ...process.env, KOA_IPTABLES_LINK_DIR: links } });
        assert.match(save.stdout, want === 'nft' ? /iptables-nft-save|nf_tables/ : /^# Generated by iptables-save/m);
      } finally {
        await ns.delete();
      }
    });
  }
});
