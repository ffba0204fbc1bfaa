import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CENSOR, createLogger, durationMs, klogLevel, levelFromVerbosity, requestLogger, scrubText } from '../../agent/src/observe/log.ts';

const LOG_TS = resolve(import.meta.dirname, '../../agent/src/observe/log.ts');

function capture(): { lines: () => Record<string, unknown>[]; raw: () => string; write: (s: string) => void } {
  const out: string[] = [];
  return { write: (s) => { out.push(s); }, raw: () => out.join(''), lines: () => out.map((s) => JSON.parse(s) as Record<string, unknown>) };
}

test('request-scoped child loggers carry the CNI request fields and durationMs', () => {
  const c = capture();
  const log = createLogger({ destination: c, base: { node: 'node-a' } });
  const t0 = process.hrtime.bigint();
  const req = requestLogger(log.logger, { command: 'ADD', containerId: 'c0ffee', pod: 'web-1', namespace: 'default', netns: '/var/run/netns/x', ifName: '' });
  req.info({ durationMs: durationMs(t0) }, 'cni request done');
  const [line] = c.lines();
  assert.equal(line!.msg, 'cni request done');
  assert.equal(line!.node, 'node-a');
  assert.equal(line!.command, 'ADD');
  assert.equal(line!.containerId, 'c0ffee');
  assert.equal(line!.pod, 'web-1');
  assert.equal(line!.namespace, 'default');
  assert.equal(line!.netns, '/var/run/netns/x');
  assert.equal('ifName' in line!, false, 'empty fields are left out');
  assert.equal(typeof line!.durationMs, 'number');
  assert.ok((line!.durationMs as number) >= 0);
  assert.equal(line!.level, 30);
  assert.match(String(line!.time), /^\d{4}-\d\d-\d\dT/);
});

test('secrets are redacted from fields and scrubbed from error text', () => {
  const c = capture();
  const log = createLogger({ destination: c });
  log.logger.info({
    req: { headers: { authorization: 'Bearer s3cr3t-A' } }, headers: { authorization: 'Basic s3cr3t-B' },
    token: 's3cr3t-C', kubeconfig: 'apiVersion: v1\nusers:\n- user:\n    token: s3cr3t-D\n',
    client: { password: 's3cr3t-E', bearerToken: 's3cr3t-F', keyData: 's3cr3t-G' }, pod: 'ok-to-log',
    user: { 'client-key-data': 's3cr3t-K', secret: 's3cr3t-L' }, cookie: 'x', headers2: { cookie: 'y' },
  }, 'request');
  log.logger.error({ err: new Error('GET /api failed: Authorization: Bearer s3cr3t-H; token=s3cr3t-I password: "s3cr3t-J"') }, 'k8s call failed');
  const raw = c.raw();
  assert.doesNotMatch(raw, /s3cr3t/, raw);
  const [first, second] = c.lines();
  assert.equal((first!.headers as Record<string, unknown>).authorization, CENSOR);
  assert.equal(first!.kubeconfig, CENSOR);
  assert.equal(first!.pod, 'ok-to-log');
  assert.match(String((second!.err as Record<string, unknown>).message), /Bearer \[REDACTED\]/);
  assert.equal(scrubText('no secrets here'), 'no secrets here');
});

test('level changes at runtime: the root and its children follow, unknown levels are refused', () => {
  const c = capture();
  const log = createLogger({ destination: c, level: 'info' });
  const ovsdb = log.logger.child({ module: 'ovsdb' });
  const perRequest = log.logger.child({ containerId: 'x' });
  ovsdb.debug('hidden 1');
  log.logger.debug('hidden 2');
  log.setLevel('debug');
  assert.equal(log.level(), 'debug');
  ovsdb.debug('shown 1');
  log.logger.debug('shown 2');
  perRequest.debug('shown 3');
  const pinned = log.logger.child({ module: 'quiet' }, { level: 'error' });
  pinned.warn('hidden 3'); // a child given its own level keeps it
  assert.throws(() => log.setLevel('verbose'), /unknown log level "verbose"/);
  assert.equal(log.level(), 'debug');
  log.setLevel('warn');
  ovsdb.info('hidden 4');
  ovsdb.warn('shown 4');
  const msgs = c.lines().map((l) => l.msg);
  assert.deepEqual(msgs.filter((m) => String(m).startsWith('hidden')), []);
  assert.deepEqual(msgs.filter((m) => String(m).startsWith('shown')), ['shown 1', 'shown 2', 'shown 3', 'shown 4']);
  const changes = c.lines().filter((l) => l.msg === 'log level changed').map((l) => `${String(l.from)}->${String(l.to)}`);
  assert.deepEqual(changes, ['info->debug', 'debug->warn'], 'both directions are announced');
});

test('toggleDebug cycles between the base level and debug', () => {
  const log = createLogger({ destination: capture(), level: 'warn' });
  assert.equal(log.toggleDebug(), 'debug');
  assert.equal(log.toggleDebug(), 'warn');
  log.setLevel('trace');
  assert.equal(log.toggleDebug(), 'warn');
  const dbg = createLogger({ destination: capture(), level: 'debug' });
  assert.equal(dbg.toggleDebug(), 'info');
  assert.equal(dbg.toggleDebug(), 'debug');
  assert.throws(() => createLogger({ destination: capture(), level: 'loud' as 'info' }), /unknown log level/);
});

test('every written line is counted by klog level and bytes', () => {
  const counts: Record<string, [number, number]> = {};
  const c = capture();
  const log = createLogger({ destination: c, onLine: (l, b) => { const x = (counts[l] ??= [0, 0]); x[0]++; x[1] += b; } });
  log.logger.info('a');
  log.logger.warn('b');
  log.logger.error('c');
  log.logger.fatal('d');
  log.logger.debug('not written, not counted');
  assert.deepEqual(Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, v[0]])), { INFO: 1, WARN: 1, ERROR: 2 });
  assert.equal(Object.values(counts).reduce((s, v) => s + v[1], 0), Buffer.byteLength(c.raw()));
  assert.equal(klogLevel(10), 'INFO');
  assert.equal(klogLevel(40), 'WARN');
  assert.equal(klogLevel(60), 'ERROR');
  assert.equal(levelFromVerbosity(3), 'info');
  assert.equal(levelFromVerbosity(5), 'debug');
  assert.equal(levelFromVerbosity(9), 'trace');
});

interface ChildRun { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

function runChild(script: string, stdoutFile?: string, onStdout?: (chunk: string, child: ReturnType<typeof spawn>) => void): Promise<ChildRun> {
  return new Promise((resolveRun, reject) => {
    const fd = stdoutFile ? openSync(stdoutFile, 'w') : undefined;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', fd ?? 'pipe', 'pipe'] });
    if (fd !== undefined) closeSync(fd);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d; onStdout?.(d, child); });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`child timed out; stderr: ${stderr}`)); }, 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => { clearTimeout(timer); resolveRun({ code, signal, stdout, stderr }); });
  });
}

const N = 20_000;
const killScript = (makeLogger: string): string => `
  const { createLogger } = await import(${JSON.stringify(LOG_TS)});
  const pino = (await import('pino')).default;
  const logger = ${makeLogger};
  for (let i = 0; i < ${N}; i++) logger.info({ i }, 'line');
  process.kill(process.pid, 'SIGKILL');
`;

test('synchronous stdout: every line written before SIGKILL survives (pipe and file)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'koa-observe-log-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const viaPipe = await runChild(killScript('createLogger().logger'));
  assert.equal(viaPipe.signal, 'SIGKILL', viaPipe.stderr);
  const pipeLines = viaPipe.stdout.split('\n').filter((l) => l !== '');
  assert.equal(pipeLines.length, N);
  assert.equal((JSON.parse(pipeLines.at(-1)!) as { i: number }).i, N - 1);

  const file = join(dir, 'stdout.log');
  const viaFile = await runChild(killScript('createLogger().logger'), file);
  assert.equal(viaFile.signal, 'SIGKILL', viaFile.stderr);
  assert.equal(readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').length, N);

  // control: pino's default asynchronous stdout loses the buffered lines, so the check above is meaningful
  const asyncFile = join(dir, 'async.log');
  const control = await runChild(killScript('pino()'), asyncFile);
  assert.equal(control.signal, 'SIGKILL', control.stderr);
  assert.ok(readFileSync(asyncFile, 'utf8').split('\n').filter((l) => l !== '').length < N);
});

test('SIGUSR2 toggles debug logging in a running process', async () => {
  const script = `
    const { createLogger } = await import(${JSON.stringify(LOG_TS)});
    const log = createLogger({ level: 'info' });
    log.handleSignal('SIGUSR2');
    let n = 0;
    process.on('SIGUSR2', () => {
      n++;
      log.logger.debug({ n }, 'debug after signal');
      log.logger.info({ n, level: log.level() }, 'after signal');
      if (n === 2) process.exit(0);
    });
    log.logger.debug('debug before signal');
    log.logger.info('ready');
    setInterval(() => {}, 1000);
  `;
  let signalled = 0;
  const run = await runChild(script, undefined, (chunk, child) => {
    if (chunk.includes('"ready"') && signalled === 0) { signalled = 1; child.kill('SIGUSR2'); }
    if (chunk.includes('"n":1,') && chunk.includes('after signal"') && signalled === 1) { signalled = 2; child.kill('SIGUSR2'); }
  });
  assert.equal(run.code, 0, run.stderr);
  const lines = run.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  const msgs = lines.map((l) => `${String(l.msg)}${l.n === undefined ? '' : `#${String(l.n)}`}`);
  assert.deepEqual(msgs, ['ready', 'log level changed', 'debug after signal#1', 'after signal#1', 'log level changed', 'after signal#2']);
  assert.equal(lines.find((l) => l.msg === 'debug after signal')!.level, 20);
  const changes = lines.filter((l) => l.msg === 'log level changed').map((l) => `${String(l.from)}->${String(l.to)}`);
  assert.deepEqual(changes, ['info->debug', 'debug->info']);
});
