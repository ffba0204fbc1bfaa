// The ovs-ofctl port (datapath/ovsdb/ofctl.ts) with a recording exec: the argv (never a shell string), the target
// socket, the bundle on stdin, the dump's header lines dropped, a non-zero exit as an error naming the command.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OfctlError, OvsOfctl } from '../../../agent/src/datapath/ovsdb/ofctl.ts';

const recorder = (answer: { stdout?: string; stderr?: string; code?: number | null }) => {
  const calls: { argv: readonly string[]; input: string | undefined }[] = [];
  const exec = async (argv: readonly string[], input: string | undefined) => {
    calls.push({ argv, input });
    return { stdout: answer.stdout ?? '', stderr: answer.stderr ?? '', code: answer.code === undefined ? 0 : answer.code };
  };
  return { calls, exec };
};

test('dump-flows: argv with --no-stats --no-names and the bridge socket; one flow per line, header lines dropped', async () => {
  const r = recorder({ stdout: 'NXST_FLOW reply (xid=0x4):\n cookie=0x1000, priority=10000,tcp actions=drop\n\n priority=0 actions=NORMAL\n' });
  const of = new OvsOfctl('/run/openvswitch', { exec: r.exec });
  assert.deepEqual(await of.dumpFlows('br-phys', 'cookie=0x1000/-1'), ['cookie=0x1000, priority=10000,tcp actions=drop', 'priority=0 actions=NORMAL']);
  assert.deepEqual(r.calls, [{ argv: ['ovs-ofctl', '--no-stats', '--no-names', 'dump-flows', 'unix:/run/openvswitch/br-phys.mgmt', 'cookie=0x1000/-1'], input: undefined }]);
});

test('bundle: --bundle add-flows <socket> - with the lines on stdin; nothing run for no lines', async () => {
  const r = recorder({});
  const of = new OvsOfctl('/run/ovs', { exec: r.exec });
  await of.bundle('eth1', ['delete_strict cookie=0x1000/-1,priority=10000,tcp', 'add cookie=0x1000,priority=10000,tcp,actions=drop']);
  await of.bundle('eth1', []);
  assert.deepEqual(r.calls, [{ argv: ['ovs-ofctl', '--bundle', 'add-flows', 'unix:/run/ovs/eth1.mgmt', '-'],
    input: 'delete_strict cookie=0x1000/-1,priority=10000,tcp\nadd cookie=0x1000,priority=10000,tcp,actions=drop\n' }]);
});

test('a non-zero exit is an OfctlError with the command and the last stderr lines; odd bridge names and newlines are refused', async () => {
  const r = recorder({ code: 1, stderr: 'ovs-ofctl: -:2: 99999999: invalid or unknown port for in_port\n' });
  const of = new OvsOfctl('/run/ovs', { exec: r.exec });
  await assert.rejects(of.bundle('br-phys', ['add x']), (e: unknown) => e instanceof OfctlError && /add-flows unix:\/run\/ovs\/br-phys\.mgmt -: exit 1: .*invalid or unknown port/.test(e.message));
  for (const bad of ['../x', 'a/b', '..', '']) await assert.rejects(of.dumpFlows(bad), OfctlError, bad);
  await assert.rejects(of.bundle('br-phys', ['add a\nadd b']), OfctlError);
  assert.equal(r.calls.length, 1, 'refused calls run nothing');
});
