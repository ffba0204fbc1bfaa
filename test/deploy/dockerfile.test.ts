// The Dockerfile cannot be built here (no Docker engine), so its wiring is checked against the repository: the
// build stage runs the npm scripts that exist and scripts/image-rootfs.sh, the ofctl stage only gets ovs-ofctl from
// Debian, the runtime stage copies that tree and that one program and installs only run-time packages, .dockerignore keeps host builds out, and the layer before `npm ci` has what the
// install script needs. (integration/image/ tests the tree itself; the same sequence was run from a clean
// `git archive` by hand: npm ci 15 s, then build:shim, build:agent, image-rootfs.sh.)
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
/** instructions with continuation lines joined, comments dropped */
const instructions = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
const stages: { from: string; lines: string[] }[] = [];
for (const l of instructions) {
  if (/^FROM\s/i.test(l)) stages.push({ from: l, lines: [] });
  else if (stages.length) stages.at(-1)!.lines.push(l);
}
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
const aptPackages = (lines: string[]) => lines.filter((l) => l.startsWith('RUN') && l.includes('apt-get install'))
  .flatMap((l) => l.slice(l.indexOf('apt-get install')).split('&&')[0]!.split(/\s+/).slice(2).filter((w) => w !== '' && !w.startsWith('-') && w !== 'DEBIAN_FRONTEND=noninteractive'));

describe('Dockerfile', () => {
  it('three stages: debian:12 build, debian:12 ofctl, debian:12-slim runtime', () => {
    assert.deepEqual(stages.map((s) => s.from), ['FROM debian:12 AS build', 'FROM debian:12 AS ofctl', 'FROM debian:12-slim']);
  });

  it('ofctl stage: openvswitch-common only, for the runtime stage to copy ovs-ofctl from', () => {
    const o = stages[1]!.lines;
    assert.deepEqual(aptPackages(o), ['openvswitch-common']);
    assert.ok(o.some((l) => l.startsWith('RUN') && l.includes('ovs-ofctl --version')));
  });

  it('build stage: toolchain, npm ci on a minimal layer, the repo\'s npm scripts, image-rootfs.sh', () => {
    const b = stages[0]!.lines;
    const apt = aptPackages(b);
    for (const p of ['build-essential', 'python3', 'nodejs', 'npm', 'containernetworking-plugins']) assert.ok(apt.includes(p), p);
    const firstCopies = b.slice(0, b.findIndex((l) => l.includes('npm ci'))).filter((l) => l.startsWith('COPY'));
    const copied = firstCopies.flatMap((l) => l.split(/\s+/).slice(1, -1));
    for (const f of ['package.json', 'package-lock.json', 'binding.gyp', 'native/']) {
      assert.ok(copied.includes(f), `${f} copied before npm ci`);
      assert.ok(existsSync(join(ROOT, f)), f);
    }
    assert.match(pkg.scripts.install!, /build:native/, 'npm ci builds the addon through the install script');
    // after npm ci: the sources the builds read, each present in the repository
    const later = b.slice(b.findIndex((l) => l.includes('npm ci'))).filter((l) => l.startsWith('COPY')).flatMap((l) => l.split(/\s+/).slice(1, -1));
    for (const f of ['tsconfig.json', 'agent/', 'cni-shim/', 'deploy/image/', 'scripts/']) assert.ok(later.includes(f), `${f} copied`);
    for (const f of later) assert.ok(existsSync(join(ROOT, f)), f);
    const run = b.filter((l) => l.startsWith('RUN')).join(' ');
    for (const s of ['build:shim', 'build:agent']) {
      assert.ok(run.includes(`npm run ${s}`), s);
      assert.ok(pkg.scripts[s], `package.json has ${s}`);
    }
    assert.match(run, /bash scripts\/image-rootfs\.sh \/rootfs/);
    assert.ok(existsSync(join(ROOT, 'scripts/image-rootfs.sh')));
  });

  it('runtime stage: run-time packages only, the assembled tree, the upstream entry point', () => {
    const r = stages[2]!.lines;
    const apt = aptPackages(r);
    // only what the agent and the image's scripts run (iptables-restore, ipset, iptables-wrapper's iptables-*) and
    // the libraries ovs-ofctl links (integration/image/build.test.ts checks them against the binary's NEEDED list)
    assert.deepEqual(apt.sort(), ['ipset', 'iptables', 'libbpf1', 'libcap-ng0', 'libnuma1', 'libssl3', 'libunbound8', 'libxdp1']);
    for (const p of ['openvswitch-common', 'openvswitch-switch', 'python3']) assert.equal(apt.includes(p), false, `${p} not at run time`);
    // of OVS only ovs-ofctl (the underlay LB-flows reconciler's OpenFlow), copied from the ofctl stage
    assert.deepEqual(r.filter((l) => l.startsWith('COPY --from=ofctl')), ['COPY --from=ofctl /usr/bin/ovs-ofctl /usr/bin/ovs-ofctl']);
    for (const p of ['build-essential', 'nodejs', 'npm', 'python3', 'gcc', 'make']) assert.equal(apt.includes(p), false, `${p} not at run time`);
    assert.ok(r.includes('COPY --from=build /rootfs/ /'));
    assert.ok(r.some((l) => l.startsWith('RUN') && l.includes('--no-install-recommends') && l.includes('rm -rf /var/lib/apt/lists/*')));
    assert.deepEqual(r.filter((l) => l.startsWith('CMD')), ['CMD ["bash", "/kube-ovn/start-cniserver.sh"]']);
  });

  it('.dockerignore keeps host builds, dependencies and git out of the context', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const p of ['.git', 'node_modules', 'build', 'dist', 'cni-shim/kube-ovn']) assert.ok(ignored.includes(p), p);
    for (const p of ['native', 'deploy', 'scripts', 'agent', 'cni-shim']) assert.equal(ignored.includes(p), false, `${p} is needed`);
  });
});
