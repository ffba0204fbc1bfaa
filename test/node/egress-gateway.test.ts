// External egress gateway policy routing (node/egress-gateway.ts): the planner (which subnets, which rules, which
// table routes), the diff's ownership (tagged rules are ours, an untagged rule of the wanted shape is adopted, every
// other rule is left alone), and the reconciler on the fake netlink.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeNetlink } from '../../agent/src/datapath/netlink/fake.ts';
import type { RouteInfo, RuleInfo } from '../../agent/src/datapath/netlink/port.ts';
import type { Node, Pod, Subnet } from '../../agent/src/k8s/types.ts';
import { desiredEgw, diffEgw, egwSpec, RTPROT_KUBE_OVN, type EgwInput, type LocalPort } from '../../agent/src/node/egress-gateway.ts';
import { Reconciler } from '../../agent/src/node/reconciler.ts';

const NODE = 'n1';
const T = RTPROT_KUBE_OVN;
const subnet = (name: string, cidrBlock: string, extra: Record<string, unknown> = {}): Subnet =>
  ({ metadata: { name }, spec: { cidrBlock, vpc: 'ovn-cluster', provider: 'ovn', natOutgoing: false, ...extra } });
const dist = subnet('dist', '10.42.0.0/16,fd00:42::/64', { externalEgressGateway: '192.168.90.2', policyRoutingTableID: 1000, policyRoutingPriority: 1500 });
const central = subnet('central', '10.43.0.0/16', { gatewayType: 'centralized', gatewayNode: `${NODE},n2:1.1.1.1`,
  externalEgressGateway: '192.168.90.3', policyRoutingTableID: 1001, policyRoutingPriority: 1400 });
const pod = (name: string, ann: Record<string, string>): Pod => ({ metadata: { name, namespace: 'default', annotations: ann } });
const p1 = pod('p1', { 'ovn.kubernetes.io/ip_address': '10.42.0.5,fd00:42::5', 'ovn.kubernetes.io/logical_switch': 'dist' });
const port = (podName: string, ...ips: string[]): LocalPort => ({ podName, podNamespace: 'default', ips });
const node: Node = { metadata: { name: NODE, labels: { egw: 'yes' } } };
const input = (o: Partial<EgwInput> = {}): EgwInput => ({ subnets: [dist, central], node, nodeName: NODE, clusterRouter: 'ovn-cluster',
  pods: [p1], podsSynced: true, ports: [port('p1', '10.42.0.5', 'fd00:42::5')], ...o });
const rule = (r: Partial<RuleInfo> & { family: 4 | 6; table: number }): RuleInfo => ({ action: 1, protocol: 0, ...r });
const route = (family: 4 | 6, table: number, gateway: string, protocol = 4): RouteInfo =>
  ({ family, dst: null, gateway, table, protocol, scope: 0, type: 1, onlink: false });

describe('egress gateway: desired', () => {
  it('distributed: a /32 per local pod IP of a family with a gateway; centralized on a named gateway node: the CIDR', () => {
    const d = desiredEgw(input());
    assert.deepEqual(d.rules.map((r) => [r.family, r.src, r.table, r.priority]), [
      [4, '10.42.0.5/32', 1000, 1500],
      [4, '10.43.0.0/16', 1001, 1400],
    ], 'no IPv6 rule: the subnet has no IPv6 gateway');
    assert.deepEqual(d.routes.map((r) => [r.family, r.table, r.gateway]), [[4, 1000, '192.168.90.2'], [4, 1001, '192.168.90.3']]);
    assert.deepEqual(d.problems, []);
  });

  it('dual-stack gateways give rules and table routes per family', () => {
    const ds = subnet('dist', '10.42.0.0/16,fd00:42::/64', { externalEgressGateway: '192.168.90.2,fd00:90::2', policyRoutingTableID: 1000, policyRoutingPriority: 1500 });
    const d = desiredEgw(input({ subnets: [ds] }));
    assert.deepEqual(d.rules.map((r) => r.src), ['10.42.0.5/32', 'fd00:42::5/128']);
    assert.deepEqual(d.routes.map((r) => [r.family, r.gateway]), [[4, '192.168.90.2'], [6, 'fd00:90::2']]);
  });

  it('a pod IP counts only with its OVS port here, its annotations naming the subnet, and inside the CIDR', () => {
    const other = pod('p2', { 'ovn.kubernetes.io/ip_address': '10.16.0.9', 'ovn.kubernetes.io/logical_switch': 'ovn-default' });
    const stale = pod('p3', { 'ovn.kubernetes.io/ip_address': '10.99.0.9', 'ovn.kubernetes.io/logical_switch': 'dist' });
    const attach = pod('p4', { 'ovn.kubernetes.io/ip_address': '10.16.0.10', 'ovn.kubernetes.io/logical_switch': 'ovn-default',
      'a1.default.ovn.kubernetes.io/ip_address': '10.42.0.7', 'a1.default.ovn.kubernetes.io/logical_switch': 'dist' });
    const d = desiredEgw(input({ subnets: [dist], pods: [p1, other, stale, attach],
      ports: [port('p2', '10.16.0.9'), port('p3', '10.99.0.9'), port('p4', '10.42.0.7'), port('gone', '10.42.0.8')] }));
    assert.deepEqual(d.rules.map((r) => r.src), ['10.42.0.7/32'], 'p1 has no port; p3 is outside the CIDR; "gone" has no Pod');
  });

  it('centralized: by gatewayNodeSelectors when gatewayNode is empty; nothing on a node that is not a gateway', () => {
    const bySel = subnet('central', '10.43.0.0/16', { gatewayType: 'centralized', gatewayNodeSelectors: [{ matchLabels: { egw: 'yes' } }],
      externalEgressGateway: '192.168.90.3', policyRoutingTableID: 1001, policyRoutingPriority: 1400 });
    assert.deepEqual(desiredEgw(input({ subnets: [bySel], ports: [] })).rules.map((r) => r.src), ['10.43.0.0/16']);
    assert.deepEqual(desiredEgw(input({ subnets: [bySel], ports: [], node: { metadata: { name: NODE, labels: {} } } })).rules, []);
    assert.deepEqual(desiredEgw(input({ subnets: [central], ports: [], nodeName: 'n3' })).rules, []);
  });

  it('skips other VPCs, underlay, deleting subnets; reports natOutgoing, reserved tables and shared tables', () => {
    const d = desiredEgw(input({ ports: [], subnets: [
      subnet('vpc', '10.50.0.0/16', { vpc: 'other', gatewayType: 'centralized', gatewayNode: NODE, externalEgressGateway: '1.1.1.1', policyRoutingTableID: 9 }),
      subnet('vlan', '10.51.0.0/16', { vlan: 'v1', gatewayType: 'centralized', gatewayNode: NODE, externalEgressGateway: '1.1.1.1', policyRoutingTableID: 9 }),
      { ...subnet('del', '10.52.0.0/16', { gatewayType: 'centralized', gatewayNode: NODE, externalEgressGateway: '1.1.1.1', policyRoutingTableID: 9 }), metadata: { name: 'del', deletionTimestamp: 'x' } },
      subnet('nat', '10.53.0.0/16', { natOutgoing: true, gatewayType: 'centralized', gatewayNode: NODE, externalEgressGateway: '1.1.1.1', policyRoutingTableID: 9 }),
      subnet('main', '10.54.0.0/16', { gatewayType: 'centralized', gatewayNode: NODE, externalEgressGateway: '1.1.1.1', policyRoutingTableID: 254 }),
      subnet('a', '10.55.0.0/16', { gatewayType: 'centralized', gatewayNode: NODE, externalEgressGateway: '1.1.1.1', policyRoutingTableID: 7 }),
      subnet('b', '10.56.0.0/16', { gatewayType: 'centralized', gatewayNode: NODE, externalEgressGateway: '2.2.2.2', policyRoutingTableID: 7 }),
    ] }));
    assert.deepEqual(d.rules.map((r) => r.subnet), ['a', 'b']);
    assert.deepEqual(d.routes.map((r) => [r.table, r.gateway]), [[7, '1.1.1.1']], 'the first subnet (by name) wins the shared table');
    assert.equal(d.problems.length, 3);
    assert.match(d.problems.join('\n'), /nat: natOutgoing/);
    assert.match(d.problems.join('\n'), /main: policyRoutingTableID 254/);
    assert.match(d.problems.join('\n'), /subnets a and b share table 7/);
  });
});

describe('egress gateway: diff and ownership', () => {
  const d = desiredEgw(input());
  it('adds routes then rules; converged when tagged rules and the routes exist', () => {
    const ops = diffEgw(d, { rules: [], routes: [] });
    assert.deepEqual(ops.map((o) => o.op), ['add-route', 'add-route', 'add-rule', 'add-rule']);
    const converged = diffEgw(d, { rules: d.rules.map((r) => rule({ ...r, protocol: T })), routes: d.routes.map((r) => route(r.family, r.table, r.gateway)) });
    assert.deepEqual(converged, []);
  });

  it('adopts an untagged rule of the exact shape; an untagged rule with one more selector is foreign and left', () => {
    const routes = d.routes.map((r) => route(r.family, r.table, r.gateway));
    const upstream = rule({ family: 4, src: '10.42.0.5/32', table: 1000, priority: 1500 });
    const withIif = rule({ family: 4, src: '10.43.0.0/16', table: 1001, priority: 1400, iif: 'eth0' });
    const ops = diffEgw(d, { rules: [upstream, withIif, rule({ family: 4, src: '10.9.0.0/16', table: 1000, priority: 1500 })], routes });
    assert.deepEqual(ops.map((o) => [o.op, 'rule' in o ? o.rule.src : '']), [['adopt-rule', '10.42.0.5/32'], ['add-rule', '10.43.0.0/16']],
      'no delete: untagged rules nothing wants are not ours');
  });

  it('deletes tagged rules nothing wants (and tagged rules of another shape), and the stale table route first', () => {
    const routes = [...d.routes.map((r) => route(r.family, r.table, r.gateway)), route(4, 1002, '192.168.90.9')];
    const rules = [...d.rules.map((r) => rule({ ...r, protocol: T })), rule({ family: 4, src: '10.42.0.6/32', table: 1000, priority: 1500, protocol: T }),
      rule({ family: 4, src: '10.44.0.0/16', table: 1002, priority: 1300, protocol: T }), rule({ family: 4, table: 1000, priority: 1, fwmark: 1, protocol: T })];
    const ops = diffEgw(d, { rules, routes });
    assert.deepEqual(ops.map((o) => o.op === 'delete-rule' ? `${o.op} ${o.rule.src ?? 'fwmark'}` : o.op === 'delete-route' ? `${o.op} ${o.route.table}` : o.op),
      ['delete-route 1002', 'delete-rule 10.42.0.6/32', 'delete-rule 10.44.0.0/16', 'delete-rule fwmark']);
  });

  it('a stale table route is removed only when proto static; a wrong gateway is replaced', () => {
    const rules = [...d.rules.map((r) => rule({ ...r, protocol: T })), rule({ family: 4, src: '10.44.0.0/16', table: 1002, priority: 1300, protocol: T })];
    const ops = diffEgw(d, { rules, routes: [route(4, 1000, '192.168.90.7'), route(4, 1001, '192.168.90.3'), route(4, 1002, '192.168.90.9', 3)] });
    assert.deepEqual(ops.map((o) => o.op), ['add-route', 'delete-rule']);
  });

  it('before the pods are listed nothing is removed', () => {
    const rules = [rule({ family: 4, src: '10.42.0.6/32', table: 1000, priority: 1500, protocol: T })];
    assert.deepEqual(diffEgw({ ...d, complete: false }, { rules, routes: d.routes.map((r) => route(r.family, r.table, r.gateway)) }).map((o) => o.op),
      ['add-rule', 'add-rule']);
  });
});

describe('egress gateway: reconciler on the fake netlink', () => {
  const world = () => {
    const nl = new FakeNetlink();
    let i = input();
    const r = new Reconciler(egwSpec({ netlink: nl, input: () => i }), { resyncMs: 0 });
    r.start();
    return { nl, r, set: (o: Partial<EgwInput>) => { i = input(o); } };
  };
  const rulesOf = async (nl: FakeNetlink) => (await nl.listRules(null, 4)).map((x) => `${x.src} ${x.table} ${x.priority} ${x.protocol}`);

  it('converges, repairs a deleted rule, leaves foreign rules, adopts, and cleans up when the subnets go', async () => {
    const { nl, r, set } = world();
    await nl.addRule(null, { family: 4, src: '10.42.0.5/32', table: 1000, priority: 1500 }); // left by upstream
    await nl.addRule(null, { family: 4, src: '10.0.0.0/8', table: 1000, priority: 1500, iif: 'eth0' }); // the user's
    await r.runNow();
    assert.deepEqual(await rulesOf(nl), ['10.43.0.0/16 1001 1400 107', '10.0.0.0/8 1000 1500 0', '10.42.0.5/32 1000 1500 107']);
    assert.deepEqual((await nl.listRoutes(null, { table: 1000 })).map((x) => [x.gateway, x.protocol]), [['192.168.90.2', 4]]);
    assert.equal((await r.runNow()).changes, 0, 'converged');

    await nl.deleteRule(null, { family: 4, src: '10.42.0.5/32', table: 1000, priority: 1500, protocol: T });
    assert.equal((await r.runNow()).changes, 1);
    assert.ok((await rulesOf(nl)).includes('10.42.0.5/32 1000 1500 107'));

    set({ ports: [] }); // the pod's DEL removed its port
    await r.runNow();
    assert.deepEqual(await rulesOf(nl), ['10.43.0.0/16 1001 1400 107', '10.0.0.0/8 1000 1500 0']);
    assert.deepEqual(await nl.listRoutes(null, { table: 1000 }), [], 'no rule of ours uses table 1000 any more');

    set({ subnets: [], ports: [] });
    await r.runNow();
    assert.deepEqual(await rulesOf(nl), ['10.0.0.0/8 1000 1500 0'], 'only the foreign rule is left');
    assert.deepEqual(await nl.listRoutes(null, { table: 1001 }), []);
    await r.stop();
  });

  it('one failing change does not hold back the others; the pass fails and is retried', async () => {
    const { nl, r } = world();
    nl.failNext('addRoute', 'ENETUNREACH');
    await assert.rejects(r.runNow(), /1 of 4 policy-routing changes failed/);
    assert.equal((await nl.listRules(null, 4)).length, 2, 'both rules added although a route failed');
    await r.runNow();
    assert.equal((await nl.listRoutes(null, { table: 0 })).length, 2);
    await r.stop();
  });
});
