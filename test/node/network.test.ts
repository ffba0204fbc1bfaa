// The node-network component on the fakes: start-up order, the gate's progress, ovn0 repaired from events, routes
// following Subnet events, the NetworkUnavailable condition, the chassis annotation, encap external_ids.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { FakeNetlink } from '../../agent/src/datapath/netlink/fake.ts';
import { FakeVswitch } from '../../agent/src/datapath/ovsdb/fake.ts';
import type { NodeApi, NodeCondition } from '../../agent/src/k8s/node-api.ts';
import type { Node, Pod, Subnet } from '../../agent/src/k8s/types.ts';
import { NodeGate } from '../../agent/src/node/gate.ts';
import { KernelNoiseFilter, kernelChanges } from '../../agent/src/node/kernel-feed.ts';
import { NodeNetwork, uniformResync } from '../../agent/src/node/network.ts';
import { FakeNetfilter } from '../../agent/src/datapath/netfilter/fake.ts';

const NODE = 'n1';
const joinAnn = { 'ovn.kubernetes.io/ip_address': '100.64.0.2', 'ovn.kubernetes.io/mac_address': '00:00:00:5e:00:02',
  'ovn.kubernetes.io/cidr': '100.64.0.0/16', 'ovn.kubernetes.io/gateway': '100.64.0.1', 'ovn.kubernetes.io/port_name': `node-${NODE}` };
const validated = { conditions: [{ type: 'Validated', status: 'True' }] };
const subnet = (name: string, cidrBlock: string): Subnet => ({ metadata: { name }, spec: { cidrBlock, vpc: 'ovn-cluster', provider: 'ovn' }, status: validated });

class World {
  nl = new FakeNetlink();
  vs = new FakeVswitch();
  node: Node = { metadata: { name: NODE, annotations: {} }, status: { addresses: [{ type: 'InternalIP', address: '172.30.0.1' }] } };
  subnets: Subnet[] = [subnet('ovn-default', '10.16.0.0/16')];
  nodeListeners = new Set<(name: string) => void>();
  nf = new FakeNetfilter();
  subnetListeners = new Set<() => void>();
  serviceCidrs = ['10.96.0.0/12'];
  serviceCidrListeners = new Set<() => void>();
  patches: Record<string, unknown>[] = [];
  conditions: NodeCondition[] = [];
  gate = new NodeGate();
  api: NodeApi = {
    patchMetadata: async (_n, p) => { this.patches.push(p); this.node = { ...this.node, metadata: { ...this.node.metadata, annotations: { ...this.node.metadata!.annotations, ...(p.annotations as Record<string, string>) } } }; this.emitNode(); },
    setCondition: async (_n, c) => { this.conditions.push(c); },
  };
  constructor() {
    this.nl.addLink(null, { name: 'eth0', mtu: 1500, up: true });
    void this.nl.addAddress(null, 'eth0', { cidr: '172.30.0.1/24' });
    this.nl.reachable.add('<own>|100.64.0.1');
    void this.vs.setOvsExternalIds({ 'system-id': NODE });
    // vswitchd: an internal port's device appears in the kernel once the port is added
    this.vs.onInterfaceChange((ev) => { if (ev.new?.type === 'internal' && !ev.old) this.nl.addLink(null, { name: ev.name, mtu: 1500, up: false, mac: '0a:0a:0a:0a:0a:0a', txQueueLen: 500 }); });
  }
  emitNode(): void { for (const l of this.nodeListeners) l(NODE); }
  annotate(a: Record<string, string>): void { this.node = { ...this.node, metadata: { ...this.node.metadata, annotations: { ...this.node.metadata!.annotations, ...a } } }; this.emitNode(); }
  component(o: { kernelFeed?: boolean; resyncMs?: Record<string, number>; pods?: Pod[] } = {}): NodeNetwork {
    const log = pino({ level: process.env.KOA_TEST_LOG ?? 'silent' });
    return new NodeNetwork({
      cfg: { nodeName: NODE, podIp: '', iface: '', hostTunnelSrc: false, encapChecksum: true, clusterRouter: 'ovn-cluster', nodeSwitch: 'join',
        nonPrimaryCniMode: false, networkType: 'geneve', setVxlanTxOff: false, mtu: 1400 },
      netlink: () => this.nl, podNet: () => this.nl, vswitch: () => this.vs, api: this.api,
      node: () => this.node, nodes: () => [this.node], subnets: () => this.subnets, serviceCidrs: () => this.serviceCidrs,
      pods: () => o.pods ?? [], podsSynced: () => true,
      netfilter: async () => ({ runner: this.nf, others: [], reason: 'fake', randomFully: true }),
      resyncMs: { netfilter: 60_000, ...o.resyncMs },
      events: {
        onNodeChange: (l) => { this.nodeListeners.add(l); return () => this.nodeListeners.delete(l); },
        onSubnetChange: (l) => { this.subnetListeners.add(l); return () => this.subnetListeners.delete(l); },
        onServiceCidrChange: (l) => { this.serviceCidrListeners.add(l); return () => this.serviceCidrListeners.delete(l); },
        onInterfaceChange: (l) => this.vs.onInterfaceChange((e) => l(e.name)),
        ...(o.kernelFeed ? { onKernelChange: kernelChanges(() => this.nl, log) } : {}),
      },
      gate: this.gate, log,
    });
  }
}

const until = async (what: string, f: () => boolean | Promise<boolean>): Promise<void> => {
  for (let i = 0; i < 2000; i++) { if (await f()) return; await new Promise((r) => setTimeout(r, 5)); }
  throw new Error(`never: ${what}`);
};

describe('node network on the fakes', { timeout: 60_000 }, () => {
  it('waits for the join annotations (gate says so), then sets up encap, chassis, ovn0, the condition and host routes', async () => {
    const w = new World();
    const c = w.component();
    const started = c.start();
    await until('waiting on the annotations', () => /ovn0 \(waiting for the node annotations/.test(w.gate.reason));
    assert.deepEqual(w.vs.getOvsExternalIds()['ovn-encap-ip'], '172.30.0.1', 'encap IP = the InternalIP link address');
    assert.deepEqual(w.patches, [{ annotations: { 'ovn.kubernetes.io/chassis': NODE } }]);
    assert.equal(await w.nl.getLink(null, 'ovn0'), null, 'no ovn0 before the controller allocated it');
    w.annotate(joinAnn);
    await started;
    const i = w.vs.getInterface('ovn0')!;
    assert.deepEqual([i.type, i.externalIds['iface-id'], i.mac], ['internal', `node-${NODE}`, '00:00:00:5e:00:02']);
    const l = (await w.nl.getLink(null, 'ovn0'))!;
    assert.deepEqual([l.up, l.mtu, l.mac, l.txQueueLen], [true, 1400, '00:00:00:5e:00:02', 1000]);
    assert.deepEqual((await w.nl.listAddresses(null, { dev: 'ovn0' })).map((a) => `${a.address}/${a.prefixLen}`), ['100.64.0.2/16']);
    assert.deepEqual(w.conditions.map((x) => [x.type, x.status, x.reason]), [['NetworkUnavailable', 'False', 'JoinSubnetGatewayReachable']]);
    const routes = (await w.nl.listRoutes(null, { dev: 'ovn0' })).filter((r) => r.gateway).map((r) => `${r.dst} via ${r.gateway}`);
    assert.deepEqual(routes, ['10.16.0.0/16 via 100.64.0.1']);
    // iptables and ipsets: upstream's chains and sets, and a converged second look writes nothing
    const sets = await w.nf.ipsetSave();
    assert.match(sets, /create ovn40subnets hash:net family inet .*maxelem 1048576/);
    assert.match(sets, /add ovn40subnets 10\.16\.0\.0\/16/);
    assert.match(sets, /add ovn40services 10\.96\.0\.0\/12/);
    const nat = await w.nf.save(4);
    assert.match(nat, /-A POSTROUTING -m comment --comment "kube-ovn postrouting rules" -j OVN-POSTROUTING/);
    assert.match(nat, /-A OVN-MASQUERADE -j MASQUERADE --random-fully/);
    const writes = () => w.nf.calls.filter((x) => x.op === 'restore' || x.op === 'ipsetRestore').length;
    const before = writes();
    for (const l of w.subnetListeners) l();
    await until('a pass', () => w.nf.calls.filter((x) => x.op === 'save').length >= 2);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(writes(), before, 'nothing written when nothing changed');
    assert.equal(c.ready(), true);
    await c.stop();
  });

  it('repairs: ovn0 deleted from OVS comes back; a new subnet gets its route, a deleted one loses it', async () => {
    const w = new World();
    w.annotate(joinAnn);
    const c = w.component();
    await c.start();
    await w.vs.deletePort('ovn0');
    await w.nl.deleteLink(null, 'ovn0');
    await until('ovn0 back', async () => w.vs.getInterface('ovn0') !== undefined && (await w.nl.getLink(null, 'ovn0'))?.up === true);
    w.subnets = [...w.subnets, subnet('second', '10.20.0.0/16')];
    for (const l of w.subnetListeners) l();
    const dsts = async () => (await w.nl.listRoutes(null, { dev: 'ovn0' })).filter((r) => r.gateway).map((r) => r.dst).sort();
    await until('route of the new subnet', async () => (await dsts()).includes('10.20.0.0/16'));
    w.subnets = w.subnets.filter((s) => s.metadata!.name !== 'ovn-default');
    for (const l of w.subnetListeners) l();
    await until('route of the deleted subnet gone', async () => JSON.stringify(await dsts()) === JSON.stringify(['10.20.0.0/16']));
    await c.stop();
  });

  it('repairs from kernel events alone (resync an hour away): a host route deleted by hand, ovn0 set down, its address removed', async () => {
    const w = new World();
    w.annotate(joinAnn);
    const hour = 3_600_000;
    const c = w.component({ kernelFeed: true, resyncMs: { ovn0: hour, 'host-routes': hour, encap: hour, 'join-gateway': hour } });
    await c.start();
    const dsts = async () => (await w.nl.listRoutes(null, { dev: 'ovn0' })).filter((r) => r.gateway).map((r) => r.dst);
    assert.deepEqual(await dsts(), ['10.16.0.0/16']);
    await w.nl.deleteRoute(null, { dst: '10.16.0.0/16' }); // `ip route del`
    await until('host route back', async () => (await dsts()).includes('10.16.0.0/16'));
    await w.nl.setLink(null, 'ovn0', { up: false }); // `ip link set ovn0 down` (the kernel drops its routes with it)
    await until('ovn0 up again with its route', async () => (await w.nl.getLink(null, 'ovn0'))?.up === true && (await dsts()).includes('10.16.0.0/16'));
    await w.nl.deleteAddress(null, 'ovn0', '100.64.0.2/16');
    await until('join address back', async () => (await w.nl.listAddresses(null, { dev: 'ovn0' })).some((a) => a.address === '100.64.0.2'));
    await c.stop();
    assert.equal(w.nl.subscriptions, 0, 'the feed is closed at stop');
  });

  it('egress gateway: a pod port of a distributed EGW subnet gets its rule and table route; `ip rule del` is repaired from the kernel event; DEL removes it', async () => {
    const w = new World();
    w.annotate(joinAnn);
    w.subnets = [...w.subnets, { metadata: { name: 'egw' }, spec: { cidrBlock: '10.42.0.0/16', vpc: 'ovn-cluster', provider: 'ovn',
      externalEgressGateway: '192.168.90.2', policyRoutingTableID: 1000, policyRoutingPriority: 1500 }, status: validated }];
    const pods = [{ metadata: { name: 'p1', namespace: 'default', annotations: { 'ovn.kubernetes.io/ip_address': '10.42.0.5', 'ovn.kubernetes.io/logical_switch': 'egw' } } }];
    const hour = 3_600_000;
    const c = w.component({ kernelFeed: true, pods, resyncMs: { 'egress-gateway': hour } });
    await c.start();
    const mine = async () => (await w.nl.listRules(null, 4)).filter((r) => r.table === 1000).map((r) => `${r.src} ${r.priority} ${r.protocol}`);
    assert.deepEqual(await mine(), [], 'no port on this node yet');
    await w.vs.addPodPort({ name: 'abc_h', ifaceId: 'p1.default', podName: 'p1', podNamespace: 'default', podNetns: '/run/netns/x', ips: ['10.42.0.5'] });
    await until('rule of the pod', async () => JSON.stringify(await mine()) === JSON.stringify(['10.42.0.5/32 1500 107']));
    assert.deepEqual((await w.nl.listRoutes(null, { table: 1000 })).map((r) => [r.dst, r.gateway]), [[null, '192.168.90.2']]);
    await w.nl.deleteRule(null, { family: 4, src: '10.42.0.5/32', table: 1000, priority: 1500 }); // `ip rule del`
    await until('rule back from the kernel event', async () => (await mine()).length === 1);
    await w.vs.deletePort('abc_h'); // the pod's DEL
    await until('rule and table route gone', async () => (await mine()).length === 0 && (await w.nl.listRoutes(null, { table: 1000 })).length === 0);
    assert.equal(c.ready(), true);
    await c.stop();
  });

  it('a service CIDR change (a ServiceCIDR became Ready, or went) re-runs the netfilter reconciler (resync an hour away)', async () => {
    const w = new World();
    w.annotate(joinAnn);
    const c = w.component({ resyncMs: { netfilter: 3_600_000 } });
    await c.start();
    const services = async () => (await w.nf.ipsetSave()).split('\n').filter((l) => l.startsWith('add ovn40services ')).sort();
    assert.deepEqual(await services(), ['add ovn40services 10.96.0.0/12']);
    w.serviceCidrs = ['10.96.0.0/12', '10.112.0.0/16'];
    for (const l of w.serviceCidrListeners) l();
    await until('the new CIDR in the set', async () => (await services()).length === 2);
    assert.deepEqual(await services(), ['add ovn40services 10.112.0.0/16', 'add ovn40services 10.96.0.0/12']);
    w.serviceCidrs = ['10.96.0.0/12'];
    for (const l of w.serviceCidrListeners) l();
    await until('the CIDR out of the set', async () => (await services()).length === 1);
    await c.stop();
    assert.equal(w.serviceCidrListeners.size, 0, 'unsubscribed at stop');
  });

  it('the kernel feed ignores pod host veths and their addresses/routes and the local table; tells main-table from other-table routes', async () => {
    const f = new KernelNoiseFilter();
    const link = (name: string, index: number, kind?: string) => ({ index, name, mtu: 1500, up: true, running: true, flags: 0, operState: 6, ...(kind ? { kind } : {}) });
    assert.equal(f.relevant({ kind: 'link', action: 'new', link: link('0123456789ab_h', 40, 'veth') }), null);
    assert.equal(f.relevant({ kind: 'address', action: 'new', address: { index: 40, family: 6, address: 'fe80::1', prefixLen: 64, flags: 0, scope: 253, tentative: false, dadFailed: false, deprecated: false, permanent: true } }), null);
    const route = (oif: number, table = 254) => ({ family: 6 as const, dst: 'fe80::/64', oif, table, protocol: 2, scope: 0, type: 1, onlink: false });
    assert.equal(f.relevant({ kind: 'route', action: 'new', route: route(40) }), null);
    assert.equal(f.relevant({ kind: 'route', action: 'new', route: route(7, 255) }), null, 'local table');
    assert.equal(f.relevant({ kind: 'route', action: 'del', route: route(7, 1000) }), 'table-route', 'a policy-routing table');
    assert.equal(f.relevant({ kind: 'rule', action: 'del', rule: { family: 4, table: 1000, action: 1, protocol: 107 } }), 'rule');
    assert.equal(f.relevant({ kind: 'route', action: 'del', route: route(7) }), 'route');
    assert.equal(f.relevant({ kind: 'link', action: 'new', link: link('ovn0', 7, 'tun') }), 'link');
    assert.equal(f.relevant({ kind: 'link', action: 'del', link: link('0123456789ab_h', 40, 'veth') }), null);
    assert.equal(f.relevant({ kind: 'route', action: 'new', route: route(40) }), 'route', 'index forgotten once the veth is gone');
    assert.equal(f.relevant({ kind: 'resync', reason: 'x' }), 'resync');
  });
});

describe('uniformResync (--node-resync-period)', () => {
  it('gives every node reconciler the same period, or keeps the built-in ones for 0', () => {
    assert.deepEqual(uniformResync(0), {});
    const r = uniformResync(2000)!;
    assert.deepEqual(Object.keys(r).sort(), ['chassis', 'egress-gateway', 'encap', 'host-routes', 'join-gateway', 'netfilter', 'ovn0']);
    assert.ok(Object.values(r).every((v) => v === 2000));
  });
});
