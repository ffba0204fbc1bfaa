import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { annotationKeys, decodePodNic, isOvnProvider, parseAnnotatedRoutes, providerForSubnet, type Annotations }
  from '../../agent/src/pod/annotations.ts';
import { cidrContains, formatIp, networkOf, parseCidr, parseIp } from '../../agent/src/net/ip.ts';

const base: Annotations = {
  'ovn.kubernetes.io/allocated': 'true',
  'ovn.kubernetes.io/ip_address': '10.16.0.9',
  'ovn.kubernetes.io/mac_address': '00:00:00:AB:CD:EF',
  'ovn.kubernetes.io/cidr': '10.16.0.0/16',
  'ovn.kubernetes.io/gateway': '10.16.0.1',
  'ovn.kubernetes.io/logical_switch': 'ovn-default',
  'ovn.kubernetes.io/routed': 'true',
};
const attach: Annotations = {
  'attachnet.default.ovn.kubernetes.io/allocated': 'true',
  'attachnet.default.ovn.kubernetes.io/ip_address': '172.17.0.5',
  'attachnet.default.ovn.kubernetes.io/mac_address': '00:00:00:11:22:33',
  'attachnet.default.ovn.kubernetes.io/cidr': '172.17.0.0/24',
  'attachnet.default.ovn.kubernetes.io/gateway': '172.17.0.1',
  'attachnet.default.ovn.kubernetes.io/logical_switch': 'attach-subnet',
};

function ok(a: Annotations, provider = 'ovn', ifName = 'eth0') {
  const r = decodePodNic(a, provider, ifName);
  if (!r.ok) assert.fail(`expected ok, got ${r.key}: ${r.reason}`);
  return r.nic;
}

describe('annotations: decode (provider ovn, eth0)', () => {
  it('decodes a single-stack NIC', () => {
    const n = ok(base);
    assert.deepEqual(n.addresses, [{ family: 4, ip: '10.16.0.9', prefixLen: 16, cidr: '10.16.0.0/16' }]);
    assert.equal(n.mac, '00:00:00:ab:cd:ef');
    assert.deepEqual(n.gateways, ['10.16.0.1']);
    assert.equal(n.logicalSwitch, 'ovn-default');
    assert.equal(n.defaultRoute, true);
    assert.equal(n.routed, true);
    assert.equal(n.macOnly, false);
    assert.equal(n.appendIfName, false);
    assert.deepEqual(n.routes, []);
    assert.deepEqual(n.qos, {});
    assert.equal(n.migrationTarget, false);
  });
  it('decodes dual stack with cidr/gateway pairs, IPv6 canonicalised', () => {
    const n = ok({ ...base, 'ovn.kubernetes.io/ip_address': '10.16.0.9,fd00:10:16:0::9',
      'ovn.kubernetes.io/cidr': '10.16.0.0/16,fd00:10:16::/64', 'ovn.kubernetes.io/gateway': '10.16.0.1,fd00:10:16::1' });
    assert.deepEqual(n.addresses, [
      { family: 4, ip: '10.16.0.9', prefixLen: 16, cidr: '10.16.0.0/16' },
      { family: 6, ip: 'fd00:10:16::9', prefixLen: 64, cidr: 'fd00:10:16::/64' }]);
    assert.deepEqual(n.gateways, ['10.16.0.1', 'fd00:10:16::1']);
  });
  it('keeps only the gateways of families the pod has', () => {
    const n = ok({ ...base, 'ovn.kubernetes.io/cidr': '10.16.0.0/16,fd00::/64', 'ovn.kubernetes.io/gateway': '10.16.0.1,fd00::1' });
    assert.deepEqual(n.gateways, ['10.16.0.1']);
  });
  it('reads routes JSON, QoS, nic type, VM, mirror, vlan, migration', () => {
    const n = ok({ ...base, 'ovn.kubernetes.io/routes': '[{"dst":"192.168.0.0/16","gw":"10.16.0.254"},{"gw":"10.16.0.1"}]',
      'ovn.kubernetes.io/ingress_rate': '10', 'ovn.kubernetes.io/egress_rate': '20', 'ovn.kubernetes.io/loss': '2.5',
      'ovn.kubernetes.io/latency': '5', 'ovn.kubernetes.io/pod_nic_type': 'veth-pair', 'ovn.kubernetes.io/virtualmachine': 'vm1',
      'ovn.kubernetes.io/mirror': 'true', 'ovn.kubernetes.io/vlan_id': '100', 'kubevirt.io/migrationJobName': 'job1' });
    assert.deepEqual(n.routes, [{ dst: '192.168.0.0/16', gw: '10.16.0.254' }, { dst: '', gw: '10.16.0.1' }]);
    assert.deepEqual(n.qos, { ingressRate: 10, egressRate: 20, loss: 2.5, latency: 5 });
    assert.equal(n.podNicType, 'veth-pair');
    assert.equal(n.virtualMachine, 'vm1');
    assert.equal(n.mirror, true);
    assert.equal(n.vlanId, 100);
    assert.equal(n.migrationTarget, true);
  });
  it('detects a MAC-only NIC (no cidr, no ip, allocated, mac)', () => {
    const n = ok({ 'ovn.kubernetes.io/allocated': 'true', 'ovn.kubernetes.io/mac_address': '00:00:00:00:00:01',
      'ovn.kubernetes.io/logical_switch': 'dhcp-net' });
    assert.equal(n.macOnly, true);
    assert.deepEqual(n.addresses, []);
  });
});

describe('annotations: wait and fatal reasons', () => {
  const cases: { name: string; a: Annotations; provider?: string; ifName?: string; retry: boolean; key: string; reason: RegExp }[] = [
    { name: 'nothing yet', a: {}, retry: true, key: 'ovn.kubernetes.io/ip_address', reason: /no address allocated yet/ },
    { name: 'allocated but empty ip', a: { 'ovn.kubernetes.io/allocated': 'true', 'ovn.kubernetes.io/cidr': '10.0.0.0/8' },
      retry: true, key: 'ovn.kubernetes.io/ip_address', reason: /empty although/ },
    { name: 'bad ip', a: { ...base, 'ovn.kubernetes.io/ip_address': '10.16.0.300' }, retry: true, key: 'ovn.kubernetes.io/ip_address', reason: /not an IP/ },
    { name: 'ip outside cidr', a: { ...base, 'ovn.kubernetes.io/ip_address': '10.17.0.9' }, retry: true, key: 'ovn.kubernetes.io/ip_address', reason: /not inside/ },
    { name: 'no cidr', a: { ...base, 'ovn.kubernetes.io/cidr': '' }, retry: true, key: 'ovn.kubernetes.io/cidr', reason: /missing/ },
    { name: 'bad cidr', a: { ...base, 'ovn.kubernetes.io/cidr': '10.16.0.0/33' }, retry: true, key: 'ovn.kubernetes.io/cidr', reason: /not a CIDR/ },
    { name: 'no cidr of the family', a: { ...base, 'ovn.kubernetes.io/ip_address': 'fd00::9' }, retry: true, key: 'ovn.kubernetes.io/cidr', reason: /no IPv6 CIDR/ },
    { name: 'two v4', a: { ...base, 'ovn.kubernetes.io/ip_address': '10.16.0.9,10.16.0.10' }, retry: true, key: 'ovn.kubernetes.io/ip_address', reason: /two IPv4/ },
    { name: 'bad mac', a: { ...base, 'ovn.kubernetes.io/mac_address': 'zz:00:00:00:00:00' }, retry: true, key: 'ovn.kubernetes.io/mac_address', reason: /not a MAC/ },
    { name: 'no mac (ovn)', a: { ...base, 'ovn.kubernetes.io/mac_address': '' }, retry: true, key: 'ovn.kubernetes.io/mac_address', reason: /missing/ },
    { name: 'not routed', a: { ...base, 'ovn.kubernetes.io/routed': 'false' }, retry: true, key: 'ovn.kubernetes.io/routed', reason: /not "true"/ },
    { name: 'no logical switch', a: { ...base, 'ovn.kubernetes.io/logical_switch': '' }, retry: true, key: 'ovn.kubernetes.io/logical_switch', reason: /missing/ },
    { name: 'bad gateway', a: { ...base, 'ovn.kubernetes.io/gateway': 'gw' }, retry: true, key: 'ovn.kubernetes.io/gateway', reason: /not an IP/ },
    { name: 'routes not JSON', a: { ...base, 'ovn.kubernetes.io/routes': '[{' }, retry: false, key: 'ovn.kubernetes.io/routes', reason: /not JSON/ },
    { name: 'routes not array', a: { ...base, 'ovn.kubernetes.io/routes': '{"dst":"x"}' }, retry: false, key: 'ovn.kubernetes.io/routes', reason: /JSON array/ },
    { name: 'route gw not string', a: { ...base, 'ovn.kubernetes.io/routes': '[{"gw":1}]' }, retry: false, key: 'ovn.kubernetes.io/routes', reason: /strings/ },
    { name: 'bad rate', a: { ...base, 'ovn.kubernetes.io/ingress_rate': '-1' }, retry: false, key: 'ovn.kubernetes.io/ingress_rate', reason: /non-negative integer/ },
    { name: 'bad loss', a: { ...base, 'ovn.kubernetes.io/loss': '101' }, retry: false, key: 'ovn.kubernetes.io/loss', reason: /percentage/ },
    { name: 'bad vlan', a: { ...base, 'ovn.kubernetes.io/vlan_id': '5000' }, retry: false, key: 'ovn.kubernetes.io/vlan_id', reason: /VLAN/ },
    { name: 'attachment not allocated yet', a: base, provider: 'attachnet.default.ovn', ifName: 'net1', retry: true,
      key: 'attachnet.default.ovn.kubernetes.io/ip_address', reason: /attachnet.default.ovn.kubernetes.io\/allocated/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = decodePodNic(c.a, c.provider ?? 'ovn', c.ifName ?? 'eth0');
      assert.equal(r.ok, false);
      if (r.ok) return;
      assert.equal(r.retry, c.retry);
      assert.equal(r.key, c.key);
      assert.match(r.reason, c.reason);
    });
  }
});

describe('annotations: providers, attachments, ifname variants', () => {
  it('reads an attachment <nad>.<ns>.ovn on net1: no default route, no routed wait', () => {
    const n = ok({ ...base, ...attach }, 'attachnet.default.ovn', 'net1');
    assert.equal(n.provider, 'attachnet.default.ovn');
    assert.deepEqual(n.addresses.map((x) => `${x.ip}/${x.prefixLen}`), ['172.17.0.5/24']);
    assert.equal(n.defaultRoute, false);
    assert.equal(n.logicalSwitch, 'attach-subnet');
  });
  it('default_route=true makes the attachment the default-route NIC, which then waits for routed', () => {
    const a = { ...attach, 'attachnet.default.ovn.kubernetes.io/default_route': 'true' };
    const r = decodePodNic(a, 'attachnet.default.ovn', 'net1');
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.key, 'attachnet.default.ovn.kubernetes.io/routed');
    const n = ok({ ...a, 'attachnet.default.ovn.kubernetes.io/routed': 'true' }, 'attachnet.default.ovn', 'net1');
    assert.equal(n.defaultRoute, true);
  });
  it('default_route=false on eth0 removes the default route', () => {
    assert.equal(ok({ ...base, 'ovn.kubernetes.io/default_route': 'false' }).defaultRoute, false);
  });
  it('appendIfName: <P>.<I>.kubernetes.io/ip_address switches the per-NIC keys, not routes/routed', () => {
    const a: Annotations = {
      ...attach,
      'attachnet.default.ovn.net2.kubernetes.io/ip_address': '172.17.0.6',
      'attachnet.default.ovn.net2.kubernetes.io/mac_address': '00:00:00:11:22:44',
      'attachnet.default.ovn.net2.kubernetes.io/cidr': '172.17.0.0/24',
      'attachnet.default.ovn.net2.kubernetes.io/gateway': '172.17.0.1',
      'attachnet.default.ovn.net2.kubernetes.io/logical_switch': 'attach-subnet',
      'attachnet.default.ovn.kubernetes.io/routes': '[{"dst":"10.0.0.0/8","gw":"172.17.0.254"}]',
    };
    const n = ok(a, 'attachnet.default.ovn', 'net2');
    assert.equal(n.appendIfName, true);
    assert.equal(n.addresses[0]!.ip, '172.17.0.6');
    assert.equal(n.mac, '00:00:00:11:22:44');
    assert.deepEqual(n.routes, [{ dst: '10.0.0.0/8', gw: '172.17.0.254' }]);
    const k = annotationKeys(a, 'attachnet.default.ovn', 'net2');
    assert.equal(k.nic('cidr'), 'attachnet.default.ovn.net2.kubernetes.io/cidr');
    assert.equal(k.prov('routed'), 'attachnet.default.ovn.kubernetes.io/routed');
  });
  it('IPAM-only provider <nad>.<ns>: no MAC, no logical_switch and no routed needed', () => {
    const n = ok({ 'macvlan.default.kubernetes.io/ip_address': '172.18.0.7', 'macvlan.default.kubernetes.io/cidr': '172.18.0.0/24',
      'macvlan.default.kubernetes.io/gateway': '172.18.0.1', 'macvlan.default.kubernetes.io/allocated': 'true' }, 'macvlan.default', 'net1');
    assert.equal(n.mac, undefined);
    assert.equal(n.logicalSwitch, undefined);
    assert.equal(n.defaultRoute, false);
  });
  it('empty provider and ifname default to ovn and eth0', () => {
    const n = ok(base, '', '');
    assert.equal(n.provider, 'ovn');
    assert.equal(n.ifName, 'eth0');
  });
  it('classifies providers', () => {
    for (const p of ['', 'ovn', 'a.b.ovn']) assert.equal(isOvnProvider(p), true, p);
    for (const p of ['a.b', 'a.ovn', 'a.b.c.ovn', 'a.b.ovnx', 'macvlan.default']) assert.equal(isOvnProvider(p), false, p);
    assert.equal(providerForSubnet('a.b.ovn.net2', 'net2'), 'a.b.ovn');
    assert.equal(providerForSubnet('a.b.ovn', 'net2'), 'a.b.ovn');
  });
  it('parses route lists', () => {
    assert.deepEqual(parseAnnotatedRoutes(undefined), []);
    assert.deepEqual(parseAnnotatedRoutes('null'), []);
    assert.deepEqual(parseAnnotatedRoutes('[{"dst":" 1.0.0.0/8 "}]'), [{ dst: '1.0.0.0/8', gw: '' }]);
    assert.equal(parseAnnotatedRoutes('[1]'), 'entry 0 is not an object');
  });
});

describe('ip helpers', () => {
  it('parses and formats', () => {
    assert.equal(formatIp(parseIp('fd00:0:0:0:0:0:0:1')!), 'fd00::1');
    assert.equal(formatIp(parseIp('::')!), '::');
    assert.equal(formatIp(parseIp('1:0:0:2:0:0:0:3')!), '1:0:0:2::3');
    assert.equal(formatIp(parseIp('::ffff:1.2.3.4')!), '::ffff:102:304');
    assert.equal(parseIp('1.2.3'), undefined);
    assert.equal(networkOf(parseIp('10.16.3.9')!, 16), '10.16.0.0/16');
    assert.equal(networkOf(parseIp('fd00:10:16::9')!, 64), 'fd00:10:16::/64');
    assert.equal(networkOf(parseIp('10.1.2.3')!, 0), '0.0.0.0/0');
    assert.equal(cidrContains(parseCidr('10.16.0.0/16')!, parseIp('10.16.255.1')!), true);
    assert.equal(cidrContains(parseCidr('10.16.0.0/16')!, parseIp('fd00::1')!), false);
    assert.equal(parseCidr('10.0.0.0/x'), undefined);
  });
});
