// The watch caches keep only the fields the agent reads (k8s/slim.ts, declared in k8s/types.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { slimNode, slimPod, slimSubnet } from '../../agent/src/k8s/slim.ts';
import type { Node, Pod, Subnet } from '../../agent/src/k8s/types.ts';

const managedFields = [{ manager: 'kubelet', operation: 'Update', fieldsV1: { 'f:status': {} } }];
const meta = { name: 'x', namespace: 'default', uid: 'u1', resourceVersion: '7', labels: { a: 'b' }, annotations: { 'ovn.kubernetes.io/ip_address': '10.16.0.9' },
  managedFields, creationTimestamp: '2026-01-01T00:00:00Z', ownerReferences: [{ kind: 'ReplicaSet' }] };

test('a Pod keeps its identity, labels, annotations and node binding; containers, status and managedFields go', () => {
  const raw = { apiVersion: 'v1', kind: 'Pod', metadata: meta, spec: { nodeName: 'n1', hostNetwork: false, containers: [{ name: 'c' }] },
    status: { phase: 'Running', podIPs: [{ ip: '10.16.0.9' }] } } as unknown as Pod;
  assert.deepEqual(slimPod(raw), {
    metadata: { name: 'x', namespace: 'default', uid: 'u1', resourceVersion: '7', labels: { a: 'b' }, annotations: { 'ovn.kubernetes.io/ip_address': '10.16.0.9' } },
    spec: { nodeName: 'n1', hostNetwork: false },
  });
});

test('a Node keeps metadata, addresses and only the NetworkUnavailable condition', () => {
  const raw = { metadata: { ...meta, namespace: undefined, deletionTimestamp: '2026-01-02T00:00:00Z' },
    status: {
      addresses: [{ type: 'InternalIP', address: '172.18.0.2' }, { type: 'Hostname', address: 'n1' }],
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'ok' },
        { type: 'NetworkUnavailable', status: 'False', reason: 'RouteCreated', message: 'ovn0 ok', lastHeartbeatTime: 't' }],
      images: [{ names: ['a'], sizeBytes: 1 }], capacity: { cpu: '2' },
    } } as unknown as Node;
  assert.deepEqual(slimNode(raw), {
    metadata: { name: 'x', uid: 'u1', resourceVersion: '7', labels: { a: 'b' }, annotations: { 'ovn.kubernetes.io/ip_address': '10.16.0.9' }, deletionTimestamp: '2026-01-02T00:00:00Z' },
    status: { addresses: [{ type: 'InternalIP', address: '172.18.0.2' }, { type: 'Hostname', address: 'n1' }],
      conditions: [{ type: 'NetworkUnavailable', status: 'False', reason: 'RouteCreated', message: 'ovn0 ok' }] },
  });
});

test('a Subnet keeps its whole spec and the status fields the agent reads; IP usage goes', () => {
  const spec = { provider: 'ovn', cidrBlock: '10.16.0.0/16', gateway: '10.16.0.1', natOutgoing: true, gatewayType: 'distributed', enableLb: true };
  const raw = { metadata: { ...meta, namespace: undefined }, spec,
    status: { v4availableIPs: 65000, v4usingIPrange: '10.16.0.2-10.16.0.200', u2oInterconnectionIP: '10.16.0.254', u2oInterconnectionMAC: '0a:00:00:00:00:fe', activateGateway: 'n1',
      natOutgoingPolicyRules: [{ action: 'forward' }], conditions: [{ type: 'Validated', status: 'True', reason: 'ValidatedSuccessfully', lastUpdateTime: 't' }] } } as unknown as Subnet;
  const s = slimSubnet(raw);
  assert.deepEqual(s.spec, spec);
  assert.deepEqual(s.status, { u2oInterconnectionIP: '10.16.0.254', u2oInterconnectionMAC: '0a:00:00:00:00:fe', activateGateway: 'n1', natOutgoingPolicyRules: [{ action: 'forward' }],
    conditions: [{ type: 'Validated', status: 'True' }] });
  assert.equal((s.metadata as Record<string, unknown>).managedFields, undefined);
});
