import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InMemoryPodSource } from '../../agent/src/k8s/fake-pod-source.ts';
import type { Node, Subnet } from '../../agent/src/k8s/types.ts';
import { nodeNetworks, prepareAdd, type PrepareDeps } from '../../agent/src/pod/prepare.ts';
import type { NicRequest } from '../../agent/src/pod/plan.ts';
import { AgentError } from '../../agent/src/errors.ts';

const subnets: Subnet[] = [
  { metadata: { name: 'ovn-default' }, spec: { provider: 'ovn', mtu: 1300 } },
  { metadata: { name: 'attach' }, spec: { provider: 'attachnet.default.ovn', nodeNetwork: 'storage' } },
  { metadata: { name: 'mv' }, spec: { provider: 'macvlan.default' } },
];
const node: Node = { metadata: { name: 'n1', labels: {}, annotations: { 'ovn.kubernetes.io/node_networks': '{"storage":"192.168.9.5"}' } } };
const deps = (pods: InMemoryPodSource, over: Partial<PrepareDeps> = {}): PrepareDeps => ({
  pods, subnets: () => subnets, node: () => node, annotationWaitTimeoutMs: 2000,
  nodeFacts: { mtu: 1400, datapathType: 'netdev', enableArpDetectIpConflict: true, ovnInstalledTimeoutMs: 30_000, gatewayCheckTimeoutMs: 30_000 },
  ...over,
});
const req = (over: Partial<NicRequest> = {}): NicRequest => ({ containerId: 'abcdef0123456789', netns: '/var/run/netns/x', ifName: 'eth0',
  podName: 'p', podNamespace: 'default', provider: 'ovn', cniType: 'kube-ovn', routes: null, ...over });
const ann = (p: string, kv: Record<string, string>) => Object.fromEntries(Object.entries(kv).map(([k, v]) => [`${p}.kubernetes.io/${k}`, v]));

async function rejection(p: Promise<unknown>): Promise<AgentError> {
  try { await p; } catch (e) { assert.ok(e instanceof AgentError, String(e)); return e; }
  assert.fail('expected a rejection');
}

describe('prepareAdd', () => {
  it('waits for the annotations, then plans with the subnet and node facts', async () => {
    const pods = new InMemoryPodSource();
    const p = prepareAdd(deps(pods), req());
    pods.annotate('default', 'p', ann('ovn', { allocated: 'true', ip_address: '10.16.0.9', mac_address: '00:00:00:00:00:09',
      cidr: '10.16.0.0/16', gateway: '10.16.0.1', logical_switch: 'ovn-default', routed: 'true' }));
    const r = await p;
    assert.equal(r.plan.kind, 'ovn');
    if (r.plan.kind !== 'ovn') return;
    assert.equal(r.plan.mtu, 1300);
    assert.equal(r.plan.txChecksumOff, true);
    assert.deepEqual(r.plan.ipCr, { name: 'p.default', subnet: 'ovn-default' });
  });
  it('uses the provider-bound subnet and the node networks for attachments', async () => {
    const pods = new InMemoryPodSource();
    pods.annotate('default', 'p', ann('attachnet.default.ovn', { allocated: 'true', ip_address: '172.17.0.5', mac_address: '00:00:00:00:00:05',
      cidr: '172.17.0.0/24', gateway: '172.17.0.1', logical_switch: 'attach' }));
    const r = await prepareAdd(deps(pods), req({ provider: 'attachnet.default.ovn', ifName: 'net1' }));
    assert.equal(r.plan.kind === 'ovn' && r.plan.externalIds['encap-ip'], '192.168.9.5');
    assert.equal(r.via, 'cache', 'answered from the cache');
  });
  it('IPAM-only provider', async () => {
    const pods = new InMemoryPodSource();
    pods.annotate('default', 'p', ann('macvlan.default', { allocated: 'true', ip_address: '172.18.0.7', cidr: '172.18.0.0/24', gateway: '172.18.0.1' }));
    const r = await prepareAdd(deps(pods), req({ provider: 'macvlan.default', ifName: 'net1', cniType: 'macvlan' }));
    assert.equal(r.plan.kind, 'ipam');
    assert.deepEqual(r.plan.result.ips, [{ address: '172.18.0.7/24' }]);
    assert.equal(r.plan.ipCr?.subnet, 'mv');
  });
  it('rejects an unbound provider before waiting, and a subnet missing from the cache', async () => {
    const pods = new InMemoryPodSource();
    const e = await rejection(prepareAdd(deps(pods), req({ provider: 'nope.default', ifName: 'net1' })));
    assert.equal(e.code, 'KOA_PROVIDER_UNBOUND');
    assert.equal(e.message, 'provider nope.default is not bound to any subnet');
    pods.annotate('default', 'p', ann('ovn', { allocated: 'true', ip_address: '10.16.0.9', mac_address: '00:00:00:00:00:09',
      cidr: '10.16.0.0/16', gateway: '10.16.0.1', logical_switch: 'gone', routed: 'true' }));
    const e2 = await rejection(prepareAdd(deps(pods), req()));
    assert.equal(e2.code, 'KOA_K8S');
    assert.match(e2.message, /subnet gone/);
  });

  it('while the Subnet cache has not synced, a missing subnet or provider is "try again" (code 11), not an answer', async () => {
    const pods = new InMemoryPodSource();
    const unsynced = { subnets: () => [], subnetsSynced: () => false };
    const e = await rejection(prepareAdd(deps(pods, unsynced), req({ provider: 'attachnet.default.ovn', ifName: 'net1' })));
    assert.equal(e.code, 'KOA_TRY_AGAIN');
    assert.equal(e.cniCode, 11);
    pods.annotate('default', 'p', ann('ovn', { allocated: 'true', ip_address: '10.16.0.9', mac_address: '00:00:00:00:00:09',
      cidr: '10.16.0.0/16', gateway: '10.16.0.1', logical_switch: 'ovn-default', routed: 'true' }));
    const e2 = await rejection(prepareAdd(deps(pods, unsynced), req()));
    assert.equal(e2.code, 'KOA_TRY_AGAIN');
    assert.match(e2.message, /has not synced yet .*subnet ovn-default/);
    const ok = await prepareAdd(deps(pods, { subnetsSynced: () => true }), req());
    assert.equal(ok.plan.steps.length > 0, true, 'synced: planned as before');
  });
  it('parses node networks defensively', () => {
    assert.deepEqual(nodeNetworks(node), { storage: '192.168.9.5' });
    assert.deepEqual(nodeNetworks({ metadata: { annotations: { 'ovn.kubernetes.io/node_networks': '[1]' } } }), {});
    assert.deepEqual(nodeNetworks({ metadata: { annotations: { 'ovn.kubernetes.io/node_networks': '{' } } }), {});
    assert.deepEqual(nodeNetworks(undefined), {});
  });
});
