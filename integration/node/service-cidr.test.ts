// Service CIDRs on the real bed (issue 12): the bed's kube-apiserver (v1.35) serves networking.k8s.io/v1
// ServiceCIDRs and keeps the default one (`kubernetes`, from its own --service-cluster-ip-range) Ready. A second
// ServiceCIDR's CIDR joins `ovn40services` in the node namespace once it is Ready, and leaves it when the object is
// deleted. The bed runs no kube-controller-manager, whose service-cidr controller sets Ready on the objects users
// create, so the test does that controller's part through the status subresource. The agent runs with its resyncs an
// hour away: the set follows the ServiceCIDR watch events alone (passes the test needs otherwise are woken with a
// Subnet change).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type BedNode } from '../bed/bed.ts';
import { cleanupAll } from '../bed/netns.ts';
import type { NodeAgent } from '../e2e/agent-harness.ts';
import { ipsetList, measure, metric, nodeBed, startAgent, type NodeBed, downNodeBed } from './lib.ts';

let nb: NodeBed;
let node: BedNode;
let agent: NodeAgent;
const BOUND_MS = 20_000;
const PATH = '/apis/networking.k8s.io/v1/servicecidrs';
const NAME = 'koand-second';
const CIDR = '10.112.0.0/16';

before(async () => {
  nb = await nodeBed();
  node = nb.bed.nodes[0]!;
  agent = await startAgent(nb.bed, node, { resyncS: 3600 });
});

after(() => downNodeBed(nb, async () => {
  await agent?.stop();
}));

const members = async (): Promise<string[]> => (await ipsetList(node, 'ovn40services')).split('\n').filter((l) => /^[0-9a-f.:]+\/\d+$/.test(l)).sort();

test('the API serves ServiceCIDRs: the agent watches them, and the default one (the flag\'s range) is in ovn40services', async () => {
  const list = await nb.bed.kube!.api.get<{ items: { metadata: { name: string }; spec: { cidrs: string[] } }[] }>(PATH);
  assert.deepEqual(list.items.map((i) => [i.metadata.name, i.spec.cidrs]), [['kubernetes', ['10.96.0.0/12']]]);
  assert.deepEqual(await members(), ['10.96.0.0/12']);
  assert.equal(agent.lines.some((l) => /no networking.k8s.io\/v1 ServiceCIDRs/.test(String(l.msg))), false, 'discovery found the resource');
});

test('a second ServiceCIDR: not in the set while not Ready, in it once Ready, out of it once deleted', async () => {
  const api = nb.bed.kube!.api;
  const runs = () => metric(agent, 'kube_ovn_agent_reconcile_runs_total', 'reconciler="netfilter-v4"');
  await api.post(PATH, { apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', metadata: { name: NAME }, spec: { cidrs: [CIDR] } });
  // no controller here sets Ready: after a netfilter pass (woken by a Subnet change) it is still out
  const r0 = await runs();
  await api.mergePatch('/apis/kubeovn.io/v1/subnets/ovn-default', { metadata: { annotations: { 'koand/tick': '1' } } });
  await measure('a netfilter pass', async () => (await runs()) >= r0 + 1, BOUND_MS);
  const created = await api.get<{ status?: { conditions?: unknown[] } }>(`${PATH}/${NAME}`);
  assert.equal(created.status?.conditions?.length ?? 0, 0, 'nothing on this bed set a condition');
  assert.deepEqual(await members(), ['10.96.0.0/12'], 'not Ready: not a service CIDR yet');

  const now = new Date().toISOString();
  await api.mergePatch(`${PATH}/${NAME}/status`, { status: { conditions: [{ type: 'Ready', status: 'True', reason: '', message: 'set by the test', lastTransitionTime: now }] } });
  const inMs = await measure(`${CIDR} in ovn40services`, async () => (await members()).includes(CIDR), BOUND_MS);
  assert.deepEqual(await members(), ['10.112.0.0/16', '10.96.0.0/12']);
  const woken = agent.lines.filter((l) => l.msg === 'reconciling' && l.reconciler === 'netfilter-v4').map((l) => (l.reasons as string[]).join(','));
  assert.ok(woken.includes('servicecidr'), `a pass woken by the ServiceCIDR change alone: ${JSON.stringify(woken)}`);
  console.log(`# Ready ServiceCIDR in ovn40services after ${inMs} ms (resyncs an hour away: the watch event ran the pass)`);

  await api.delete(`${PATH}/${NAME}`);
  // a finalizer, if the API server put one, is the controller's to remove: the test plays it
  const left = await api.get<{ metadata: { finalizers?: string[] } }>(`${PATH}/${NAME}`).catch(() => undefined);
  if (left?.metadata.finalizers?.length) await api.mergePatch(`${PATH}/${NAME}`, { metadata: { finalizers: null } });
  const outMs = await measure(`${CIDR} out of ovn40services`, async () => !(await members()).includes(CIDR), BOUND_MS);
  assert.deepEqual(await members(), ['10.96.0.0/12']);
  console.log(`# deleted ServiceCIDR out of ovn40services after ${outMs} ms${left ? ' (had a finalizer)' : ''}`);
});
