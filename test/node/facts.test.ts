// Node facts, ovn0 diff, host-route planning and the tunnel choice: pure tables.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeJoin, internalIps, nodeFamilies } from '../../agent/src/node/facts.ts';
import { diffOvn0, eui64LinkLocal, type Ovn0Observed } from '../../agent/src/node/ovn0.ts';
import { desiredRoutes, diffRoutes, routedSubnet } from '../../agent/src/node/routes.ts';
import { chooseTunnel, encapExternalIds, parseNodeNetworks } from '../../agent/src/node/encap.ts';
import type { Node, Subnet } from '../../agent/src/k8s/types.ts';
import type { AddressInfo, LinkInfo, RouteInfo } from '../../agent/src/datapath/netlink/port.ts';

const node = (ann: Record<string, string>, addrs: { type: string; address: string }[] = [{ type: 'InternalIP', address: '172.30.0.1' }]): Node =>
  ({ metadata: { name: 'n1', annotations: ann }, status: { addresses: addrs } });
const v4 = { 'ovn.kubernetes.io/ip_address': '100.64.0.2', 'ovn.kubernetes.io/mac_address': '00:00:00:5E:00:02', 'ovn.kubernetes.io/cidr': '100.64.0.0/16',
  'ovn.kubernetes.io/gateway': '100.64.0.1', 'ovn.kubernetes.io/port_name': 'node-n1' };
const dual = { ...v4, 'ovn.kubernetes.io/ip_address': '100.64.0.2,fd00:100:64::2', 'ovn.kubernetes.io/cidr': '100.64.0.0/16,fd00:100:64::/112',
  'ovn.kubernetes.io/gateway': '100.64.0.1,fd00:100:64::1' };

describe('node facts', () => {
  it('decodes the join allocation (dual stack, canonical forms)', () => {
    const j = decodeJoin(node(dual));
    assert.ok(j.ok);
    assert.deepEqual(j.join, { portName: 'node-n1', mac: '00:00:00:5e:00:02', addresses: [
      { family: 4, ip: '100.64.0.2', prefixLen: 16, cidr: '100.64.0.0/16', gateway: '100.64.0.1' },
      { family: 6, ip: 'fd00:100:64::2', prefixLen: 112, cidr: 'fd00:100:64::/112', gateway: 'fd00:100:64::1' }] });
    assert.deepEqual(nodeFamilies(node(dual)), [4, 6]);
  });
  it('says what is missing or wrong', () => {
    const table: [Record<string, string> | undefined, RegExp][] = [
      [undefined, /not in the cache/],
      [{}, /ip_address is missing/],
      [{ ...v4, 'ovn.kubernetes.io/mac_address': 'zz' }, /mac_address is missing or not a MAC/],
      [{ ...v4, 'ovn.kubernetes.io/port_name': '' }, /port_name is missing/],
      [{ ...v4, 'ovn.kubernetes.io/cidr': '10.0.0.0/8' }, /no CIDR .* contains 100\.64\.0\.2/],
      [{ ...v4, 'ovn.kubernetes.io/gateway': '10.0.0.1' }, /no gateway/],
      [{ ...v4, 'ovn.kubernetes.io/ip_address': 'x' }, /not an IP address/],
    ];
    for (const [a, re] of table) {
      const r = decodeJoin(a ? node(a) : undefined);
      assert.ok(!r.ok && re.test(r.reason), `${JSON.stringify(a)} -> ${JSON.stringify(r)}`);
    }
  });
  it('InternalIPs by family', () => {
    assert.deepEqual(internalIps(node({}, [{ type: 'Hostname', address: 'n1' }, { type: 'InternalIP', address: 'fd00::0:1' }, { type: 'InternalIP', address: '10.0.0.5' }])),
      { v6: 'fd00::1', v4: '10.0.0.5' });
  });
});

const link = (o: Partial<LinkInfo> = {}): LinkInfo => ({ index: 7, name: 'ovn0', mtu: 1400, mac: '00:00:00:5e:00:02', up: true, running: true, flags: 0, operState: 6, txQueueLen: 1000, ...o });
const addr = (address: string, prefixLen: number, family: 4 | 6 = 4, index = 7): AddressInfo =>
  ({ index, family, address, prefixLen, flags: 0x80, scope: 0, tentative: false, dadFailed: false, deprecated: false, permanent: true });
const route = (family: 4 | 6, dst: string | null, o: Partial<RouteInfo> = {}): RouteInfo =>
  ({ family, dst, table: 254, protocol: 4, scope: 0, type: 1, onlink: false, oif: 7, ...o });

describe('ovn0 diff', () => {
  const j = decodeJoin(node(dual));
  assert.ok(j.ok);
  const good: Ovn0Observed = {
    iface: { uuid: 'u', name: 'ovn0', type: 'internal', ofport: 2, error: undefined, linkState: 'up', mac: '00:00:00:5e:00:02', mtuRequest: 1400,
      ingressPolicingRate: 0, ingressPolicingBurst: 0, externalIds: { 'iface-id': 'node-n1', ip: '100.64.0.2,fd00:100:64::2', vendor: 'kube-ovn' } },
    bridge: 'br-int', link: link(),
    addresses: [addr('100.64.0.2', 16), addr('fd00:100:64::2', 112, 6), addr('fe80::200:ff:fe5e:2', 64, 6)],
    routes: [route(4, '100.64.0.0/16', { scope: 253, protocol: 2 }), route(6, 'fd00:100:64::/112', { protocol: 2 })],
  };
  it('converged: nothing to do; no annotations: nothing to do', () => {
    assert.deepEqual(diffOvn0({ join: j.join, reason: '', mtu: 1400 }, good), []);
    assert.deepEqual(diffOvn0({ join: undefined, reason: 'x', mtu: 1400 }, { ...good, iface: undefined, link: null }), []);
  });
  it('a missing port is created; the kernel part waits for the device', () => {
    assert.deepEqual(diffOvn0({ join: j.join, reason: '', mtu: 1400 }, { ...good, iface: undefined, bridge: undefined, link: null, addresses: [], routes: [] }).map((o) => o.op), ['port']);
  });
  it('repairs link state, addresses and join routes', () => {
    const ops = diffOvn0({ join: j.join, reason: '', mtu: 1400 }, {
      ...good, link: link({ up: false, mtu: 1500 }), addresses: [addr('100.64.0.9', 16)], routes: [],
    });
    assert.deepEqual(ops, [
      { op: 'link', mtu: 1400, up: true },
      { op: 'addAddress', cidr: '100.64.0.2/16', family: 4 },
      { op: 'addAddress', cidr: 'fd00:100:64::2/112', family: 6 },
      { op: 'addAddress', cidr: eui64LinkLocal('00:00:00:5e:00:02'), family: 6 },
      { op: 'delAddress', cidr: '100.64.0.9/16' },
      { op: 'joinRoute', cidr: '100.64.0.0/16', family: 4, src: '100.64.0.2' },
      { op: 'joinRoute', cidr: 'fd00:100:64::/112', family: 6 },
    ]);
    assert.equal(eui64LinkLocal('00:00:00:5e:00:02'), 'fe80::200:ff:fe5e:2/64');
  });
  it('a port with other external_ids or on another bridge is rewritten', () => {
    const bad = { ...good, iface: { ...good.iface!, externalIds: { 'iface-id': 'someone' } } };
    assert.deepEqual(diffOvn0({ join: j.join, reason: '', mtu: 1400 }, bad).map((o) => o.op === 'port' && o.why), ['external_ids differ']);
  });
});

describe('host routes', () => {
  const cfg = { clusterRouter: 'ovn-cluster', nodeSwitch: 'join' };
  const validated = { conditions: [{ type: 'Validated', status: 'True' }] };
  const sub = (name: string, cidrBlock: string, spec: Record<string, unknown> = {}, status: unknown = validated): Subnet =>
    ({ metadata: { name }, spec: { cidrBlock, vpc: 'ovn-cluster', provider: 'ovn', ...spec }, status: status as Subnet['status'] });
  const n = node(dual, [{ type: 'InternalIP', address: '172.30.0.1' }, { type: 'InternalIP', address: 'fd00:172:30::1' }]);

  it('which subnets get a route', () => {
    assert.equal(routedSubnet(sub('a', '10.16.0.0/16'), cfg), true);
    assert.equal(routedSubnet(sub('join', '100.64.0.0/16'), cfg), false, 'join: link route of ovn0');
    assert.equal(routedSubnet(sub('a', '10.16.0.0/16', { vpc: 'tenant' }), cfg), false, 'custom VPC');
    assert.equal(routedSubnet(sub('a', '10.16.0.0/16', {}, {}), cfg), false, 'not validated yet');
    assert.equal(routedSubnet(sub('a', '10.16.0.0/16', { vlan: 'v100' }), cfg), false, 'underlay');
    assert.equal(routedSubnet(sub('a', '10.16.0.0/16', { vlan: 'v100', logicalGateway: true }), cfg), true, 'logical gateway');
    assert.equal(routedSubnet(sub('a', '10.16.0.0/16', { vlan: 'v100', u2oInterconnection: true }), cfg), true, 'u2o');
    assert.equal(routedSubnet(sub('a', '10.16.0.0/16', { vlan: 'v100', u2oInterconnection: true, enableLb: true }), cfg), false, 'u2o with LB');
    assert.equal(routedSubnet(sub('a', '10.16.0.0/16', { provider: 'net1.ns' }), cfg), false, 'IPAM-only provider');
  });

  it('plans per family, via the join gateway with the node IP as source; skips the node network', () => {
    const d = desiredRoutes([sub('a', '10.16.0.0/16,fd00:10:16::/64'), sub('own', '172.30.0.0/24'), sub('b', '10.17.0.5/16')], n, cfg);
    assert.deepEqual(d.routes, [
      { family: 4, dst: '10.16.0.0/16', gateway: '100.64.0.1', src: '172.30.0.1' },
      { family: 4, dst: '10.17.0.0/16', gateway: '100.64.0.1', src: '172.30.0.1' },
      { family: 6, dst: 'fd00:10:16::/64', gateway: 'fd00:100:64::1', src: 'fd00:172:30::1' },
    ]);
    assert.deepEqual(desiredRoutes([sub('a', '10.16.0.0/16')], node({}), cfg), { routes: [], known: false });
  });

  it('adds missing, removes stale and conflicting routes, never touches other links or link-scope routes', () => {
    const d = desiredRoutes([sub('a', '10.16.0.0/16'), sub('c', '10.18.0.0/16')], n, cfg);
    const ops = diffRoutes(d, { ovn0: 7, routes: [
      route(4, '100.64.0.0/16', { scope: 253, protocol: 2 }),                    // join link route: not ours here
      route(4, '10.99.0.0/16', { gateway: '100.64.0.1', prefSrc: '172.30.0.1' }), // a deleted subnet
      route(4, '10.18.0.0/16', { gateway: '100.64.0.1', prefSrc: '172.30.0.1' }), // conflicts with eth1's route below
      route(4, '10.18.0.0/16', { oif: 3 }),
      route(4, null, { oif: 3, gateway: '172.30.0.254' }),                      // default route elsewhere
    ] });
    assert.deepEqual(ops.map((o) => (o.op === 'add' ? `add ${o.route.dst}` : `delete ${o.route.dst}: ${o.why}`)), [
      'delete 10.99.0.0/16: no subnet wants it',
      'delete 10.18.0.0/16: the destination is routed by another link',
      'add 10.16.0.0/16',
    ]);
    assert.deepEqual(diffRoutes(d, { ovn0: undefined, routes: [] }), [], 'no ovn0 yet');
  });
});

describe('tunnel interface and encap IP', () => {
  const links: LinkInfo[] = [link({ index: 1, name: 'lo' }), link({ index: 3, name: 'eth0' }), link({ index: 4, name: 'eth1' }), link({ index: 5, name: 'br-eth1' })];
  const addresses = [addr('127.0.0.1', 8, 4, 1), addr('192.168.1.10', 24, 4, 3), addr('10.0.0.9', 32, 4, 4), addr('10.0.0.10', 24, 4, 4), addr('10.0.0.10', 24, 4, 5)];
  const base = { iface: '', internalIps: { v4: '192.168.1.10' }, hostTunnelSrc: false, links, addresses, routes: [] };
  it('no interface configured: the link holding POD_IP, else the InternalIP', () => {
    const r = chooseTunnel(base);
    assert.ok(r.ok && r.link.name === 'eth0' && r.encapIp === '192.168.1.10' && r.source === 'node InternalIP');
    const p = chooseTunnel({ ...base, podIp: '10.0.0.10' });
    assert.ok(p.ok && p.link.name === 'eth1' && p.source === 'POD_IP');
  });
  it('annotation over --iface; a name, then regexes; /32 skipped; a bridged NIC means its bridge', () => {
    const a = chooseTunnel({ ...base, iface: 'eth0', annotationIface: 'eth1' });
    assert.ok(a.ok && a.link.name === 'eth1' && a.encapIp === '10.0.0.10');
    const re = chooseTunnel({ ...base, iface: 'nomatch,^eth1$' });
    assert.ok(re.ok && re.link.name === 'eth1');
    const br = chooseTunnel({ ...base, iface: 'eth1', bridgedNics: new Map([['eth1', 'br-eth1']]) });
    assert.ok(br.ok && br.link.name === 'br-eth1');
    const none = chooseTunnel({ ...base, iface: 'lo' });
    assert.deepEqual(none, { ok: false, reason: 'iface lo has no valid IP address' });
    assert.deepEqual(chooseTunnel({ ...base, iface: 'wlan9' }), { ok: false, reason: '--iface "wlan9" matches no link' });
  });
  it('OVS external_ids: default first, node networks sorted; node networks validated', () => {
    const nn = parseNodeNetworks('{"storage":"10.9.0.5","bad":"x","mgmt":"10.8.0.5"}');
    assert.deepEqual(nn.problems, ['node network bad: "x" is not an IP address']);
    assert.deepEqual(encapExternalIds('192.168.1.10', nn.networks, true),
      { 'ovn-encap-ip': '192.168.1.10,10.8.0.5,10.9.0.5', 'ovn-encap-ip-default': '192.168.1.10', 'ovn-encap-csum': 'true' });
  });
});
