// OvnBackend on fakes (FakeNetlink, FakeVswitch, InMemoryPodSource, an in-memory IP CR API) through the real
// dispatcher and the upstream /api/v1 mapping: annotation arriving later, never arriving (code 11, nothing left),
// DEL idempotence, CHECK, STATUS, GC, IPAM-only, the IP CR update.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Dispatcher } from '../../agent/src/cni/dispatcher.ts';
import { handleUpstream } from '../../agent/src/cni/upstream.ts';
import type { CniRequest, CniResult, NetConf } from '../../agent/src/cni/types.ts';
import { FakeNetlink } from '../../agent/src/datapath/netlink/fake.ts';
import { FakeVswitch } from '../../agent/src/datapath/ovsdb/fake.ts';
import { AgentError } from '../../agent/src/errors.ts';
import type { IpCrApi } from '../../agent/src/k8s/ipcr.ts';
import { InMemoryPodSource } from '../../agent/src/k8s/fake-pod-source.ts';
import type { AgentEvent } from '../../agent/src/k8s/events.ts';
import type { IpCr, Subnet } from '../../agent/src/k8s/types.ts';
import { OvnBackend } from '../../agent/src/pod/backend.ts';
import { portContainerPrefix } from '../../agent/src/pod/names.ts';
import { probeTiming } from '../../agent/src/pod/executor.ts';

const NETNS = '/var/run/netns/koap-b1';
const CID = 'aaaaaaaaaaaa0123456789';
const ann = (p: string, kv: Record<string, string>) => Object.fromEntries(Object.entries(kv).map(([k, v]) => [`${p}.kubernetes.io/${k}`, v]));
const v4 = (n = 9) => ann('ovn', { allocated: 'true', ip_address: `10.16.0.${n}`, mac_address: `00:00:00:ab:cd:${n.toString(16).padStart(2, '0')}`,
  cidr: '10.16.0.0/16', gateway: '10.16.0.1', logical_switch: 'ovn-default', routed: 'true' });
const subnets: Subnet[] = [
  { metadata: { name: 'ovn-default' }, spec: { provider: 'ovn' } },
  { metadata: { name: 'attach' }, spec: { provider: 'attachnet.default.ovn' } },
  { metadata: { name: 'mv' }, spec: { provider: 'macvlan.default' } },
];

const netconf = (over: Partial<NetConf> = {}): NetConf => ({ cniVersion: '1.1.0', name: 'kube-ovn', type: 'kube-ovn', ipamMode: false,
  serverSocket: '/run/koap.sock', provider: 'ovn', routes: null, raw: {}, ...over });
const cniReq = (over: Partial<CniRequest> = {}, nc: Partial<NetConf> = {}): CniRequest => ({ command: 'ADD', containerId: CID, netns: NETNS,
  ifName: 'eth0', podName: 'p', podNamespace: 'default', args: { ignoreUnknown: true, all: {} }, cniPath: [], netconf: netconf(nc), via: 'cni', ...over });

class MemIpApi implements IpCrApi {
  readonly crs = new Map<string, IpCr>();
  async get(name: string) { return this.crs.get(name); }
  async replace(ip: IpCr) { this.crs.set(ip.metadata!.name!, ip); }
}

function setup(o: { annotationWaitTimeoutMs?: number; gatewayCheckTimeoutMs?: number; status?: () => true | string } = {}) {
  const nl = new FakeNetlink();
  nl.addNamespace(NETNS);
  nl.reachable.add(`${NETNS}|10.16.0.1`);
  nl.reachable.add(`${NETNS}|172.17.0.1`);
  const vs = new FakeVswitch();
  vs.onInterfaceChange((ev) => { if (ev.new && !ev.old) queueMicrotask(() => { if (vs.getInterface(ev.name)) vs.setOvnInstalled(ev.name); }); });
  const pods = new InMemoryPodSource();
  const ipApi = new MemIpApi();
  const waits: number[] = [];
  const events: AgentEvent[] = [];
  const backend = new OvnBackend({
    events: { record: (e) => { events.push(e); return true; } },
    nodeName: 'node-1', ipApi, ipCrOptions: { attempts: 2, delayMs: 5 },
    prepare: { pods, subnets: () => subnets, node: () => ({ metadata: { name: 'node-1' } }), annotationWaitTimeoutMs: o.annotationWaitTimeoutMs ?? 2000,
      nodeFacts: { mtu: 1400, datapathType: 'netdev', enableArpDetectIpConflict: true, ovnInstalledTimeoutMs: 1000, gatewayCheckTimeoutMs: o.gatewayCheckTimeoutMs ?? 500 } },
    exec: { netlink: nl, podNet: nl, vswitch: vs, probe: probeTiming(10) },
    onAnnotationWait: (s) => waits.push(s),
    ...(o.status ? { status: o.status } : {}),
  });
  return { nl, vs, pods, ipApi, backend, waits, events };
}

async function rejects(p: Promise<unknown>): Promise<AgentError> {
  try { await p; } catch (e) { assert.ok(e instanceof AgentError, String(e)); return e; }
  return assert.fail('expected a rejection');
}

async function assertEmpty(nl: FakeNetlink, vs: FakeVswitch): Promise<void> {
  assert.deepEqual((await nl.listLinks(null)).map((l) => l.name), ['lo']);
  assert.deepEqual((await nl.listLinks(NETNS)).map((l) => l.name), ['lo']);
  assert.deepEqual(vs.listPorts('br-int'), ['br-int']);
}

describe('OvnBackend: ADD', () => {
  it('the annotation arriving later resolves the ADD within the same tick; result, wait time and IP CR update', async () => {
    const s = setup();
    s.pods.set({ metadata: { name: 'p', namespace: 'default', annotations: {} } });
    s.ipApi.crs.set('p.default', { metadata: { name: 'p.default' }, spec: { nodeName: '' } });
    const adding = s.backend.add(cniReq());
    await new Promise((r) => setTimeout(r, 30));
    s.pods.annotate('default', 'p', v4());
    const r = await adding;
    assert.deepEqual(r, {
      interfaces: [{ name: 'eth0', mac: '00:00:00:ab:cd:09', mtu: 1400, sandbox: NETNS }],
      ips: [{ address: '10.16.0.9/16', gateway: '10.16.0.1', interface: 0 }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.16.0.1' }, { dst: '10.16.0.0/16' }],
      dns: {},
    });
    assert.ok(s.waits[0]! >= 0.02, `waited ${s.waits[0]} s`);
    await s.backend.settled();
    assert.equal(s.ipApi.crs.get('p.default')?.spec?.nodeName, 'node-1');
    assert.equal(s.ipApi.crs.get('p.default')?.metadata?.labels?.['ovn.kubernetes.io/node-name'], 'node-1');
  });

  it('the annotation never arrives: code 11 naming what is missing, nothing created', async () => {
    const s = setup({ annotationWaitTimeoutMs: 100 });
    s.pods.set({ metadata: { name: 'p', namespace: 'default', annotations: ann('ovn', { allocated: 'true' }) } });
    const e = await rejects(s.backend.add(cniReq()));
    assert.equal(e.cniCode, 11);
    assert.match(e.message, /timed out after 100 ms waiting for pod default\/p: missing or invalid annotation ovn\.kubernetes\.io\/ip_address/);
    await assertEmpty(s.nl, s.vs);
    assert.equal(s.nl.calls.length, 0, 'no datapath call before the annotations');
  });

  it('routed missing on the default-route NIC keeps it waiting, naming routed', async () => {
    const s = setup({ annotationWaitTimeoutMs: 80 });
    const a = { ...v4() };
    delete (a as Record<string, string>)['ovn.kubernetes.io/routed'];
    s.pods.set({ metadata: { name: 'p', namespace: 'default', annotations: a } });
    const e = await rejects(s.backend.add(cniReq()));
    assert.equal(e.cniCode, 11);
    assert.match(e.message, /ovn\.kubernetes\.io\/routed/);
  });

  it('the pod deleted during the gateway check stops the ADD at once (code 11) and rolls back', async () => {
    const s = setup({ gatewayCheckTimeoutMs: 60_000 });
    s.nl.reachable.clear();
    s.pods.set({ metadata: { name: 'p', namespace: 'default', uid: 'u1', annotations: v4() } });
    const t0 = Date.now();
    const adding = s.backend.add(cniReq({ podUid: 'u1' }));
    setTimeout(() => s.pods.delete('default', 'p'), 100);
    const e = await rejects(adding);
    assert.equal(e.cniCode, 11);
    assert.match(e.message, /gateway check of 10\.16\.0\.9 stopped: pod default\/p was deleted/);
    assert.ok(Date.now() - t0 < 30_000, `stopped after ${Date.now() - t0} ms, not at the 60 s check bound`);
    await assertEmpty(s.nl, s.vs);
  });

  it('an unbound provider is refused before waiting (code 7)', async () => {
    const s = setup();
    const e = await rejects(s.backend.add(cniReq({ ifName: 'net1' }, { provider: 'nope.default.ovn' })));
    assert.deepEqual([e.code, e.cniCode], ['KOA_PROVIDER_UNBOUND', 7]);
  });

  it('a failing datapath step rolls back and surfaces its code', async () => {
    const s = setup();
    s.pods.set({ metadata: { name: 'p', namespace: 'default', annotations: v4() } });
    s.vs.failNext('addPodPort');
    const e = await rejects(s.backend.add(cniReq()));
    assert.equal(e.cniCode, 103);
    await assertEmpty(s.nl, s.vs);
    assert.deepEqual(s.events.map((x) => [x.type, x.reason, x.target.name]), [['Warning', 'PodNetworkConfigureFailed', 'p']]);
  });

  it('Events: configured after an ADD, removed after the DEL with a netns; none for a wait that timed out', async () => {
    const s = setup({ annotationWaitTimeoutMs: 20 });
    await rejects(s.backend.add(cniReq({ podName: 'late' })));
    s.pods.set({ metadata: { name: 'p', namespace: 'default', uid: 'u9', annotations: v4() } });
    await s.backend.add(cniReq());
    await s.backend.del(cniReq());
    await s.backend.del(cniReq({ netns: '' }));
    assert.deepEqual(s.events.map((x) => [x.type, x.reason, x.target.uid]), [['Normal', 'PodNetworkConfigured', 'u9'], ['Normal', 'PodNetworkRemoved', 'u9']]);
    assert.match(s.events[0]!.message, /configured eth0 \(ovn\): 10\.16\.0\.9\/16/);
  });

  it('eth0 + attachment net1 in the same pod: two ports, two links', async () => {
    const s = setup();
    s.pods.set({ metadata: { name: 'p', namespace: 'default', annotations: { ...v4(), ...ann('attachnet.default.ovn', { allocated: 'true',
      ip_address: '172.17.0.5', mac_address: '00:00:00:11:22:33', cidr: '172.17.0.0/24', gateway: '172.17.0.1', logical_switch: 'attach' }) } } });
    await s.backend.add(cniReq());
    const r = await s.backend.add(cniReq({ ifName: 'net1' }, { provider: 'attachnet.default.ovn' }));
    assert.deepEqual(r.ips, [{ address: '172.17.0.5/24', interface: 0 }]);
    assert.deepEqual((await s.nl.listLinks(NETNS)).map((l) => l.name).sort(), ['eth0', 'lo', 'net1']);
    assert.deepEqual(s.vs.listPorts('br-int').sort(), ['aaaaaaaa_net1_h', 'aaaaaaaaaaaa_h', 'br-int']);
    await s.backend.del(cniReq({ command: 'DEL', ifName: 'net1' }, { provider: 'attachnet.default.ovn' }));
    await s.backend.del(cniReq({ command: 'DEL' }));
    await assertEmpty(s.nl, s.vs);
  });

  it('IPAM-only (macvlan with kube-ovn IPAM): addresses without any link or port', async () => {
    const s = setup();
    s.pods.set({ metadata: { name: 'p', namespace: 'default', annotations: ann('macvlan.default', { allocated: 'true', ip_address: '172.18.0.7',
      cidr: '172.18.0.0/24', gateway: '172.18.0.1' }) } });
    const r = await s.backend.add(cniReq({ ifName: 'net1' }, { type: 'macvlan', ipamMode: true, provider: 'macvlan.default' }));
    assert.deepEqual(r.ips, [{ address: '172.18.0.7/24' }]);
    assert.equal(r.interfaces, undefined);
    await assertEmpty(s.nl, s.vs);
    await s.backend.del(cniReq({ command: 'DEL', ifName: 'net1' }, { type: 'macvlan', ipamMode: true, provider: 'macvlan.default' }));
  });
});

describe('OvnBackend: DEL, CHECK, STATUS, GC', () => {
  it('DEL twice, DEL of an unknown container, DEL after the netns and the pod are gone', async () => {
    const s = setup();
    s.pods.set({ metadata: { name: 'p', namespace: 'default', annotations: v4() } });
    await s.backend.add(cniReq());
    await s.backend.del(cniReq({ command: 'DEL' }));
    await s.backend.del(cniReq({ command: 'DEL' }));
    await s.backend.del(cniReq({ command: 'DEL', containerId: 'ffffffffffffffffff' }));
    await assertEmpty(s.nl, s.vs);
    await s.backend.add(cniReq());
    s.nl.removeNamespace(NETNS);
    s.pods.delete('default', 'p');
    await s.backend.del(cniReq({ command: 'DEL' }));
    assert.deepEqual(s.vs.listPorts('br-int'), ['br-int']);
    assert.deepEqual((await s.nl.listLinks(null)).map((l) => l.name), ['lo']);
    await s.backend.del(cniReq({ command: 'DEL', netns: '' }));
  });

  it('DEL with an empty CNI_NETNS removes the host side keyed by container ID when the first DEL was lost (issue 14 item 8)', async () => {
    const s = setup();
    s.pods.set({ metadata: { name: 'p', namespace: 'default', annotations: { ...v4(), 'ovn.kubernetes.io/ingress_rate': '5' } } });
    await s.backend.add(cniReq());
    assert.equal(s.vs.queues.size, 1);
    // a fresh backend: the agent's memory of the container is gone (restart), the pod too
    s.pods.delete('default', 'p');
    const fresh = new OvnBackend({ nodeName: 'node-1', prepare: { pods: s.pods, subnets: () => subnets, node: () => ({ metadata: { name: 'node-1' } }),
      annotationWaitTimeoutMs: 10, nodeFacts: { mtu: 1400, datapathType: 'netdev', enableArpDetectIpConflict: true, ovnInstalledTimeoutMs: 10, gatewayCheckTimeoutMs: 10 } },
      exec: { netlink: s.nl, podNet: s.nl, vswitch: s.vs } });
    await fresh.del(cniReq({ command: 'DEL', netns: '' }));
    assert.deepEqual(s.vs.listPorts('br-int'), ['br-int']);
    assert.deepEqual((await s.nl.listLinks(null)).map((l) => l.name), ['lo']);
    assert.equal(s.vs.qos.size + s.vs.queues.size, 0);
  });

  it('DEL of a container whose ID shares 12 characters with a live pod\'s leaves that pod\'s port and veth alone (item 3)', async () => {
    const s = setup();
    s.pods.set({ metadata: { name: 'p', namespace: 'default', annotations: v4() } });
    await s.backend.add(cniReq());
    const links = (await s.nl.listLinks(null)).map((l) => l.name);
    const twin = `${CID.slice(0, 12)}ffffffffffff`;
    for (const netns of [NETNS.replace('b1', 'b2'), '']) {
      await s.backend.del(cniReq({ command: 'DEL', containerId: twin, podName: 'other', netns }));
      assert.deepEqual((await s.nl.listLinks(null)).map((l) => l.name), links);
      assert.deepEqual(s.vs.listPorts('br-int').length, 2);
    }
    // the live pod's own DEL still works
    await s.backend.del(cniReq({ command: 'DEL' }));
    await assertEmpty(s.nl, s.vs);
  });

  it('an ADD for a second container with the same host name while the first one\'s ADD is in flight is refused at once', async () => {
    const s = setup({ gatewayCheckTimeoutMs: 60_000 });
    s.nl.reachable.clear();
    s.pods.set({ metadata: { name: 'p', namespace: 'default', annotations: v4() } });
    s.pods.set({ metadata: { name: 'q', namespace: 'default', annotations: v4(8) } });
    const first = s.backend.add(cniReq());
    first.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 50));
    const twin = `${CID.slice(0, 12)}ffffffffffff`;
    const e = await rejects(s.backend.add(cniReq({ containerId: twin, podName: 'q', netns: NETNS })));
    assert.equal(e.code, 'KOA_HOST_NIC_TAKEN');
    assert.match(e.message, /ADD in flight/);
    await s.backend.del(cniReq({ command: 'DEL', containerId: twin, podName: 'q' }));
    assert.ok(await s.nl.getLink(null, `${CID.slice(0, 12)}_h`), 'the in-flight ADD kept its veth');
    s.nl.reachable.add(`${NETNS}|10.16.0.1`);
    await first;
  });

  it('CHECK passes on the live attachment and names what drifted', async () => {
    const s = setup();
    s.pods.set({ metadata: { name: 'p', namespace: 'default', annotations: v4() } });
    const r = await s.backend.add(cniReq());
    await s.backend.check(cniReq({ command: 'CHECK' }), r);
    const wrongMac: CniResult = { ...r, interfaces: [{ ...r.interfaces![0]!, mac: '00:00:00:00:00:01' }] };
    assert.match((await rejects(s.backend.check(cniReq({ command: 'CHECK' }), wrongMac))).message, /MAC is 00:00:00:ab:cd:09/);
    const wrongIp: CniResult = { ...r, ips: [{ address: '10.16.0.10/16', interface: 0 }] };
    assert.match((await rejects(s.backend.check(cniReq({ command: 'CHECK' }), wrongIp))).message, /address 10\.16\.0\.10\/16 is not configured/);
    await s.nl.deleteLink(null, 'aaaaaaaaaaaa_h');
    assert.match((await rejects(s.backend.check(cniReq({ command: 'CHECK' }), r))).message, /no link eth0/);
    await s.vs.deletePort('aaaaaaaaaaaa_h');
    assert.match((await rejects(s.backend.check(cniReq({ command: 'CHECK' }), r))).message, /OVS port aaaaaaaaaaaa_h is missing/);
  });

  it('STATUS reports the readiness reason as code 50', async () => {
    let ready: true | string = 'no synced OVSDB connection to /run/openvswitch/db.sock';
    const s = setup({ status: () => ready });
    const e = await rejects(s.backend.status(netconf()));
    assert.deepEqual([e.cniCode, e.message], [50, 'agent not ready: no synced OVSDB connection to /run/openvswitch/db.sock']);
    ready = true;
    await s.backend.status(netconf());
  });

  it('GC removes only our pod ports of containers without any valid attachment', async () => {
    const s = setup();
    s.pods.set({ metadata: { name: 'p', namespace: 'default', annotations: v4() } });
    s.pods.set({ metadata: { name: 'q', namespace: 'default', annotations: v4(10) } });
    s.pods.set({ metadata: { name: 'p2', namespace: 'default', annotations: { ...v4(11), ...ann('attachnet.default.ovn', { allocated: 'true',
      ip_address: '172.17.0.5', mac_address: '00:00:00:11:22:33', cidr: '172.17.0.0/24', gateway: '172.17.0.1', logical_switch: 'attach' }) } } });
    s.nl.addNamespace('/var/run/netns/koap-b2');
    s.nl.addNamespace('/var/run/netns/koap-b3');
    s.nl.reachable.add('/var/run/netns/koap-b2|10.16.0.1');
    s.nl.reachable.add('/var/run/netns/koap-b3|10.16.0.1');
    s.nl.reachable.add('/var/run/netns/koap-b3|172.17.0.1');
    await s.backend.add(cniReq());
    await s.backend.add(cniReq({ containerId: 'bbbbbbbbbbbb01', podName: 'q', netns: '/var/run/netns/koap-b2' }));
    await s.backend.add(cniReq({ containerId: 'cccccccccccc01', podName: 'p2', netns: '/var/run/netns/koap-b3' }));
    await s.backend.add(cniReq({ containerId: 'cccccccccccc01', podName: 'p2', netns: '/var/run/netns/koap-b3', ifName: 'net1' }, { provider: 'attachnet.default.ovn' }));
    // not ours: a port without vendor, ovn0 (internal), a bridge port
    await s.vs.addBridgePort({ bridge: 'br-int', name: 'dddddddddddd_h' });
    await s.vs.addInternalPort({ name: 'ovn0', externalIds: { vendor: 'kube-ovn', pod_name: 'x', pod_namespace: 'y' } });
    await s.backend.gc({ netconf: netconf(), validAttachments: [{ containerID: CID, ifname: 'eth0' }, { containerID: 'cccccccccccc01', ifname: 'eth0' }] });
    assert.deepEqual(s.vs.listPorts('br-int').sort(), ['aaaaaaaaaaaa_h', 'br-int', 'cccccccc_net1_h', 'cccccccccccc_h', 'dddddddddddd_h', 'ovn0']);
    assert.equal(await s.nl.getLink(null, 'bbbbbbbbbbbb_h'), null, 'the stale host veth went too');
    // IPAM-only networks own no ports: GC does nothing
    await s.backend.gc({ netconf: netconf({ type: 'macvlan', ipamMode: true, provider: 'macvlan.default' }), validAttachments: [] });
    assert.equal(s.vs.listPorts('br-int').length, 6);
  });

  it('port names map back to container-ID prefixes', () => {
    assert.equal(portContainerPrefix('0123456789ab_h'), '0123456789ab');
    assert.equal(portContainerPrefix('01234567_net1_h'), '01234567');
    assert.equal(portContainerPrefix('ovn0'), undefined);
    assert.equal(portContainerPrefix('_h'), undefined);
  });
});

describe('OvnBackend behind the dispatcher and the upstream /api/v1 protocol', () => {
  it('POST /api/v1/add gets the upstream CniResponse; /api/v1/del 204 twice', async () => {
    const s = setup();
    s.pods.set({ metadata: { name: 'p', namespace: 'default', annotations: v4() } });
    const d = new Dispatcher({ backend: s.backend });
    const body = { cni_type: 'kube-ovn', pod_name: 'p', pod_namespace: 'default', container_id: CID, net_ns: NETNS, if_name: 'eth0', provider: 'ovn',
      routes: null, dns: {}, vf_driver: '', deviceID: '', vhost_user_socket_volume_name: '', vhost_user_socket_name: '', vhost_user_socket_consumption: '' };
    const add = await handleUpstream(d, 'ADD', body);
    assert.equal(add.status, 200, JSON.stringify(add.body));
    assert.deepEqual(add.body, { ips: [{ protocol: 'IPv4', ip: '10.16.0.9', cidr: '10.16.0.0/16', gateway: '10.16.0.1' }], mac_address: '00:00:00:ab:cd:09',
      routes: [{ dst: '0.0.0.0/0', gw: '10.16.0.1' }, { dst: '10.16.0.0/16' }], mtu: 1400, nicname: 'eth0', dns: {}, error: '' });
    assert.equal((await handleUpstream(d, 'DEL', body)).status, 204);
    assert.equal((await handleUpstream(d, 'DEL', body)).status, 204);
    await assertEmpty(s.nl, s.vs);
  });

  it('an ADD that cannot be served maps to 500 with the reason', async () => {
    const s = setup({ annotationWaitTimeoutMs: 50 });
    const d = new Dispatcher({ backend: s.backend });
    const r = await handleUpstream(d, 'ADD', { cni_type: 'kube-ovn', pod_name: 'p', pod_namespace: 'default', container_id: CID, net_ns: NETNS, if_name: 'eth0', provider: 'ovn' });
    assert.equal(r.status, 500);
    assert.match(r.body!.error, /timed out after 50 ms waiting for pod default\/p/);
  });
});
