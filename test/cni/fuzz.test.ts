// Fuzz-style: thousands of random and mutated netconfs, environments and raw requests against the real server on
// a temp socket. Every answer must be well-formed (HTTP status, exit header, CNI JSON with a known code) and the
// server must keep answering. The seed is printed so a failure can be replayed (KOA_FUZZ_SEED=n).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Dispatcher } from '../../agent/src/cni/dispatcher.ts';
import { FakeBackend } from '../../agent/src/cni/fake-backend.ts';
import { SUPPORTED_VERSIONS } from '../../agent/src/cni/types.ts';
import { CALL_PATH, EXIT_HEADER, startCniServer } from '../../agent/src/server/cni-server.ts';
import { CniCode } from '../../agent/src/errors.ts';
import { cniEnv, post, quietLog, raw, SOCK_NC, tempDir } from './helpers.ts';

const seed = Number(process.env.KOA_FUZZ_SEED ?? Date.now() % 1e9);
let state = seed >>> 0 || 1;
const rnd = () => { state ^= state << 13; state >>>= 0; state ^= state >>> 17; state ^= state << 5; state >>>= 0; return state / 2 ** 32; };
const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
const KNOWN_CODES = new Set<number>(Object.values(CniCode));

function randomString(): string {
  const alphabets = ['abc', 'eth0', '/', ':', ' ', '\u0000', '\n', '"', '\\', 'é', '💥', '..', '.', '0123456789', '10.16.0.1/16', '::/0'];
  let s = '';
  const n = Math.floor(rnd() * 20);
  for (let i = 0; i < n; i++) s += pick(alphabets);
  return s;
}

function randomValue(depth = 0): unknown {
  switch (Math.floor(rnd() * (depth > 2 ? 6 : 8))) {
    case 0: return null;
    case 1: return rnd() < 0.5;
    case 2: return Math.floor(rnd() * 2 ** 33) - 2 ** 32;
    case 3: return rnd() * 1e6;
    case 4: case 5: return randomString();
    case 6: return Array.from({ length: Math.floor(rnd() * 4) }, () => randomValue(depth + 1));
    default: return Object.fromEntries(Array.from({ length: Math.floor(rnd() * 4) }, () => [randomString(), randomValue(depth + 1)]));
  }
}

const SEEDS = (sock: string): Record<string, unknown>[] => [
  JSON.parse(SOCK_NC(sock, pick(SUPPORTED_VERSIONS))),
  { cniVersion: pick(SUPPORTED_VERSIONS), name: 'mv', type: 'macvlan', ipam: { type: 'kube-ovn', server_socket: sock, provider: 'mv.ns', routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }] } },
  { ...JSON.parse(SOCK_NC(sock, '1.0.0')), prevResult: { cniVersion: '1.0.0', interfaces: [{ name: 'eth0' }], ips: [{ address: '10.16.0.9/16', interface: 0 }], routes: [{ dst: '0.0.0.0/0' }] } },
  { ...JSON.parse(SOCK_NC(sock, '1.1.0')), 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }] },
  { ...JSON.parse(SOCK_NC(sock, '0.4.0')), routes: [{ dst: '10.0.0.0/8', gw: '10.16.0.1' }], dns: { nameservers: ['1.1.1.1'] }, provider: 'x.y.ovn' },
];

function mutateObject(o: Record<string, unknown>): Record<string, unknown> {
  const c = structuredClone(o);
  const n = 1 + Math.floor(rnd() * 3);
  for (let i = 0; i < n; i++) {
    const keys = Object.keys(c);
    const op = rnd();
    if (op < 0.3 && keys.length) delete c[pick(keys)];
    else if (op < 0.7 && keys.length) c[pick(keys)] = randomValue();
    else if (op < 0.85) c[pick(['cniVersion', 'server_socket', 'provider', 'routes', 'ipam', 'prevResult', 'dns', 'type', 'name', randomString()])] = randomValue();
    else if (isObj(c.ipam)) (c.ipam as Record<string, unknown>)[pick(['type', 'server_socket', 'provider', 'routes'])] = randomValue();
  }
  return c;
}
const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

function mutateText(s: string): string {
  const b = Buffer.from(s);
  switch (Math.floor(rnd() * 4)) {
    case 0: return s.slice(0, Math.floor(rnd() * s.length));
    case 1: { const i = Math.floor(rnd() * b.length); b[i] = Math.floor(rnd() * 256); return b.toString('utf8'); }
    case 2: { const i = Math.floor(rnd() * s.length); return s.slice(0, i) + pick(['{', '}', '"', ',', ':', '[', '\\u00', 'null']) + s.slice(i); }
    default: return s.repeat(2);
  }
}

function randomEnv(): Record<string, string> {
  const e: Record<string, string> = cniEnv(pick(['ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION', 'ADD', 'DEL', 'add', '', randomString()]), {
    CNI_CONTAINERID: pick(['koac-f1', 'koac-f2', `koac-${Math.floor(rnd() * 50)}`, randomString()]),
  });
  const n = Math.floor(rnd() * 3);
  for (let i = 0; i < n; i++) {
    const k = pick(['CNI_IFNAME', 'CNI_NETNS', 'CNI_ARGS', 'CNI_CONTAINERID', 'CNI_PATH']);
    if (rnd() < 0.3) delete e[k];
    else e[k] = pick([randomString(), 'eth0', 'net1', '/var/run/netns/koac', 'relative', 'K8S_POD_NAME=a;K8S_POD_NAMESPACE=b', 'IgnoreUnknown=1;X=y', 'a'.repeat(16)]);
  }
  return e;
}

function checkCallAnswer(status: number, headers: Record<string, unknown>, body: string, what: string): void {
  assert.ok([200, 400, 413, 415].includes(status), `${what}: HTTP ${status}`);
  const exit = headers[EXIT_HEADER];
  assert.ok(exit === '0' || exit === '1', `${what}: exit header ${String(exit)}`);
  if (exit === '0') {
    if (body === '') return;
    const o = JSON.parse(body) as Record<string, unknown>;
    assert.ok((SUPPORTED_VERSIONS as readonly unknown[]).includes(o.cniVersion), `${what}: ${body}`);
    return;
  }
  const o = JSON.parse(body) as Record<string, unknown>;
  assert.ok((SUPPORTED_VERSIONS as readonly unknown[]).includes(o.cniVersion), `${what}: version in ${body}`);
  assert.ok(typeof o.code === 'number' && KNOWN_CODES.has(o.code), `${what}: code in ${body}`);
  assert.ok(typeof o.msg === 'string' && o.msg.length > 0, `${what}: msg in ${body}`);
}

test(`fuzz: thousands of mutated calls; every answer well-formed, the server stays up (seed ${seed})`, async () => {
  const dir = await tempDir();
  const sock = join(dir, 'agent.sock');
  const fake = new FakeBackend();
  const srv = await startCniServer({ socketPath: sock, dispatcher: new Dispatcher({ backend: fake }), log: quietLog() });
  const counted = { call: 0, upstream: 0, raw: 0, ok: 0 };
  try {
    const N = 3000;
    for (let batch = 0; batch < N / 10; batch++) {
      await Promise.all(Array.from({ length: 10 }, async () => {
        const kind = rnd();
        if (kind < 0.7) {
          const base = pick(SEEDS(sock));
          const stdin = rnd() < 0.75 ? JSON.stringify(mutateObject(base)) : mutateText(JSON.stringify(base));
          const body = rnd() < 0.9 ? JSON.stringify({ env: randomEnv(), stdin }) : mutateText(JSON.stringify({ env: randomEnv(), stdin }));
          const r = await post(sock, CALL_PATH, body);
          checkCallAnswer(r.status, r.headers, r.body, `${body.slice(0, 300)}`);
          counted.call++;
          if (r.headers[EXIT_HEADER] === '0') counted.ok++;
        } else if (kind < 0.9) {
          const req = mutateObject({ cni_type: 'kube-ovn', pod_name: 'p', pod_namespace: 'n', container_id: `koac-u${Math.floor(rnd() * 20)}`, net_ns: '/var/run/netns/koac', if_name: 'eth0', provider: 'ovn', routes: null, dns: {} });
          const path = pick(['/api/v1/add', '/api/v1/del']);
          const text = rnd() < 0.85 ? JSON.stringify(req) : mutateText(JSON.stringify(req));
          const r = await post(sock, path, text);
          assert.ok([200, 204, 400, 500].includes(r.status), `${path} ${text}: ${r.status}`);
          if (r.status === 204) assert.equal(r.body, '');
          else {
            const o = JSON.parse(r.body) as Record<string, unknown>;
            assert.equal(typeof o.error, 'string');
            assert.equal(r.status === 200, o.error === '', `${text} -> ${r.body}`);
          }
          counted.upstream++;
        } else {
          const garbage = rnd() < 0.5 ? Buffer.from(Array.from({ length: Math.floor(rnd() * 200) + 1 }, () => Math.floor(rnd() * 256)))
            : `POST ${CALL_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: ${Math.floor(rnd() * 100)}\r\n${pick(['', 'Transfer-Encoding: chunked\r\n', 'Content-Length: 3\r\n', 'X: \x00\r\n'])}\r\n${randomString()}`;
          const out = await raw(sock, garbage, 100);
          assert.ok(out === '' || /^HTTP\/1\.1 \d{3} /.test(out), `garbage answer: ${out.slice(0, 80)}`);
          counted.raw++;
        }
      }));
    }
    const alive = await post(sock, CALL_PATH, JSON.stringify({ env: { CNI_COMMAND: 'VERSION' }, stdin: '' }));
    assert.equal(alive.status, 200);
    assert.equal(counted.call + counted.upstream + counted.raw, N);
    assert.ok(counted.ok > 0, 'some mutated calls must still succeed');
  } finally {
    await srv.close();
    await rm(dir, { recursive: true, force: true });
  }
});
