// ExecNetfilterRunner: argv per family/back end, stdin carried, errors with the failing line, nothing spawned for
// empty input. A stand-in tool (fixtures/echo-tool.mjs, put in front through argvPrefix) replaces the binaries, so
// this never touches the host's iptables.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { ExecNetfilterRunner, binaries, execArgv } from '../../agent/src/datapath/netfilter/runner.ts';
import { NetfilterError } from '../../agent/src/datapath/netfilter/port.ts';

const tool = fileURLToPath(new URL('./fixtures/echo-tool.mjs', import.meta.url));
const runner = (backend: 'legacy' | 'nft' | 'system') => new ExecNetfilterRunner({ backend, argvPrefix: [process.execPath, tool], lockWaitSeconds: 7 });

test('binaries per family and back end', () => {
  assert.deepEqual(binaries(4, 'legacy'), { save: 'iptables-legacy-save', restore: 'iptables-legacy-restore' });
  assert.deepEqual(binaries(6, 'nft'), { save: 'ip6tables-nft-save', restore: 'ip6tables-nft-restore' });
  assert.deepEqual(binaries(6, 'system'), { save: 'ip6tables-save', restore: 'ip6tables-restore' });
});

test('save and ipsetSave run the right argv and return stdout', async () => {
  assert.deepEqual(JSON.parse(await runner('legacy').save(4)), { argv: ['iptables-legacy-save', '-c'], stdin: '' });
  assert.deepEqual(JSON.parse(await runner('nft').save(6)), { argv: ['ip6tables-nft-save', '-c'], stdin: '' });
  assert.deepEqual(JSON.parse(await runner('system').ipsetSave()), { argv: ['ipset', 'save'], stdin: '' });
});

test('restore passes -w <secs> --noflush and the input on stdin; a failure names the line', async () => {
  await runner('nft').restore(4, '*filter\n-A INPUT -j ACCEPT\nCOMMIT\n'); // exit 0
  const input = '*filter\n-A INPUT -j ACCEPT\n-A INPUT -m comment --comment FAIL -j DROP\nCOMMIT\n';
  await assert.rejects(runner('nft').restore(4, input), (e: unknown) => {
    assert.ok(e instanceof NetfilterError);
    assert.deepEqual(e.argv.slice(2), ['iptables-nft-restore', '-w', '7', '--noflush']);
    assert.equal(e.exitCode, 2);
    assert.deepEqual(e.failedLine, { no: 3, text: '-A INPUT -m comment --comment FAIL -j DROP' });
    assert.match(e.message, /at input line 3 \(-A INPUT -m comment --comment FAIL -j DROP\)/);
    return true;
  });
  await assert.rejects(runner('legacy').ipsetRestore('add x FAIL\n'), (e: unknown) => e instanceof NetfilterError && e.argv.slice(2).join(' ') === 'ipset -exist restore');
});

test('empty input spawns nothing', async () => {
  const r = new ExecNetfilterRunner({ argvPrefix: ['/nonexistent/koanf-tool'] });
  await r.restore(4, '');
  await r.ipsetRestore('');
  await assert.rejects(r.save(4), /ENOENT/);
});

test('execArgv: stdin in, stdout/stderr/exit out, a timeout kills the child', async () => {
  const r = await execArgv([process.execPath, '-e', 'process.stdin.pipe(process.stdout); process.stderr.write("e")'], 'hello', 10_000);
  assert.deepEqual(r, { stdout: 'hello', stderr: 'e', code: 0 });
  const slow = await execArgv([process.execPath, '-e', 'setTimeout(() => {}, 600_000)'], undefined, 1000); // the child would sleep 10 min
  assert.equal(slow.code, null);
  assert.match(slow.stderr, /killed by SIGKILL/);
});
