// OvsVswitch against a real ovsdb-server + ovs-vswitchd (userspace datapath) in a namespace of our own: the same
// contract as the in-memory fake, plus what only the real thing can show (ovs-vsctl sees our rows, vswitchd
// assigns an ofport, foreign rows are left alone).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupAll, newPrefix } from '../bed/netns.ts';
import { startOvs } from '../bed/ovs.ts';
import type { OvsNode } from '../bed/ovs.ts';
import { OvsVswitch } from '../../agent/src/datapath/ovsdb/vswitch.ts';
import { contract } from '../../test/ovsdb/vswitch-contract.ts';

const prefix = newPrefix('koao');
let ovs: OvsNode;
let vs: OvsVswitch;

before(async () => {
  ovs = await startOvs({ prefix, name: 'vs' });
  await ovs.addBridge('br-int');
  vs = await OvsVswitch.connect({ remote: `unix:${ovs.dbSock}`, requestTimeoutMs: 10_000 });
});
after(async () => {
  vs?.close();
  await cleanupAll();
});

for (const [name, run] of contract) {
  test(`real Vswitch contract: ${name}`, async () => {
    await run({
      vs, tag: 'r1',
      setIfaceExternalId: async (n, k, v) => { await ovs.vsctl(['--no-wait', 'set', 'Interface', n, `external_ids:${k}=${v}`]); },
    });
  });
}

test('a pod port made by our client is seen by ovs-vsctl and opened by ovs-vswitchd (ofport >= 1)', async () => {
  await ovs.nodeNs.ip(['link', 'add', 'koaoveth0', 'type', 'veth', 'peer', 'name', 'koaoveth0p']);
  await ovs.nodeNs.ip(['link', 'set', 'koaoveth0', 'up']);
  const i = await vs.addPodPort({ name: 'koaoveth0', ifaceId: 'web.default', podName: 'web', podNamespace: 'default',
    podNetns: '/var/run/netns/x', ips: ['10.16.0.9'] }, { wait: true });
  assert.match(await ovs.vsctl(['list-ports', 'br-int']), /^koaoveth0$/m);
  assert.equal(await ovs.vsctl(['get', 'Interface', 'koaoveth0', 'external_ids:iface-id']), 'web.default');
  assert.equal(await ovs.vsctl(['get', 'Interface', 'koaoveth0', 'external_ids:vendor']), 'kube-ovn');
  // wait:true returned after vswitchd applied it: the ofport is already there
  const ofport = Number(await ovs.vsctl(['get', 'Interface', 'koaoveth0', 'ofport']));
  assert.ok(ofport >= 1, `ofport ${ofport}`);
  assert.equal(await vs.waitOfport('koaoveth0', 5000), ofport);
  assert.match(await ovs.appctl(['dpif/show']), /koaoveth0 \d+\/\d+: \(system\)/);
  assert.equal(i.name, 'koaoveth0');
  assert.equal(await vs.deletePort('koaoveth0', { wait: true }), true);
  assert.doesNotMatch(await ovs.vsctl(['list-ports', 'br-int']), /koaoveth0/);
  assert.doesNotMatch(await ovs.appctl(['dpif/show']), /koaoveth0/);
  assert.equal(await vs.deletePort('koaoveth0', { wait: true }), false);
});

test('a port whose device is missing gets ofport -1 and waitOfport reports vswitchd\'s error', async () => {
  await vs.addPodPort({ name: 'koaonodev', ifaceId: 'x.y', podName: 'x', podNamespace: 'y', podNetns: '/n' }, { wait: true });
  await assert.rejects(vs.waitOfport('koaonodev', 5000), /could not add interface koaonodev: could not open network device koaonodev \(No such device\)/);
  await vs.deletePort('koaonodev');
});

test('ports and rows made with ovs-vsctl show up in the replica; foreign QoS is never collected', async () => {
  await ovs.vsctl(['--no-wait', 'add-port', 'br-int', 'koaoext', '--', 'set', 'Interface', 'koaoext', 'type=internal', 'external_ids:owner=someone']);
  await vs.client.waitUntil(() => vs.getInterface('koaoext'), 5000, () => 'koaoext');
  assert.deepEqual(vs.findInterfaces({ owner: 'someone' }).map((i) => i.name), ['koaoext']);
  const foreign = await ovs.vsctl(['--no-wait', 'create', 'QoS', 'type=linux-htb', 'external_ids:owner=someone']);
  const oursUnref = await ovs.vsctl(['--no-wait', 'create', 'QoS', 'type=linux-htb', 'external_ids:vendor=kube-ovn', 'external_ids:pod=default/gone']);
  const upstreamQueue = await ovs.vsctl(['--no-wait', 'create', 'Queue', 'other_config:max-rate=1000', 'external_ids:iface-id=gone.default', 'external_ids:pod=default/gone']);
  await vs.client.waitUntil(() => (vs.client.replica.get('Queue', upstreamQueue) ? true : undefined), 5000, () => 'queue row');
  assert.equal(await vs.gcQos(), 2);
  assert.match(await ovs.vsctl(['--columns=_uuid', 'list', 'QoS']), new RegExp(foreign));
  assert.doesNotMatch(await ovs.vsctl(['--columns=_uuid', 'list', 'QoS']), new RegExp(oursUnref));
  assert.equal(await ovs.vsctl(['--columns=_uuid', '--bare', 'list', 'Queue']), '');
  assert.equal(await vs.deletePort('koaoext'), true, 'deleting a port by name works for any port');
  await ovs.vsctl(['--no-wait', 'destroy', 'QoS', foreign]);
});

test('htb QoS rows as ovs-vsctl sees them (upstream shape)', async () => {
  await vs.addPodPort({ name: 'koaoq', ifaceId: 'q.default', podName: 'q', podNamespace: 'default', podNetns: '/n' });
  await vs.setHtbQos({ ifaceId: 'q.default', pod: 'default/q', port: 'koaoq', rateMbps: 10 });
  const qos = await ovs.vsctl(['get', 'Port', 'koaoq', 'qos']);
  assert.equal(await ovs.vsctl(['get', 'QoS', qos, 'type']), 'linux-htb');
  assert.equal(await ovs.vsctl(['get', 'QoS', qos, 'external_ids:iface-id']), 'q.default');
  assert.equal(await ovs.vsctl(['get', 'QoS', qos, 'external_ids:pod']), '"default/q"');
  const queue = await ovs.vsctl(['get', 'QoS', qos, 'queues:0']);
  assert.equal(await ovs.vsctl(['get', 'Queue', queue, 'other_config:max-rate']), '"10000000"');
  assert.equal(await ovs.vsctl(['get', 'Queue', queue, 'other_config:burst']), '"1000000"');
  await vs.setIngressPolicing('q.default', 3);
  assert.equal(await ovs.vsctl(['get', 'Interface', 'koaoq', 'ingress_policing_rate']), '3000');
  assert.equal(await ovs.vsctl(['get', 'Interface', 'koaoq', 'ingress_policing_burst']), '2400');
  await vs.deletePort('koaoq');
  assert.equal(await ovs.vsctl(['--columns=_uuid', '--bare', 'list', 'QoS']), '');
  assert.equal(await ovs.vsctl(['--columns=_uuid', '--bare', 'list', 'Queue']), '');
});

test('Open_vSwitch external_ids written natively are what ovs-vsctl reads', async () => {
  await vs.setOvsExternalIds({ 'ovn-encap-ip': '192.168.0.10', 'ovn-bridge-mappings': 'provider:br-provider' }, [], { wait: true });
  assert.equal(await ovs.vsctl(['get', 'Open_vSwitch', '.', 'external_ids:ovn-encap-ip']), '"192.168.0.10"');
  assert.equal(await ovs.vsctl(['get', 'Open_vSwitch', '.', 'external_ids:koa-bed']), '"true"', 'keys we did not name are untouched');
  await ovs.vsctl(['set', 'Open_vSwitch', '.', 'external_ids:system-id=koao-node1']);
  await vs.client.waitUntil(() => (vs.getOvsExternalIds()['system-id'] === 'koao-node1' ? true : undefined), 5000, () => 'system-id');
  await vs.setOvsExternalIds({}, ['ovn-encap-ip', 'ovn-bridge-mappings']);
  assert.match(await ovs.vsctl(['get', 'Open_vSwitch', '.', 'external_ids']), /^\{koa-bed="?true"?, system-id=koao-node1\}$/);
});

test('100 concurrent pod port adds and deletes on one connection', async () => {
  const names = Array.from({ length: 100 }, (_, i) => `koaoc${i}`);
  await Promise.all(names.map((n, i) => vs.addPodPort({ name: n, ifaceId: `c${i}.default`, podName: `c${i}`, podNamespace: 'default', podNetns: '/n' })));
  const listed = new Set((await ovs.vsctl(['list-ports', 'br-int'])).split('\n'));
  for (const n of names) assert.ok(listed.has(n), n);
  const deleted = await Promise.all(names.map((n) => vs.deletePort(n)));
  assert.ok(deleted.every(Boolean));
  assert.equal((await ovs.vsctl(['list-ports', 'br-int'])).split('\n').filter((n) => n.startsWith('koaoc')).length, 0);
});
