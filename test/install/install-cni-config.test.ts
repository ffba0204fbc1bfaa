// `--install-cni-config` (spec §1.3): keep a 0600 target, chmod a target of another mode, otherwise validate the
// source and write it atomically with mode 0600; bad input changes nothing.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installCniConfig, runInstallCniConfig, validateNetworkConfig, wantsInstallCniConfig } from '../../agent/src/install-cni-config.ts';
import { AgentError } from '../../agent/src/errors.ts';

const CONFLIST = JSON.stringify({
  name: 'kube-ovn', cniVersion: '0.3.1',
  plugins: [{ type: 'kube-ovn', server_socket: '/run/openvswitch/kube-ovn-daemon.sock' }, { type: 'portmap', capabilities: { portMappings: true } }],
}, null, 2);

let root = '';
let n = 0;
before(async () => { root = await mkdtemp(join(tmpdir(), 'koai-unit-')); });
after(async () => { await rm(root, { recursive: true, force: true }); });

async function fixture(source = CONFLIST): Promise<{ dir: string; file: string }> {
  const base = join(root, `case${n++}`);
  await mkdir(base);
  const file = join(base, 'src.conflist');
  await writeFile(file, source);
  return { dir: join(base, 'net.d'), file };
}
const mode = async (p: string) => (await stat(p)).mode & 0o777;

async function rejectsCode(p: Promise<unknown>, code: string, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof AgentError && e.code === code && re.test(e.message));
}

describe('installCniConfig', () => {
  it('writes a missing target with mode 0600 (dir created), whatever the umask', async () => {
    const { dir, file } = await fixture();
    const old = process.umask(0o077);
    try {
      const r = await installCniConfig({ confDir: dir, confFile: file, confName: '01-kube-ovn.conflist' });
      assert.deepEqual(r, { action: 'written', target: join(dir, '01-kube-ovn.conflist'), removedTemps: 0 });
    } finally { process.umask(old); }
    assert.equal(await readFile(join(dir, '01-kube-ovn.conflist'), 'utf8'), CONFLIST);
    assert.equal(await mode(join(dir, '01-kube-ovn.conflist')), 0o600);
    assert.deepEqual(await readdir(dir), ['01-kube-ovn.conflist']);
    const old2 = process.umask(0o000);
    try {
      const { dir: d2, file: f2 } = await fixture();
      await installCniConfig({ confDir: d2, confFile: f2, confName: 'x.conflist' });
      assert.equal(await mode(join(d2, 'x.conflist')), 0o600);
    } finally { process.umask(old2); }
  });

  it('keeps an existing 0600 target as it is (content not refreshed, as upstream)', async () => {
    const { dir, file } = await fixture();
    await mkdir(dir);
    await writeFile(join(dir, '01-kube-ovn.conflist'), 'operator edited', { mode: 0o600 });
    await chmod(join(dir, '01-kube-ovn.conflist'), 0o600);
    const r = await installCniConfig({ confDir: dir, confFile: file, confName: '01-kube-ovn.conflist' });
    assert.equal(r.action, 'kept');
    assert.equal(await readFile(join(dir, '01-kube-ovn.conflist'), 'utf8'), 'operator edited');
  });

  it('only chmods an existing target of another mode', async () => {
    const { dir, file } = await fixture();
    await mkdir(dir);
    await writeFile(join(dir, '01-kube-ovn.conflist'), 'old content');
    await chmod(join(dir, '01-kube-ovn.conflist'), 0o644);
    const r = await installCniConfig({ confDir: dir, confFile: file, confName: '01-kube-ovn.conflist' });
    assert.equal(r.action, 'chmod');
    assert.equal(await mode(join(dir, '01-kube-ovn.conflist')), 0o600);
    assert.equal(await readFile(join(dir, '01-kube-ovn.conflist'), 'utf8'), 'old content');
  });

  it('removes leftover <target>.tmp.* before writing, and only those', async () => {
    const { dir, file } = await fixture();
    await mkdir(dir);
    await writeFile(join(dir, '01-kube-ovn.conflist.tmp.123'), 'half');
    await writeFile(join(dir, '01-kube-ovn.conflist.tmp.9'), 'half');
    await writeFile(join(dir, '10-other.conflist'), '{}');
    const r = await installCniConfig({ confDir: dir, confFile: file, confName: '01-kube-ovn.conflist', tmpSuffix: 't' });
    assert.equal(r.removedTemps, 2);
    assert.deepEqual((await readdir(dir)).sort(), ['01-kube-ovn.conflist', '10-other.conflist']);
  });

  it('follows a symlinked target like upstream stat() does', async () => {
    const { dir, file } = await fixture();
    await mkdir(dir);
    const real = join(dir, 'real.conflist');
    await writeFile(real, 'x');
    await chmod(real, 0o600);
    await symlink(real, join(dir, '01-kube-ovn.conflist'));
    assert.equal((await installCniConfig({ confDir: dir, confFile: file, confName: '01-kube-ovn.conflist' })).action, 'kept');
  });

  it('bad input is a clear error and writes nothing', async () => {
    const cases: [string, string, RegExp][] = [
      ['not json', 'KOA_CONFIG', /not JSON/],
      ['[]', 'KOA_CONFIG', /not a JSON object/],
      ['{"name":"a","plugins":[]}', 'KOA_CONFIG', /cniVersion/],
      ['{"name":"a","cniVersion":"0.3.1","plugins":[]}', 'KOA_CONFIG', /non-empty array/],
      ['{"name":"a","cniVersion":"0.3.1","plugins":[{"x":1}]}', 'KOA_CONFIG', /plugins\[0\] has no "type"/],
      ['{"cniVersion":"0.3.1","plugins":[{"type":"kube-ovn"}]}', 'KOA_CONFIG', /missing "name"/],
      ['{"cniVersion":"0.3.1","name":"a"}', 'KOA_CONFIG', /neither "plugins"/],
    ];
    for (const [src, code, re] of cases) {
      const { dir, file } = await fixture(src);
      await rejectsCode(installCniConfig({ confDir: dir, confFile: file, confName: 'a.conflist' }), code, re);
      await assert.rejects(stat(dir), { code: 'ENOENT' });
    }
    const { dir, file } = await fixture();
    await rejectsCode(installCniConfig({ confDir: dir, confFile: file + '.missing', confName: 'a.conflist' }), 'KOA_IO', /read --cni-conf-file .*ENOENT/);
    await rejectsCode(installCniConfig({ confDir: 'relative', confFile: file, confName: 'a.conflist' }), 'KOA_CONFIG', /absolute/);
    for (const name of ['', '../x', 'a/b', '..']) {
      await rejectsCode(installCniConfig({ confDir: dir, confFile: file, confName: name }), 'KOA_CONFIG', /--cni-conf-name/);
    }
    await mkdir(join(dir, 'd.conflist'), { recursive: true });
    await rejectsCode(installCniConfig({ confDir: dir, confFile: file, confName: 'd.conflist' }), 'KOA_CONFIG', /not a regular file/);
  });

  it('accepts a single-plugin .conf too', () => {
    validateNetworkConfig('{"cniVersion":"1.0.0","name":"n","type":"kube-ovn"}', 'x');
  });
});

describe('wantsInstallCniConfig', () => {
  it('follows Go flag syntax, last one wins', () => {
    const t: [string[], boolean][] = [
      [[], false], [['--install-cni-config'], true], [['-install-cni-config'], true], [['--install-cni-config=true'], true],
      [['--install-cni-config=1'], true], [['--install-cni-config=false'], false], [['--install-cni-config', '--install-cni-config=0'], false],
      [['--install-cni-config=bogus'], false], [['--install-cni-configs'], false], [['--', '--install-cni-config'], false],
      [['--cni-conf-dir=/x', '--install-cni-config', '--cni-conf-name=y'], true],
    ];
    for (const [argv, want] of t) assert.equal(wantsInstallCniConfig(argv), want, argv.join(' '));
  });
});

describe('runInstallCniConfig', () => {
  it('reads the upstream flags through the config table and logs one JSON line', async () => {
    const { dir, file } = await fixture();
    const lines: string[] = [];
    const code = await runInstallCniConfig(['--install-cni-config', `--cni-conf-dir=${dir}`, `--cni-conf-file=${file}`, '--cni-conf-name=05-kube-ovn.conflist'], (l) => lines.push(l));
    assert.equal(code, 0);
    assert.equal(await mode(join(dir, '05-kube-ovn.conflist')), 0o600);
    const o = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(o.action, 'written');
    assert.equal(o.target, join(dir, '05-kube-ovn.conflist'));
    assert.equal(o.level, 30);
  });

  it('environment and hostname play no part (an odd node name or ENABLE_BIND_LOCAL_IP without POD_IPS cannot fail it)', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, { NODE_NAME: 'Not_A_Node_Name!', KUBE_NODE_NAME: '', ENABLE_BIND_LOCAL_IP: 'true', POD_IPS: '', POD_IP: 'nope' });
    try {
      const { dir, file } = await fixture();
      const lines: string[] = [];
      assert.equal(await runInstallCniConfig([`--cni-conf-dir=${dir}`, `--cni-conf-file=${file}`], (l) => lines.push(l)), 0, lines.join(''));
      assert.equal(await mode(join(dir, '01-kube-ovn.conflist')), 0o600);
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  });

  it('exit 1 with the reason for bad flags or a bad source', async () => {
    const lines: string[] = [];
    assert.equal(await runInstallCniConfig(['--install-cni-config', '--bogus-flag'], (l) => lines.push(l)), 1);
    assert.match(lines[0]!, /unknown flag --bogus-flag/);
    const { dir, file } = await fixture('nope');
    assert.equal(await runInstallCniConfig([`--cni-conf-dir=${dir}`, `--cni-conf-file=${file}`], (l) => lines.push(l)), 1);
    assert.match(lines[1]!, /not JSON/);
    assert.equal(JSON.parse(lines[1]!).level, 50);
  });
});
