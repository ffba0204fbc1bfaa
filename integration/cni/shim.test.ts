// The real C executable against the real agent: every verb, IPAM mode, bad input, timeouts, an unreachable agent
// (code 11; DEL queued and completed when the agent starts), stale/live sockets, and the upstream endpoint.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { request } from 'node:http';
import { lstat, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseArgs, startAgent, type Agent } from '../../agent/src/main.ts';
import { FakeBackend } from '../../agent/src/cni/fake-backend.ts';
import { SUPPORTED_VERSIONS } from '../../agent/src/cni/types.ts';
import { atLeast, decodeResult, VERSION_INFO_JSON } from '../../agent/src/cni/codec.ts';
import { buildShim, cniEnv, killStartedAgents, netconf, rand, runShim, startAgentProcess, stopAgent, tempDir } from './lib.ts';

let dir: string;
let sock: string;
let agent: Agent;
let fake: FakeBackend;

before(async () => {
  buildShim();
  dir = await tempDir();
  sock = join(dir, 'run', 'agent.sock');
  agent = await startAgent(parseArgs(['--bind-socket', sock, '--cni-del-queue-dir', join(dir, 'q')]), pino({ level: 'silent' }), { backend: new FakeBackend() });
  fake = agent.dispatcher.backend as FakeBackend;
});
after(async () => {
  await killStartedAgents();
  await agent?.stop();
  await rm(dir, { recursive: true, force: true });
});

const errOf = (s: string) => JSON.parse(s) as { cniVersion: string; code: number; msg: string };

test('VERSION and the about text are answered locally, without an agent', async () => {
  const v = await runShim({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}');
  assert.equal(v.code, 0);
  assert.equal(v.stdout, VERSION_INFO_JSON);
  const about = await runShim({}, '');
  assert.equal(about.code, 0);
  assert.match(about.stderr, /CNI kube-ovn plugin/);
});

for (const v of SUPPORTED_VERSIONS) {
  test(`[${v}] ADD, CHECK, STATUS, GC, DEL through the shim`, async () => {
    const cid = `koac-${rand()}`;
    const add = await runShim(cniEnv('ADD', { CNI_CONTAINERID: cid }), netconf(sock, v));
    assert.equal(add.code, 0, add.stdout);
    const res = JSON.parse(add.stdout) as Record<string, unknown>;
    assert.equal(res.cniVersion, v);
    const want = FakeBackend.resultFor({ containerId: cid, ifName: 'eth0', netns: '/var/run/netns/koac-none', netconf: { ipamMode: false, routes: null } } as never);
    assert.deepEqual(decodeResult(res, v).ips?.map((i) => i.address), want.ips!.map((i) => i.address));
    assert.ok(fake.attachments.has(`${cid}/eth0`));

    const check = await runShim(cniEnv('CHECK', { CNI_CONTAINERID: cid }), netconf(sock, v, { prevResult: res }));
    if (atLeast(v, '0.4.0')) assert.deepEqual([check.code, check.stdout], [0, '']);
    else assert.deepEqual([check.code, errOf(check.stdout).code], [1, 1]);

    for (const cmd of ['STATUS', 'GC']) {
      const r = await runShim({ CNI_COMMAND: cmd, CNI_PATH: '/opt/cni/bin' }, netconf(sock, v, { 'cni.dev/valid-attachments': [{ containerID: cid, ifname: 'eth0' }] }));
      if (v === '1.1.0') assert.deepEqual([r.code, r.stdout], [0, ''], cmd);
      else assert.deepEqual([r.code, errOf(r.stdout).code], [1, 1], cmd);
    }
    assert.ok(fake.attachments.has(`${cid}/eth0`), 'GC keeps valid attachments');

    const del = await runShim(cniEnv('DEL', { CNI_CONTAINERID: cid }), netconf(sock, v));
    assert.deepEqual([del.code, del.stdout], [0, '']);
    assert.ok(!fake.attachments.has(`${cid}/eth0`));
  });
}

test('IPAM-only mode: the socket comes from the ipam object', async () => {
  const conf = JSON.stringify({ cniVersion: '0.3.1', name: 'mv', type: 'macvlan', master: 'eth0', server_socket: '/nonexistent/top.sock',
    ipam: { type: 'kube-ovn', server_socket: sock, provider: 'mv.default' } });
  const r = await runShim(cniEnv('ADD', { CNI_CONTAINERID: 'koac-ipam', CNI_IFNAME: 'net1' }), conf);
  assert.equal(r.code, 0, r.stdout);
  const o = JSON.parse(r.stdout) as { interfaces?: unknown; ips: { version: string }[] };
  assert.equal(o.interfaces, undefined);
  assert.deepEqual(o.ips.map((i) => i.version), ['4', '6']);
});

test('server_socket: a non-string is an error (code 7), null is the default, \\uXXXX escapes are decoded (issue 14 item 7)', async () => {
  for (const bad of [1, {}, [], true, 'x'.repeat(600)]) {
    for (const ipam of [false, true]) {
      const conf = ipam ? JSON.stringify({ cniVersion: '1.0.0', name: 'mv', type: 'macvlan', ipam: { type: 'kube-ovn', server_socket: bad } })
        : JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'kube-ovn', server_socket: bad });
      for (const cmd of ['ADD', 'DEL']) {
        const r = await runShim(cniEnv(cmd), conf);
        assert.equal(r.code, 1, `${cmd} ${conf}`);
        assert.equal(errOf(r.stdout).code, 7, r.stdout);
        assert.match(errOf(r.stdout).msg, ipam ? /ipam\.server_socket (must be a string|is not a usable string)/ : /server_socket (must be a string|is not a usable string)/);
      }
    }
  }
  const viaNull = await runShim(cniEnv('ADD'), JSON.stringify({ cniVersion: '0.4.0', name: 'n', type: 'kube-ovn', server_socket: null }));
  assert.match(errOf(viaNull.stdout).msg, /\/run\/openvswitch\/kube-ovn-daemon\.sock/);
  // every character of the path written as \uXXXX (and one non-BMP pair that is not in it: a different path)
  const escaped = [...sock].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');
  const cid = `koac-esc-${rand()}`;
  const add = await runShim(cniEnv('ADD', { CNI_CONTAINERID: cid }), `{"cniVersion":"1.0.0","name":"n","type":"kube-ovn","server_socket":"${escaped}"}`);
  assert.equal(add.code, 0, add.stdout);
  assert.ok(fake.attachments.has(`${cid}/eth0`));
  const pair = await runShim(cniEnv('ADD'), `{"cniVersion":"1.0.0","name":"n","type":"kube-ovn","server_socket":"${escaped}\\ud83d\\ude00"}`);
  assert.equal(errOf(pair.stdout).code, 11);
  assert.ok(errOf(pair.stdout).msg.includes(`${sock}\u{1f600}`), errOf(pair.stdout).msg);
  for (const broken of ['\\u00', '\\u0000', '\\ud83d', '\\uzzzz', '\\q']) {
    const r = await runShim(cniEnv('ADD'), `{"cniVersion":"1.0.0","name":"n","type":"kube-ovn","server_socket":"/tmp/${broken}x"}`);
    assert.equal(r.code, 1);
    assert.ok([6, 7].includes(errOf(r.stdout).code), `${broken}: ${r.stdout}`);
  }
});

test('bad input: code and message from the agent or the shim, exit 1', async () => {
  const cases: [Record<string, string>, string | Buffer, number, RegExp][] = [
    [cniEnv('ADD'), 'not json', 6, /cannot decode network configuration/], // decided by the shim itself
    [cniEnv('DEL'), '{"cniVersion":"1.0.0","name":', 6, /cannot decode network configuration/],
    [cniEnv('ADD'), netconf(sock, '1.0.0', { name: 5 }), 7, /"name" is required/], // decided by the agent
    [cniEnv('ADD'), netconf(sock, '2.0.0'), 1, /2\.0\.0/],
    [cniEnv('ADD', { CNI_IFNAME: 'waytoolonginterface' }), netconf(sock), 4, /CNI_IFNAME/],
    [cniEnv('ADD', { CNI_NETNS: 'relative/ns' }), netconf(sock), 4, /CNI_NETNS/],
    [cniEnv('ADD', { CNI_ARGS: 'IgnoreUnknown=1' }), netconf(sock), 7, /K8S_POD_NAME/],
    [cniEnv('FROB'), netconf(sock), 4, /CNI_COMMAND/],
    [cniEnv('ADD'), Buffer.alloc(1024 * 1024 + 10, 0x20), 5, /exceeds the limit/],
    [cniEnv('ADD'), netconf(`/tmp/${'x'.repeat(120)}.sock`), 7, /longer than 107 bytes/],
  ];
  for (const [env, stdin, code, re] of cases) {
    const r = await runShim(env, stdin);
    assert.equal(r.code, 1, r.stdout);
    assert.equal(errOf(r.stdout).code, code, r.stdout);
    assert.match(errOf(r.stdout).msg, re);
  }
  // missing server_socket: the shim uses the default path, the agent (if reachable) rejects with code 7
  const viaDefault = await runShim(cniEnv('ADD'), JSON.stringify({ cniVersion: '0.4.0', name: 'n', type: 'kube-ovn' }));
  assert.equal(errOf(viaDefault.stdout).code, 11);
  assert.match(errOf(viaDefault.stdout).msg, /\/run\/openvswitch\/kube-ovn-daemon\.sock/);
});

test('an agent that accepts but never answers: bounded timeout, code 11; DEL is queued instead', async () => {
  const hang = join(dir, 'hang.sock');
  const held: Socket[] = [];
  const srv = createServer((s) => { held.push(s); s.on('error', () => undefined); });
  await new Promise<void>((r) => srv.listen(hang, r));
  try {
    const r = await runShim({ ...cniEnv('ADD'), KOA_CNI_TIMEOUT_MS: '400' }, netconf(hang));
    assert.equal(r.code, 1);
    assert.equal(errOf(r.stdout).code, 11);
    assert.match(errOf(r.stdout).msg, /did not answer: timed out/);
    assert.ok(r.ms < 10_000, `bounded by KOA_CNI_TIMEOUT_MS=400 (took ${r.ms} ms)`);
    const q = join(dir, 'q-hang');
    const d = await runShim({ ...cniEnv('DEL', { CNI_CONTAINERID: 'koac-hung' }), KOA_CNI_TIMEOUT_MS: '300', KOA_DEL_QUEUE_DIR: q }, netconf(hang));
    assert.deepEqual([d.code, d.stdout], [0, '']);
    assert.deepEqual(await readdir(q), ['koac-hung-eth0.json']);
  } finally {
    for (const s of held) s.destroy();
    await new Promise<void>((r) => srv.close(() => r()));
  }
});

test('an agent that reads the call and closes without answering (it died mid-call): code 11, and DEL is queued', async () => {
  // a SIGKILLed agent that had read the call: the kernel closes its end, the shim reads end-of-stream and no answer
  // (the real-node crash test, integration/realnode/crash.test.ts, saw this for ADDs cut off by the kill)
  const dead = join(dir, 'dead.sock');
  const srv = createServer((s) => {
    s.on('error', () => undefined);
    let got = '';
    s.on('data', (c: Buffer) => {
      got += c.toString();
      const head = got.indexOf('\r\n\r\n');
      const len = /content-length: *(\d+)/i.exec(got)?.[1];
      if (head >= 0 && len !== undefined && Buffer.byteLength(got) - head - 4 >= Number(len)) s.end();
    });
  });
  await new Promise<void>((r) => srv.listen(dead, r));
  try {
    const r = await runShim(cniEnv('ADD'), netconf(dead));
    assert.equal(r.code, 1);
    assert.equal(errOf(r.stdout).code, 11);
    assert.match(errOf(r.stdout).msg, /did not answer: the connection closed before an answer/);
    const q = join(dir, 'q-dead');
    const d = await runShim({ ...cniEnv('DEL', { CNI_CONTAINERID: 'koac-dead' }), KOA_DEL_QUEUE_DIR: q }, netconf(dead));
    assert.deepEqual([d.code, d.stdout], [0, ''], 'the DEL is queued for the next agent, not failed');
    assert.deepEqual(await readdir(q), ['koac-dead-eth0.json']);
  } finally {
    await new Promise<void>((r) => srv.close(() => r()));
  }
});

test('agent unreachable: code 11 naming the socket; DEL queued durably and completed when the agent starts', async () => {
  const d2 = await tempDir();
  const s2 = join(d2, 'run', 'agent.sock');
  const q = join(d2, 'del-queue');
  try {
    for (const cmd of ['ADD', 'CHECK', 'STATUS', 'GC']) {
      const r = await runShim(cniEnv(cmd), netconf(s2, '1.1.0', { prevResult: { cniVersion: '1.1.0' } }));
      assert.equal(r.code, 1, cmd);
      assert.deepEqual([errOf(r.stdout).code, errOf(r.stdout).cniVersion], [11, '1.1.0']);
      assert.ok(errOf(r.stdout).msg.includes(s2), errOf(r.stdout).msg);
    }
    const del = await runShim({ ...cniEnv('DEL', { CNI_CONTAINERID: 'koac-queued1' }), KOA_DEL_QUEUE_DIR: q }, netconf(s2));
    assert.deepEqual([del.code, del.stdout], [0, '']);
    const del2 = await runShim({ ...cniEnv('DEL', { CNI_CONTAINERID: 'koac-queued2', CNI_IFNAME: 'net1' }), KOA_DEL_QUEUE_DIR: q }, netconf(s2, '0.3.1'));
    assert.equal(del2.code, 0);
    // issue 14 item 7: a container ID over 100 characters (ADD accepts any length) and a non-ASCII ifname queue too
    const longId = `koac${'0123456789'.repeat(15)}`;
    const del3 = await runShim({ ...cniEnv('DEL', { CNI_CONTAINERID: longId }), KOA_DEL_QUEUE_DIR: q }, netconf(s2));
    assert.deepEqual([del3.code, del3.stdout], [0, '']);
    const longer = `koac${'x'.repeat(400)}`;
    const del4 = await runShim({ ...cniEnv('DEL', { CNI_CONTAINERID: longer, CNI_IFNAME: 'ñet0' }), KOA_DEL_QUEUE_DIR: q }, netconf(s2));
    assert.deepEqual([del4.code, del4.stdout], [0, '']);
    const files = (await readdir(q)).sort();
    assert.equal(files.length, 4, files.join());
    assert.ok(files.every((f) => Buffer.byteLength(f) <= 255 && f.endsWith('.json')), files.join());
    assert.ok(files.includes(`${longId}-eth0.json`), 'plain name while it fits');
    assert.ok(files.some((f) => /^koacx{60}-h[0-9a-f]{16}\.json$/.test(f)), files.join());
    for (const f of ['koac-queued1-eth0.json', 'koac-queued2-net1.json']) assert.ok(files.includes(f));
    assert.equal((await stat(join(q, 'koac-queued1-eth0.json'))).mode & 0o777, 0o600);
    assert.equal((await stat(q)).mode & 0o777, 0o700);
    const entry = JSON.parse(await readFile(join(q, 'koac-queued1-eth0.json'), 'utf8')) as { env: Record<string, string>; stdin: string };
    assert.equal(entry.env.CNI_COMMAND, 'DEL');
    assert.equal(entry.env.CNI_CONTAINERID, 'koac-queued1');
    assert.equal(entry.env.PATH, undefined, 'only CNI_* variables are forwarded');
    assert.equal(entry.stdin, netconf(s2));
    // a DEL that cannot be queued is an error, not a silent leak
    const noQueue = await runShim({ ...cniEnv('DEL'), KOA_DEL_QUEUE_DIR: '/proc/koac-cannot' }, netconf(s2));
    assert.equal(noQueue.code, 1);
    assert.equal(errOf(noQueue.stdout).code, 11);
    assert.match(errOf(noQueue.stdout).msg, /cannot queue the DEL/);

    const a = startAgentProcess(['--bind-socket', s2, '--cni-del-queue-dir', q]);
    try {
      const drained = await a.waitFor(/delete queue drained/);
      assert.deepEqual([drained.completed, drained.kept, drained.discarded], [4, 0, 0]);
      assert.deepEqual(await readdir(q), []);
      const done = a.lines.filter((l) => l.msg === 'completed queued DEL').map((l) => l.containerId).sort();
      assert.deepEqual(done, ['koac-queued1', 'koac-queued2', longId, longer].sort());
    } finally {
      assert.equal(await stopAgent(a), 0);
    }
  } finally {
    await rm(d2, { recursive: true, force: true });
  }
});

test('agent process: socket modes, SIGTERM removes the socket, a killed agent leaves a stale socket that does not block restart, a second live agent is refused', async () => {
  const d3 = await tempDir();
  const s3 = join(d3, 'run', 'agent.sock');
  const args = ['--bind-socket', s3, '--cni-del-queue-dir', join(d3, 'q'), '--enable-mirror=false'];
  try {
    const a1 = startAgentProcess(args);
    await a1.waitFor(/CNI server listening/);
    assert.equal((await stat(s3)).mode & 0o777, 0o600);
    assert.equal((await stat(join(d3, 'run'))).mode & 0o777, 0o700);
    assert.ok(a1.lines.some((l) => l.msg === 'ignoring flags this agent does not handle yet'));
    assert.equal((await runShim(cniEnv('ADD'), netconf(s3))).code, 0);
    // a second agent must refuse while the first answers
    const a2 = startAgentProcess(args);
    assert.equal(await a2.exited, 1);
    assert.ok(a2.lines.some((l) => /another agent is answering/.test(JSON.stringify(l))));
    assert.equal((await runShim(cniEnv('DEL'), netconf(s3))).code, 0, 'the first agent still serves');
    // crash: SIGKILL leaves the socket file behind
    a1.proc.kill('SIGKILL');
    await a1.exited;
    assert.ok((await lstat(s3)).isSocket());
    const a3 = startAgentProcess(args);
    await a3.waitFor(/CNI server listening/);
    assert.ok(a3.lines.some((l) => l.msg === 'removing stale CNI socket left by a previous agent'));
    assert.equal((await runShim(cniEnv('ADD'), netconf(s3))).code, 0);
    assert.equal(await stopAgent(a3, 'SIGTERM'), 0);
    await assert.rejects(lstat(s3), { code: 'ENOENT' });
    // the production entry point without a reachable cluster: start-up fails clearly, no socket is left serving
    const a4 = startAgentProcess(['--bind-socket', s3, '--cni-del-queue-dir', join(d3, 'q'), '--kubeconfig=/nonexistent/koac.kubeconfig'], { backend: 'real' });
    assert.equal(await a4.exited, 1);
    assert.ok(a4.lines.some((l) => l.msg === 'start-up failed' && /koac\.kubeconfig/.test(JSON.stringify(l))), JSON.stringify(a4.lines).slice(0, 2000));
    const r = await runShim(cniEnv('ADD'), netconf(s3, '0.3.1'));
    assert.deepEqual([r.code, errOf(r.stdout).code], [1, 11]);
    // bad flags: exit 2 with a message
    const a5 = startAgentProcess(['--backend=fake'], { backend: 'real' }); // test hooks are not flags of the product
    assert.equal(await a5.exited, 2);
    assert.ok(a5.lines.some((l) => /unknown flag --backend/.test(String(l.msg))), JSON.stringify(a5.lines));
  } finally {
    await rm(d3, { recursive: true, force: true });
  }
});

test('the upstream endpoint answers an exact upstream CniRequest with the upstream CniResponse', async () => {
  const body = JSON.stringify({ cni_type: 'kube-ovn', pod_name: 'koac-up', pod_namespace: 'default', container_id: 'koacupstream1', net_ns: '/var/run/netns/koac-up',
    if_name: 'eth0', provider: 'ovn', routes: null, dns: {}, vf_driver: '', deviceID: '', vhost_user_socket_volume_name: '', vhost_user_socket_name: '', vhost_user_socket_consumption: '' });
  const call = (path: string, b: string) => new Promise<{ status: number; body: string }>((res, rej) => {
    // the upstream Go client: POST http://dummy/api/v1/add over the unix socket, JSON body
    const req = request({ socketPath: sock, path, method: 'POST', headers: { Host: 'dummy', 'Content-Type': 'application/json', 'Accept-Encoding': 'gzip' } }, (r) => {
      let s = ''; r.on('data', (c: Buffer) => { s += c.toString(); }); r.on('end', () => res({ status: r.statusCode ?? 0, body: s }));
    });
    req.on('error', rej);
    req.end(b);
  });
  const add = await call('/api/v1/add', body);
  assert.equal(add.status, 200);
  const o = JSON.parse(add.body) as Record<string, unknown>;
  assert.deepEqual(Object.keys(o).sort(), ['dns', 'error', 'ips', 'mac_address', 'mtu', 'nicname', 'routes']);
  assert.deepEqual((o.ips as { protocol: string }[]).map((i) => i.protocol), ['IPv4', 'IPv6']);
  assert.equal(o.nicname, 'eth0');
  const del = await call('/api/v1/del', body);
  assert.deepEqual([del.status, del.body], [204, '']);
  const bad = await call('/api/v1/add', '{"pod_name": 1}');
  assert.equal(bad.status, 400);
  assert.match((JSON.parse(bad.body) as { error: string }).error, /pod_name must be a string/);
});
