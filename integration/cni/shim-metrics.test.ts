// Shim-observed time: the real C executable records its own wall time after printing its answer (state file
// <socket>.shim-last) and the next call on the same socket carries it as `shim_prev`; the real agent process
// (main.ts, metrics on a free port) exports it as kube_ovn_agent_cni_shim_duration_seconds.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../bed/kube.ts';
import { SHIM, buildShim, cniEnv, killStartedAgents, netconf, runShim, shimStateFile, startAgentProcess, stopAgent, tempDir, type AgentProc } from './lib.ts';

let dir = '';
let sock = '';
let port = 0;
let agent: AgentProc;
let stateDir = '';
let n = 0;

before(async () => {
  buildShim();
  dir = await tempDir('koac-shimm-');
  sock = join(dir, 'agent.sock');
  stateDir = join(dir, 'state');
  port = await freePort();
  agent = startAgentProcess(['--bind-socket', sock, '--cni-del-queue-dir', join(dir, 'q0'), `--pprof-port=${port}`]);
  await agent.waitFor(/CNI server listening/);
});
after(async () => {
  if (agent) await stopAgent(agent);
  await killStartedAgents();
  await rm(dir, { recursive: true, force: true });
});

const env = (cmd: string, o: Record<string, string> = {}) => cniEnv(cmd, { CNI_CONTAINERID: `koac-sm${n++}`, ...o });
const STATE = (socket = sock) => shimStateFile(socket);

/** `kube_ovn_agent_cni_shim_duration_seconds` {count, sum} per `command/result` */
async function shimMetrics(): Promise<Map<string, { count: number; sum: number }>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = new Map<string, { count: number; sum: number }>();
  for (const line of text.split('\n')) {
    const x = /^kube_ovn_agent_cni_shim_duration_seconds_(count|sum)\{command="([^"]+)",result="([^"]+)"\} (\S+)$/.exec(line);
    if (!x) continue;
    const k = `${x[2]}/${x[3]}`;
    const e = m.get(k) ?? { count: 0, sum: 0 };
    e[x[1] as 'count' | 'sum'] = Number(x[4]);
    m.set(k, e);
  }
  return m;
}
const total = (m: Map<string, { count: number }>) => [...m.values()].reduce((a, e) => a + e.count, 0);

function parseState(text: string): { reports: { cmd: string; ms: number; code: number }[] } {
  assert.match(text, /\n$/);
  return { reports: text.trimEnd().split('\n').map((l) => { const [cmd, ms, code] = l.split(' '); return { cmd: cmd!, ms: Number(ms), code: Number(code) }; }) };
}

test('a second call delivers the first call\'s own time to the metrics, once', async () => {
  const before0 = total(await shimMetrics());
  const first = await runShim(env('ADD'), netconf(sock));
  assert.equal(first.code, 0, first.stdout);
  const st = parseState(await readFile(STATE(), 'utf8'));
  assert.equal(st.reports.length, 1);
  const { cmd, ms, code } = st.reports[0]!;
  assert.deepEqual([cmd, code], ['ADD', 0]);
  assert.ok(ms > 0 && ms <= first.ms, `shim ms ${ms} within the spawn's wall time ${first.ms}`);
  assert.equal(total(await shimMetrics()), before0, 'nothing is reported before the next call');

  const second = await runShim(env('DEL'), netconf(sock));
  assert.equal(second.code, 0, second.stdout);
  const m = await shimMetrics();
  assert.equal(total(m), before0 + 1);
  const add = m.get('ADD/ok')!;
  assert.equal(add.count, 1);
  assert.ok(Math.abs(add.sum - ms / 1000) < 1e-6, `sum ${add.sum} s == ${ms} ms`);
  // the DEL's own time waits in the file for the next call
  assert.deepEqual(parseState(await readFile(STATE(), 'utf8')).reports.map((r) => [r.cmd, r.code]), [['DEL', 0]]);
  const third = await runShim(env('STATUS'), netconf(sock, '1.1.0'));
  assert.equal(third.code, 0, third.stdout);
  assert.equal((await shimMetrics()).get('DEL/ok')?.count, 1);
});

test('failures are reported with their CNI code; an unreachable socket gets no file; another socket\'s file is not read', async () => {
  const check = await runShim(env('CHECK', { CNI_CONTAINERID: 'koac-sm-unknown' }), netconf(sock, '1.0.0', { prevResult: { cniVersion: '1.0.0', interfaces: [], ips: [] } }));
  assert.equal(check.code, 1);
  const cniCode = (JSON.parse(check.stdout) as { code: number }).code;
  await runShim(env('STATUS'), netconf(sock, '1.1.0'));
  assert.equal((await shimMetrics()).get(`CHECK/cni_${cniCode}`)?.count, 1);

  // unreachable agent (code 11): nothing is recorded, and no file appears next to a socket path nobody serves
  const dead = join(dir, 'nobody.sock');
  const r = await runShim(env('ADD'), netconf(dead));
  assert.equal(r.code, 1);
  assert.equal((JSON.parse(r.stdout) as { code: number }).code, 11);
  assert.equal(existsSync(STATE(dead)), false);
  const ghost = '/koac-no-such-dir-at-all/agent.sock';
  await runShim(env('ADD'), netconf(ghost));
  assert.equal(existsSync('/koac-no-such-dir-at-all'), false);
  // another socket's file is never read here: a report planted for `dead` stays there
  await writeFile(STATE(dead), 'ADD 7 0\n');
  const before1 = await shimMetrics();
  await runShim(env('STATUS'), netconf(sock, '1.1.0'));
  const after1 = await shimMetrics();
  assert.equal(total(after1), total(before1) + 1, 'only the previous live call (the STATUS above)');
  assert.equal(after1.get('STATUS/ok')!.count, (before1.get('STATUS/ok')?.count ?? 0) + 1);
  assert.equal(await readFile(STATE(dead), 'utf8'), 'ADD 7 0\n');
});

test('a corrupt or hostile state file never breaks a call; only well-formed lines are sent', async () => {
  const GARBAGE = ['', 'x', '\n\n\n', 'ADD 1.5 0', 'ADD NaN 0\nADD -1 0\nADD 1e99 0\nBOGUS 1 0\nADD 1 99999\nADD 1 2147483648\nADD 1.5 0 \nADD  1 0\n"},{"x\n',
    'ADDX 1 0\nADD 1 0x\nADD 1\nADD inf 0\nADD 1 -2\n', 'ADD 1.5 0\n'.repeat(400), Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 37) % 256)).toString('latin1')];
  for (const garbage of GARBAGE) {
    await runShim(env('STATUS'), netconf(sock, '1.1.0')); // drain whatever is pending
    const base = await shimMetrics();
    await writeFile(STATE(), garbage, 'latin1');
    const r = await runShim(env('ADD'), netconf(sock));
    assert.equal(r.code, 0, `${JSON.stringify(garbage.slice(0, 80))}: ${r.stdout}`);
    assert.equal((JSON.parse(r.stdout) as { cniVersion: string }).cniVersion, '1.0.0');
    const m = await shimMetrics();
    const delivered = total(m) - total(base);
    const valid = garbage.startsWith('ADD 1.5 0\n') ? 16 : 0; // at most 16 per request
    assert.equal(delivered, valid, JSON.stringify(garbage.slice(0, 80)));
  }
});

test('parallel calls: every delivered report is a real call, none twice', async () => {
  await runShim(env('STATUS'), netconf(sock, '1.1.0'));
  if (existsSync(STATE())) await runShim(env('STATUS'), netconf(sock, '1.1.0'));
  const base = total(await shimMetrics());
  const N = 24;
  const rs = await Promise.all(Array.from({ length: N }, () => runShim(env('ADD'), netconf(sock))));
  for (const r of rs) assert.equal(r.code, 0, r.stdout);
  await runShim(env('STATUS'), netconf(sock, '1.1.0')); // delivers what is left in the file
  const delivered = total(await shimMetrics()) - base;
  // N ADDs + the first STATUS (in the file before the batch started, maybe taken by one of them); at most that many
  assert.ok(delivered >= 1 && delivered <= N + 1, `delivered ${delivered} of ${N + 1}`);
});

test('KOA_SHIM_STATE_DIR moves the state file (one per socket, dir created); a missing socket dir is never created', async () => {
  await runShim(env('STATUS'), netconf(sock, '1.1.0')); // leaves a report next to the socket
  const base = total(await shimMetrics());
  const e = (cmd: string) => ({ ...env(cmd), KOA_SHIM_STATE_DIR: stateDir });
  assert.equal((await runShim(e('ADD'), netconf(sock))).code, 0); // delivers nothing: its own file is new
  assert.equal(total(await shimMetrics()), base);
  assert.deepEqual(parseState(await readFile(shimStateFile(sock, stateDir), 'utf8')).reports.map((r) => r.cmd), ['ADD']);
  assert.equal((await runShim(e('DEL'), netconf(sock))).code, 0);
  assert.equal(total(await shimMetrics()), base + 1);
  // default location with the agent's socket directory gone: the DEL is queued, no directory appears
  const gone = join(dir, 'no-such-dir', 'agent.sock');
  const r = await runShim({ ...env('DEL'), KOA_DEL_QUEUE_DIR: join(dir, 'q1') }, netconf(gone));
  assert.equal(r.code, 0, r.stdout);
  assert.equal(existsSync(join(dir, 'no-such-dir')), false);
});

test('a relative server_socket never leaves a state file in the working directory', async () => {
  const cwdDir = await tempDir('koac-shimm-cwd-');
  try {
    const r = await new Promise<number | null>((res) => {
      const p = spawn(SHIM, [], { cwd: cwdDir, env: cniEnv('ADD', { CNI_CONTAINERID: 'koac-rel' }), stdio: ['pipe', 'ignore', 'ignore'] });
      p.on('close', res);
      p.stdin.end(netconf('rel/agent.sock'));
    });
    assert.equal(r, 1);
    assert.deepEqual(await readdir(cwdDir), []);
  } finally { await rm(cwdDir, { recursive: true, force: true }); }
});
