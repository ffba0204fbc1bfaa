// A real CNI client drives the real shim against the agent: `cnitool` (containernetworking/cni, built into the
// fixture cache) runs ADD/CHECK/STATUS/GC/DEL through a conflist that installs our executable, against network
// namespaces this test creates (prefix koac). A second test chains the real `macvlan` plugin with kube-ovn as its
// IPAM (IPAM-only mode), all inside test namespaces, and checks the addresses land in the pod namespace.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, existsSync, mkdir, readdir, rm, writeFile } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseArgs, startAgent, type Agent } from '../../agent/src/main.ts';
import { FakeBackend } from '../../agent/src/cni/fake-backend.ts';
import { decodeResult } from '../../agent/src/cni/codec.ts';
import type { SpecVersion } from '../../agent/src/cni/types.ts';
import { addNetns, buildShim, delNetns, rand, SHIM, tempDir } from './lib.ts';

const CNITOOL = join(process.env.KOA_FIXTURE_CACHE ?? '/var/cache/kube-ovn-node-agent', 'bin', 'cnitool');
const CNI_CACHE = '/var/lib/cni'; // libcni's cache dir (cnitool cannot move it); we remove our entries after
const SYSTEM_PLUGINS = '/usr/lib/cni';

let dir: string;
let bin: string;
let sock: string;
let agent: Agent;
let fake: FakeBackend;
const netnses: string[] = [];
const networks: string[] = [];

before(async () => {
  assert.ok(existsSync(CNITOOL), `cnitool fixture missing at ${CNITOOL}: run npm run setup (scripts/build-fixtures.sh)`);
  buildShim();
  dir = await tempDir();
  bin = join(dir, 'bin');
  await promisify(mkdir)(bin);
  await promisify(copyFile)(SHIM, join(bin, 'kube-ovn')); // what install-cni does into /opt/cni/bin
  sock = join(dir, 'run', 'kube-ovn-daemon.sock');
  agent = await startAgent(parseArgs(['--bind-socket', sock, '--cni-del-queue-dir', join(dir, 'q')]), pino({ level: 'silent' }), { backend: new FakeBackend() });
  fake = agent.dispatcher.backend as FakeBackend;
});

after(async () => {
  await agent?.stop();
  for (const n of netnses) delNetns(n);
  const results = join(CNI_CACHE, 'results');
  const left = existsSync(results) ? await promisify(readdir)(results) : [];
  for (const f of left) if (networks.some((n) => f.startsWith(`${n}-`))) await promisify(rm)(join(results, f), { force: true });
  await promisify(rm)(dir, { recursive: true, force: true });
});

interface Run { code: number | null; stdout: string; stderr: string }
function cnitool(args: string[], env: Record<string, string>, inNetns?: string): Promise<Run> {
  const [cmd, argv] = inNetns ? ['ip', ['netns', 'exec', inNetns, CNITOOL, ...args]] : [CNITOOL, args];
  return new Promise((res, rej) => {
    const p = spawn(cmd as string, argv as string[], { env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...env } });
    let stdout = '', stderr = '';
    p.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
    p.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    p.on('error', rej);
    p.on('close', (code) => res({ code, stdout, stderr }));
  });
}

const containerIdFor = (netnsPath: string) => `cnitool-${createHash('sha512').update(netnsPath).digest('hex').slice(0, 20)}`;

async function writeConflist(confDir: string, name: string, v: SpecVersion, plugins: Record<string, unknown>[]): Promise<void> {
  await promisify(mkdir)(confDir, { recursive: true });
  await promisify(writeFile)(join(confDir, `10-${name}.conflist`), JSON.stringify({ cniVersion: v, name, plugins }));
}

for (const v of ['0.3.1', '0.4.0', '1.0.0', '1.1.0'] as SpecVersion[]) {
  test(`[${v}] cnitool add/check/status/gc/del through a conflist with our executable`, async () => {
    const ns = addNetns();
    netnses.push(ns);
    const name = `koac-${rand()}`;
    networks.push(name);
    const confDir = join(dir, `net-${name}`);
    await writeConflist(confDir, name, v, [{ type: 'kube-ovn', server_socket: sock }]);
    const env = { NETCONFPATH: confDir, CNI_PATH: bin, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=koac-pod;K8S_POD_NAMESPACE=default', CNI_IFNAME: 'eth0' };
    const nsPath = `/var/run/netns/${ns}`;
    const cid = containerIdFor(nsPath);
    try {
      const add = await cnitool(['add', name, nsPath], env);
      assert.equal(add.code, 0, add.stderr);
      const res = JSON.parse(add.stdout) as Record<string, unknown>;
      assert.equal(res.cniVersion, v);
      const have = fake.attachments.get(`${cid}/eth0`);
      assert.ok(have, `attachment for ${cid}`);
      assert.deepEqual(decodeResult(res, v).ips?.map((i) => i.address), have.result.ips!.map((i) => i.address));
      assert.equal((res.interfaces as { sandbox: string }[])[0]!.sandbox, nsPath);

      const check = await cnitool(['check', name, nsPath], env);
      if (v === '0.3.1') {
        assert.equal(check.code, 1);
        assert.match(check.stderr, /CHECK/); // libcni refuses CHECK for configs older than 0.4.0
      } else {
        assert.equal(check.code, 0, check.stderr);
        assert.ok(fake.events.some((e) => e.op === 'check' && e.key === `${cid}/eth0` && e.phase === 'end'));
      }

      const status = await cnitool(['status', name, nsPath], env);
      assert.equal(status.code, 0, status.stderr); // libcni skips STATUS below 1.1.0; at 1.1.0 our agent answers

      if (v === '1.1.0') {
        // cnitool gc: DEL for every cached attachment of this network, then GC with no valid attachments
        const gc = await cnitool(['gc', name, nsPath], env);
        assert.equal(gc.code, 0, gc.stderr);
        assert.ok(!fake.attachments.has(`${cid}/eth0`), 'GC released the attachment');
        assert.ok(fake.events.some((e) => e.op === 'gc'));
      }

      const del = await cnitool(['del', name, nsPath], env);
      assert.equal(del.code, 0, del.stderr);
      assert.ok(!fake.attachments.has(`${cid}/eth0`));
      const again = await cnitool(['del', name, nsPath], env);
      assert.equal(again.code, 0, `DEL is idempotent: ${again.stderr}`);
    } finally {
      delNetns(ns);
    }
  });
}

test('IPAM-only mode: real macvlan plugin with kube-ovn as its ipam, inside test namespaces', async () => {
  const host = addNetns('h');
  const pod = addNetns('p');
  netnses.push(host, pod);
  const name = `koac-mv-${rand()}`;
  networks.push(name);
  const confDir = join(dir, `net-${name}`);
  try {
    // the "node" side is a namespace of ours with a veth as master (no dummy module in this kernel): the host's own
    // links are never touched
    execFileSync('ip', ['-n', host, 'link', 'add', 'koacm0', 'type', 'veth', 'peer', 'name', 'koacm1']);
    execFileSync('ip', ['-n', host, 'link', 'set', 'koacm0', 'up']);
    await writeConflist(confDir, name, '1.0.0', [{ type: 'macvlan', master: 'koacm0', mode: 'bridge',
      ipam: { type: 'kube-ovn', server_socket: sock, provider: 'mv.default', routes: [{ dst: '192.168.77.0/24', gw: '10.16.0.1' }] } }]);
    const env = { NETCONFPATH: confDir, CNI_PATH: `${bin}:${SYSTEM_PLUGINS}`, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=koac-mv;K8S_POD_NAMESPACE=default', CNI_IFNAME: 'net1' };
    const nsPath = `/var/run/netns/${pod}`;
    const cid = containerIdFor(nsPath);
    const add = await cnitool(['add', name, nsPath], env, host);
    assert.equal(add.code, 0, add.stderr);
    const res = JSON.parse(add.stdout) as { interfaces: { name: string }[]; ips: { address: string }[] };
    assert.equal(res.interfaces[0]!.name, 'net1');
    const want = fake.attachments.get(`${cid}/net1`)!.result;
    const v4 = want.ips!.find((i) => !i.address.includes(':'))!.address;
    const addrs = JSON.parse(execFileSync('ip', ['-n', pod, '-j', 'addr', 'show', 'dev', 'net1'], { encoding: 'utf8' })) as { addr_info: { local: string; prefixlen: number }[] }[];
    assert.ok(addrs[0]!.addr_info.some((a) => `${a.local}/${a.prefixlen}` === v4), `${v4} on net1 in ${pod}: ${JSON.stringify(addrs)}`);
    const routes = execFileSync('ip', ['-n', pod, 'route', 'show'], { encoding: 'utf8' });
    assert.match(routes, /192\.168\.77\.0\/24 via 10\.16\.0\.1 dev net1/);

    const check = await cnitool(['check', name, nsPath], env, host);
    assert.equal(check.code, 0, check.stderr);

    const del = await cnitool(['del', name, nsPath], env, host);
    assert.equal(del.code, 0, del.stderr);
    assert.ok(!fake.attachments.has(`${cid}/net1`));
    assert.throws(() => execFileSync('ip', ['-n', pod, 'link', 'show', 'net1'], { stdio: 'pipe' }));
  } finally {
    delNetns(pod);
    delNetns(host);
  }
});
