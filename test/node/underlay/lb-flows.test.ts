// External-LB OpenFlow flows (spec §5.17), pure parts: the planner's table, the dump parser, the diff and the
// bundle lines; and the spec over a FakeVswitch and a recording OpenFlow (no pass before the lists; one bundle per
// bridge, deletes first; priority-10001 flows deleted once). The real vswitchd run is
// integration/node/underlay-lb-flows.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_LB_MAC, desiredLbFlows, diffLbFlows, flowKey, lbFlowsSpec, opLine, parseDumpedFlow, subnetsKey,
  type LbFlow, type LbPlanInput,
} from '../../../agent/src/node/underlay/lb-flows.ts';
import { Reconciler } from '../../../agent/src/node/reconciler.ts';
import { FakeVswitch } from '../../../agent/src/datapath/ovsdb/fake.ts';
import type { OpenFlow } from '../../../agent/src/datapath/ovsdb/ofctl.ts';
import { EXTERNAL_IP_FROM_SUBNET, slimService } from '../../../agent/src/k8s/slim.ts';
import type { Service, Subnet } from '../../../agent/src/k8s/types.ts';
import type { ProviderNetwork, Vlan } from '../../../agent/src/node/underlay/types.ts';

const svc = (name: string, subnet: string | undefined, ips: string[], ports: { port?: number; protocol?: string }[]): Service => ({
  metadata: { name, namespace: 'default', ...(subnet ? { annotations: { [EXTERNAL_IP_FROM_SUBNET]: subnet } } : {}) },
  spec: { ports }, status: { loadBalancer: { ingress: ips.map((ip) => ({ ip })) } },
});
const subnet = (name: string, spec: Subnet['spec'], mac?: string): Subnet => ({ metadata: { name }, spec, ...(mac ? { status: { u2oInterconnectionMAC: mac } } : {}) });
const vlans: Vlan[] = [{ metadata: { name: 'vl10' }, spec: { id: 10, provider: 'phys' } }, { metadata: { name: 'vlx' }, spec: { id: 11, provider: 'ex' } },
  { metadata: { name: 'vlgone' }, spec: { id: 12, provider: 'gone' } }, { metadata: { name: 'vlnoprov' }, spec: { id: 13 } },
  { metadata: { name: 'vlexcl' }, spec: { id: 14, provider: 'excl' } }];
const pns: ProviderNetwork[] = [
  { metadata: { name: 'phys' }, spec: { defaultInterface: 'eth1' } },
  { metadata: { name: 'ex' }, spec: { defaultInterface: 'eth2', exchangeLinkName: true } },
  { metadata: { name: 'excl' }, spec: { defaultInterface: 'eth3', excludeNodes: ['n1'] } },
];
/** OVS as the planner sees it: bridge -> port -> ofport; br-foreign is not ours */
const ovs: Record<string, Record<string, number>> = {
  'br-phys': { eth1: 1, 'patch-localnet.s1-to-br-int': 2, 'patch-localnet.s2-to-br-int': 3 },
  eth2: { 'br-ex': 5, 'patch-localnet.sx-to-br-int': 6 },
  'br-excl': { eth3: 1, 'patch-localnet.se-to-br-int': 2 },
};
const input = (services: Service[], subnets: Subnet[], over: Partial<LbPlanInput> = {}): LbPlanInput => ({
  services, subnets, vlans, providerNetworks: pns, node: { metadata: { name: 'n1' } }, nodeName: 'n1',
  owned: (b) => b in ovs, ofport: (b, i) => ovs[b]?.[i], ...over,
});
const flow = (bridge: string, match: string, actions: string, cookie = '0x1000'): LbFlow => ({ bridge, cookie, table: 0, match, actions });

test('planner: each ingress IP x TCP/UDP port of an annotated Service on an enabled VLAN subnet is a flow on its bridge', () => {
  const subnets = [subnet('s1', { vlan: 'vl10', enableExternalLBAddress: true }, '0A:00:00:00:00:FE'), subnet('s2', { vlan: 'vl10', enableExternalLBAddress: true })];
  const got = desiredLbFlows(input([
    svc('a', 's1', ['10.0.0.5', 'fd00:0:0:0::5', 'lb.example.com'], [{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }, { port: 9, protocol: 'SCTP' }, { port: 443 }]),
    svc('b', 's2', ['10.0.1.9'], [{ port: 8080, protocol: 'TCP' }, { port: 0 }, { port: 70000 }]),
  ], subnets));
  assert.deepEqual(got.map((f) => `${f.bridge} ${f.cookie} ${f.match} ${f.actions}`).sort(), [
    'br-phys 0x1000 priority=10000,tcp,in_port=1,nw_dst=10.0.0.5,tp_dst=443 mod_dl_dst:0a:00:00:00:00:fe,output:2',
    'br-phys 0x1000 priority=10000,tcp,in_port=1,nw_dst=10.0.0.5,tp_dst=80 mod_dl_dst:0a:00:00:00:00:fe,output:2',
    `br-phys 0x1000 priority=10000,tcp,in_port=1,nw_dst=10.0.1.9,tp_dst=8080 mod_dl_dst:${DEFAULT_LB_MAC},output:3`,
    'br-phys 0x1001 priority=10000,tcp6,in_port=1,ipv6_dst=fd00::5,tp_dst=443 mod_dl_dst:0a:00:00:00:00:fe,output:2',
    'br-phys 0x1001 priority=10000,tcp6,in_port=1,ipv6_dst=fd00::5,tp_dst=80 mod_dl_dst:0a:00:00:00:00:fe,output:2',
    'br-phys 0x1000 priority=10000,udp,in_port=1,nw_dst=10.0.0.5,tp_dst=53 mod_dl_dst:0a:00:00:00:00:fe,output:2',
    'br-phys 0x1001 priority=10000,udp6,in_port=1,ipv6_dst=fd00::5,tp_dst=53 mod_dl_dst:0a:00:00:00:00:fe,output:2',
  ].sort());
  assert.deepEqual(got, [...got].sort((a, b) => flowKey(a).localeCompare(flowKey(b))), 'in a stable order');
});

test('planner: nothing for what is not enabled, not VLAN, not resolvable, excluded, not ours or not numbered yet', () => {
  const one = (s: Subnet, over: Partial<LbPlanInput> = {}, name = s.metadata!.name!) =>
    desiredLbFlows(input([svc('a', name, ['10.0.0.5'], [{ port: 80 }])], [s], over)).length;
  assert.equal(one(subnet('s1', { vlan: 'vl10', enableExternalLBAddress: true })), 1, 'the control case');
  const cases: [string, number][] = [
    ['no enableExternalLBAddress', one(subnet('s1', { vlan: 'vl10' }))],
    ['enableExternalLBAddress false', one(subnet('s1', { vlan: 'vl10', enableExternalLBAddress: false }))],
    ['overlay subnet (no vlan)', one(subnet('s1', { enableExternalLBAddress: true }))],
    ['Vlan missing', one(subnet('s1', { vlan: 'nope', enableExternalLBAddress: true }))],
    ['Vlan without provider', one(subnet('s1', { vlan: 'vlnoprov', enableExternalLBAddress: true }))],
    ['ProviderNetwork missing', one(subnet('s1', { vlan: 'vlgone', enableExternalLBAddress: true }))],
    ['node excluded', one(subnet('se', { vlan: 'vlexcl', enableExternalLBAddress: true }))],
    ['Subnet missing', one(subnet('s1', { vlan: 'vl10', enableExternalLBAddress: true }), {}, 'other')],
    ['bridge not ours', one(subnet('s1', { vlan: 'vl10', enableExternalLBAddress: true }), { owned: () => false })],
    ['patch port not numbered', one(subnet('s1', { vlan: 'vl10', enableExternalLBAddress: true }), { ofport: (b, i) => (i.startsWith('patch') ? undefined : ovs[b]?.[i]) })],
    ['NIC port not numbered', one(subnet('s1', { vlan: 'vl10', enableExternalLBAddress: true }), { ofport: (b, i) => (i === 'eth1' ? undefined : ovs[b]?.[i]) })],
  ];
  assert.deepEqual(cases.filter(([, n]) => n !== 0), []);
  assert.equal(desiredLbFlows(input([svc('a', undefined, ['10.0.0.5'], [{ port: 80 }])], [subnet('s1', { vlan: 'vl10', enableExternalLBAddress: true })])).length, 0, 'no annotation');
});

test('planner: exchangeLinkName puts the flow on the bridge named like the NIC, in_port = the renamed NIC br-<pn>', () => {
  const got = desiredLbFlows(input([svc('a', 'sx', ['10.0.0.7'], [{ port: 80 }])], [subnet('sx', { vlan: 'vlx', enableExternalLBAddress: true })]));
  assert.deepEqual(got, [flow('eth2', 'priority=10000,tcp,in_port=5,nw_dst=10.0.0.7,tp_dst=80', `mod_dl_dst:${DEFAULT_LB_MAC},output:6`)]);
});

test('planner: two Services with the same IP and port give one flow (the first by namespace/name)', () => {
  const subnets = [subnet('s1', { vlan: 'vl10', enableExternalLBAddress: true }), subnet('s2', { vlan: 'vl10', enableExternalLBAddress: true })];
  const got = desiredLbFlows(input([svc('z', 's2', ['10.0.0.5'], [{ port: 80 }]), svc('a', 's1', ['10.0.0.5'], [{ port: 80 }])], subnets));
  assert.deepEqual(got.map((f) => f.actions), [`mod_dl_dst:${DEFAULT_LB_MAC},output:2`]);
});

test('dump parsing: cookie (0 when absent), table, the match and the actions of ovs-ofctl --no-stats lines; other lines none', () => {
  assert.deepEqual(parseDumpedFlow('b', ' cookie=0x1000, priority=10000,tcp,in_port=1,nw_dst=10.0.0.5,tp_dst=80 actions=mod_dl_dst:00:00:00:01:00:01,output:2'),
    flow('b', 'priority=10000,tcp,in_port=1,nw_dst=10.0.0.5,tp_dst=80', 'mod_dl_dst:00:00:00:01:00:01,output:2'));
  assert.deepEqual(parseDumpedFlow('b', ' priority=10001,ip,in_port=1 actions=NORMAL'), flow('b', 'priority=10001,ip,in_port=1', 'NORMAL', '0x0'));
  assert.deepEqual(parseDumpedFlow('b', ' cookie=0xFFFFFFFFFFFFFFFF, table=3, priority=5 actions=drop'), { bridge: 'b', cookie: '0xffffffffffffffff', table: 3, match: 'priority=5', actions: 'drop' });
  assert.deepEqual(parseDumpedFlow('b', ' actions=NORMAL'), flow('b', '', 'NORMAL', '0x0'));
  assert.equal(parseDumpedFlow('b', 'NXST_FLOW reply (xid=0x4):'), undefined);
  assert.equal(parseDumpedFlow('b', ''), undefined);
});

test('flow identity: bridge, table and match, whatever the field order or IPv6 spelling', () => {
  assert.equal(flowKey(flow('b', 'priority=10000,in_port=1,tcp6,ipv6_dst=FD00:0::5,tp_dst=80', '')), flowKey(flow('b', 'priority=10000,tcp6,in_port=1,ipv6_dst=fd00::5,tp_dst=80', '')));
  assert.notEqual(flowKey(flow('b', 'priority=10000,tcp,in_port=1', '')), flowKey(flow('c', 'priority=10000,tcp,in_port=1', '')));
  assert.notEqual(flowKey(flow('b', 'priority=10000,tcp,in_port=1', '')), flowKey({ ...flow('b', 'priority=10000,tcp,in_port=1', ''), table: 1 }));
});

test('diff: missing and changed flows are added, stale ones and obsolete ones deleted, unread bridges left alone', () => {
  const A = flow('br-a', 'priority=10000,tcp,in_port=1,nw_dst=10.0.0.5,tp_dst=80', 'mod_dl_dst:00:00:00:01:00:01,output:2');
  const B = flow('br-a', 'priority=10000,udp,in_port=1,nw_dst=10.0.0.5,tp_dst=53', 'mod_dl_dst:00:00:00:01:00:01,output:2');
  const stale = flow('br-a', 'priority=10000,tcp,in_port=1,nw_dst=10.0.0.9,tp_dst=80', 'mod_dl_dst:00:00:00:01:00:01,output:2');
  const old = flow('br-a', 'priority=10001,ip,in_port=1', 'NORMAL', '0x0');
  const elsewhere = flow('br-z', 'priority=10000,tcp,in_port=1,nw_dst=10.0.0.1,tp_dst=80', 'output:2');
  assert.deepEqual(diffLbFlows([A, B, elsewhere], { flows: [A, stale], obsolete: [old], bridges: ['br-a'] }), [
    { op: 'del', flow: old }, { op: 'del', flow: stale }, { op: 'add', flow: B },
  ]);
  const moved = { ...A, actions: 'mod_dl_dst:0a:00:00:00:00:01,output:2' };
  assert.deepEqual(diffLbFlows([moved], { flows: [A], obsolete: [], bridges: ['br-a'] }), [{ op: 'add', flow: moved }], 'an add replaces the actions');
  assert.deepEqual(diffLbFlows([A], { flows: [{ ...A, actions: 'MOD_DL_DST:00:00:00:01:00:01,output:2' }], obsolete: [], bridges: ['br-a'] }), [], 'converged');
});

test('bundle lines: add with the cookie; delete_strict restricted to the exact cookie (and the table when not 0)', () => {
  const A = flow('b', 'priority=10000,tcp,in_port=1,nw_dst=10.0.0.5,tp_dst=80', 'mod_dl_dst:00:00:00:01:00:01,output:2');
  assert.equal(opLine({ op: 'add', flow: A }), 'add cookie=0x1000,priority=10000,tcp,in_port=1,nw_dst=10.0.0.5,tp_dst=80,actions=mod_dl_dst:00:00:00:01:00:01,output:2');
  assert.equal(opLine({ op: 'del', flow: A }), 'delete_strict cookie=0x1000/-1,priority=10000,tcp,in_port=1,nw_dst=10.0.0.5,tp_dst=80');
  assert.equal(opLine({ op: 'del', flow: { ...A, cookie: '0x0', table: 2 } }), 'delete_strict cookie=0x0/-1,table=2,priority=10000,tcp,in_port=1,nw_dst=10.0.0.5,tp_dst=80');
});

test('a Subnet event matters only when an enabled subnet, its vlan or MAC changes', () => {
  const s = [subnet('s1', { vlan: 'vl10', enableExternalLBAddress: true }, '0a:00:00:00:00:01'), subnet('s2', { vlan: 'vl10' })];
  assert.equal(subnetsKey(s), subnetsKey([...s].reverse()));
  assert.equal(subnetsKey(s), subnetsKey([s[0]!, subnet('s2', { vlan: 'vl10', cidrBlock: '10.1.0.0/16' })]));
  assert.notEqual(subnetsKey(s), subnetsKey([subnet('s1', { vlan: 'vl10', enableExternalLBAddress: true }, '0a:00:00:00:00:02')]));
});

test('slimService: only annotated Services keep ports and ingress IPs; the rest is identity only', () => {
  const raw = {
    metadata: { name: 'a', namespace: 'd', uid: 'u', resourceVersion: '3', labels: { x: 'y' }, annotations: { [EXTERNAL_IP_FROM_SUBNET]: 's1', other: 'z' }, managedFields: [{}] },
    spec: { ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080, nodePort: 30080 }], selector: { app: 'a' }, type: 'LoadBalancer' },
    status: { loadBalancer: { ingress: [{ ip: '10.0.0.5', ipMode: 'VIP' }, { hostname: 'h.example.com' }] } },
  } as unknown as Service;
  assert.deepEqual(slimService(raw), {
    metadata: { name: 'a', namespace: 'd', uid: 'u', resourceVersion: '3', annotations: { [EXTERNAL_IP_FROM_SUBNET]: 's1' } },
    spec: { ports: [{ port: 80, protocol: 'TCP' }] }, status: { loadBalancer: { ingress: [{ ip: '10.0.0.5' }] } },
  });
  const plain = { ...raw, metadata: { ...raw.metadata, annotations: { other: 'z' } } };
  assert.deepEqual(slimService(plain), { metadata: { name: 'a', namespace: 'd', uid: 'u', resourceVersion: '3' } });
});

/** An OpenFlow that keeps a flow table per bridge and applies bundle lines the way ovs-ofctl does for these shapes. */
class TableOpenFlow implements OpenFlow {
  readonly tables = new Map<string, string[]>();
  readonly calls: string[] = [];
  async dumpFlows(bridge: string, filter?: string): Promise<string[]> {
    this.calls.push(`dump ${bridge}${filter ? ` ${filter}` : ''}`);
    const rows = this.tables.get(bridge) ?? [];
    return filter ? rows.filter((r) => / cookie=0x100[01],/.test(r)) : rows;
  }
  async bundle(bridge: string, lines: readonly string[]): Promise<void> {
    this.calls.push(`bundle ${bridge}: ${lines.join(' | ')}`);
    let rows = this.tables.get(bridge) ?? [];
    for (const l of lines) {
      const del = /^delete_strict cookie=(0x[0-9a-f]+)\/-1,(.*)$/.exec(l);
      if (del) { rows = rows.filter((r) => { const f = parseDumpedFlow(bridge, r)!; return !(f.cookie === del[1] && f.match === del[2]); }); continue; }
      const add = /^add cookie=(0x[0-9a-f]+),(.*),actions=(.*)$/.exec(l)!;
      rows = rows.filter((r) => parseDumpedFlow(bridge, r)!.match !== add[2]);
      rows.push(` cookie=${add[1]}, ${add[2]} actions=${add[3]}`);
    }
    this.tables.set(bridge, rows);
  }
}

test('spec: no pass before the lists; then one bundle per bridge of ours, deletes first; priority 10001 deleted once', async () => {
  const vs = new FakeVswitch({ bridges: ['br-int'] });
  await vs.ensureBridge({ name: 'br-phys' });
  await vs.addBridgePort({ bridge: 'br-phys', name: 'eth1' });
  await vs.addBridgePort({ bridge: 'br-phys', name: 'patch-localnet.s1-to-br-int', type: 'patch' });
  const inPort = vs.getInterface('eth1')!.ofport!;
  const outPort = vs.getInterface('patch-localnet.s1-to-br-int')!.ofport!;
  const of = new TableOpenFlow();
  of.tables.set('br-phys', [' priority=10001,ip,in_port=1 actions=NORMAL', ' cookie=0x1000, priority=10000,tcp,in_port=1,nw_dst=10.9.9.9,tp_dst=80 actions=output:2', ' priority=0 actions=NORMAL']);
  of.tables.set('br-int', [' cookie=0x1000, priority=10000,tcp,in_port=1,nw_dst=10.9.9.9,tp_dst=80 actions=output:2']);
  let synced = false;
  const services = [svc('a', 's1', ['10.0.0.5'], [{ port: 80 }])];
  const r = new Reconciler(lbFlowsSpec({
    nodeName: 'n1', synced: () => synced, services: () => services, subnets: () => [subnet('s1', { vlan: 'vl10', enableExternalLBAddress: true })],
    vlans: () => vlans, providerNetworks: () => pns, node: () => ({ metadata: { name: 'n1' } }), vswitch: () => vs, openflow: of,
  }), { resyncMs: 0 });
  assert.equal((await r.runNow()).changes, 0);
  assert.deepEqual(of.calls, [], 'nothing read or written before the watches listed');

  synced = true;
  assert.equal((await r.runNow()).changes, 3);
  assert.deepEqual(of.calls, [
    'dump br-phys cookie=0x1000/0xfffffffffffffffe', 'dump br-phys',
    `bundle br-phys: delete_strict cookie=0x0/-1,priority=10001,ip,in_port=1 | delete_strict cookie=0x1000/-1,priority=10000,tcp,in_port=1,nw_dst=10.9.9.9,tp_dst=80 | add cookie=0x1000,priority=10000,tcp,in_port=${inPort},nw_dst=10.0.0.5,tp_dst=80,actions=mod_dl_dst:${DEFAULT_LB_MAC},output:${outPort}`,
  ], 'br-int is not ours: never read');
  assert.deepEqual(of.tables.get('br-phys'), [' priority=0 actions=NORMAL', ` cookie=0x1000, priority=10000,tcp,in_port=${inPort},nw_dst=10.0.0.5,tp_dst=80 actions=mod_dl_dst:${DEFAULT_LB_MAC},output:${outPort}`]);

  of.calls.length = 0;
  of.tables.get('br-phys')!.unshift(' priority=10001,ip,in_port=9 actions=NORMAL');
  assert.equal((await r.runNow()).changes, 0, 'converged; a later priority-10001 flow is not ours to delete');
  assert.deepEqual(of.calls, ['dump br-phys cookie=0x1000/0xfffffffffffffffe']);

  services.length = 0;
  assert.equal((await r.runNow()).changes, 1);
  assert.deepEqual(of.tables.get('br-phys'), [' priority=10001,ip,in_port=9 actions=NORMAL', ' priority=0 actions=NORMAL']);
  await r.stop();
});
