// The composition root's flags (main.ts -> agent.ts parseArgs over config/loadConfig): upstream names, defaults,
// the backend choice, flags accepted but not acted on, clear errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseArgs } from '../../agent/src/main.ts';

test('defaults and upstream flag names', () => {
  const c = parseArgs([], {}, 'node-1');
  assert.deepEqual([c.bindSocket, c.backend, c.delQueueDir, c.logLevel, c.ignored, c.pprofPort, c.nodeName],
    ['/run/openvswitch/kube-ovn-daemon.sock', 'ovn', '/run/openvswitch/kube-ovn-del-queue', 'info', [], 10665, 'node-1']);
  const d = parseArgs(['--bind-socket=/tmp/koac/a.sock', '--backend', 'fake', '--cni-del-queue-dir=/tmp/koac/q', '--log-level=debug', '--pprof-port=0'], {}, 'n');
  assert.deepEqual([d.bindSocket, d.backend, d.delQueueDir, d.logLevel, d.pprofPort], ['/tmp/koac/a.sock', 'fake', '/tmp/koac/q', 'debug', 0]);
  assert.equal(parseArgs([], { KOA_DEL_QUEUE_DIR: '/tmp/koac/e' }, 'n').delQueueDir, '/tmp/koac/e');
});

test('flags accepted but not acted on are reported, not fatal; infrastructure flags are moot with the fake backend', () => {
  const argv = ['--pprof-port', '0', '--enable-metrics=false', '--node-name=n1', '--ovs-socket=/run/openvswitch/db.sock', '-v=3', '--enable-mirror'];
  assert.deepEqual(parseArgs(argv, {}, 'n').ignored, ['--enable-mirror']);
  assert.deepEqual(parseArgs([...argv, '--backend=fake'], {}, 'n').ignored, ['--ovs-socket', '--enable-mirror']);
});

test('bad flags are clear errors', () => {
  const table: [string[], RegExp][] = [
    [['--backend=nope'], /--backend must be one of ovn, fake/],
    [['--bind-socket=rel.sock'], /--bind-socket="rel.sock": expected an absolute path/],
    [['--cni-del-queue-dir', 'q'], /--cni-del-queue-dir="q": expected an absolute path/],
    [['--bind-socket'], /flag --bind-socket needs a value/],
    [['--backend='], /--backend: must not be empty/],
    [['stray'], /unexpected arguments: stray/],
    [['--bogus'], /unknown flag --bogus/],
  ];
  for (const [argv, re] of table) assert.throws(() => parseArgs(argv, {}, 'n'), re, argv.join(' '));
});
