// The Vswitch contract, run against the in-memory fake (unit tests) and against OvsVswitch on a real
// ovsdb-server + ovs-vswitchd (integration/ovsdb). Both must behave the same.
import assert from 'node:assert/strict';
import type { Vswitch } from '../../agent/src/datapath/ports.ts';

export interface ContractEnv {
  vs: Vswitch;
  /** Sets an Interface external_ids key the way another writer (ovn-controller) would. */
  setIfaceExternalId(name: string, key: string, value: string): Promise<void>;
  /** A unique name suffix so runs do not collide. */
  tag: string;
}

export type ContractCase = [name: string, run: (env: ContractEnv) => Promise<void>];

const pod = (name: string, ifaceId: string, ips = ['10.16.0.5/16', 'fd00::5/64']) =>
  ({ name, ifaceId, podName: 'web', podNamespace: 'default', podNetns: '/var/run/netns/cni-1', ips });

export const contract: ContractCase[] = [
  ['addPodPort writes the upstream external_ids; may-exist re-add updates in place', async ({ vs, tag }) => {
    const name = `pa${tag}`;
    const i = await vs.addPodPort(pod(name, 'web.default'));
    assert.deepEqual(i.externalIds, {
      'iface-id': 'web.default', vendor: 'kube-ovn', pod_name: 'web', pod_namespace: 'default',
      pod_netns: '/var/run/netns/cni-1', ip: '10.16.0.5,fd00::5',
    });
    assert.ok(vs.listPorts('br-int').includes(name));
    assert.ok(vs.listBridges().includes('br-int'));
    assert.equal(vs.getPort(name)!.bridge, 'br-int');
    const again = await vs.addPodPort({ ...pod(name, 'web.default', ['10.16.0.6']), encapIp: '192.168.0.2', mtu: 1400 });
    assert.equal(again.uuid, i.uuid);
    assert.equal(again.externalIds.ip, '10.16.0.6');
    assert.equal(again.externalIds['encap-ip'], '192.168.0.2');
    assert.equal(again.mtuRequest, 1400);
    assert.equal(vs.listPorts('br-int').filter((p) => p === name).length, 1);
    const noIp = await vs.addPodPort({ ...pod(`pb${tag}`, 'mac-only.default'), ips: [] });
    assert.equal('ip' in noIp.externalIds, false);
    assert.equal(await vs.deletePort(name), true);
    assert.equal(await vs.deletePort(`pb${tag}`), true);
  }],
  ['a new port claiming an iface-id strips it from stale interfaces (other keys kept)', async ({ vs, tag }) => {
    await vs.addPodPort(pod(`old${tag}`, 'db.default'));
    await vs.addPodPort(pod(`new${tag}`, 'db.default'));
    const old = vs.getInterface(`old${tag}`)!;
    assert.equal(old.externalIds['iface-id'], undefined);
    assert.equal(old.externalIds.vendor, 'kube-ovn');
    assert.deepEqual(vs.findInterfaces({ 'iface-id': 'db.default' }).map((i) => i.name), [`new${tag}`]);
    await vs.deletePort(`old${tag}`);
    await vs.deletePort(`new${tag}`);
  }],
  ['deletePort is idempotent and removes port and interface', async ({ vs, tag }) => {
    const name = `pd${tag}`;
    await vs.addPodPort(pod(name, 'del.default'));
    assert.equal(await vs.deletePort(name), true);
    assert.equal(await vs.deletePort(name), false);
    assert.equal(await vs.deletePort(`never${tag}`), false);
    assert.equal(vs.getPort(name), undefined);
    assert.equal(vs.getInterface(name), undefined);
    assert.ok(!vs.listPorts('br-int').includes(name));
  }],
  ['findInterfaces / findPorts match external_ids, "*" = key present', async ({ vs, tag }) => {
    await vs.addPodPort(pod(`f1${tag}`, `f1${tag}.ns`));
    await vs.addPodPort({ ...pod(`f2${tag}`, `f2${tag}.ns`), podName: 'other' });
    const mine = vs.findInterfaces({ vendor: 'kube-ovn', pod_name: 'web' }).map((i) => i.name);
    assert.ok(mine.includes(`f1${tag}`) && !mine.includes(`f2${tag}`));
    assert.ok(vs.findInterfaces({ pod_name: '*' }).some((i) => i.name === `f2${tag}`));
    await vs.addBridgePort({ bridge: 'br-int', name: `fp${tag}`, type: 'internal', externalIds: { 'provider-vlan-interface': 'eth1.10' } });
    assert.deepEqual(vs.findPorts({ 'provider-vlan-interface': 'eth1.10' }).map((p) => p.name), [`fp${tag}`]);
    for (const n of ['f1', 'f2', 'fp']) await vs.deletePort(`${n}${tag}`);
  }],
  ['waitOvnInstalled resolves on the event and times out with a clear error', async ({ vs, tag, setIfaceExternalId }) => {
    const name = `pw${tag}`;
    await vs.addPodPort(pod(name, `w${tag}.default`));
    const w = vs.waitOvnInstalled(name, 5000);
    await setIfaceExternalId(name, 'ovn-installed', 'true');
    await w;
    await vs.waitOvnInstalled(name, 10); // already true: immediate
    await assert.rejects(vs.waitOvnInstalled(`nope${tag}`, 50), /timed out after 50 ms waiting for external_ids:ovn-installed="true" on OVS interface nope/);
    await vs.deletePort(name);
  }],
  ['interface change events', async ({ vs, tag }) => {
    const seen: string[] = [];
    const off = vs.onInterfaceChange((ev) => { if (ev.name === `pe${tag}`) seen.push(ev.new ? (ev.old ? 'mod' : 'add') : 'del'); });
    await vs.addPodPort(pod(`pe${tag}`, `e${tag}.default`));
    await vs.deletePort(`pe${tag}`);
    off();
    assert.equal(seen[0], 'add');
    assert.equal(seen.at(-1), 'del');
  }],
  ['ingress policing on every interface with the iface-id; rates validated first', async ({ vs, tag }) => {
    await vs.addPodPort(pod(`pi${tag}`, `i${tag}.default`));
    assert.equal(await vs.setIngressPolicing(`i${tag}.default`, 10), 1);
    let i = vs.getInterface(`pi${tag}`)!;
    assert.equal(i.ingressPolicingRate, 10000);
    assert.equal(i.ingressPolicingBurst, 8000);
    await vs.setIngressPolicing(`i${tag}.default`, 10, 0);
    assert.equal(vs.getInterface(`pi${tag}`)!.ingressPolicingBurst, 0);
    await vs.setIngressPolicing(`i${tag}.default`, 0);
    i = vs.getInterface(`pi${tag}`)!;
    assert.equal(i.ingressPolicingRate, 0);
    assert.equal(i.ingressPolicingBurst, 0);
    await assert.rejects(vs.setIngressPolicing(`i${tag}.default`, -1), /invalid egress rate -1/);
    await assert.rejects(vs.setIngressPolicing(`i${tag}.default`, 2 ** 60), /invalid egress rate/);
    assert.equal(await vs.setIngressPolicing(`none${tag}`, 5), 0);
    await vs.deletePort(`pi${tag}`);
  }],
  ['htb QoS: apply, unchanged, update, netem skipped while htb, remove; delete of the port removes its QoS', async ({ vs, tag }) => {
    const port = `pq${tag}`, ifaceId = `q${tag}.default`, podKey = 'default/q';
    await vs.addPodPort(pod(port, ifaceId));
    assert.equal(await vs.setHtbQos({ ifaceId, pod: podKey, port, rateMbps: 5 }), 'applied');
    assert.ok(vs.getPort(port)!.qos);
    assert.equal(await vs.setHtbQos({ ifaceId, pod: podKey, port, rateMbps: 5 }), 'unchanged');
    assert.equal(await vs.setHtbQos({ ifaceId, pod: podKey, port, rateMbps: 7, burstMbit: 1 }), 'applied');
    const qos = vs.getPort(port)!.qos;
    assert.equal(await vs.setNetemQos({ ifaceId, pod: podKey, port, latencyMs: 10 }), 'skipped-htb-present');
    assert.equal(await vs.setHtbQos({ ifaceId, pod: podKey, port, rateMbps: 0 }), 'removed');
    assert.equal(vs.getPort(port)!.qos, undefined);
    assert.equal(await vs.setHtbQos({ ifaceId, pod: podKey, port, rateMbps: 0 }), 'unchanged');
    assert.equal(await vs.setHtbQos({ ifaceId, pod: podKey, port, rateMbps: 3 }), 'applied');
    assert.notEqual(vs.getPort(port)!.qos, qos);
    await vs.deletePort(port);
    assert.equal(await vs.gcQos(), 0, 'the port delete already removed its QoS and Queue');
  }],
  ['netem QoS: apply, unchanged, change, remove; htb replaces netem', async ({ vs, tag }) => {
    const port = `pn${tag}`, ifaceId = `n${tag}.default`, podKey = 'default/n';
    await vs.addPodPort(pod(port, ifaceId));
    assert.equal(await vs.setNetemQos({ ifaceId, pod: podKey, port }), 'unchanged');
    assert.equal(await vs.setNetemQos({ ifaceId, pod: podKey, port, latencyMs: 10, lossPercent: 5 }), 'applied');
    assert.equal(await vs.setNetemQos({ ifaceId, pod: podKey, port, latencyMs: 10, lossPercent: 5 }), 'unchanged');
    assert.equal(await vs.setNetemQos({ ifaceId, pod: podKey, port, latencyMs: 20 }), 'applied');
    assert.equal(await vs.setNetemQos({ ifaceId, pod: podKey, port }), 'removed');
    assert.equal(vs.getPort(port)!.qos, undefined);
    assert.equal(await vs.setNetemQos({ ifaceId, pod: podKey, port, jitterMs: 3, limit: 100 }), 'applied');
    assert.equal(await vs.setHtbQos({ ifaceId, pod: podKey, port, rateMbps: 1 }), 'applied');
    assert.equal(await vs.setNetemQos({ ifaceId, pod: podKey, port, jitterMs: 3 }), 'skipped-htb-present');
    await vs.deletePort(port);
  }],
  ['deletePodQos / gcQos remove only unreferenced rows we own', async ({ vs, tag }) => {
    const a = `ga${tag}`, b = `gb${tag}`;
    await vs.addPodPort(pod(a, `ga${tag}.default`));
    await vs.addPodPort(pod(b, `gb${tag}.default`));
    await vs.setHtbQos({ ifaceId: `ga${tag}.default`, pod: 'default/ga', port: a, rateMbps: 2 });
    await vs.setHtbQos({ ifaceId: `gb${tag}.default`, pod: 'default/gb', port: b, rateMbps: 2 });
    assert.equal(await vs.deletePodQos('default/ga'), 0, 'still referenced by its port');
    assert.equal(await vs.gcQos(), 0);
    await vs.deletePort(a);
    await vs.deletePort(b);
    assert.equal(await vs.gcQos(), 0);
  }],
  ['internal port with MAC and MTU (ovn0)', async ({ vs, tag }) => {
    const name = `o${tag}`;
    const i = await vs.addInternalPort({ name, mac: '00:00:00:64:00:02', mtu: 1400, externalIds: { 'iface-id': `node-${tag}`, ip: '100.64.0.2' } });
    assert.equal(i.type, 'internal');
    assert.equal(i.mac, '00:00:00:64:00:02');
    assert.equal(i.mtuRequest, 1400);
    assert.equal(i.externalIds['iface-id'], `node-${tag}`);
    const again = await vs.addInternalPort({ name, mac: '00:00:00:64:00:03' });
    assert.equal(again.uuid, i.uuid);
    assert.equal(again.mac, '00:00:00:64:00:03');
    assert.equal(again.externalIds.ip, '100.64.0.2');
    assert.equal(await vs.deletePort(name), true);
  }],
  ['provider bridge: create with hwaddr, NIC port with trunks and tag, update keeps hwaddr, delete', async ({ vs, tag }) => {
    const br = `br-p${tag}`;
    const b = await vs.ensureBridge({ name: br, datapathType: 'netdev', hwaddrIfNew: '02:00:00:00:00:01', externalIds: { 'exchange-link-name': 'false' }, otherConfig: { 'mac-learning-fallback': 'false' } });
    assert.equal(b.externalIds.vendor, 'kube-ovn');
    assert.equal(b.externalIds['exchange-link-name'], 'false');
    assert.equal(b.otherConfig.hwaddr, '02:00:00:00:00:01');
    assert.equal(b.datapathType, 'netdev');
    assert.deepEqual(b.ports, [br]);
    const b2 = await vs.ensureBridge({ name: br, hwaddrIfNew: '02:00:00:00:00:99', otherConfig: { 'mac-learning-fallback': 'true' } });
    assert.equal(b2.uuid, b.uuid);
    assert.equal(b2.otherConfig.hwaddr, '02:00:00:00:00:01');
    assert.equal(b2.otherConfig['mac-learning-fallback'], 'true');
    const nic = await vs.addBridgePort({ bridge: br, name: `nic${tag}`, trunks: [0, 10, 20] });
    assert.deepEqual([...nic.trunks].sort((x, y) => x - y), [0, 10, 20]);
    assert.equal(nic.externalIds.vendor, 'kube-ovn');
    assert.equal(nic.bridge, br);
    const vl = await vs.addBridgePort({ bridge: br, name: `vl${tag}`, type: 'internal', tag: 10, externalIds: { 'provider-vlan-interface': 'eth1.10' } });
    assert.equal(vl.tag, 10);
    const vl2 = await vs.addBridgePort({ bridge: br, name: `vl${tag}`, tag: null });
    assert.equal(vl2.tag, undefined);
    assert.deepEqual(vs.listPorts(br).sort(), [br, `nic${tag}`, `vl${tag}`].sort());
    assert.equal(await vs.deleteBridge(br), true);
    assert.equal(vs.getBridge(br), undefined);
    assert.equal(vs.getPort(`nic${tag}`), undefined);
    assert.equal(await vs.deleteBridge(br), false);
    await assert.rejects(vs.deleteBridge('br-int'), /not owned by kube-ovn/);
    await assert.rejects(vs.addBridgePort({ bridge: `br-none${tag}`, name: `x${tag}` }), /bridge br-none\S+ does not exist/);
  }],
  ['Open_vSwitch external_ids: set and remove keys, others untouched', async ({ vs, tag }) => {
    await vs.setOvsExternalIds({ [`k1-${tag}`]: 'a', [`k2-${tag}`]: 'b', 'ovn-bridge-mappings': 'provider:br-provider' });
    let ids = vs.getOvsExternalIds();
    assert.equal(ids[`k1-${tag}`], 'a');
    assert.equal(ids['ovn-bridge-mappings'], 'provider:br-provider');
    await vs.setOvsExternalIds({ [`k1-${tag}`]: 'c' }, [`k2-${tag}`, `never-${tag}`]);
    ids = vs.getOvsExternalIds();
    assert.equal(ids[`k1-${tag}`], 'c');
    assert.equal(`k2-${tag}` in ids, false);
    assert.equal(ids['ovn-bridge-mappings'], 'provider:br-provider');
    await vs.setOvsExternalIds({}, [`k1-${tag}`, 'ovn-bridge-mappings']);
    assert.equal(`k1-${tag}` in vs.getOvsExternalIds(), false);
  }],
];
