// The composition root's flags (main.ts -> agent.ts parseArgs over config/loadConfig): upstream names, defaults,
// flags accepted but not acted on, clear errors. Test hooks (a fake backend, fault injection) are not flags.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { logLevelOf, parseArgs } from '../../agent/src/main.ts';
import { FLAGS } from '../../agent/src/config/config.ts';

test('defaults and upstream flag names', () => {
  const c = parseArgs([], {}, 'node-1');
  assert.deepEqual([c.bindSocket, c.delQueueDir, c.logLevel, c.ignored, c.pprofPort, c.nodeName, c.nodeReadyTimeoutMs],
    ['/run/openvswitch/kube-ovn-daemon.sock', '/run/openvswitch/kube-ovn-del-queue', 'info', [], 10665, 'node-1', 30_000]);
  const d = parseArgs(['--bind-socket=/tmp/koac/a.sock', '--cni-del-queue-dir=/tmp/koac/q', '--log-level=debug', '--pprof-port=0'], {}, 'n');
  assert.deepEqual([d.bindSocket, d.delQueueDir, d.logLevel, d.pprofPort], ['/tmp/koac/a.sock', '/tmp/koac/q', 'debug', 0]);
  assert.equal(parseArgs([], { KOA_DEL_QUEUE_DIR: '/tmp/koac/e' }, 'n').delQueueDir, '/tmp/koac/e');
});

test('flags accepted but not acted on are reported, not fatal; the acted-on list is the FLAGS table itself', () => {
  const argv = ['--pprof-port', '0', '--enable-metrics=false', '--node-name=n1', '--ovs-socket=/run/openvswitch/db.sock', '-v=3',
    '--enable-mirror', '--enable-tproxy', '--secure-serving=false'];
  assert.deepEqual(parseArgs(argv, {}, 'n').ignored, ['--enable-mirror', '--enable-tproxy', '--secure-serving']);
  for (const f of ['enable-mirror', 'enable-tproxy', 'secure-serving']) assert.equal(FLAGS.find((x) => x.name === f)?.acted, undefined, f);
  for (const f of ['node-name', 'ovs-socket', 'pprof-port', 'node-ready-timeout']) assert.equal(FLAGS.find((x) => x.name === f)?.acted, true, f);
});

test('bad flags are clear errors', () => {
  const table: [string[], RegExp][] = [
    [['--backend=fake'], /unknown flag --backend/],
    [['--bind-socket=rel.sock'], /--bind-socket="rel.sock": expected an absolute path/],
    [['--cni-del-queue-dir', 'q'], /--cni-del-queue-dir="q": expected an absolute path/],
    [['--bind-socket'], /flag --bind-socket needs a value/],
    [['--node-ready-timeout=1h'], /--node-ready-timeout="1h": expected a duration/],
    [['stray'], /unexpected arguments: stray/],
    [['--bogus'], /unknown flag --bogus/],
  ];
  for (const [argv, re] of table) assert.throws(() => parseArgs(argv, {}, 'n'), re, argv.join(' '));
});

test('the log level: --log-level or KOA_LOG_LEVEL when given, else klog --v as the DaemonSet passes it', () => {
  const lv = (argv: string[], env: Record<string, string> = {}) => logLevelOf(parseArgs(argv, env, 'n'), argv, env);
  assert.equal(lv([]), 'info');
  assert.equal(lv(['--v=3']), 'info');
  assert.equal(lv(['--v=5']), 'debug');
  assert.equal(lv(['-v=7']), 'trace');
  assert.equal(lv(['--v=7', '--log-level=warn']), 'warn');
  assert.equal(lv(['--v=7'], { KOA_LOG_LEVEL: 'error' }), 'error');
});
