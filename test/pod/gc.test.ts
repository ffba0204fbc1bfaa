// The pod GC reconciler on the fakes: what is stale, what is never touched.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeNetlink } from '../../agent/src/datapath/netlink/fake.ts';
import { FakeVswitch } from '../../agent/src/datapath/ovsdb/fake.ts';
import { Reconciler } from '../../agent/src/node/reconciler.ts';
import { diffGc, podGcSpec, podOwners, portsNotKept, type GcOp } from '../../agent/src/pod/gc.ts';
import type { Pod } from '../../agent/src/k8s/types.ts';

const pod = (ns: string, name: string, extra: Partial<NonNullable<Pod['metadata']>> = {}): Pod => ({ metadata: { namespace: ns, name, ...extra } });

async function world() {
  const vs = new FakeVswitch();
  const nl = new FakeNetlink();
  const port = async (cid: string, ns: string, name: string) => {
    await nl.createVeth({ name: `${cid.slice(0, 12)}_h`, peer: { name: `${cid.slice(0, 12)}_c` } });
    await vs.addPodPort({ name: `${cid.slice(0, 12)}_h`, ifaceId: `${name}.${ns}`, podName: name, podNamespace: ns, podNetns: `/var/run/netns/${cid}` });
  };
  return { vs, nl, port };
}

describe('pod GC', { timeout: 30_000 }, () => {
  it('removes ports of pods that are gone and orphan host veths; keeps live pods, KubeVirt VMs and in-flight containers', async () => {
    const w = await world();
    await w.port('aaaaaaaaaaaa01', 'default', 'alive');
    await w.port('bbbbbbbbbbbb01', 'default', 'gone');
    await w.port('cccccccccccc01', 'vms', 'vm1');        // KubeVirt: the port carries the VM name
    await w.port('dddddddddddd01', 'default', 'adding');  // pod not in the cache yet, but its ADD is in flight
    await w.nl.createVeth({ name: 'eeeeeeeeeeee_h', peer: { name: 'eeeeeeeeeeee_c' } }); // veth whose port was never added
    await w.nl.createVeth({ name: 'foreign0', peer: { name: 'foreign1' } });             // not ours
    const pods = [pod('default', 'alive'), pod('vms', 'virt-launcher-vm1-xyz', { labels: { 'vm.kubevirt.io/name': 'vm1' } })];
    const inFlight = ['dddddddddddd01ffff'];
    const removed: [string, number][] = [];
    const spec = podGcSpec({
      vswitch: w.vs, netlink: w.nl, listPods: () => pods, podsSynced: () => true, inFlight: () => inFlight,
      removePort: async (port) => { await w.vs.deletePort(port); await w.nl.deleteLink(null, port, { ignoreMissing: true }); },
      gcQos: () => w.vs.gcQos(), onRemoved: (k, n) => removed.push([k, n]),
    });
    const r = new Reconciler(spec, { resyncMs: 0 });
    const first = await r.runNow();
    assert.equal(first.changes, 3, 'one port, one veth, one QoS sweep');
    assert.deepEqual(w.vs.listPorts('br-int').filter((p) => p.endsWith('_h')).sort(), ['aaaaaaaaaaaa_h', 'cccccccccccc_h', 'dddddddddddd_h']);
    const links = (await w.nl.listLinks(null)).map((l) => l.name);
    assert.ok(!links.includes('bbbbbbbbbbbb_h') && !links.includes('eeeeeeeeeeee_h'));
    assert.ok(links.includes('foreign0') && links.includes('dddddddddddd_h'));
    assert.deepEqual(removed, [['port', 1], ['veth', 1]]);
    assert.equal((await r.runNow()).changes, 0, 'converged');
  });

  it('does nothing while the pod cache is not synced (everything would look stale)', () => {
    const ops = diffGc({ synced: false, owners: new Set() }, {
      ports: [{ uuid: 'u', name: 'aaaaaaaaaaaa_h', type: '', ofport: 1, error: undefined, linkState: 'up', mac: undefined, mtuRequest: undefined,
        ingressPolicingRate: 0, ingressPolicingBurst: 0, externalIds: { vendor: 'kube-ovn', pod_name: 'p', pod_namespace: 'n' } }],
      hostVeths: ['bbbbbbbbbbbb_h'], first: true,
    }, []);
    assert.deepEqual(ops, []);
  });

  it('a port whose device is gone goes even if its pod lives; foreign and internal ports never', () => {
    const base = { uuid: 'u', type: '', ofport: 1, linkState: 'down', mac: undefined, mtuRequest: undefined, ingressPolicingRate: 0, ingressPolicingBurst: 0 };
    const ops = diffGc({ synced: true, owners: new Set(['n/p']) }, {
      ports: [
        { ...base, name: 'aaaaaaaaaaaa_h', error: 'could not open network device aaaaaaaaaaaa_h (No such device)', externalIds: { vendor: 'kube-ovn', pod_name: 'p', pod_namespace: 'n' } },
        { ...base, name: 'bbbbbbbbbbbb_h', error: undefined, externalIds: { vendor: 'someone-else', pod_name: 'x', pod_namespace: 'n' } },
        { ...base, name: 'ovn0', type: 'internal', error: undefined, externalIds: { vendor: 'kube-ovn' } },
      ],
      hostVeths: [], first: false,
    }, []);
    assert.deepEqual(ops, [{ kind: 'port', port: 'aaaaaaaaaaaa_h', pod: 'n/p', why: 'the device is gone' }, { kind: 'qos' }] satisfies GcOp[]);
  });

  it('owners include KubeVirt VM names; CNI GC keeps listed containers', async () => {
    assert.deepEqual([...podOwners([pod('a', 'p'), pod('b', 'l', { annotations: { 'kubevirt.io/domain': 'vm9' } })])].sort(), ['a/p', 'b/l', 'b/vm9']);
    const w = await world();
    await w.port('aaaaaaaaaaaa01', 'default', 'p1');
    await w.port('bbbbbbbbbbbb01', 'default', 'p2');
    assert.deepEqual(portsNotKept(w.vs, ['aaaaaaaaaaaa01']), ['bbbbbbbbbbbb_h']);
  });
});
