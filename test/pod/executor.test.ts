// The executor on the in-memory datapath fakes: step order of a happy ADD, rollback after a fault at every step
// (the fakes end empty), real failures inside steps (veth name taken, ovn-installed never set, IPv4 conflict,
// unreachable gateway), DEL idempotence (twice, unknown container, netns gone), IPAM-only, dual-stack, net1.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeNetlink } from '../../agent/src/datapath/netlink/fake.ts';
import { FakeVswitch } from '../../agent/src/datapath/ovsdb/fake.ts';
import { AgentError } from '../../agent/src/errors.ts';
import { decodePodNic, type Annotations } from '../../agent/src/pod/annotations.ts';
import { instrument } from '../../agent/src/agent.ts';
import { applyAdd, applyDelSteps, probeTiming, type ExecutorDeps } from '../../agent/src/pod/executor.ts';
import { planAdd, planDel, type AddPlan, type NicRequest, type NodeFacts, type SubnetFacts } from '../../agent/src/pod/plan.ts';

const CID = '0123456789abcdef0123456789abcdef';
const NETNS = '/var/run/netns/koap-pod1';
const HOST = '0123456789ab_h';
const ann = (p: string, kv: Record<string, string>): Annotations =>
  Object.fromEntries(Object.entries(kv).map(([k, v]) => [`${p}.kubernetes.io/${k}`, v]));
const v4 = ann('ovn', { allocated: 'true', ip_address: '10.16.0.9', mac_address: '00:00:00:ab:cd:ef', cidr: '10.16.0.0/16',
  gateway: '10.16.0.1', logical_switch: 'ovn-default', routed: 'true' });
const dual = { ...v4, ...ann('ovn', { ip_address: '10.16.0.9,fd00:10:16::9', cidr: '10.16.0.0/16,fd00:10:16::/64', gateway: '10.16.0.1,fd00:10:16::1' }) };
const attach = ann('attachnet.default.ovn', { allocated: 'true', ip_address: '172.17.0.5', mac_address: '00:00:00:11:22:33',
  cidr: '172.17.0.0/24', gateway: '172.17.0.1', logical_switch: 'attach-subnet' });

const req = (over: Partial<NicRequest> = {}): NicRequest => ({ containerId: CID, netns: NETNS, ifName: 'eth0', podName: 'web-1',
  podNamespace: 'default', provider: 'ovn', cniType: 'kube-ovn', routes: null, ...over });
const facts = (over: Partial<NodeFacts> = {}): NodeFacts => ({ mtu: 1400, datapathType: 'netdev', enableArpDetectIpConflict: true,
  ovnInstalledTimeoutMs: 2000, gatewayCheckTimeoutMs: 500, ...over });

function plan(a: Annotations, r: Partial<NicRequest> = {}, n: Partial<NodeFacts> = {}, s: SubnetFacts = { name: 'ovn-default' }): AddPlan {
  const rq = req(r);
  const d = decodePodNic(a, rq.provider, rq.ifName);
  if (!d.ok) assert.fail(`${d.key}: ${d.reason}`);
  return planAdd(rq, d.nic, facts(n), s);
}

interface World { nl: FakeNetlink; vs: FakeVswitch; deps: ExecutorDeps; waits: [string, number][] }

/** Fakes with a pod netns, ovn-controller answering every new port, and the gateways reachable from the pod. */
function world(opts: { ovnController?: boolean; reachable?: string[] } = {}): World {
  const nl = new FakeNetlink();
  nl.addNamespace(NETNS);
  const vs = new FakeVswitch();
  if (opts.ovnController !== false) {
    vs.onInterfaceChange((ev) => { if (ev.new && !ev.old) queueMicrotask(() => { if (vs.getInterface(ev.name)) vs.setOvnInstalled(ev.name); }); });
  }
  for (const gw of opts.reachable ?? ['10.16.0.1', 'fd00:10:16::1', '172.17.0.1']) nl.reachable.add(`${NETNS}|${gw}`);
  const waits: [string, number][] = [];
  return { nl, vs, waits, deps: { netlink: nl, podNet: nl, vswitch: vs, probe: probeTiming(10), onWait: (s, sec) => waits.push([s, sec]) } };
}

/** Nothing of ours left: own netns has only lo, the pod netns only lo, OVS only br-int, no QoS/Queue rows. */
async function assertEmpty(w: World, netns = NETNS): Promise<void> {
  assert.deepEqual((await w.nl.listLinks(null)).map((l) => l.name), ['lo']);
  if (w.nl.namespaces.has(netns)) assert.deepEqual((await w.nl.listLinks(netns)).map((l) => l.name), ['lo']);
  assert.deepEqual(w.vs.listPorts('br-int'), ['br-int']);
  assert.equal(w.vs.qos.size + w.vs.queues.size, 0);
}

async function rejects(p: Promise<unknown>): Promise<AgentError> {
  try { await p; } catch (e) { assert.ok(e instanceof AgentError, String(e)); return e; }
  return assert.fail('expected a rejection');
}

describe('executor: ADD', () => {
  it('applies the steps in order: veth with the peer in the pod netns, rename, port, up, tx off, ovn-installed, NIC, routes, gateway', async () => {
    const w = world();
    const p = plan(v4);
    const out = await applyAdd(p, w.deps);
    assert.deepEqual(out.stepMs.map((s) => s.op), ['podSysctls', 'createVeth', 'renameInNetns', 'hostLinkUp', 'ovsAddPort', 'txChecksumOff',
      'waitOvnInstalled', 'configureContainerNic', 'addRoutes', 'announce', 'gatewayCheck']);
    const calls = w.nl.calls.map((c) => c.split(' ')[0]);
    assert.deepEqual(calls.slice(0, 6), ['setSysctl', 'setSysctl', 'setSysctl', 'setSysctl', 'createVeth', 'setLink']);
    assert.equal(w.nl.calls[4], `createVeth - ${HOST}/0123456789ab_c`);
    assert.match(w.nl.calls[5]!, new RegExp(`^setLink ${NETNS} 0123456789ab_c \\{"name":"eth0","alias":"0123456789ab_c"\\}`));
    assert.ok(calls.indexOf('probeIPv4') < calls.indexOf('addAddress'), 'probe before the address');
    assert.ok(calls.indexOf('addAddress') < calls.indexOf('announceIPv4'), 'GARP after the address');
    assert.ok(calls.indexOf('addRoute') < calls.indexOf('ping'));
    // pod side
    const eth0 = await w.nl.getLink(NETNS, 'eth0');
    assert.deepEqual([eth0?.mac, eth0?.mtu, eth0?.up, eth0?.alias, eth0?.kind], ['00:00:00:ab:cd:ef', 1400, true, '0123456789ab_c', 'veth']);
    assert.deepEqual((await w.nl.listAddresses(NETNS, { dev: 'eth0' })).map((a) => `${a.address}/${a.prefixLen}`), ['10.16.0.9/16']);
    const def = (await w.nl.listRoutes(NETNS, { family: 4 })).find((r) => r.dst === null);
    assert.equal(def?.gateway, '10.16.0.1');
    assert.equal(await w.nl.getTxChecksum(NETNS, 'eth0'), false);
    assert.equal(await w.nl.getSysctl(NETNS, 'net.ipv6.conf.all.disable_ipv6'), '0');
    // host side
    const host = await w.nl.getLink(null, HOST);
    assert.deepEqual([host?.up, host?.txQueueLen, host?.mtu], [true, 1000, 1400]);
    assert.deepEqual(w.vs.getInterface(HOST)?.externalIds, { 'iface-id': 'web-1.default', vendor: 'kube-ovn', pod_name: 'web-1',
      pod_namespace: 'default', pod_netns: NETNS, ip: '10.16.0.9', 'ovn-installed': 'true' });
    assert.deepEqual(w.waits.map(([s]) => s), ['ovn_installed', 'gateway_check']);
  });

  it('waits (bounded) for the veth carrier before sending ARP: addresses only once link events say both ends are RUNNING', async () => {
    for (const carrierComes of [true, false]) {
      const w = world();
      w.nl.carrierManual = true; // links go up without carrier, as before the kernel's linkwatch ran
      const order: string[] = [];
      const nl = new Proxy(w.nl, { get(t, prop) {
        const v = Reflect.get(t, prop, t);
        if (prop === 'subscribe') return (...a: Parameters<FakeNetlink['subscribe']>) => {
          const sub = t.subscribe(...a);
          if (a[0].netns === NETNS && carrierComes) {
            order.push('subscribe');
            // linkwatch: the pod end first, the host end a little later, each announced as a link event
            setTimeout(() => { order.push('pod carrier'); t.setRunning(NETNS, 'eth0', true); }, 5);
            setTimeout(() => { order.push('host carrier'); t.setRunning(null, HOST, true); }, 10);
          }
          return sub;
        };
        if (prop === 'addAddress') return async (...a: Parameters<FakeNetlink['addAddress']>) => { order.push('addAddress'); return t.addAddress(...a); };
        return typeof v === 'function' ? v.bind(t) : v;
      } });
      const warns: string[] = [];
      const t0 = Date.now();
      await applyAdd(plan(v4), { ...w.deps, netlink: nl, log: { debug() {}, info() {}, warn(_o, m) { warns.push(m); } } });
      if (carrierComes) {
        assert.deepEqual(order, ['subscribe', 'pod carrier', 'host carrier', 'addAddress']);
        assert.deepEqual(warns, []);
      } else {
        assert.deepEqual(warns, ['veth carrier not up yet; going on']);
        assert.ok(Date.now() - t0 >= 240, 'bounded wait');
      }
      assert.equal(w.nl.subscriptions, 0, 'the wait closed its subscriptions');
    }
  });

  it('a stale interface claiming the iface-id loses it in the same transaction as the new port', async () => {
    const w = world();
    await w.vs.addPodPort({ name: 'old_h', ifaceId: 'web-1.default', podName: 'web-1', podNamespace: 'default', podNetns: '/old' });
    await applyAdd(plan(v4), w.deps);
    assert.equal(w.vs.getInterface('old_h')?.externalIds['iface-id'], undefined);
    assert.equal(w.vs.getInterface(HOST)?.externalIds['iface-id'], 'web-1.default');
    assert.equal(w.vs.calls.filter((c) => c.startsWith('addPodPort')).length, 2);
  });

  it('a fault at any step undoes everything created before it: the fakes end empty', async () => {
    const steps = plan(v4).steps;
    for (let i = 0; i < steps.length; i++) {
      const w = world();
      const e = await rejects(applyAdd(plan(v4), { ...w.deps, beforeStep: (_s, n) => { if (n === i) throw new AgentError('KOA_DATAPATH', `fault at ${steps[i]!.op}`); } }));
      assert.equal(e.message, `fault at ${steps[i]!.op}`);
      await assertEmpty(w);
    }
  });

  it('failures inside steps roll back too and keep their code', async () => {
    const cases: [string, (w: World) => void, Partial<NodeFacts>, string, RegExp][] = [
      ['netlink error on rename', (w) => w.nl.failNext('setLink', 'EBUSY'), {}, 'KOA_NETLINK', /EBUSY/],
      ['OVSDB write fails', (w) => w.vs.failNext('addPodPort'), {}, 'KOA_OVSDB', /injected failure/],
      ['IPv4 address in use', (w) => w.nl.conflicts.set(`${NETNS}|eth0|10.16.0.9`, '00:00:00:99:99:99'), {}, 'KOA_DATAPATH',
        /IP address 10\.16\.0\.9 has already been used by host with MAC 00:00:00:99:99:99/],
      ['address add fails', (w) => w.nl.failNext('addAddress', 'EINVAL'), {}, 'KOA_NETLINK', /EINVAL/],
      ['default route fails', (w) => w.nl.failNext('addRoute', 'ENETUNREACH'), {}, 'KOA_NETLINK', /ENETUNREACH/],
      ['tx checksum off fails', (w) => w.nl.failNext('setTxChecksum', 'EOPNOTSUPP'), {}, 'KOA_NETLINK', /EOPNOTSUPP/],
    ];
    for (const [name, arrange, n, code, re] of cases) {
      const w = world();
      arrange(w);
      const e = await rejects(applyAdd(plan(v4, {}, n), w.deps));
      assert.equal(e.code, code, name);
      assert.match(e.message, re, name);
      await assertEmpty(w);
    }
  });

  it('probe off: the pod NIC gets its address and routes while the port waits to be bound; the GARP and the gateway check only after', async () => {
    const w = world({ ovnController: false });
    const p = plan(v4, {}, { enableArpDetectIpConflict: false });
    // ovn-controller binds the port only once the pod side is done, so the ADD can finish only if that side ran first
    let installedAt = -1;
    let settled = false;
    const check = (): void => {
      if (w.nl.calls.some((c) => c.startsWith('addRoute '))) { installedAt = w.nl.calls.length; w.vs.setOvnInstalled(HOST); } else if (!settled) setImmediate(check);
    };
    check();
    const out = await applyAdd(p, w.deps).finally(() => { settled = true; });
    const ops = out.stepMs.map((x) => x.op);
    assert.ok(ops.indexOf('addRoutes') < ops.indexOf('waitOvnInstalled') && ops.indexOf('waitOvnInstalled') < ops.indexOf('announce'), ops.join(','));
    const calls = w.nl.calls.map((c) => c.split(' ')[0]);
    assert.ok(calls.indexOf('addAddress') < installedAt && calls.indexOf('addRoute') < installedAt, 'address and route before the binding');
    assert.ok(calls.indexOf('announceIPv4') >= installedAt, 'the GARP after the binding');
    assert.ok(calls.indexOf('ping') >= installedAt, 'the gateway check after the binding');
    assert.ok(!calls.includes('probeIPv4'), 'no probe');
  });

  it('ovn-installed never set: bounded failure (KOA_TIMEOUT) and full rollback', async () => {
    const w = world({ ovnController: false });
    const t0 = Date.now();
    const e = await rejects(applyAdd(plan(v4, {}, { ovnInstalledTimeoutMs: 100 }), w.deps));
    assert.equal(e.code, 'KOA_TIMEOUT');
    assert.match(e.message, /timed out after 100 ms waiting for external_ids:ovn-installed="true" on OVS interface 0123456789ab_h/);
    assert.ok(Date.now() - t0 < 10_000, 'bounded (timeout 100 ms; the bound is 100x to tolerate a loaded machine)');
    assert.equal(w.waits[0]![0], 'ovn_installed');
    await assertEmpty(w);
  });

  it('gateway never answers: KOA_TIMEOUT naming the gateway, rollback; not-concerned mode ignores it', async () => {
    const w = world({ reachable: [] });
    const e = await rejects(applyAdd(plan(v4, {}, { gatewayCheckTimeoutMs: 50 }), { ...w.deps, gatewayPingTryMs: 10 }));
    assert.equal(e.code, 'KOA_TIMEOUT');
    assert.match(e.message, /gateway 10\.16\.0\.1 to answer from 10\.16\.0\.9/);
    await assertEmpty(w);
    const w2 = world({ reachable: [] });
    await applyAdd(plan(v4, {}, { gatewayCheckTimeoutMs: 50 }, { name: 'ovn-default', disableGatewayCheck: true }), w2.deps);
    assert.equal(w2.nl.calls.filter((c) => c.startsWith('ping')).length, 1, 'one try');
  });

  it('a leftover veth with the same name (peer not in this pod) is removed and the ADD goes on', async () => {
    const w = world();
    await w.nl.createVeth({ name: HOST, peer: { name: 'leftover_c' } });
    await applyAdd(plan(v4), w.deps);
    assert.ok(await w.nl.getLink(NETNS, 'eth0'));
    assert.equal(await w.nl.getLink(null, 'leftover_c'), null);
  });

  it('a veth of that name whose OVS row is another pod\'s is never removed: KOA_HOST_NIC_TAKEN, pod A untouched (issue 14 item 3)', async () => {
    const w = world();
    const OTHER = '/var/run/netns/koap-podA';
    w.nl.addNamespace(OTHER);
    w.nl.reachable.add(`${OTHER}|10.16.0.1`);
    // pod A, container ID sharing the first 12 characters with CID, fully wired
    const a = ann('ovn', { allocated: 'true', ip_address: '10.16.0.7', mac_address: '00:00:00:ab:cd:07', cidr: '10.16.0.0/16',
      gateway: '10.16.0.1', logical_switch: 'ovn-default', routed: 'true' });
    await applyAdd(plan(a, { containerId: `${CID.slice(0, 12)}ffffffff`, netns: OTHER, podName: 'pod-a' }), w.deps);
    const before = { links: await w.nl.listLinks(null), pod: await w.nl.listLinks(OTHER), ports: w.vs.listPorts('br-int'), row: w.vs.getInterface(HOST) };
    const e = await rejects(applyAdd(plan(v4), { ...w.deps, netnsExists: async (p) => p === OTHER }));
    assert.equal(e.code, 'KOA_HOST_NIC_TAKEN');
    assert.equal(e.cniCode, 102);
    assert.match(e.message, /belongs to pod default\/pod-a/);
    assert.deepEqual(await w.nl.listLinks(null), before.links);
    assert.deepEqual(await w.nl.listLinks(OTHER), before.pod);
    assert.deepEqual(w.vs.listPorts('br-int'), before.ports);
    assert.deepEqual(w.vs.getInterface(HOST)?.externalIds, before.row?.externalIds);
    assert.deepEqual((await w.nl.listLinks(NETNS)).map((l) => l.name), ['lo'], 'nothing left in the refused pod');
  });

  it('the same pod\'s row wired to another netns that still exists is refused; once that netns is gone it is a leftover', async () => {
    const w = world();
    const OLD = '/var/run/netns/koap-old';
    w.nl.addNamespace(OLD);
    w.nl.reachable.add(`${OLD}|10.16.0.1`);
    await applyAdd(plan(v4, { containerId: `${CID.slice(0, 12)}eeeeeeee`, netns: OLD }), w.deps);
    const e = await rejects(applyAdd(plan(v4), { ...w.deps, netnsExists: async (p) => p === OLD }));
    assert.equal(e.code, 'KOA_HOST_NIC_TAKEN');
    assert.match(e.message, /live netns \/var\/run\/netns\/koap-old/);
    assert.ok(await w.nl.getLink(OLD, 'eth0'));
    await applyAdd(plan(v4), { ...w.deps, netnsExists: async () => false });
    assert.ok(await w.nl.getLink(NETNS, 'eth0'));
    assert.equal(w.vs.getInterface(HOST)?.externalIds.pod_netns, NETNS);
  });

  it('a second ADD for a live attachment is refused and the working pod is left intact', async () => {
    const w = world();
    await applyAdd(plan(v4), w.deps);
    const before = { pod: await w.nl.listLinks(NETNS), addrs: await w.nl.listAddresses(NETNS), ports: w.vs.listPorts('br-int') };
    const e = await rejects(applyAdd(plan(v4), w.deps));
    assert.equal(e.code, 'KOA_ALREADY_WIRED');
    assert.equal(e.cniCode, 102);
    assert.deepEqual(await w.nl.listLinks(NETNS), before.pod);
    assert.deepEqual(await w.nl.listAddresses(NETNS), before.addrs);
    assert.deepEqual(w.vs.listPorts('br-int'), before.ports);
    assert.ok(await w.nl.getLink(null, HOST));
  });

  it('dual stack: both addresses (DAD on), both default routes, DAD waited before the IPv6 gateway ping, NA sent', async () => {
    const w = world();
    const done: string[] = []; // PodNet calls in the order they finished
    await applyAdd(plan(dual, {}, { datapathType: 'system' }), { ...w.deps, podNet: instrument(w.nl, (op) => done.push(op)) });
    const addrs = await w.nl.listAddresses(NETNS, { dev: 'eth0' });
    assert.deepEqual(addrs.map((a) => `${a.address}/${a.prefixLen}`).sort(), ['10.16.0.9/16', 'fd00:10:16::9/64']);
    assert.equal(addrs.find((a) => a.family === 6)!.flags & 0x02, 0, 'no IFA_F_NODAD: DAD runs');
    assert.equal(await w.nl.getSysctl(NETNS, 'net/ipv6/conf/eth0/router_solicitation_delay'), '0', 'DAD starts without the random delay');
    const order = w.nl.calls.map((c) => c.split(' ')[0]!);
    assert.ok(order.indexOf('setSysctl') >= 0 && order.indexOf('setSysctl') < order.indexOf('addAddress'), order.join());
    const v6Added = w.nl.calls.findIndex((c) => c.startsWith('addAddress') && c.includes('fd00:10:16::9'));
    assert.ok(v6Added >= 0 && v6Added < order.indexOf('probeIPv4'), `IPv6 (DAD) starts before the IPv4 probe: ${order.join()}`);
    const defs = (await w.nl.listRoutes(NETNS, { table: 254 })).filter((r) => r.dst === null).map((r) => r.gateway);
    assert.deepEqual(defs.sort(), ['10.16.0.1', 'fd00:10:16::1']);
    const calls = w.nl.calls.map((c) => c.split(' ')[0]!);
    assert.ok(done.includes('waitIPv6Dad'));
    assert.ok(done.indexOf('waitIPv6Dad') < done.lastIndexOf('ping'), done.join());
    assert.ok(done.indexOf('waitIPv6Dad') < done.lastIndexOf('announceIPv6'), 'an NA once the address is preferred');
    assert.equal(done.filter((x) => x === 'announceIPv6').length, 2, 'one right after the address, one after DAD');
    assert.equal(calls.includes('setTxChecksum'), false, 'system datapath keeps checksum offload');
    assert.deepEqual(w.nl.calls.filter((c) => c.startsWith('ping')).map((c) => c.split(' ')[2]).sort(), ['10.16.0.1', 'fd00:10:16::1']);
  });

  it('KubeVirt migration target: IPv6 added with nodad, no probe, no gateway check', async () => {
    const w = world();
    await applyAdd(plan({ ...dual, 'kubevirt.io/migrationJobName': 'j' }), w.deps);
    const v6 = (await w.nl.listAddresses(NETNS, { dev: 'eth0', family: 6 }))[0]!;
    assert.notEqual(v6.flags & 0x02, 0, 'IFA_F_NODAD');
    await assert.rejects(w.nl.getSysctl(NETNS, 'net/ipv6/conf/eth0/router_solicitation_delay'), 'no DAD, nothing to speed up');
    const calls = w.nl.calls.map((c) => c.split(' ')[0]!);
    assert.equal(calls.includes('probeIPv4') || calls.includes('ping') || calls.includes('waitIPv6Dad'), false);
  });

  it('attachment NIC <nad>.<ns>.ovn becomes net1 with its own port, no default route', async () => {
    const w = world();
    const p = plan(attach, { provider: 'attachnet.default.ovn', ifName: 'net1' }, {}, { name: 'attach-subnet' });
    await applyAdd(p, w.deps);
    assert.ok(await w.nl.getLink(NETNS, 'net1'));
    assert.deepEqual(w.vs.listPorts('br-int'), ['br-int', '01234567_net1_h']);
    assert.equal(w.vs.getInterface('01234567_net1_h')?.externalIds['iface-id'], 'web-1.default.attachnet.default.ovn');
    assert.equal((await w.nl.listRoutes(NETNS, { family: 4 })).some((r) => r.dst === null), false);
    const del = planDel({ containerId: CID, netns: NETNS, ifName: 'net1', podName: 'web-1', podNamespace: 'default', provider: 'attachnet.default.ovn', cniType: 'kube-ovn' });
    await applyDelSteps(del.steps, w.deps);
    await assertEmpty(w);
  });

  it('QoS: egress policing and ingress HTB on the port; rollback removes the rows', async () => {
    const q = { ...v4, 'ovn.kubernetes.io/ingress_rate': '10', 'ovn.kubernetes.io/egress_rate': '5' };
    const w = world();
    await applyAdd(plan(q), w.deps);
    assert.equal(w.vs.getInterface(HOST)?.ingressPolicingRate, 5000);
    assert.equal(w.vs.qos.size, 1);
    const w2 = world({ reachable: [] });
    await rejects(applyAdd(plan(q, {}, { gatewayCheckTimeoutMs: 20 }), { ...w2.deps, gatewayPingTryMs: 10 }));
    await assertEmpty(w2);
  });

  it('IPAM-only: no link work; default routes of the family removed when the routes carry a default (§2.5)', async () => {
    const w = world();
    w.nl.addLink(NETNS, { name: 'net1' });
    await w.nl.setLink(NETNS, 'net1', { up: true });
    await w.nl.addAddress(NETNS, 'net1', { cidr: '192.168.5.2/24' });
    await w.nl.addRoute(NETNS, { gateway: '192.168.5.1', dev: 'net1' });
    const a = ann('macvlan.default', { allocated: 'true', ip_address: '172.18.0.7', cidr: '172.18.0.0/24', gateway: '172.18.0.1',
      routes: '[{"gw":"172.18.0.1"}]' });
    const p = plan(a, { provider: 'macvlan.default', ifName: 'net1', cniType: 'macvlan' });
    assert.equal(p.kind, 'ipam');
    const before = w.nl.calls.length;
    await applyAdd(p, w.deps);
    assert.deepEqual(w.nl.calls.slice(before).map((c) => c.split(' ')[0]), ['deleteRoute']);
    assert.equal((await w.nl.listRoutes(NETNS, { family: 4 })).some((r) => r.dst === null), false);
    assert.deepEqual(w.vs.listPorts('br-int'), ['br-int']);
    // without a default route in the routes nothing at all is done
    const p2 = plan(ann('macvlan.default', { allocated: 'true', ip_address: '172.18.0.7', cidr: '172.18.0.0/24' }), { provider: 'macvlan.default', ifName: 'net1', cniType: 'macvlan' });
    assert.deepEqual(p2.steps, []);
  });
});

describe('executor: DEL', () => {
  const delReq = { containerId: CID, netns: NETNS, ifName: 'eth0', podName: 'web-1', podNamespace: 'default', provider: 'ovn', cniType: 'kube-ovn' };

  it('removes port, QoS rows and veth; twice is fine', async () => {
    const w = world();
    await applyAdd(plan({ ...v4, 'ovn.kubernetes.io/ingress_rate': '10' }), w.deps);
    const d = planDel(delReq);
    await applyDelSteps(d.steps, w.deps);
    await assertEmpty(w);
    await applyDelSteps(d.steps, w.deps);
    await assertEmpty(w);
  });

  it('unknown container: nothing to remove, success', async () => {
    const w = world();
    await applyDelSteps(planDel({ ...delReq, containerId: 'ffffffffffffffff' }).steps, w.deps);
    await assertEmpty(w);
  });

  it('netns gone (the veth went with it): the OVS port is still removed', async () => {
    const w = world();
    await applyAdd(plan(v4), w.deps);
    w.nl.removeNamespace(NETNS);
    assert.equal(await w.nl.getLink(null, HOST), null);
    await applyDelSteps(planDel(delReq).steps, w.deps);
    await assertEmpty(w);
  });

  it('never deletes a link of the same name that is not a veth', async () => {
    const w = world();
    w.nl.addLink(null, { name: HOST, kind: 'dummy' });
    await applyDelSteps(planDel(delReq).steps, w.deps);
    assert.ok(await w.nl.getLink(null, HOST));
  });
});

describe('executor: probe timing', () => {
  it('fits the bound: no random pre-wait, 3 probes', () => {
    const t = probeTiming(60);
    assert.deepEqual(t, { probeWaitMs: 0, probeNum: 3, probeMinMs: 10, probeMaxMs: 10, announceWaitMs: 30 });
    assert.ok(t.probeWaitMs + (t.probeNum - 1) * t.probeMaxMs + t.announceWaitMs <= 60);
  });
});

describe('executor: pod sysctls', () => {
  it('writes only the values not already in place (disable_ipv6 writes spin on RTNL under load)', async () => {
    const w = world();
    const ns = w.nl.namespaces.get(NETNS)!;
    ns.sysctls.set('net/ipv6/conf/all/disable_ipv6', '0\n');
    ns.sysctls.set('net/ipv6/conf/default/disable_ipv6', '1\n'); // a runtime's "none" network turned IPv6 off
    ns.sysctls.set('net/ipv6/conf/all/accept_ra', '1\n');
    await applyAdd(plan(v4), w.deps);
    const writes = w.nl.calls.filter((c) => /^setSysctl .* net\.ipv6\.conf\.(all|default)\./.test(c));
    assert.deepEqual(writes, [`setSysctl ${NETNS} net.ipv6.conf.default.disable_ipv6=0`, `setSysctl ${NETNS} net.ipv6.conf.all.accept_ra=0`,
      `setSysctl ${NETNS} net.ipv6.conf.default.accept_ra=0`]);
    assert.equal(ns.sysctls.get('net/ipv6/conf/default/disable_ipv6'), '0');
    assert.equal(ns.sysctls.get('net/ipv6/conf/all/disable_ipv6'), '0\n');
  });
});
