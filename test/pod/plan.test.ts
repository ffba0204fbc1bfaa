import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodePodNic, type Annotations, type PodNicAnnotations } from '../../agent/src/pod/annotations.ts';
import { mergeRoutes, planAdd, podSideEarly, planDel, undoSteps, type NicRequest, type NodeFacts, type OvnNicPlan, type IpamPlan,
  type PlannedAddress, type SubnetFacts } from '../../agent/src/pod/plan.ts';
import { ifaceId, vethNames } from '../../agent/src/pod/names.ts';
import { AgentError } from '../../agent/src/errors.ts';

const CID = '0123456789abcdef0123456789abcdef';
const NETNS = '/var/run/netns/cni-1234';
const req = (over: Partial<NicRequest> = {}): NicRequest => ({
  containerId: CID, netns: NETNS, ifName: 'eth0', podName: 'web-1', podNamespace: 'default', provider: 'ovn',
  cniType: 'kube-ovn', routes: null, ...over,
});
const node = (over: Partial<NodeFacts> = {}): NodeFacts => ({
  mtu: 1400, datapathType: 'system', enableArpDetectIpConflict: true, ovnInstalledTimeoutMs: 30_000,
  gatewayCheckTimeoutMs: 30_000, ...over,
});
const subnet: SubnetFacts = { name: 'ovn-default' };
const ann = (p: string, kv: Record<string, string>): Annotations =>
  Object.fromEntries(Object.entries(kv).map(([k, v]) => [`${p}.kubernetes.io/${k}`, v]));
const v4 = ann('ovn', { allocated: 'true', ip_address: '10.16.0.9', mac_address: '00:00:00:ab:cd:ef', cidr: '10.16.0.0/16',
  gateway: '10.16.0.1', logical_switch: 'ovn-default', routed: 'true' });
const dual = { ...v4, ...ann('ovn', { ip_address: '10.16.0.9,fd00:10:16::9', cidr: '10.16.0.0/16,fd00:10:16::/64',
  gateway: '10.16.0.1,fd00:10:16::1' }) };
const attachA = ann('attachnet.default.ovn', { allocated: 'true', ip_address: '172.17.0.5', mac_address: '00:00:00:11:22:33',
  cidr: '172.17.0.0/24', gateway: '172.17.0.1', logical_switch: 'attach-subnet' });

function nicOf(a: Annotations, provider = 'ovn', ifName = 'eth0'): PodNicAnnotations {
  const r = decodePodNic(a, provider, ifName);
  if (!r.ok) assert.fail(`${r.key}: ${r.reason}`);
  return r.nic;
}
function ovn(a: Annotations, r: Partial<NicRequest> = {}, n: Partial<NodeFacts> = {}, s: SubnetFacts | undefined = subnet): OvnNicPlan {
  const rq = req(r);
  const p = planAdd(rq, nicOf(a, rq.provider, rq.ifName), node(n), s);
  assert.equal(p.kind, 'ovn');
  return p as OvnNicPlan;
}
function ipam(a: Annotations, r: Partial<NicRequest>): IpamPlan {
  const rq = req(r);
  const p = planAdd(rq, nicOf(a, rq.provider, rq.ifName), node(), undefined);
  assert.equal(p.kind, 'ipam');
  return p as IpamPlan;
}
function agentErr(fn: () => unknown): AgentError {
  try { fn(); } catch (e) { assert.ok(e instanceof AgentError, String(e)); return e; }
  assert.fail('expected an AgentError');
}

describe('names', () => {
  const cases: [string, string, string | RegExp][] = [
    [CID, 'eth0', '0123456789ab_h'],
    [CID, '', '0123456789ab_h'],
    [CID, 'net1', '01234567_net1_h'],
    [CID, 'podabcdef12345', '01234_abcdef1_h'],
    [CID, 'abcdefghijkl', '_abcdefghijkl_h'],
    [CID, 'abcdefghijklm', /longer than 12 bytes/],
    [CID, 'ñet0', '0123456_ñet0_h'],
    [CID, 'ñetñet0', '012_ñetñet0_h'],
    [CID, 'ñetñetñet0', /longer than 12 bytes/],
    [CID, 'nà1', /refuses.*0xa0/],
    ['short', 'eth0', 'short_h'],
    ['bad/id', 'eth0', /not allowed/],
    ['', 'eth0', /empty/],
  ];
  for (const [cid, ifn, want] of cases) {
    it(`${cid.slice(0, 8)} ${ifn || '(empty)'}`, () => {
      const n = vethNames(cid, ifn);
      if (typeof want === 'string') {
        assert.ok(typeof n !== 'string', String(n));
        assert.equal(n.host, want);
        assert.equal(n.container, want.replace(/_h$/, '_c'));
        assert.ok(Buffer.byteLength(n.host) <= 15, n.host);
      } else {
        assert.ok(typeof n === 'string');
        assert.match(n, want);
      }
    });
  }
  it('iface-id', () => {
    assert.equal(ifaceId('p', 'ns', 'ovn', 'eth0', false), 'p.ns');
    assert.equal(ifaceId('p', 'ns', 'a.b.ovn', 'net1', false), 'p.ns.a.b.ovn');
    assert.equal(ifaceId('p', 'ns', 'a.b.ovn', 'net2', true), 'p.ns.a.b.ovn.net2');
  });
});

describe('plan: OVN NIC', () => {
  it('single stack on eth0: names, ids, MTU, routes, steps, response, result', () => {
    const p = ovn(v4);
    assert.equal(p.hostNic, '0123456789ab_h');
    assert.equal(p.containerNic, '0123456789ab_c');
    assert.equal(p.ifaceId, 'web-1.default');
    assert.deepEqual(p.externalIds, { 'iface-id': 'web-1.default', vendor: 'kube-ovn', pod_name: 'web-1',
      pod_namespace: 'default', pod_netns: NETNS, ip: '10.16.0.9' });
    assert.equal(p.mtu, 1400);
    assert.equal(p.mac, '00:00:00:ab:cd:ef');
    assert.deepEqual(p.addresses.map((a) => a.address), ['10.16.0.9/16']);
    assert.deepEqual(p.routes, [{ family: 4, dst: '0.0.0.0/0', gw: '10.16.0.1' }]);
    assert.equal(p.txChecksumOff, false);
    assert.equal(p.ipv4ConflictProbe, true);
    assert.equal(p.ipv6Dad, true);
    assert.deepEqual(p.gatewayCheck, { mode: 'ping', concerned: true, targets: [{ ip: '10.16.0.9', gateway: '10.16.0.1', family: 4 }], timeoutMs: 30_000 });
    assert.deepEqual(p.ipCr, { name: 'web-1.default', subnet: 'ovn-default' });
    assert.deepEqual(p.steps.map((s) => s.op), ['podSysctls', 'createVeth', 'renameInNetns', 'hostLinkUp', 'ovsAddPort',
      'waitOvnInstalled', 'configureContainerNic', 'addRoutes', 'announce', 'gatewayCheck']);
    assert.deepEqual(p.steps[1], { op: 'createVeth', host: '0123456789ab_h', container: '0123456789ab_c', netns: NETNS, mtu: 1400,
      podName: 'web-1', podNamespace: 'default', undo: [{ op: 'deleteLink', link: '0123456789ab_h', onlyIfVeth: true }] });
    assert.deepEqual(p.steps[2], { op: 'renameInNetns', netns: NETNS, link: '0123456789ab_c', newName: 'eth0', alias: '0123456789ab_c' });
    assert.deepEqual(p.response, {
      ips: [{ protocol: 'IPv4', ip: '10.16.0.9', cidr: '10.16.0.0/16', gateway: '10.16.0.1' }],
      mac_address: '00:00:00:ab:cd:ef', routes: [{ dst: '', gw: '10.16.0.1' }, { dst: '10.16.0.0/16', gw: '' }],
      mtu: 1400, nicname: 'eth0' });
    assert.deepEqual(p.result, {
      interfaces: [{ name: 'eth0', mac: '00:00:00:ab:cd:ef', mtu: 1400, sandbox: NETNS }],
      ips: [{ address: '10.16.0.9/16', gateway: '10.16.0.1', interface: 0 }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.16.0.1' }, { dst: '10.16.0.0/16' }],
      dns: {} });
    assert.deepEqual(p.warnings, []);
  });
  it('undo runs in reverse: QoS rows and port, then the veth', () => {
    const p = ovn(v4);
    assert.deepEqual(undoSteps(p.steps.slice(0, 5)), [
      { op: 'ovsDelPort', bridge: 'br-int', port: '0123456789ab_h' },
      { op: 'destroyQos', podKey: 'default/web-1', ifaceId: 'web-1.default' },
      { op: 'deleteLink', link: '0123456789ab_h', onlyIfVeth: true }]);
    assert.deepEqual(undoSteps(p.steps.slice(0, 2)), [{ op: 'deleteLink', link: '0123456789ab_h', onlyIfVeth: true }]);
    assert.deepEqual(undoSteps([]), []);
  });
  it('dual stack: both addresses, both default routes, both gateway targets', () => {
    const p = ovn(dual);
    assert.deepEqual(p.addresses.map((a) => a.address), ['10.16.0.9/16', 'fd00:10:16::9/64']);
    assert.deepEqual(p.routes, [{ family: 4, dst: '0.0.0.0/0', gw: '10.16.0.1' }, { family: 6, dst: '::/0', gw: 'fd00:10:16::1' }]);
    assert.equal(p.externalIds.ip, '10.16.0.9,fd00:10:16::9');
    assert.deepEqual(p.gatewayCheck.targets.map((t) => t.gateway), ['10.16.0.1', 'fd00:10:16::1']);
    assert.deepEqual(p.result.ips, [{ address: '10.16.0.9/16', gateway: '10.16.0.1', interface: 0 },
      { address: 'fd00:10:16::9/64', gateway: 'fd00:10:16::1', interface: 0 }]);
    // the kernel's order (net/route-order.ts): IPv4 by address, IPv6 more specific first
    assert.deepEqual(p.result.routes, [{ dst: '0.0.0.0/0', gw: '10.16.0.1' }, { dst: '10.16.0.0/16' }, { dst: 'fd00:10:16::/64' },
      { dst: '::/0', gw: 'fd00:10:16::1' }]);
  });
  it('attachment net1 (<nad>.<ns>.ovn): provider iface-id, no default route, no gateway in ips, annotation routes', () => {
    const a = { ...v4, ...attachA, 'attachnet.default.ovn.kubernetes.io/routes': '[{"dst":"192.168.0.0/16","gw":"172.17.0.254"}]' };
    const p = ovn(a, { provider: 'attachnet.default.ovn', ifName: 'net1' }, {}, { name: 'attach-subnet' });
    assert.equal(p.hostNic, '01234567_net1_h');
    assert.equal(p.ifaceId, 'web-1.default.attachnet.default.ovn');
    assert.deepEqual(p.routes, [{ family: 4, dst: '192.168.0.0/16', gw: '172.17.0.254' }]);
    assert.deepEqual(p.response.ips, [{ protocol: 'IPv4', ip: '172.17.0.5', cidr: '172.17.0.0/24' }]);
    assert.deepEqual(p.ipCr, { name: 'web-1.default.attachnet.default.ovn', subnet: 'attach-subnet' });
    assert.equal((p.steps.find((s) => s.op === 'renameInNetns') as { newName: string }).newName, 'net1');
  });
  it('attachment with default_route=true gets the default route', () => {
    const a = { ...attachA, ...ann('attachnet.default.ovn', { default_route: 'true', routed: 'true' }) };
    const p = ovn(a, { provider: 'attachnet.default.ovn', ifName: 'net1' });
    assert.deepEqual(p.routes, [{ family: 4, dst: '0.0.0.0/0', gw: '172.17.0.1' }]);
    assert.equal(p.response.ips[0]!.gateway, '172.17.0.1');
  });
  it('eth0 with default_route=false has no default route', () => {
    const p = ovn({ ...v4, 'ovn.kubernetes.io/default_route': 'false' });
    assert.deepEqual(p.routes, []);
    assert.equal(p.steps.some((s) => s.op === 'addRoutes'), false);
  });
  it('appendIfName: iface-id and IP CR get .<ifName>', () => {
    const a = { ...attachA, ...ann('attachnet.default.ovn.net2', { ip_address: '172.17.0.6', mac_address: '00:00:00:11:22:44',
      cidr: '172.17.0.0/24', gateway: '172.17.0.1', logical_switch: 'attach-subnet' }) };
    const p = ovn(a, { provider: 'attachnet.default.ovn', ifName: 'net2' });
    assert.equal(p.ifaceId, 'web-1.default.attachnet.default.ovn.net2');
    assert.equal(p.ipCr?.name, 'web-1.default.attachnet.default.ovn.net2');
    assert.equal(p.externalIds.ip, '172.17.0.6');
  });
  it('netconf routes ++ annotation routes; empty dst = default; a custom default replaces the gateway default', () => {
    const a = { ...v4, 'ovn.kubernetes.io/routes': '[{"gw":"10.16.0.254"},{"dst":"10.99.1.7/16","gw":"10.16.0.253"}]' };
    const p = ovn(a, { routes: [{ dst: '172.20.0.0/16', gw: '10.16.0.252' }, { dst: 'bogus', gw: '10.16.0.1' }] });
    assert.deepEqual(p.routes, [
      { family: 4, dst: '172.20.0.0/16', gw: '10.16.0.252' },
      { family: 4, dst: '0.0.0.0/0', gw: '10.16.0.254' },
      { family: 4, dst: '10.99.0.0/16', gw: '10.16.0.253' }]);
    assert.equal(p.warnings.length, 1);
    assert.match(p.warnings[0]!, /dst is not a CIDR/);
  });
  it('u2o interconnection IP replaces the subnet gateway and is checked first, only while u2oInterconnection is on', () => {
    const p = ovn(v4, {}, {}, { name: 'ovn-default', u2oInterconnection: true, u2oInterconnectionIp: '10.16.0.100' });
    assert.deepEqual(p.routes, [{ family: 4, dst: '0.0.0.0/0', gw: '10.16.0.100' }]);
    assert.deepEqual(p.gatewayCheck.targets.map((t) => t.gateway), ['10.16.0.100', '10.16.0.1']);
    // the flag turned off, the status not cleared yet: the subnet gateway, as upstream
    const off = ovn(v4, {}, {}, { name: 'ovn-default', u2oInterconnectionIp: '10.16.0.100' });
    assert.deepEqual(off.routes, [{ family: 4, dst: '0.0.0.0/0', gw: '10.16.0.1' }]);
    assert.deepEqual(off.gatewayCheck.targets.map((t) => t.gateway), ['10.16.0.1']);
  });
  it('u2o subnet without status.u2oInterconnectionIP: try again later (CNI 11), as upstream; with it, the u2o gateway', () => {
    const e = agentErr(() => ovn(v4, {}, {}, { name: 'u2o', vlan: 'vl0', u2oInterconnection: true }));
    assert.equal(e.code, 'KOA_TRY_AGAIN');
    assert.equal(e.cniCode, 11);
    assert.match(e.message, /subnet u2o has u2oInterconnection but no status\.u2oInterconnectionIP yet/);
    const p = ovn(v4, {}, {}, { name: 'u2o', vlan: 'vl0', u2oInterconnection: true, u2oInterconnectionIp: '10.16.0.100' });
    assert.deepEqual(p.routes, [{ family: 4, dst: '0.0.0.0/0', gw: '10.16.0.100' }]);
  });
  it('MTU: subnet spec.mtu, provider-network node label, label absent = 0, bad label = error', () => {
    assert.equal(ovn(v4, {}, {}, { name: 's', mtu: 1300 }).mtu, 1300);
    const pn = { ...v4, 'ovn.kubernetes.io/provider_network': 'net-a' };
    assert.equal(ovn(pn, {}, { nodeLabels: { 'net-a.provider-network.kubernetes.io/mtu': '9000' } }).mtu, 9000);
    const zero = ovn(pn, {}, { nodeLabels: {} });
    assert.equal(zero.mtu, 0);
    assert.equal('mtu' in zero.result.interfaces![0]!, false);
    assert.equal(ovn(pn, {}, { nodeLabels: {} }, { name: 's', logicalGateway: true }).mtu, 1400);
    assert.match(agentErr(() => ovn(pn, {}, { nodeLabels: { 'net-a.provider-network.kubernetes.io/mtu': 'x' } })).message, /not a positive MTU/);
  });
  it('userspace datapath turns TX checksum offload off before waiting for OVN', () => {
    const p = ovn(v4, {}, { datapathType: 'netdev' });
    assert.equal(p.txChecksumOff, true);
    const ops = p.steps.map((s) => s.op);
    assert.ok(ops.indexOf('txChecksumOff') < ops.indexOf('waitOvnInstalled'));
    assert.deepEqual(p.steps.find((s) => s.op === 'txChecksumOff'), { op: 'txChecksumOff', netns: NETNS, link: 'eth0' });
    assert.ok(ops.indexOf('renameInNetns') < ops.indexOf('txChecksumOff'));
  });
  it('gateway check modes: underlay arping, disableGatewayCheck, migration target, activation strategy, timeout 0', () => {
    assert.equal(ovn(v4, {}, {}, { name: 's', vlan: 'v1' }).gatewayCheck.mode, 'arping');
    assert.equal(ovn(v4, {}, {}, { name: 's', vlan: 'v1', logicalGateway: true }).gatewayCheck.mode, 'ping');
    const nc = ovn(v4, {}, {}, { name: 's', disableGatewayCheck: true }).gatewayCheck;
    assert.deepEqual([nc.mode, nc.concerned], ['ping-not-concerned', false]);
    const mig = ovn({ ...v4, 'kubevirt.io/migrationJobName': 'j' });
    assert.deepEqual([mig.gatewayCheck.mode, mig.ipv6Dad, mig.ipv4ConflictProbe], ['disabled', false, false]);
    assert.equal(mig.steps.some((s) => s.op === 'gatewayCheck'), false);
    assert.equal(ovn({ ...v4, 'ovn.kubernetes.io/activation_strategy': 'x' }).gatewayCheck.mode, 'disabled');
    assert.equal(ovn(v4, {}, { gatewayCheckTimeoutMs: 0 }).gatewayCheck.mode, 'disabled');
    assert.equal(ovn(v4, {}, { enableArpDetectIpConflict: false }).ipv4ConflictProbe, false);
  });
  it('the pod side runs while ovn-controller binds the port only when no IPv4 probe or IPv6 DAD needs the bound port', () => {
    const order = (p: OvnNicPlan) => p.steps.map((s) => s.op).filter((op) => ['configureContainerNic', 'addRoutes', 'waitOvnInstalled', 'announce', 'gatewayCheck'].includes(op));
    // IPv4 without the probe: addresses and routes first, the GARP and the gateway check after ovn-installed
    assert.deepEqual(order(ovn(v4, {}, { enableArpDetectIpConflict: false })), ['configureContainerNic', 'addRoutes', 'waitOvnInstalled', 'announce', 'gatewayCheck']);
    // the probe, or IPv6 with DAD, must hear answers through a bound port: upstream's order
    const after = ['waitOvnInstalled', 'configureContainerNic', 'addRoutes', 'announce', 'gatewayCheck'];
    assert.deepEqual(order(ovn(v4)), after);
    assert.deepEqual(order(ovn(dual, {}, { enableArpDetectIpConflict: false })), after);
    // a migration target has neither (no DAD, no probe, no gateway check)
    assert.deepEqual(order(ovn({ ...dual, 'kubevirt.io/migrationJobName': 'j' })), ['configureContainerNic', 'addRoutes', 'waitOvnInstalled', 'announce']);
    assert.equal(podSideEarly([{ family: 6 } as PlannedAddress], true, false), true);
    assert.equal(podSideEarly([{ family: 6 } as PlannedAddress], false, true), false);
    assert.equal(podSideEarly([], true, true), true);
    // the GARP's second round follows the probe, as upstream
    const ann4 = ovn(v4).steps.find((s) => s.op === 'announce');
    assert.deepEqual(ann4, { op: 'announce', netns: NETNS, link: 'eth0', addresses: ovn(v4).addresses, secondGarp: true });
    assert.equal(ovn(ann('ovn', { allocated: 'true', mac_address: '00:00:00:00:00:07', logical_switch: 'dhcp' })).steps.some((s) => s.op === 'announce'), false);
  });
  it('subnet nodeNetwork adds encap-ip, or fails clearly', () => {
    const s = { name: 's', nodeNetwork: 'storage' };
    assert.equal(ovn(v4, {}, { nodeNetworks: { storage: '192.168.9.5' } }, s).externalIds['encap-ip'], '192.168.9.5');
    assert.match(agentErr(() => ovn(v4, {}, {}, s)).message, /no encap IP for network storage/);
  });
  it('QoS annotations add a setQos step after the port', () => {
    const p = ovn({ ...v4, 'ovn.kubernetes.io/ingress_rate': '10', 'ovn.kubernetes.io/egress_rate': '5' });
    assert.deepEqual(p.qos, { ingressRate: 10, egressRate: 5, ifaceId: 'web-1.default', podKey: 'default/web-1' });
    const ops = p.steps.map((s) => s.op);
    assert.equal(ops.indexOf('setQos'), ops.indexOf('ovsAddPort') + 1);
  });
  it('KubeVirt VM name replaces the pod name in iface-id, external_ids and IP CR', () => {
    const p = ovn({ ...v4, 'ovn.kubernetes.io/virtualmachine': 'vm-a' });
    assert.equal(p.ifaceId, 'vm-a.default');
    assert.equal(p.externalIds.pod_name, 'vm-a');
    assert.equal(p.ipCr?.name, 'vm-a.default');
  });
  it('MAC-only NIC: MAC and MTU only, no addresses, routes, ip external id, IP CR or gateway check', () => {
    const p = ovn(ann('ovn', { allocated: 'true', mac_address: '00:00:00:00:00:07', logical_switch: 'dhcp' }));
    assert.deepEqual(p.addresses, []);
    assert.deepEqual(p.routes, []);
    assert.equal('ip' in p.externalIds, false);
    assert.equal(p.ipCr, undefined);
    assert.equal(p.gatewayCheck.mode, 'disabled');
    assert.deepEqual(p.result.routes, []);
  });
  it('rejects what it cannot do with a precise error and code', () => {
    const cases: [Partial<NicRequest>, Annotations, string, RegExp][] = [
      [{ deviceId: '0000:01:00.1' }, v4, 'KOA_UNSUPPORTED_FIELD', /SR-IOV/],
      [{ vhostUserSocketVolumeName: 'v' }, v4, 'KOA_UNSUPPORTED_FIELD', /vhost-user/],
      [{}, { ...v4, 'ovn.kubernetes.io/pod_nic_type': 'internal-port' }, 'KOA_UNSUPPORTED_FIELD', /internal-port/],
      [{ netns: '' }, v4, 'KOA_BAD_ENV', /CNI_NETNS/],
      [{ ifName: 'averyverylongname' }, { ...v4, 'ovn.kubernetes.io/default_route': 'true' }, 'KOA_BAD_ENV', /longer than 12/],
    ];
    for (const [r, a, code, msg] of cases) {
      const e = agentErr(() => ovn(a, r));
      assert.equal(e.code, code);
      assert.match(e.message, msg);
    }
  });
});

describe('plan: IPAM-only (provider <nad>.<ns>)', () => {
  const mv = ann('macvlan.default', { allocated: 'true', ip_address: '172.18.0.7', cidr: '172.18.0.0/24', gateway: '172.18.0.1' });
  it('returns addresses without link work; no gateway on a non-default NIC', () => {
    const p = ipam(mv, { provider: 'macvlan.default', ifName: 'net1', cniType: 'macvlan' });
    assert.deepEqual(p.steps, []);
    assert.deepEqual(p.removeDefaultRoutes, []);
    assert.deepEqual(p.result, { ips: [{ address: '172.18.0.7/24' }], routes: [], dns: {} });
    assert.deepEqual(p.response, { ips: [{ protocol: 'IPv4', ip: '172.18.0.7', cidr: '172.18.0.0/24' }], mac_address: '',
      routes: [], mtu: 0, nicname: '' });
    assert.equal(p.ipCr, undefined);
  });
  it('on eth0 (or default_route=true) returns the gateway and a synthesised default route', () => {
    const p = ipam(mv, { provider: 'macvlan.default', ifName: 'eth0', cniType: 'macvlan' });
    assert.deepEqual(p.result.ips, [{ address: '172.18.0.7/24', gateway: '172.18.0.1' }]);
    assert.deepEqual(p.result.routes, [{ dst: '0.0.0.0/0', gw: '172.18.0.1' }]);
  });
  it('a default route among netconf/annotation routes removes the pod\'s existing default routes of that family first', () => {
    const p = ipam({ ...mv, 'macvlan.default.kubernetes.io/routes': '[{"dst":"","gw":"172.18.0.1"}]' },
      { provider: 'macvlan.default', ifName: 'net1', cniType: 'macvlan', routes: [{ dst: '10.0.0.0/8', gw: '172.18.0.254' }] });
    assert.deepEqual(p.removeDefaultRoutes, [4]);
    assert.deepEqual(p.steps, [{ op: 'removeDefaultRoutes', netns: NETNS, families: [4] }]);
    assert.deepEqual(p.result.routes, [{ dst: '10.0.0.0/8', gw: '172.18.0.254' }, { dst: '0.0.0.0/0', gw: '172.18.0.1' }]);
    assert.deepEqual(p.response.routes, [{ dst: '10.0.0.0/8', gw: '172.18.0.254' }, { dst: '', gw: '172.18.0.1' }]);
  });
  it('IP CR from the logical switch annotation', () => {
    const p = ipam({ ...mv, 'macvlan.default.kubernetes.io/logical_switch': 'mv-subnet' },
      { provider: 'macvlan.default', ifName: 'net1', cniType: 'macvlan' });
    assert.deepEqual(p.ipCr, { name: 'web-1.default.macvlan.default', subnet: 'mv-subnet' });
  });
});

describe('plan: DEL', () => {
  const del = { containerId: CID, netns: NETNS, ifName: 'eth0', podName: 'web-1', podNamespace: 'default', provider: 'ovn', cniType: 'kube-ovn' };
  it('removes port, unreferenced QoS rows and the host veth, with no annotations needed', () => {
    assert.deepEqual(planDel(del), { hostNic: '0123456789ab_h', steps: [
      { op: 'ovsDelPort', bridge: 'br-int', port: '0123456789ab_h' },
      { op: 'destroyQos', podKey: 'default/web-1' },
      { op: 'deleteLink', link: '0123456789ab_h', onlyIfVeth: true }] });
    assert.equal(planDel({ ...del, ifName: 'net1', provider: 'a.b.ovn' }).hostNic, '01234567_net1_h');
    assert.deepEqual(planDel(del, 'vm-a').steps[1], { op: 'destroyQos', podKey: 'default/vm-a' });
  });
  it('skips IPAM-only providers and names that could never exist; an empty netns still removes the host side', () => {
    assert.deepEqual(planDel({ ...del, netns: '' }).steps, planDel(del).steps);
    assert.match(planDel({ ...del, provider: 'macvlan.default', cniType: 'macvlan' }).skip!, /IPAM-only/);
    assert.equal(planDel({ ...del, provider: 'macvlan.default', cniType: 'kube-ovn' }).steps.length, 3);
    assert.match(planDel({ ...del, ifName: 'averyverylongname' }).skip!, /longer than 12/);
  });
});

describe('plan: mergeRoutes', () => {
  it('canonicalises, families, warnings', () => {
    const r = mergeRoutes([{ dst: 'fd00:1::5/64', gw: 'fd00::1' }, { gw: 'fd00::1' }, {}], [{ dst: '10.0.0.0/8', gw: 'fd00::1' }, { dst: '1.2.3.0/24' }]);
    assert.deepEqual(r.routes, [{ family: 6, dst: 'fd00:1::/64', gw: 'fd00::1' }, { family: 6, dst: '::/0', gw: 'fd00::1' },
      { family: 4, dst: '1.2.3.0/24', gw: '' }]);
    assert.equal(r.warnings.length, 2);
  });
});

describe('plan: request adapters', () => {
  it('maps a CNI request to the planner inputs', async () => {
    const { nicRequestFromCni, delRequestFromCni } = await import('../../agent/src/pod/request.ts');
    const cni = {
      command: 'ADD' as const, containerId: CID, netns: NETNS, ifName: 'net1', podName: 'p', podNamespace: 'ns',
      args: { ignoreUnknown: true, all: {} }, cniPath: [], via: 'cni' as const,
      netconf: { cniVersion: '1.0.0' as const, name: 'n', type: 'kube-ovn', ipamMode: false, serverSocket: '/s',
        provider: 'a.b.ovn', routes: [{ dst: '1.0.0.0/8', gw: '10.0.0.1' }], dns: { nameservers: ['1.1.1.1'] }, raw: {} },
    };
    assert.deepEqual(nicRequestFromCni(cni), { containerId: CID, netns: NETNS, ifName: 'net1', podName: 'p', podNamespace: 'ns',
      provider: 'a.b.ovn', cniType: 'kube-ovn', routes: [{ dst: '1.0.0.0/8', gw: '10.0.0.1' }], dns: { nameservers: ['1.1.1.1'] } });
    assert.deepEqual(delRequestFromCni(cni), { containerId: CID, netns: NETNS, ifName: 'net1', podName: 'p', podNamespace: 'ns',
      provider: 'a.b.ovn', cniType: 'kube-ovn' });
  });
});
