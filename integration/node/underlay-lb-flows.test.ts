// The external-LB OpenFlow flows (spec §5.17) against a real ovs-vswitchd (userspace datapath, prefix klb), through
// ovs-ofctl on the bridge's management socket: the flows land with the planned match and actions on a bridge of
// ours; a flow no longer wanted goes; a foreign flow (another cookie) on the same bridge and our cookie on a bridge
// that is not ours stay; priority-10001 flows go once; after our flows are deleted by hand the next pass puts them
// back; after a vswitchd restart the ports' OVSDB events trigger the pass that brings them back (no resync timer; a
// pass that fails while vswitchd is still starting is retried by the reconciler's backoff). Services, Subnets, Vlans and
// ProviderNetworks are in memory: this test is about vswitchd.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startOvs, type OvsNode } from '../bed/ovs.ts';
import { cleanupAll, newPrefix } from '../bed/netns.ts';
import { waitFor } from '../bed/exec.ts';
import { OvsVswitch } from '../../agent/src/datapath/ovsdb/vswitch.ts';
import { OvsOfctl } from '../../agent/src/datapath/ovsdb/ofctl.ts';
import { Reconciler } from '../../agent/src/node/reconciler.ts';
import { lbFlowsSpec, lbInterfaceEvent } from '../../agent/src/node/underlay/lb-flows.ts';
import { localnetPort } from '../../agent/src/node/underlay/fdb.ts';
import { EXTERNAL_IP_FROM_SUBNET } from '../../agent/src/k8s/slim.ts';
import type { Service, Subnet } from '../../agent/src/k8s/types.ts';
import type { ProviderNetwork, Vlan } from '../../agent/src/node/underlay/types.ts';

const PATCH = localnetPort('s1');
const FOREIGN = 'cookie=0x2000,priority=10000,tcp,in_port=1,nw_dst=192.0.2.1,tp_dst=22,actions=drop';
let ovs: OvsNode;
let vs: OvsVswitch;

before(async () => {
  ovs = await startOvs({ prefix: newPrefix('klb'), name: 'n1' });
  await ovs.addBridge('br-int');
  vs = await OvsVswitch.connect({ remote: `unix:${ovs.rundir}/db.sock`, requestTimeoutMs: 10_000 });
  // the provider bridge as the underlay reconciler makes it (ours: vendor=kube-ovn), an internal port standing in
  // for the NIC, and the localnet patch pair ovn-controller makes
  await vs.ensureBridge({ name: 'br-phys', datapathType: 'netdev', failMode: 'standalone' });
  await vs.addBridgePort({ bridge: 'br-phys', name: 'eth1', type: 'internal' });
  await ovs.vsctl(['add-port', 'br-phys', PATCH, '--', 'set', 'interface', PATCH, 'type=patch', 'options:peer=patch-br-int-to-localnet.s1',
    '--', 'add-port', 'br-int', 'patch-br-int-to-localnet.s1', '--', 'set', 'interface', 'patch-br-int-to-localnet.s1', 'type=patch', `options:peer=${PATCH}`]);
  // a bridge that is not ours, with a flow under our cookie: never read, never written
  await ovs.addBridge('br-other', { standalone: true });
  await ovs.ofctl(['add-flow', 'br-other', 'cookie=0x1000,priority=10000,tcp,nw_dst=10.0.0.5,tp_dst=80,actions=drop']);
});
after(async () => {
  vs?.close();
  await ovs?.stop();
  await cleanupAll();
});

const dump = async (br: string): Promise<string[]> => (await ovs.ofctl(['--no-stats', '--no-names', 'dump-flows', br])).split('\n').map((l) => l.trim()).filter((l) => l !== '').sort();
const ours = async (br: string): Promise<string[]> => (await dump(br)).filter((l) => /^cookie=0x100[01],/.test(l));
const ofport = (name: string): number => vs.getInterface(name)?.ofport ?? 0;

test('external-LB flows: land with the planned match and actions, stale ones go, foreign ones stay, deleted ones come back, a vswitchd restart is healed', async () => {
  await waitFor('ofports assigned and seen', async () => ofport('eth1') > 0 && ofport(PATCH) > 0, 20_000);
  const nic = ofport('eth1');
  const patch = ofport(PATCH);
  await ovs.ofctl(['add-flow', 'br-phys', FOREIGN]);
  await ovs.ofctl(['add-flow', 'br-phys', 'priority=10001,ip,in_port=1,actions=NORMAL']);
  const foreign = (await dump('br-phys')).filter((l) => l.startsWith('cookie=0x2000'));
  const otherBridge = await dump('br-other');

  const services: Service[] = [{
    metadata: { name: 'web', namespace: 'default', annotations: { [EXTERNAL_IP_FROM_SUBNET]: 's1' } },
    spec: { ports: [{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }] },
    status: { loadBalancer: { ingress: [{ ip: '10.0.0.5' }, { ip: 'fd00::5' }] } },
  }];
  const subnets: Subnet[] = [{ metadata: { name: 's1' }, spec: { vlan: 'vl10', enableExternalLBAddress: true }, status: { u2oInterconnectionMAC: '0a:00:00:00:00:fe' } }];
  const vlans: Vlan[] = [{ metadata: { name: 'vl10' }, spec: { id: 10, provider: 'phys' } }];
  const pns: ProviderNetwork[] = [{ metadata: { name: 'phys' }, spec: { defaultInterface: 'eth1' } }];
  const r = new Reconciler(lbFlowsSpec({
    nodeName: 'n1', synced: () => true, services: () => services, subnets: () => subnets, vlans: () => vlans, providerNetworks: () => pns,
    node: () => ({ metadata: { name: 'n1' } }), vswitch: () => vs, openflow: new OvsOfctl(ovs.rundir),
  }), { resyncMs: 0 });

  const want = (mac = '0a:00:00:00:00:fe') => [
    `cookie=0x1000, priority=10000,tcp,in_port=${nic},nw_dst=10.0.0.5,tp_dst=80 actions=mod_dl_dst:${mac},output:${patch}`,
    `cookie=0x1000, priority=10000,udp,in_port=${nic},nw_dst=10.0.0.5,tp_dst=53 actions=mod_dl_dst:${mac},output:${patch}`,
    `cookie=0x1001, priority=10000,tcp6,in_port=${nic},ipv6_dst=fd00::5,tp_dst=80 actions=mod_dl_dst:${mac},output:${patch}`,
    `cookie=0x1001, priority=10000,udp6,in_port=${nic},ipv6_dst=fd00::5,tp_dst=53 actions=mod_dl_dst:${mac},output:${patch}`,
  ].sort();

  assert.equal((await r.runNow()).changes, 5, '4 adds and the priority-10001 flow deleted');
  assert.deepEqual(await ours('br-phys'), want());
  assert.deepEqual((await dump('br-phys')).filter((l) => l.includes('priority=10001')), [], 'the obsolete u2o flow is gone');
  assert.equal((await r.runNow()).changes, 0, 'converged');

  // the ingress IP changes: the old address's flows go, the new ones land; the u2o MAC goes: the default MAC
  services[0] = { ...services[0]!, status: { loadBalancer: { ingress: [{ ip: '10.0.0.6' }] } } };
  subnets[0] = { ...subnets[0]!, status: {} };
  await r.runNow();
  assert.deepEqual(await ours('br-phys'), [
    `cookie=0x1000, priority=10000,tcp,in_port=${nic},nw_dst=10.0.0.6,tp_dst=80 actions=mod_dl_dst:00:00:00:01:00:01,output:${patch}`,
    `cookie=0x1000, priority=10000,udp,in_port=${nic},nw_dst=10.0.0.6,tp_dst=53 actions=mod_dl_dst:00:00:00:01:00:01,output:${patch}`,
  ].sort());

  // deleted by hand (no event announces it): the next pass puts them back
  await ovs.ofctl(['del-flows', 'br-phys', 'cookie=0x1000/-1']);
  assert.deepEqual(await ours('br-phys'), []);
  assert.equal((await r.runNow()).changes, 2);
  assert.equal((await ours('br-phys')).length, 2);

  // a priority-10001 flow added after the first clean-up is not ours: it stays
  await ovs.ofctl(['add-flow', 'br-phys', 'priority=10001,ip,in_port=1,actions=NORMAL']);
  assert.equal((await r.runNow()).changes, 0);
  assert.equal((await dump('br-phys')).filter((l) => l.includes('priority=10001')).length, 1);

  assert.deepEqual((await dump('br-phys')).filter((l) => l.startsWith('cookie=0x2000')), foreign, 'the foreign flow is untouched');
  assert.deepEqual(await dump('br-other'), otherBridge, 'a bridge that is not ours is untouched');

  // vswitchd restart: the flow table is gone; the ports' OVSDB events trigger the pass (no resync timer here)
  services[0] = { ...services[0]!, status: { loadBalancer: { ingress: [{ ip: '10.0.0.5' }, { ip: 'fd00::5' }] } } };
  subnets[0] = { ...subnets[0]!, status: { u2oInterconnectionMAC: '0a:00:00:00:00:fe' } };
  await r.runNow();
  assert.deepEqual(await ours('br-phys'), want());
  const unsubscribe = vs.onInterfaceChange((e) => { if (lbInterfaceEvent(e, vs)) r.trigger('ovsdb'); });
  const started = r.passes;
  r.start();
  await waitFor('the start pass ran', async () => r.passes > started, 10_000);
  const passes = r.passes;
  await ovs.restart();
  await waitFor('the flows are back after the restart', async () => {
    try { return JSON.stringify(await ours('br-phys')) === JSON.stringify(want()); } catch { return false; }
  }, 60_000);
  assert.ok(r.passes > passes, 'a pass ran after the restart');
  unsubscribe();
  await r.stop();

  // the Service is gone: so are its flows
  services.length = 0;
  const r2 = new Reconciler(lbFlowsSpec({
    nodeName: 'n1', synced: () => true, services: () => services, subnets: () => subnets, vlans: () => vlans, providerNetworks: () => pns,
    node: () => ({ metadata: { name: 'n1' } }), vswitch: () => vs, openflow: new OvsOfctl(ovs.rundir),
  }), { resyncMs: 0 });
  await waitFor('the OVSDB client reconnected', async () => ofport(PATCH) > 0 && ofport('eth1') > 0, 30_000);
  // (the restart emptied br-other too: its flow of our cookie is put back, and must survive this pass as well)
  await ovs.ofctl(['add-flow', 'br-other', 'cookie=0x1000,priority=10000,tcp,nw_dst=10.0.0.5,tp_dst=80,actions=drop']);
  await r2.runNow();
  assert.deepEqual(await ours('br-phys'), []);
  assert.deepEqual(await dump('br-other'), otherBridge);
  await r2.stop();
});
