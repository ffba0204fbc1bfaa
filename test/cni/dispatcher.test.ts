// The dispatcher with the in-memory fake backend: every verb over every spec version, version gating, errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Dispatcher } from '../../agent/src/cni/dispatcher.ts';
import { FakeBackend } from '../../agent/src/cni/fake-backend.ts';
import type { CniBackend } from '../../agent/src/cni/backend.ts';
import { atLeast, decodeResult } from '../../agent/src/cni/codec.ts';
import { KeyedLock } from '../../agent/src/cni/lock.ts';
import { SUPPORTED_VERSIONS, type CniResult, type SpecVersion } from '../../agent/src/cni/types.ts';
import { agentError } from '../../agent/src/errors.ts';

const SOCK = '/run/openvswitch/kube-ovn-daemon.sock';
const env = (cmd: string, o: Record<string, string> = {}) => ({
  CNI_COMMAND: cmd, CNI_CONTAINERID: 'koac-c1', CNI_NETNS: '/var/run/netns/koac1', CNI_IFNAME: 'eth0',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod1', CNI_PATH: '/opt/cni/bin', ...o,
});
const conf = (v: string, o: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: v, name: 'kube-ovn', type: 'kube-ovn', server_socket: SOCK, ...o });
const errOf = (stdout: string) => JSON.parse(stdout) as { cniVersion: string; code: number; msg: string };

for (const v of SUPPORTED_VERSIONS) {
  test(`[${v}] ADD, CHECK, DEL through the dispatcher`, async () => {
    const fake = new FakeBackend();
    const d = new Dispatcher({ backend: fake });
    const add = await d.call({ env: env('ADD'), stdin: conf(v) });
    assert.equal(add.exitCode, 0, add.stdout);
    const printed = JSON.parse(add.stdout) as Record<string, unknown>;
    assert.equal(printed.cniVersion, v);
    const internal = decodeResult(printed, v);
    assert.equal(internal.ips?.length, 2);
    assert.ok(fake.attachments.has('koac-c1/eth0'));
    if (atLeast(v, '0.3.0')) assert.equal((printed.interfaces as { name: string }[])[0]!.name, 'eth0');
    else assert.ok(printed.ip4 && printed.ip6);

    const check = await d.call({ env: env('CHECK'), stdin: conf(v, { prevResult: printed }) });
    if (atLeast(v, '0.4.0')) {
      assert.deepEqual(check, { stdout: '', exitCode: 0 });
    } else {
      assert.equal(check.exitCode, 1);
      assert.equal(errOf(check.stdout).code, 1);
      assert.match(errOf(check.stdout).msg, new RegExp(`config version ${v.replace(/\./g, '\\.')} does not allow CHECK`));
    }

    const del = await d.call({ env: env('DEL'), stdin: conf(v, { prevResult: printed }) });
    assert.deepEqual(del, { stdout: '', exitCode: 0 });
    assert.equal(fake.attachments.size, 0);
    // DEL is idempotent
    assert.deepEqual(await d.call({ env: env('DEL', { CNI_NETNS: '' }), stdin: conf(v) }), { stdout: '', exitCode: 0 });
  });

  test(`[${v}] STATUS and GC need 1.1.0; VERSION always works`, async () => {
    const fake = new FakeBackend();
    const d = new Dispatcher({ backend: fake });
    const ver = await d.call({ env: { CNI_COMMAND: 'VERSION' }, stdin: JSON.stringify({ cniVersion: v }) });
    assert.equal(ver.exitCode, 0);
    assert.deepEqual(JSON.parse(ver.stdout).supportedVersions, [...SUPPORTED_VERSIONS]);
    for (const cmd of ['STATUS', 'GC']) {
      const r = await d.call({ env: { CNI_COMMAND: cmd, CNI_PATH: '/opt/cni/bin' }, stdin: conf(v) });
      if (v === '1.1.0') assert.deepEqual(r, { stdout: '', exitCode: 0 }, cmd);
      else {
        assert.equal(r.exitCode, 1);
        assert.equal(errOf(r.stdout).code, 1);
        assert.equal(errOf(r.stdout).cniVersion, v, 'errors are printed in the netconf version');
      }
    }
  });

  test(`[${v}] IPAM-only mode: ips without interfaces`, async () => {
    const d = new Dispatcher({ backend: new FakeBackend() });
    const r = await d.call({ env: env('ADD', { CNI_IFNAME: 'net1' }),
      stdin: JSON.stringify({ cniVersion: v, name: 'mv', type: 'macvlan', ipam: { type: 'kube-ovn', server_socket: SOCK, provider: 'mv.default' } }) });
    assert.equal(r.exitCode, 0, r.stdout);
    const o = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(o.interfaces, undefined);
    if (atLeast(v, '0.3.0')) assert.ok((o.ips as object[]).every((i) => !('interface' in i)));
  });
}

test('GC releases attachments not listed as valid', async () => {
  const fake = new FakeBackend();
  const d = new Dispatcher({ backend: fake });
  for (const id of ['a1', 'a2', 'a3']) assert.equal((await d.call({ env: env('ADD', { CNI_CONTAINERID: id }), stdin: conf('1.1.0') })).exitCode, 0);
  const r = await d.call({ env: { CNI_COMMAND: 'GC' }, stdin: conf('1.1.0', { 'cni.dev/valid-attachments': [{ containerID: 'a2', ifname: 'eth0' }] }) });
  assert.deepEqual(r, { stdout: '', exitCode: 0 });
  assert.deepEqual([...fake.attachments.keys()], ['a2/eth0']);
});

test('GC reads the erratum key cni.dev/attachments when cni.dev/valid-attachments is absent', async () => {
  const fake = new FakeBackend();
  const d = new Dispatcher({ backend: fake });
  for (const id of ['b1', 'b2']) await d.call({ env: env('ADD', { CNI_CONTAINERID: id }), stdin: conf('1.1.0') });
  await d.call({ env: { CNI_COMMAND: 'GC' }, stdin: conf('1.1.0', { 'cni.dev/attachments': [{ containerID: 'b1', ifname: 'eth0' }] }) });
  assert.deepEqual([...fake.attachments.keys()], ['b1/eth0']);
});

test('DEL of a container ID or ifname no ADD accepts succeeds without reaching the backend (issue 14 item 4)', async () => {
  const fake = new FakeBackend();
  let dels = 0;
  const orig = fake.del.bind(fake);
  fake.del = async (r) => { dels++; return orig(r); };
  const d = new Dispatcher({ backend: fake });
  const overs: Record<string, string>[] = [{ CNI_IFNAME: 'a/b' }, { CNI_IFNAME: 'x'.repeat(16) }, { CNI_IFNAME: 'ñetñetñetñet0' }, { CNI_CONTAINERID: '-bad/' }];
  for (const over of overs) {
    const add = await d.call({ env: env('ADD', over), stdin: conf('1.0.0') });
    assert.equal(errOf(add.stdout).code, 4, JSON.stringify(over));
    assert.deepEqual(await d.call({ env: env('DEL', over), stdin: conf('1.0.0') }), { stdout: '', exitCode: 0 }, JSON.stringify(over));
  }
  assert.equal(dels, 0);
});

test('a DEL without the pod name succeeds and removes nothing (ADD refuses that input, so nothing was wired for it)', async () => {
  const fake = new FakeBackend();
  let dels = 0;
  const orig = fake.del.bind(fake);
  fake.del = async (r) => { dels++; return orig(r); };
  const d = new Dispatcher({ backend: fake });
  assert.equal(errOf((await d.call({ env: env('ADD', { CNI_ARGS: '' }), stdin: conf('1.0.0') })).stdout).code, 7);
  assert.deepEqual(await d.call({ env: env('DEL', { CNI_ARGS: '' }), stdin: conf('1.0.0') }), { stdout: '', exitCode: 0 });
  assert.deepEqual(await d.call({ env: env('DEL', { CNI_ARGS: 'K8S_POD_NAME=p' }), stdin: conf('1.0.0') }), { stdout: '', exitCode: 0 });
  assert.equal(dels, 0);
});

test('a DEL without server_socket is carried out (Multus re-encodes the cluster network conflist without it); ADD still needs it', async () => {
  const fake = new FakeBackend();
  const d = new Dispatcher({ backend: fake });
  await d.call({ env: env('ADD'), stdin: conf('0.3.1') });
  assert.equal(fake.attachments.size, 1);
  // the plugin entry as Multus' cache gives it back: the keys of its own NetConf struct, `ipam: {}`, nothing else
  const multus = JSON.stringify({ cniVersion: '0.3.1', name: 'kube-ovn', type: 'kube-ovn', ipam: {} });
  assert.deepEqual(await d.call({ env: env('DEL'), stdin: multus }), { stdout: '', exitCode: 0 });
  assert.equal(fake.attachments.size, 0, 'the attachment is gone');
  assert.equal(errOf((await d.call({ env: env('ADD'), stdin: multus })).stdout).code, 7);
});

test('DEL ignores an undecodable prevResult (teardown must not depend on it); CHECK does not', async () => {
  const fake = new FakeBackend();
  const d = new Dispatcher({ backend: fake });
  await d.call({ env: env('ADD'), stdin: conf('1.0.0') });
  const broken = { cniVersion: '1.0.0', ips: [{ address: 'garbage' }] };
  assert.deepEqual(await d.call({ env: env('DEL'), stdin: conf('1.0.0', { prevResult: broken }) }), { stdout: '', exitCode: 0 });
  assert.equal(fake.attachments.size, 0);
  assert.equal(errOf((await d.call({ env: env('CHECK'), stdin: conf('1.0.0', { prevResult: broken }) })).stdout).code, 7);
});

test('CHECK against an unknown container or a changed address fails with a coded error', async () => {
  const fake = new FakeBackend();
  const d = new Dispatcher({ backend: fake });
  const prev = { cniVersion: '1.0.0', ips: [{ address: '10.16.9.9/16' }] };
  let r = await d.call({ env: env('CHECK'), stdin: conf('1.0.0', { prevResult: prev }) });
  assert.equal(errOf(r.stdout).code, 3);
  await d.call({ env: env('ADD'), stdin: conf('1.0.0') });
  r = await d.call({ env: env('CHECK'), stdin: conf('1.0.0', { prevResult: prev }) });
  assert.equal(errOf(r.stdout).code, 102);
  assert.match(errOf(r.stdout).msg, /10\.16\.9\.9\/16/);
  r = await d.call({ env: env('CHECK'), stdin: conf('1.0.0') });
  assert.match(errOf(r.stdout).msg, /CHECK requires prevResult/);
});

test('bad requests: code and message', async () => {
  const d = new Dispatcher({ backend: new FakeBackend(), maxStdinBytes: 4096 });
  const table: [Record<string, string>, string, number, RegExp][] = [
    [env('ADD'), '{', 6, /cannot decode network configuration/],
    [env('ADD'), conf('0.5.0'), 1, /0\.5\.0/],
    [env('ADD'), conf('1.0.0', { server_socket: undefined }), 7, /server_socket is required in cni\.conf/],
    [env('ADD'), JSON.stringify({ cniVersion: '1.0.0', name: 'm', type: 'macvlan', ipam: { type: 'kube-ovn' } }), 7, /in the ipam object/],
    [env('ADD', { CNI_ARGS: 'K8S_POD_NAME=p' }), conf('1.0.0'), 7, /K8S_POD_NAMESPACE/],
    [env('ADD', { CNI_IFNAME: 'eth0 ' }), conf('1.0.0'), 4, /CNI_IFNAME/],
    [env('ADD', { CNI_NETNS: 'relative' }), conf('1.0.0'), 4, /CNI_NETNS/],
    [env('ADD', { CNI_NETNS: '' }), conf('1.0.0'), 4, /CNI_NETNS/],
    [env('NOPE'), conf('1.0.0'), 4, /CNI_COMMAND/],
    [env('ADD'), conf('1.0.0', { pad: 'x'.repeat(5000) }), 5, /exceeds the limit of 4096 bytes/],
  ];
  for (const [e, stdin, code, re] of table) {
    const r = await d.call({ env: e, stdin });
    assert.equal(r.exitCode, 1);
    const err = errOf(r.stdout);
    assert.equal(err.code, code, `${JSON.stringify(e)} ${stdin.slice(0, 80)} -> ${err.msg}`);
    assert.match(err.msg, re);
  }
});

test('backend failures map to their codes; thrown non-AgentErrors become 100; invalid results are refused', async () => {
  const boom: CniBackend = {
    add: async () => { throw new Error('kaboom'); },
    del: async () => { throw agentError('KOA_OVSDB', 'transact', 'connection lost'); },
    check: async () => undefined,
    status: async () => { throw agentError('KOA_NOT_READY', 'ovn-controller is down'); },
    gc: async () => undefined,
  };
  const d = new Dispatcher({ backend: boom });
  assert.deepEqual(errOf((await d.call({ env: env('ADD'), stdin: conf('1.0.0') })).stdout), { cniVersion: '1.0.0', code: 100, msg: 'internal error: kaboom' });
  assert.equal(errOf((await d.call({ env: env('DEL'), stdin: conf('1.0.0') })).stdout).code, 103);
  assert.equal(errOf((await d.call({ env: { CNI_COMMAND: 'STATUS' }, stdin: conf('1.1.0') })).stdout).code, 50);
  const liar: CniBackend = { ...boom, add: async () => ({ ips: [{ address: 'not-an-ip' }] }) as CniResult };
  const r = await new Dispatcher({ backend: liar }).call({ env: env('ADD'), stdin: conf('0.4.0') });
  assert.equal(errOf(r.stdout).code, 100);
  assert.match(errOf(r.stdout).msg, /backend returned an invalid result/);
});

test('same container: ADD then DEL are ordered; different containers run in parallel', async () => {
  const fake = new FakeBackend({ delayMs: (op) => (op === 'add' ? 40 : 5) });
  const d = new Dispatcher({ backend: fake });
  const calls = [
    d.call({ env: env('ADD', { CNI_CONTAINERID: 'x1' }), stdin: conf('1.0.0') }),
    d.call({ env: env('DEL', { CNI_CONTAINERID: 'x1' }), stdin: conf('1.0.0') }),
    d.call({ env: env('ADD', { CNI_CONTAINERID: 'x2' }), stdin: conf('1.0.0') }),
    d.call({ env: env('ADD', { CNI_CONTAINERID: 'x3' }), stdin: conf('1.0.0') }),
  ];
  const outs = await Promise.all(calls);
  assert.ok(outs.every((o) => o.exitCode === 0));
  const x1 = fake.events.filter((e) => e.key === 'x1/eth0').map((e) => `${e.op}:${e.phase}`);
  assert.deepEqual(x1, ['add:start', 'add:end', 'del:start', 'del:end']);
  // the three ADDs overlapped: all started before the first one ended
  const firstEnd = fake.events.findIndex((e) => e.phase === 'end');
  assert.equal(fake.events.slice(0, firstEnd).filter((e) => e.op === 'add' && e.phase === 'start').length, 3);
  assert.deepEqual([...fake.attachments.keys()].sort(), ['x2/eth0', 'x3/eth0']);
  assert.equal(d.lock.size, 0);
});

test('KeyedLock: FIFO per key, a failure does not block the next call', async () => {
  const lock = new KeyedLock();
  const order: number[] = [];
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const p = [
    lock.run('k', async () => { await sleep(20); order.push(1); }),
    lock.run('k', async () => { order.push(2); throw new Error('x'); }),
    lock.run('k', async () => { await sleep(1); order.push(3); return 'three'; }),
    lock.run('other', async () => { order.push(0); }),
  ];
  const res = await Promise.allSettled(p);
  assert.deepEqual(order, [0, 1, 2, 3]);
  assert.equal(res[1]!.status, 'rejected');
  assert.deepEqual(res[2], { status: 'fulfilled', value: 'three' });
  assert.equal(lock.size, 0);
  // 200 calls on one key keep arrival order
  const seen: number[] = [];
  await Promise.all(Array.from({ length: 200 }, (_, i) => lock.run('k', async () => { if (i % 7 === 0) await sleep(0); seen.push(i); })));
  assert.deepEqual(seen, Array.from({ length: 200 }, (_, i) => i));
});

test('prevResult given to ADD in a chain is decoded and accepted', async () => {
  const d = new Dispatcher({ backend: new FakeBackend() });
  const v: SpecVersion = '1.0.0';
  const r = await d.call({ env: env('ADD'), stdin: conf(v, { prevResult: { cniVersion: v, interfaces: [{ name: 'lo' }], ips: [] } }) });
  assert.equal(r.exitCode, 0, r.stdout);
});
