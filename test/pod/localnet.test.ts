// Underlay pods (issue 13, spec §3.6 step 12): on a VLAN subnet without a logical gateway, the ADD waits for the
// localnet patch port that ovn-controller adds to the provider bridge (an OVSDB monitor event) before the pod's
// announcements and gateway check; the wait is bounded and rolls the ADD back when it runs out.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeNetlink } from '../../agent/src/datapath/netlink/fake.ts';
import { FakeVswitch } from '../../agent/src/datapath/ovsdb/fake.ts';
import { decodePodNic, type Annotations } from '../../agent/src/pod/annotations.ts';
import { applyAdd, probeTiming } from '../../agent/src/pod/executor.ts';
import { localnetPatchPort, planAdd, type AddPlan, type OvnNicPlan, type SubnetFacts } from '../../agent/src/pod/plan.ts';

const NETNS = '/var/run/netns/koaul-pod1';
const ann = (kv: Record<string, string>): Annotations => Object.fromEntries(Object.entries(kv).map(([k, v]) => [`ovn.kubernetes.io/${k}`, v]));
const vlanPod = ann({ allocated: 'true', ip_address: '172.30.50.20', mac_address: '00:00:00:50:00:20', cidr: '172.30.50.0/24',
  gateway: '172.30.50.1', logical_switch: 'vlan100', routed: 'true', provider_network: 'phys', vlan_id: '100' });

function plan(s: SubnetFacts, timeoutMs = 2000): AddPlan {
  const d = decodePodNic(vlanPod, 'ovn', 'eth0');
  if (!d.ok) assert.fail(d.reason);
  return planAdd({ containerId: '0123456789abcdef0123456789abcdef', netns: NETNS, ifName: 'eth0', podName: 'u1', podNamespace: 'default',
    provider: 'ovn', cniType: 'kube-ovn', routes: null }, d.nic,
  { mtu: 1400, datapathType: 'netdev', enableArpDetectIpConflict: false, ovnInstalledTimeoutMs: timeoutMs, gatewayCheckTimeoutMs: 500,
    nodeLabels: { 'phys.provider-network.kubernetes.io/mtu': '1500' } }, s);
}
const ops = (p: AddPlan): string[] => (p as OvnNicPlan).steps.map((s) => s.op);

describe('underlay pods: the localnet patch port', () => {
  it('a VLAN subnet waits for patch-localnet.<subnet>-to-br-int right after ovn-installed; MTU from the provider network label', () => {
    const p = plan({ name: 'vlan100', vlan: 'v100' }) as OvnNicPlan;
    const i = ops(p).indexOf('waitOvnInstalled');
    assert.equal(ops(p)[i + 1], 'waitLocalnet');
    assert.deepEqual(p.steps[i + 1], { op: 'waitLocalnet', iface: 'patch-localnet.vlan100-to-br-int', timeoutMs: 2000 });
    assert.equal(localnetPatchPort('vlan100'), 'patch-localnet.vlan100-to-br-int');
    assert.equal(p.gatewayCheck.mode, 'arping');
    assert.equal(p.steps.find((s) => s.op === 'createVeth')?.op === 'createVeth' && (p.steps.find((s) => s.op === 'createVeth') as { mtu: number }).mtu, 1500);
  });

  it('overlay subnets and logicalGateway subnets do not wait for it', () => {
    assert.ok(!ops(plan({ name: 'vlan100', vlan: 'v100', logicalGateway: true })).includes('waitLocalnet'));
    assert.ok(!ops(plan({ name: 'ovn-default' })).includes('waitLocalnet'));
  });

  async function world(): Promise<{ nl: FakeNetlink; vs: FakeVswitch }> {
    const nl = new FakeNetlink();
    nl.addNamespace(NETNS);
    nl.reachable.add(`${NETNS}|172.30.50.1`);
    const vs = new FakeVswitch();
    vs.onInterfaceChange((ev) => { if (ev.new && !ev.old && ev.name.endsWith('_h')) queueMicrotask(() => vs.setOvnInstalled(ev.name)); });
    return { nl, vs };
  }

  it('the ADD goes on when ovn-controller adds the patch port (an event), not before', async () => {
    const { nl, vs } = await world();
    let announcedAt = -1;
    let patchAt = -1;
    const p = applyAdd(plan({ name: 'vlan100', vlan: 'v100' }), {
      netlink: nl, podNet: nl, vswitch: vs, probe: probeTiming(10),
      beforeStep: (step) => { if (step.op === 'announce') announcedAt = performance.now(); },
    });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(announcedAt, -1, 'the announcements wait for the patch port');
    await vs.ensureBridge({ name: 'br-phys' });
    patchAt = performance.now();
    await vs.addBridgePort({ bridge: 'br-phys', name: 'patch-localnet.vlan100-to-br-int', type: 'patch' });
    await p;
    assert.ok(announcedAt >= patchAt, `announced at ${announcedAt}, patch port at ${patchAt}`);
  });

  it('no patch port within the bound: the ADD fails and is rolled back', async () => {
    const { nl, vs } = await world();
    await assert.rejects(applyAdd(plan({ name: 'vlan100', vlan: 'v100' }, 300), { netlink: nl, podNet: nl, vswitch: vs, probe: probeTiming(10) }),
      /patch-localnet\.vlan100-to-br-int/);
    assert.deepEqual(vs.listPorts('br-int'), ['br-int']);
    assert.deepEqual((await nl.listLinks(null)).map((l) => l.name), ['lo']);
  });

  it('the IPv4 gateway check of an underlay pod is ARP: a physical gateway that drops ICMP passes, one that does not answer ARP fails', async () => {
    const { nl, vs } = await world();
    nl.reachable.clear();
    nl.arpAnswers.set(`${NETNS}|172.30.50.1`, '52:54:00:00:00:01');
    await vs.ensureBridge({ name: 'br-phys' });
    await vs.addBridgePort({ bridge: 'br-phys', name: 'patch-localnet.vlan100-to-br-int', type: 'patch' });
    await applyAdd(plan({ name: 'vlan100', vlan: 'v100' }), { netlink: nl, podNet: nl, vswitch: vs, probe: probeTiming(10) });
    assert.ok(nl.calls.includes(`arping ${NETNS} eth0 172.30.50.1 from 172.30.50.20`), nl.calls.join('\n'));
    assert.ok(!nl.calls.some((c) => c.startsWith('ping ')), 'no ICMP echo');

    const w = await world();
    w.nl.reachable.clear();
    await w.vs.ensureBridge({ name: 'br-phys' });
    await w.vs.addBridgePort({ bridge: 'br-phys', name: 'patch-localnet.vlan100-to-br-int', type: 'patch' });
    await assert.rejects(applyAdd(plan({ name: 'vlan100', vlan: 'v100' }), { netlink: w.nl, podNet: w.nl, vswitch: w.vs, probe: probeTiming(10), gatewayPingTryMs: 10 }),
      /gateway 172\.30\.50\.1 to answer/);
  });

  it('a logicalGateway subnet (the OVN router) is checked by ICMP echo, not ARP', async () => {
    const { nl, vs } = await world();
    await applyAdd(plan({ name: 'vlan100', vlan: 'v100', logicalGateway: true }), { netlink: nl, podNet: nl, vswitch: vs, probe: probeTiming(10) });
    assert.ok(nl.calls.some((c) => c.startsWith(`ping ${NETNS} 172.30.50.1`)), nl.calls.join('\n'));
    assert.ok(!nl.calls.some((c) => c.startsWith('arping ')));
  });
});
