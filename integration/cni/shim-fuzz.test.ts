// Fuzz the C executable itself, built with AddressSanitizer and UBSan: thousands of random and mutated netconfs
// and environments against the real agent, and random answers from a misbehaving "agent". Every run must exit 0
// or 1 with empty or well-formed JSON on stdout, and the sanitizers must report nothing. Seed: KOA_FUZZ_SEED.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { readdirSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseArgs, startAgent, type Agent } from '../../agent/src/main.ts';
import { FakeBackend } from '../../agent/src/cni/fake-backend.ts';
import { ROOT, runShim, shimStateFile, tempDir } from './lib.ts';

const seed = Number(process.env.KOA_FUZZ_SEED ?? Date.now() % 1e9);
let st = seed >>> 0 || 1;
const rnd = () => { st ^= st << 13; st >>>= 0; st ^= st >>> 17; st ^= st << 5; st >>>= 0; return st / 2 ** 32; };
const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;

let dir: string;
let asan: string;
let sock: string;
let agent: Agent;
let garbage: Server;
let garbageSock: string;

before(async () => {
  dir = await tempDir();
  asan = join(dir, 'kube-ovn-asan');
  execFileSync('gcc', ['-O1', '-g', '-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-fno-omit-frame-pointer', '-o', asan, join(ROOT, 'cni-shim', 'kube-ovn.c')]);
  sock = join(dir, 'agent.sock');
  agent = await startAgent(parseArgs(['--bind-socket', sock, '--cni-del-queue-dir', join(dir, 'q0')]), pino({ level: 'silent' }), { backend: new FakeBackend() });
  garbageSock = join(dir, 'garbage.sock');
  garbage = createServer((s) => {
    s.on('error', () => undefined);
    s.once('data', () => {
      const answers = [
        'HTTP/1.1 200 OK\r\nx-cni-exit-status: 0\r\nContent-Length: 2\r\n\r\n{}',
        'HTTP/1.1 200 OK\r\nx-cni-exit-status: 300\r\n\r\nx',
        'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc',
        'HTTP/1.1 500 Oops\r\n\r\n',
        'HTTP/1.1 200 OK\r\nx-cni-exit-status: 1\r\nContent-Length: 99\r\n\r\nshort',
        'garbage without headers',
        '',
        `HTTP/1.1 200 OK\r\nx-cni-exit-status: 0\r\n\r\n${'A'.repeat(Math.floor(rnd() * 100000))}`,
        Buffer.from(Array.from({ length: Math.floor(rnd() * 500) }, () => Math.floor(rnd() * 256))).toString('latin1'),
        'HTTP/1.1 200 OK\r\nx-cni-exit-status: -5\r\n\r\n',
        'HTTP/1.1 200 OK\r\nX-CNI-EXIT-STATUS:1\r\n\r\n{"code":7}',
      ];
      s.end(pick(answers), 'latin1');
    });
  });
  await new Promise<void>((r) => garbage.listen(garbageSock, r));
});

after(async () => {
  await agent?.stop();
  await new Promise<void>((r) => garbage.close(() => r()));
  await rm(dir, { recursive: true, force: true });
});

function randomJsonText(sockPath: string): string {
  const v = pick(['0.3.1', '0.4.0', '1.0.0', '1.1.0', '', '9', '1.0.0"x', '\\u0031']);
  const pieces = [
    `{"cniVersion":"${v}","name":"n","type":"kube-ovn","server_socket":"${sockPath}"}`,
    `{"type":"macvlan","ipam":{"type":"kube-ovn","server_socket":"${sockPath}","routes":[{"dst":"0.0.0.0/0"}]},"cniVersion":"${v}","name":"m"}`,
    `{"server_socket":"${sockPath.replace(/\//g, '\\/')}","name":"e","type":"kube-ovn","cniVersion":"1.0.0"}`,
    `{"a":[[[[{"b":"}"}]]]],"server_socket":"${sockPath}","name":"x","type":"kube-ovn","cniVersion":"1.0.0","prevResult":{"ips":[]}}`,
    `${'['.repeat(100)}${']'.repeat(100)}`,
    `{"server_socket":"${'/x'.repeat(200)}"}`,
    `{"server_socket":"\\u002ftmp"}`,
    `{"ipam":{"server_socket":"${sockPath}"`,
    `{"type":"kube-ovn","server_socket":${pick(['1', 'null', '{}', '[]', 'true'])},"name":"n","cniVersion":"1.0.0"}`,
  ];
  let s = pick(pieces);
  const n = Math.floor(rnd() * 4);
  for (let i = 0; i < n; i++) {
    const at = Math.floor(rnd() * (s.length + 1));
    switch (Math.floor(rnd() * 4)) {
      case 0: s = s.slice(0, at); break;
      case 1: s = s.slice(0, at) + pick(['"', '\\', '{', '}', '[', ']', ',', ':', '\\"', '\u0000', '\n', 'é', ' ']) + s.slice(at); break;
      case 2: s = s.slice(0, at) + s.slice(at + 1 + Math.floor(rnd() * 5)); break;
      default: s = s.slice(0, at) + String.fromCharCode(Math.floor(rnd() * 256)) + s.slice(at);
    }
  }
  return s;
}

// 1500 sanitizer runs take ~2 min on 2 idle cores and several times that on a loaded machine: a bound of its own
test(`shim fuzz under ASan/UBSan: mutated netconfs and hostile answers (seed ${seed})`, { timeout: 1_500_000 }, async () => {
  const N = Number(process.env.KOA_SHIM_FUZZ_N) || 1500;
  let viaAgent = 0;
  for (let batch = 0; batch < N / 6; batch++) {
    // the shim's own-time state file (<socket>.shim-last): sometimes hostile content
    if (rnd() < 0.3) {
      const lines = Array.from({ length: Math.floor(rnd() * 40) }, () => `${pick(['ADD', 'DEL', 'GC', 'X'.repeat(20), ''])}${pick([' ', '  ', ''])}${pick(['1.5', '-3', 'nan', 'inf', '1e308', '9'.repeat(400), ''])} ${pick(['0', '-1', '11', '2147483648', '99999999999999999999', 'x', ''])}`);
      const text = pick([`${lines.join('\n')}\n`, lines.join('\n'),
        Buffer.from(Array.from({ length: Math.floor(rnd() * 6000) }, () => Math.floor(rnd() * 256))).toString('latin1')]);
      await writeFile(shimStateFile(pick([sock, garbageSock])), text, 'latin1');
    }
    await Promise.all(Array.from({ length: 6 }, async () => {
      const target = pick([sock, sock, sock, garbageSock, join(dir, 'nobody.sock')]);
      const stdin = randomJsonText(target);
      const env: Record<string, string> = {
        CNI_COMMAND: pick(['ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION', 'ADD', 'DEL', 'X', '']),
        CNI_CONTAINERID: pick(['koac-z1', `koac-${Math.floor(rnd() * 9)}`, '../../etc', '', 'a'.repeat(300)]),
        CNI_NETNS: pick(['/var/run/netns/koac', '', 'rel']), CNI_IFNAME: pick(['eth0', 'a/b', '', '..', 'x'.repeat(40)]),
        CNI_ARGS: pick(['K8S_POD_NAME=a;K8S_POD_NAMESPACE=b', '', '=;=;']), KOA_DEL_QUEUE_DIR: join(dir, 'q'), KOA_CNI_TIMEOUT_MS: '2000',
        ASAN_OPTIONS: 'detect_leaks=0',
      };
      if (rnd() < 0.1) delete env.CNI_COMMAND;
      const r = await runShim(env, stdin, asan);
      assert.doesNotMatch(r.stderr, /AddressSanitizer|runtime error|UndefinedBehavior/, `${JSON.stringify(env)} ${JSON.stringify(stdin)}\n${r.stderr}`);
      assert.ok(r.code === 0 || r.code === 1 || (target === garbageSock && r.code !== null && r.code <= 255), `exit ${r.code} for ${JSON.stringify(stdin)}`);
      if (target !== garbageSock && r.stdout !== '') {
        const o = JSON.parse(r.stdout) as Record<string, unknown>;
        assert.ok(typeof o.cniVersion === 'string', r.stdout);
        if (r.code === 1) assert.ok(typeof o.code === 'number' && typeof o.msg === 'string', r.stdout);
      }
      if (target === sock) viaAgent++;
    }));
  }
  assert.ok(viaAgent > N / 3);
  // relative or mangled server_socket values never leave an own-time state file in the working directory
  assert.deepEqual(readdirSync(process.cwd()).filter((f) => f.endsWith('.shim-last')), []);
});
