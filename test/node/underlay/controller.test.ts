// The per-network controller: nothing is treated as deleted before the ProviderNetworks were listed, leftovers of a
// network deleted while the agent was down are cleaned after the list, a move in flight is finished at start, and a
// deleted network's reconciler goes away once it has nothing left to do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UnderlayController } from '../../../agent/src/node/underlay/controller.ts';
import { transferNic } from '../../../agent/src/node/underlay/transfer.ts';
import type { ProviderNetwork } from '../../../agent/src/node/underlay/types.ts';
import { NIC, NS, linkState, makeNode } from './helpers.ts';

async function setup() {
  const node = await makeNode();
  const st = { pns: [] as ProviderNetwork[], synced: false, labels: {} as Record<string, string> };
  const c = new UnderlayController({
    nodeName: 'n1', netns: NS, netlink: () => node.nl, vswitch: () => node.vs, journal: node.journal,
    providerNetworks: () => st.pns, synced: () => st.synced, vlans: () => [], node: () => ({ metadata: { name: 'n1', labels: st.labels } }),
    patchNode: async (p) => { for (const [k, v] of Object.entries(p.labels ?? {})) { if (v === null) delete st.labels[k]; else st.labels[k] = v; } },
    event: () => {}, macLearningFallback: false, datapathType: () => undefined, randomMac: () => '02:00:00:00:00:01', resyncMs: 0,
  });
  return { ...node, st, c };
}

test('before the first list nothing is removed; after it, a leftover network (in the mappings, not in the API) is cleaned', async () => {
  const { nl, vs, st, c } = await setup();
  const before = await linkState(nl, NIC);
  st.pns = [{ metadata: { name: 'phys' }, spec: { defaultInterface: NIC } }];
  st.synced = true;
  await c.start();
  await c.runNow();
  assert.equal(vs.getPort(NIC)?.bridge, 'br-phys');
  c.sync('test');
  await c.stop();

  // the agent restarts while the network was deleted
  const again = new UnderlayController({
    nodeName: 'n1', netns: NS, netlink: () => nl, vswitch: () => vs, journal: (await makeNode()).journal,
    providerNetworks: () => [], synced: () => st.synced, vlans: () => [], node: () => ({ metadata: { name: 'n1', labels: st.labels } }),
    patchNode: async (p) => { for (const [k, v] of Object.entries(p.labels ?? {})) { if (v === null) delete st.labels[k]; else st.labels[k] = v; } },
    event: () => {}, macLearningFallback: false, datapathType: () => undefined, randomMac: () => '02:00:00:00:00:02', resyncMs: 0,
  });
  st.synced = false;
  await again.start();
  assert.deepEqual(again.networks, []); // not listed yet: the mapping is not taken for a leftover
  st.synced = true;
  again.sync('synced');
  assert.deepEqual(again.networks, ['phys']);
  await again.runNow();
  assert.deepEqual(await linkState(nl, NIC), before);
  assert.equal(vs.getBridge('br-phys'), undefined);
  assert.equal(vs.getOvsExternalIds()['ovn-bridge-mappings'], undefined);
  assert.deepEqual(st.labels, {});
  await again.runNow(); // nothing left to do: the reconciler is dropped
  assert.deepEqual(again.networks, []);
  await again.stop();
});

test('a move in the journal at start is finished even before the ProviderNetworks are listed, and nothing else is done', async () => {
  const { nl, vs, journal, st, c } = await setup();
  await vs.ensureBridge({ name: 'br-phys' });
  await assert.rejects(transferNic({ netlink: nl, vswitch: vs, journal, netns: NS, beforeStep: (r) => { if (r.step === 'addresses-off-nic') throw new Error('killed'); } },
    'phys', NIC, 'br-phys', [0]), /killed/);
  await c.start();
  assert.deepEqual(c.networks, ['phys']);
  await c.runNow();
  await c.runNow();
  assert.equal(journal.records.size, 0);
  assert.deepEqual(await nl.listAddresses(NS, { dev: NIC }), []);
  assert.deepEqual(st.labels, {}); // unknown network: no labels written until listed
  await c.stop();
});
