// Dynamic QoS on the fakes: a running pod's rate annotations changed and removed are applied to its port, with
// PodQoSUpdated; pods not in the cache and ports with an ADD in flight are left alone.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeVswitch } from '../../agent/src/datapath/ovsdb/fake.ts';
import type { AgentEvent } from '../../agent/src/k8s/events.ts';
import type { Pod } from '../../agent/src/k8s/types.ts';
import { Reconciler } from '../../agent/src/node/reconciler.ts';
import { portNic, qosSyncSpec } from '../../agent/src/pod/qos-sync.ts';

const base = { 'ovn.kubernetes.io/allocated': 'true', 'ovn.kubernetes.io/ip_address': '10.16.0.9', 'ovn.kubernetes.io/mac_address': '00:00:00:00:00:09',
  'ovn.kubernetes.io/cidr': '10.16.0.0/16', 'ovn.kubernetes.io/gateway': '10.16.0.1', 'ovn.kubernetes.io/logical_switch': 'ovn-default', 'ovn.kubernetes.io/routed': 'true' };

describe('dynamic QoS', { timeout: 30_000 }, () => {
  it('follows the annotations of a running pod (set, changed, removed) and emits PodQoSUpdated', async () => {
    const vs = new FakeVswitch();
    await vs.addPodPort({ name: 'aaaaaaaaaaaa_h', ifaceId: 'p1.default', podName: 'p1', podNamespace: 'default', podNetns: '/var/run/netns/x' });
    let pod: Pod = { metadata: { name: 'p1', namespace: 'default', uid: 'u1', annotations: { ...base } } };
    const events: AgentEvent[] = [];
    const busy = new Set<string>();
    const r = new Reconciler(qosSyncSpec({ vswitch: vs, podOf: (ns, n) => (ns === 'default' && n === 'p1' ? pod : undefined),
      events: { record: (e) => { events.push(e); return true; } }, busy: (p) => busy.has(p) }), { resyncMs: 0 });
    await r.runNow();
    assert.equal(vs.getInterface('aaaaaaaaaaaa_h')!.ingressPolicingRate, 0);
    const set = async (a: Record<string, string>) => { pod = { ...pod, metadata: { ...pod.metadata, annotations: { ...base, ...a } } }; return r.runNow(); };
    await set({ 'ovn.kubernetes.io/egress_rate': '10', 'ovn.kubernetes.io/ingress_rate': '20' });
    assert.equal(vs.getInterface('aaaaaaaaaaaa_h')!.ingressPolicingRate, 10_000);
    const qosRow = () => [...vs.qos.values()].find((q) => q.externalIds['iface-id'] === 'p1.default');
    assert.ok(qosRow(), 'htb QoS row for ingress');
    await set({ 'ovn.kubernetes.io/egress_rate': '30', 'ovn.kubernetes.io/ingress_rate': '20' });
    assert.equal(vs.getInterface('aaaaaaaaaaaa_h')!.ingressPolicingRate, 30_000);
    await set({});
    assert.equal(vs.getInterface('aaaaaaaaaaaa_h')!.ingressPolicingRate, 0);
    assert.equal(qosRow(), undefined, 'removed with the annotation');
    assert.deepEqual(events.map((e) => [e.reason, e.target.uid]), [['PodQoSUpdated', 'u1'], ['PodQoSUpdated', 'u1'], ['PodQoSUpdated', 'u1']]);
    assert.equal((await r.runNow()).changes, 0, 'converged: nothing rewritten');
    busy.add('aaaaaaaaaaaa_h');
    await set({ 'ovn.kubernetes.io/egress_rate': '5' });
    assert.equal(vs.getInterface('aaaaaaaaaaaa_h')!.ingressPolicingRate, 0, 'an ADD in flight sets its own QoS');
  });

  it('provider and interface of a port from its iface-id and name', () => {
    const i = (name: string, id: string) => ({ uuid: 'u', name, type: '', ofport: 1, error: undefined, linkState: 'up', mac: undefined, mtuRequest: undefined,
      ingressPolicingRate: 0, ingressPolicingBurst: 0, externalIds: { 'iface-id': id, pod_name: 'p', pod_namespace: 'n' } });
    assert.deepEqual(portNic(i('aaaaaaaaaaaa_h', 'p.n')), { provider: 'ovn', ifName: 'eth0' });
    assert.deepEqual(portNic(i('aaaaaaa_net1_h', 'p.n.attach.ns.ovn')), { provider: 'attach.ns.ovn', ifName: 'net1' });
    assert.equal(portNic(i('aaaaaaaaaaaa_h', 'other.n')), undefined);
  });
});
