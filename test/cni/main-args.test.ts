// The composition root's own flags (main.ts): upstream names, defaults, clear errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseArgs } from '../../agent/src/main.ts';

test('defaults and upstream flag names', () => {
  const c = parseArgs([], {});
  assert.deepEqual(c, { bindSocket: '/run/openvswitch/kube-ovn-daemon.sock', backend: 'not-ready', delQueueDir: '/var/run/kube-ovn-node-agent/del-queue', logLevel: 'info', ignored: [] });
  const d = parseArgs(['--bind-socket=/tmp/koac/a.sock', '--backend', 'fake', '--cni-del-queue-dir=/tmp/koac/q', '--log-level=debug'], {});
  assert.deepEqual([d.bindSocket, d.backend, d.delQueueDir, d.logLevel], ['/tmp/koac/a.sock', 'fake', '/tmp/koac/q', 'debug']);
  assert.equal(parseArgs([], { KOA_DEL_QUEUE_DIR: '/tmp/koac/e' }).delQueueDir, '/tmp/koac/e');
});

test('flags of other modules are skipped; unknown upstream flags are reported, not fatal', () => {
  const c = parseArgs(['--pprof-port', '0', '--enable-metrics=false', '--node-name=n1', '--ovs-socket=/run/openvswitch/db.sock', '-v=3'], {});
  assert.deepEqual(c.ignored, ['--ovs-socket=/run/openvswitch/db.sock', '-v=3']);
});

test('bad flags are clear errors', () => {
  const table: [string[], RegExp][] = [
    [['--backend=nope'], /--backend must be one of not-ready, fake/],
    [['--bind-socket=rel.sock'], /must be an absolute path/],
    [['--cni-del-queue-dir', 'q'], /must be an absolute path/],
    [['--bind-socket'], /needs a value/],
    [['--backend='], /must not be empty/],
    [['stray'], /unexpected argument "stray"/],
  ];
  for (const [argv, re] of table) assert.throws(() => parseArgs(argv, {}), re, argv.join(' '));
});
