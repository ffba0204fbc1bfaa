// The process launcher: its wire codec (tables), and the real cni-shim/kube-ovn-exec driven through Launcher:
// stdin/stdout/stderr, exit status, spawn errors, timeouts, large outputs, answers in order, and a launcher that
// dies (pending requests fail, the next one starts a new launcher).
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { decodeAnswer, encodeRequest } from '../../agent/src/exec/launcher-codec.ts';
import { LAUNCHER_CANDIDATES, Launcher, execArgv, launcher } from '../../agent/src/exec/launcher.ts';

const answer = (status: number, signal: number, errno: number, out: string, err: string): Buffer => {
  const o = Buffer.from(out), e = Buffer.from(err);
  const f = Buffer.alloc(4 + 20 + o.length + e.length);
  f.writeUInt32LE(20 + o.length + e.length, 0);
  f.writeInt32LE(status, 4); f.writeInt32LE(signal, 8); f.writeInt32LE(errno, 12);
  f.writeUInt32LE(o.length, 16); o.copy(f, 20); f.writeUInt32LE(e.length, 20 + o.length); e.copy(f, 24 + o.length);
  return f;
};

test('encodeRequest: frame length, timeout, argv (UTF-8 lengths in bytes), stdin', () => {
  const b = encodeRequest({ argv: ['ipset', 'ñ'], input: 'ab', timeoutMs: 1500.4 });
  const want = Buffer.concat([
    Buffer.from([4 + 4 + 4 + 5 + 4 + 2 + 4 + 2, 0, 0, 0]), Buffer.from([0xdc, 0x05, 0, 0]), Buffer.from([2, 0, 0, 0]),
    Buffer.from([5, 0, 0, 0]), Buffer.from('ipset'), Buffer.from([2, 0, 0, 0]), Buffer.from('ñ'),
    Buffer.from([2, 0, 0, 0]), Buffer.from('ab'),
  ]);
  assert.deepEqual(b, want);
  assert.throws(() => encodeRequest({ argv: [], input: '', timeoutMs: 1 }), /argv/);
  assert.throws(() => encodeRequest({ argv: ['a\0b'], input: '', timeoutMs: 1 }), /NUL/);
});

test('decodeAnswer: table', () => {
  const ok = answer(0, 0, 0, 'out', 'err');
  const rows: [string, Buffer, unknown][] = [
    ['exit 0 with both streams', ok, { code: 0, signal: 0, spawnErrno: 0, stdout: 'out', stderr: 'err', rest: 0 }],
    ['exit 2', answer(2, 0, 0, '', 'bad'), { code: 2, signal: 0, spawnErrno: 0, stdout: '', stderr: 'bad', rest: 0 }],
    ['killed: no code', answer(-1, 9, 0, 'x', ''), { code: null, signal: 9, spawnErrno: 0, stdout: 'x', stderr: '', rest: 0 }],
    ['not started', answer(-1, 0, 2, '', ''), { code: null, signal: 0, spawnErrno: 2, stdout: '', stderr: '', rest: 0 }],
    ['two answers: the first, and the rest kept', Buffer.concat([ok, ok]), { code: 0, signal: 0, spawnErrno: 0, stdout: 'out', stderr: 'err', rest: ok.length }],
    ['incomplete header', ok.subarray(0, 3), null],
    ['incomplete body', ok.subarray(0, ok.length - 1), null],
  ];
  for (const [name, buf, want] of rows) {
    const got = decodeAnswer(buf);
    const flat = got && { ...got.answer, stdout: got.answer.stdout.toString(), stderr: got.answer.stderr.toString(), rest: got.rest.length };
    assert.deepEqual(flat, want, name);
  }
  const bad = Buffer.from(ok); bad.writeUInt32LE(1000, 16); // stdout length past the frame
  assert.throws(() => decodeAnswer(bad), /malformed/);
});

if (!LAUNCHER_CANDIDATES.some((p) => existsSync(p))) execFileSync('make', ['-s', '-C', new URL('../../cni-shim', import.meta.url).pathname, 'kube-ovn-exec']);
const path = LAUNCHER_CANDIDATES.find((p) => existsSync(p))!;

test('the real launcher: streams, exit status, spawn errors, a timeout kills, 20 MB of output, answers in order', async () => {
  const l = launcher();
  assert.ok(l, 'cni-shim/kube-ovn-exec is built and found');
  const node = process.execPath;
  const r = await execArgv([node, '-e', 'process.stdin.pipe(process.stdout); process.stderr.write("e")'], 'hello', 10_000);
  assert.deepEqual(r, { stdout: 'hello', stderr: 'e', code: 0 });
  assert.equal((await execArgv(['sh', '-c', 'exit 3'], undefined, 10_000)).code, 3, 'exit status; argv[0] found on PATH');
  await assert.rejects(execArgv(['/nonexistent/koa-tool'], undefined, 10_000), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
  const slow = await execArgv([node, '-e', 'setTimeout(() => {}, 600_000)'], undefined, 1000); // would sleep 10 min
  assert.equal(slow.code, null);
  assert.match(slow.stderr, /killed by SIGKILL/);
  const big = await execArgv([node, '-e', 'process.stdout.write("x".repeat(20 << 20))'], undefined, 60_000);
  assert.equal(big.stdout.length, 20 << 20);
  const input = 'y'.repeat(3 << 20); // more than a pipe holds: the launcher writes stdin and reads stdout together
  const echoed = await execArgv(['cat'], input, 60_000);
  assert.equal(echoed.stdout, input);
  const many = await Promise.all(Array.from({ length: 50 }, (_, i) => execArgv(['echo', String(i)], undefined, 10_000)));
  assert.deepEqual(many.map((m) => m.stdout), Array.from({ length: 50 }, (_, i) => `${i}\n`), 'each answer to its own request');
  assert.ok(l.stats.starts >= 1 && l.stats.starts <= l.max, `${l.stats.starts} launcher processes for 50 concurrent commands`);
  const sig = await execArgv(['sh', '-c', 'yes | head -c 1 >/dev/null; kill -PIPE $$'], undefined, 10_000);
  assert.match(sig.stderr, /killed by SIGPIPE/, 'SIGPIPE is default again in the command, not inherited as ignored');
});

test('a launcher that dies: the pending request fails with the reason, the next one starts a new launcher', async () => {
  const l = new Launcher(path, 1);
  const pending = l.run({ argv: ['sleep', '600'], input: '', timeoutMs: 700_000 });
  const [pid] = l.pids;
  assert.ok(pid, 'a launcher process runs');
  let sleeper = '';
  for (let i = 0; i < 3000 && !sleeper; i++) { // until the launcher has started the command (bounded: 30+ s)
    try { sleeper = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim(); } catch { /* none yet: pgrep exits 1 */ }
    if (!sleeper) await new Promise((r) => setTimeout(r, 10));
  }
  assert.match(sleeper, /^\d+$/, 'the launcher started sleep');
  process.kill(pid, 'SIGKILL');
  await assert.rejects(pending, /process launcher .* exited \(SIGKILL\)/);
  process.kill(Number(sleeper), 'SIGKILL'); // the orphaned sleep: ours, by PID
  const next = await l.run({ argv: ['echo', 'again'], input: '', timeoutMs: 10_000 });
  assert.equal(next.stdout.toString(), 'again\n');
  assert.equal(l.stats.starts, 2);
  l.stop();
});

test('a command that closes its outputs and hangs is still killed at its timeout', async () => {
  const l = new Launcher(path, 1);
  const a = await l.run({ argv: ['sh', '-c', 'exec >&- 2>&-; exec sleep 600'], input: '', timeoutMs: 500 });
  assert.equal(a.code, null);
  assert.equal(a.signal, 9);
  l.stop();
});

test('a launcher executable that cannot start: commands run through a direct spawn instead', async () => {
  const l = new Launcher('/nonexistent/kube-ovn-exec');
  await assert.rejects(l.run({ argv: ['true'], input: '', timeoutMs: 1000 }), /failed: spawn .*ENOENT/);
  assert.throws(() => encodeRequest({ argv: ['true'], input: '', timeoutMs: Number.NaN }), /timeoutMs/);
});

test('launchers beyond the first exit after a quiet spell; one stays, and a burst starts extras again', async (t) => {
  const l = new Launcher(path, 4, 1000);
  t.after(() => l.stop());
  mock.timers.enable({ apis: ['setTimeout'] });
  t.after(() => mock.timers.reset());
  const burst = (): Promise<unknown> => Promise.all(Array.from({ length: 3 }, () => l.run({ argv: ['sh', '-c', 'sleep 0.1'], input: '', timeoutMs: 60_000 })));
  await burst();
  assert.equal(l.pids.length, 3, 'three commands at once: three launchers');
  mock.timers.tick(999);
  assert.equal(l.pids.length, 3);
  mock.timers.tick(1);
  assert.equal(l.pids.length, 1, 'the extras exit; one stays');
  assert.equal(l.stats.idleExits, 2);
  assert.equal((await l.run({ argv: ['echo', 'still'], input: '', timeoutMs: 10_000 })).stdout.toString(), 'still\n');
  mock.timers.tick(1000);
  assert.equal(l.pids.length, 1, 'the last one never exits for idleness');
  await burst();
  assert.equal(l.pids.length, 3);
});
