// ovn-installed as a monitor event from a REAL ovn-controller: a pod port added by our client with an iface-id
// that matches a logical switch port gets external_ids:ovn-installed="true"; one that matches nothing does not.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { addVeth, cleanupAll, createNetns, newPrefix } from '../bed/netns.ts';
import { startOvs } from '../bed/ovs.ts';
import type { OvsNode } from '../bed/ovs.ts';
import { lspUpState, startOvnCentral, startOvnController } from '../bed/ovn.ts';
import type { OvnCentral } from '../bed/ovn.ts';
import { OvsVswitch } from '../../agent/src/datapath/ovsdb/vswitch.ts';
import type { InterfaceEvent } from '../../agent/src/datapath/ports.ts';

const prefix = newPrefix('koao');
let ovs: OvsNode;
let central: OvnCentral;
let vs: OvsVswitch;

before(async () => {
  ovs = await startOvs({ prefix, name: 'ovn' });
  central = await startOvnCentral({ prefix });
  await startOvnController(ovs, central, { systemId: `${prefix}node1`, encapIp: '127.0.0.1' });
  await central.nbctl(['ls-add', 'ovn-default', '--', 'set', 'logical_switch', 'ovn-default', 'other_config:subnet=10.16.0.0/16']);
  vs = await OvsVswitch.connect({ remote: `unix:${ovs.dbSock}` });
});
after(async () => {
  vs?.close();
  await cleanupAll();
});

test('ovn-installed arrives as an event when the iface-id matches a logical switch port', async () => {
  await central.nbctl(['lsp-add', 'ovn-default', 'web.default', '--', 'lsp-set-addresses', 'web.default', '00:00:00:16:00:11 10.16.0.11']);
  const pod = await createNetns(`${prefix}pod1`);
  await addVeth(ovs.nodeNs, 'koaoweb_h', pod, 'eth0');
  await pod.ip(['link', 'set', 'eth0', 'address', '00:00:00:16:00:11']);
  const events: InterfaceEvent[] = [];
  const off = vs.onInterfaceChange((ev) => { if (ev.name === 'koaoweb_h') events.push(ev); });
  const t0 = performance.now();
  await vs.addPodPort({ name: 'koaoweb_h', ifaceId: 'web.default', podName: 'web', podNamespace: 'default', podNetns: pod.path, ips: ['10.16.0.11'] });
  await vs.waitOvnInstalled('koaoweb_h', 20_000);
  const ms = performance.now() - t0;
  off();
  const i = vs.getInterface('koaoweb_h')!;
  assert.equal(i.externalIds['ovn-installed'], 'true');
  assert.ok(i.ofport! >= 1);
  // it was an event: the interface changed from "not installed" to "installed" in front of our listener
  assert.ok(events.some((e) => e.old?.externalIds['ovn-installed'] !== 'true' && e.new?.externalIds['ovn-installed'] === 'true'));
  assert.equal(await ovs.vsctl(['get', 'Interface', 'koaoweb_h', 'external_ids:ovn-installed']), '"true"');
  assert.equal(await lspUpState(central, 'web.default'), 'up');
  assert.ok(ms < 20_000, `${ms} ms`);
  process.stderr.write(`# ovn-installed after ${ms.toFixed(1)} ms\n`);
  assert.equal(await vs.deletePort('koaoweb_h', { wait: true }), true);
});

test('no ovn-installed for an iface-id without a logical port: the wait times out clearly', async () => {
  const pod = await createNetns(`${prefix}pod2`);
  await addVeth(ovs.nodeNs, 'koaonolsp_h', pod, 'eth0');
  await vs.addPodPort({ name: 'koaonolsp_h', ifaceId: 'ghost.default', podName: 'ghost', podNamespace: 'default', podNetns: pod.path }, { wait: true });
  await assert.rejects(vs.waitOvnInstalled('koaonolsp_h', 1500),
    /timed out after 1500 ms waiting for external_ids:ovn-installed="true" on OVS interface koaonolsp_h/);
  // creating the LSP afterwards completes the claim, again as an event
  const w = vs.waitOvnInstalled('koaonolsp_h', 20_000);
  await central.nbctl(['lsp-add', 'ovn-default', 'ghost.default']);
  await w;
  await vs.deletePort('koaonolsp_h');
});

test('a stale port losing its iface-id to a new sandbox: ovn-controller moves the claim', async () => {
  await central.nbctl(['lsp-add', 'ovn-default', 'mv.default']);
  const a = await createNetns(`${prefix}pod3`);
  const b = await createNetns(`${prefix}pod4`);
  await addVeth(ovs.nodeNs, 'koaomv1_h', a, 'eth0');
  await addVeth(ovs.nodeNs, 'koaomv2_h', b, 'eth0');
  await vs.addPodPort({ name: 'koaomv1_h', ifaceId: 'mv.default', podName: 'mv', podNamespace: 'default', podNetns: a.path });
  await vs.waitOvnInstalled('koaomv1_h', 20_000);
  await vs.addPodPort({ name: 'koaomv2_h', ifaceId: 'mv.default', podName: 'mv', podNamespace: 'default', podNetns: b.path });
  await vs.waitOvnInstalled('koaomv2_h', 20_000);
  assert.equal(vs.getInterface('koaomv1_h')!.externalIds['iface-id'], undefined);
  assert.equal(await central.sbctl(['--bare', '--columns=logical_port', 'find', 'Port_Binding', 'logical_port=mv.default']), 'mv.default');
  await vs.deletePort('koaomv1_h');
  await vs.deletePort('koaomv2_h');
});
