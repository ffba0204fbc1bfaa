// The u2o FDB sync (spec §5.17), pure parts: `fdb/show` parsing, the entries the subnets want, the diff; and the
// unixctl response decoding. The real vswitchd run is integration/node/underlay-fdb.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { desiredFdb, diffFdb, fdbSpec, localnetPort, parseFdbShow, type FdbEntry } from '../../../agent/src/node/underlay/fdb.ts';
import { Reconciler } from '../../../agent/src/node/reconciler.ts';
import { FakeVswitch } from '../../../agent/src/datapath/ovsdb/fake.ts';
import { unixctlResult, UnixctlError } from '../../../agent/src/datapath/ovsdb/unixctl.ts';
import type { Subnet } from '../../../agent/src/k8s/types.ts';
import type { Vlan } from '../../../agent/src/node/underlay/types.ts';

test('fdb/show: rows by port (number or LOCAL), VLAN, MAC (lower-cased) and age; static marked; the header and junk skipped', () => {
  const text = ' port  VLAN  MAC                Age\n    1   100  00:00:00:00:01:02  static\nLOCAL     0  0A:00:00:00:00:01    3\n   12     0  02:00:00:00:00:09  299\nnot a row\n';
  assert.deepEqual(parseFdbShow(text), [
    { port: '1', vlan: 100, mac: '00:00:00:00:01:02', static: true },
    { port: 'LOCAL', vlan: 0, mac: '0a:00:00:00:00:01', static: false },
    { port: '12', vlan: 0, mac: '02:00:00:00:00:09', static: false },
  ]);
  assert.deepEqual(parseFdbShow(' port  VLAN  MAC                Age\n'), []);
});

const subnet = (name: string, spec: Subnet['spec'], mac?: string): Subnet => ({ metadata: { name }, spec, ...(mac ? { status: { u2oInterconnectionMAC: mac } } : {}) });
const vlans: Vlan[] = [{ metadata: { name: 'vl100' }, spec: { id: 100, provider: 'phys' } }, { metadata: { name: 'vl0' }, spec: { id: 0, provider: 'phys' } },
  { metadata: { name: 'other' }, spec: { id: 7, provider: 'nomap' } }];

test('wanted: VLAN subnets with u2oInterconnection and a MAC, through the Vlan and ovn-bridge-mappings; anything missing skips the subnet', () => {
  const subnets = [
    subnet('u2o', { vlan: 'vl100', u2oInterconnection: true }, '0A:00:00:00:00:FE'),
    subnet('u2o0', { vlan: 'vl0', u2oInterconnection: true }, '0a:00:00:00:00:fd'),
    subnet('nomac', { vlan: 'vl100', u2oInterconnection: true }),
    subnet('plain', { vlan: 'vl100' }, '0a:00:00:00:00:fc'),
    subnet('overlay', { u2oInterconnection: true }, '0a:00:00:00:00:fb'),
    subnet('novlan', { vlan: 'missing', u2oInterconnection: true }, '0a:00:00:00:00:fa'),
    subnet('nobridge', { vlan: 'other', u2oInterconnection: true }, '0a:00:00:00:00:f9'),
    subnet('badmac', { vlan: 'vl100', u2oInterconnection: true }, 'zz'),
  ];
  assert.deepEqual(desiredFdb(subnets, vlans, (p) => (p === 'phys' ? 'br-phys' : undefined)), [
    { bridge: 'br-phys', port: 'patch-localnet.u2o-to-br-int', vlan: 100, mac: '0a:00:00:00:00:fe' },
    { bridge: 'br-phys', port: 'patch-localnet.u2o0-to-br-int', vlan: 0, mac: '0a:00:00:00:00:fd' },
  ]);
  assert.equal(localnetPort('x'), 'patch-localnet.x-to-br-int');
});

const e = (port: string, mac: string, vlan = 100): FdbEntry => ({ bridge: 'br-phys', port, vlan, mac });

test('diff: add what is missing; a MAC on another port moves (del then add); stale localnet entries go; others stay; unnumbered ports wait', () => {
  const A = localnetPort('a');
  const B = localnetPort('b');
  const numbered = new Set([A, B, 'eth1']);
  assert.deepEqual(diffFdb([e(A, '0a:00:00:00:00:01')], { entries: [], numbered }), [{ op: 'add', entry: e(A, '0a:00:00:00:00:01') }]);
  assert.deepEqual(diffFdb([e(A, '0a:00:00:00:00:01')], { entries: [e(A, '0a:00:00:00:00:01')], numbered }), [], 'converged');
  assert.deepEqual(diffFdb([e(A, '0a:00:00:00:00:01')], { entries: [e(B, '0a:00:00:00:00:01')], numbered }),
    [{ op: 'del', entry: e(B, '0a:00:00:00:00:01') }, { op: 'add', entry: e(A, '0a:00:00:00:00:01') }]);
  assert.deepEqual(diffFdb([], { entries: [e(B, '0a:00:00:00:00:02'), e('eth1', '0a:00:00:00:00:03'), e('#9', '0a:00:00:00:00:04')], numbered }),
    [{ op: 'del', entry: e(B, '0a:00:00:00:00:02') }], 'only the entry on a localnet port is ours to remove');
  assert.deepEqual(diffFdb([e(localnetPort('c'), '0a:00:00:00:00:05')], { entries: [], numbered }), [], 'the patch port has no OpenFlow number yet');
  assert.deepEqual(diffFdb([e(A, '0a:00:00:00:00:01', 100)], { entries: [e(A, '0a:00:00:00:00:01', 200)], numbered }),
    [{ op: 'del', entry: e(A, '0a:00:00:00:00:01', 200) }, { op: 'add', entry: e(A, '0a:00:00:00:00:01', 100) }], 'the VLAN changed');
});

test('unixctl responses: the text result, or the error text as an UnixctlError', () => {
  assert.equal(unixctlResult('fdb/show', { id: 0, result: 'x\n', error: null }), 'x\n');
  assert.throws(() => unixctlResult('fdb/add', { id: 0, error: 'software error, odp port is present but no ofp port\n' }),
    (err: unknown) => err instanceof UnixctlError && err.message === 'ovs-vswitchd fdb/add: software error, odp port is present but no ofp port');
  assert.throws(() => unixctlResult('x', null), UnixctlError);
  assert.throws(() => unixctlResult('x', { id: 0, result: 3, error: null }), /no text result/);
});

test('no pass before the watches have listed: an empty cache must not delete the entries of a restarted agent', async () => {
  const calls: string[] = [];
  const vs = new FakeVswitch({ bridges: ['br-int', 'br-phys'] });
  await vs.addBridgePort({ bridge: 'br-phys', name: localnetPort('u2o'), type: 'patch' });
  const ofport = vs.getInterface(localnetPort('u2o'))!.ofport!;
  // vswitchd's table after an agent restart: the entry of a u2o subnet on its patch port
  const unixctl = { async call(method: string, params: readonly string[]): Promise<string> {
    calls.push(`${method} ${params.join(' ')}`);
    return method === 'fdb/show' ? ` port  VLAN  MAC                Age\n    ${ofport}   100  0a:00:00:00:00:fe  static\n` : '';
  } };
  let synced = false;
  let subnets: Subnet[] = [];
  const r = new Reconciler(fdbSpec({
    synced: () => synced, subnets: () => subnets, vlans: () => vlans, vswitch: () => vs, unixctl,
    bridgeMappings: () => new Map([['phys', 'br-phys']]),
  }), { resyncMs: 0 });
  assert.equal((await r.runNow()).changes, 0);
  assert.deepEqual(calls, [], 'not even a fdb/show');
  subnets = [subnet('u2o', { vlan: 'vl100', u2oInterconnection: true }, '0a:00:00:00:00:fe')];
  synced = true;
  assert.equal((await r.runNow()).changes, 0, 'listed: the entry is wanted and there');
  assert.deepEqual(calls, ['fdb/show br-phys']);
});
