// `kube-ovn-daemon --help` prints every flag of the FLAGS table and exits 0 (it used to fail with "unknown flag
// --help"): the text itself, the flag spellings that ask for it, and the real entry point run as a process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { FLAGS } from '../../agent/src/config/config.ts';
import { flagsUsage, wantsHelp } from '../../agent/src/config/flags-doc.ts';

const run = promisify(execFile);

test('the usage text lists every flag once, with its default and env variables', () => {
  const text = flagsUsage();
  for (const f of FLAGS) {
    const lines = text.split('\n').filter((l) => l.startsWith(`  --${f.name} `) || l === `  --${f.name}`);
    assert.equal(lines.length, 1, f.name);
    if (f.def !== '' && f.def !== 'false') assert.ok(lines[0]!.includes(f.def), `${f.name} default`);
    for (const e of f.env ?? []) assert.ok(lines[0]!.includes(e), `${f.name} env ${e}`);
    assert.equal(lines[0]!.includes('not acted on'), !f.acted && f.origin !== 'klog', `${f.name} acted`);
  }
  assert.match(text, /^Usage of kube-ovn-daemon:/);
});

test('-h, -help, --h and --help ask for it, before any `--` only', () => {
  for (const a of ['-h', '--h', '-help', '--help']) assert.equal(wantsHelp(['--v=3', a]), true, a);
  for (const argv of [[], ['--helpful'], ['--help=true'], ['--', '--help'], ['-hh']]) assert.equal(wantsHelp(argv), false, argv.join(' '));
});

test('the agent entry point prints it on stdout and exits 0, before parsing the other flags', async () => {
  const main = fileURLToPath(new URL('../../agent/src/main.ts', import.meta.url));
  const { stdout, stderr } = await run(process.execPath, [main, '--bogus-flag', '--help'], { env: { PATH: process.env.PATH ?? '' } });
  assert.equal(stdout, flagsUsage());
  assert.equal(stderr, '');
});

test('the whole text arrives also through a small non-blocking pipe read only after the exit (a runtime FIFO)', async () => {
  const main = fileURLToPath(new URL('../../agent/src/main.ts', import.meta.url));
  // python3 (a setup package) builds the pipe Node cannot: 4 KiB capacity, O_NONBLOCK on the agent's end
  const driver = [
    'import fcntl, os, subprocess, sys',
    'r, w = os.pipe()',
    'fcntl.fcntl(w, 1031, 4096)',  // F_SETPIPE_SZ
    'fcntl.fcntl(w, fcntl.F_SETFL, fcntl.fcntl(w, fcntl.F_GETFL) | os.O_NONBLOCK)',
    'p = subprocess.Popen(sys.argv[1:], stdout=w)',
    'os.close(w)',
    'import time; time.sleep(1)', // read late: the agent must not exit before its text is out
    'chunks = []',
    'while True:',
    '    b = os.read(r, 65536)',
    '    if not b: break',
    '    chunks.append(b)',
    'sys.stdout.buffer.write(b"".join(chunks))',
    'sys.exit(p.wait())',
  ].join('\n');
  const { stdout } = await run('python3', ['-c', driver, process.execPath, main, '--help'], { env: { PATH: process.env.PATH ?? '' }, maxBuffer: 1 << 20 });
  assert.equal(stdout, flagsUsage());
});
