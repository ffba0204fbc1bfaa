// The pure provider-network planner (spec §6.2 steps 1-4, §6.6 labels) and the file journal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chooseNic, formatMappings, vlanSubinterface, isExcluded, nodeLabels, parseMappings, planUnderlay, randomMac, trunkSet } from '../../../agent/src/node/underlay/plan.ts';
import { FileJournal } from '../../../agent/src/node/underlay/journal.ts';
import type { ProviderNetwork, Vlan } from '../../../agent/src/node/underlay/types.ts';

const pn = (spec: ProviderNetwork['spec'], status?: ProviderNetwork['status']): ProviderNetwork => ({ metadata: { name: 'phys' }, spec, ...(status ? { status } : {}) });
const vlan = (name: string, id: number): Vlan => ({ metadata: { name }, spec: { id, provider: 'phys' } });

test('NIC: the customInterfaces entry naming the node wins over defaultInterface', () => {
  const p = pn({ defaultInterface: 'eth1', customInterfaces: [{ interface: 'eth2', nodes: ['n2'] }, { interface: 'bond0', nodes: ['n3', 'n1'] }] });
  assert.equal(chooseNic(p, 'n1'), 'bond0');
  assert.equal(chooseNic(p, 'n2'), 'eth2');
  assert.equal(chooseNic(p, 'n9'), 'eth1');
  assert.equal(chooseNic(pn({}), 'n9'), '');
});

test('exclusion: nodeSelector when set (labels and expressions), else excludeNodes', () => {
  const node = { metadata: { name: 'n1', labels: { zone: 'a', gpu: 'yes' } } };
  assert.equal(isExcluded(pn({ excludeNodes: ['n1'] }), node, 'n1'), true);
  assert.equal(isExcluded(pn({ excludeNodes: ['n2'] }), node, 'n1'), false);
  // the selector wins: excludeNodes is ignored when a nodeSelector is set
  assert.equal(isExcluded(pn({ excludeNodes: ['n1'], nodeSelector: { matchLabels: { zone: 'a' } } }), node, 'n1'), false);
  assert.equal(isExcluded(pn({ nodeSelector: { matchLabels: { zone: 'b' } } }), node, 'n1'), true);
  assert.equal(isExcluded(pn({ nodeSelector: { matchExpressions: [{ key: 'gpu', operator: 'Exists' }] } }), node, 'n1'), false);
  assert.equal(isExcluded(pn({ nodeSelector: { matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] } }), node, 'n1'), true);
  assert.equal(isExcluded(pn({ nodeSelector: { matchExpressions: [{ key: 'x', operator: 'DoesNotExist' }, { key: 'zone', operator: 'In', values: ['a', 'c'] }] } }), node, 'n1'), false);
});

test('trunks: ids of the Vlans in status.vlans, plus 0, sorted and unique; unknown Vlans are skipped', () => {
  const p = pn({ defaultInterface: 'eth1' }, { vlans: ['v100', 'v20', 'gone', 'v20b'] });
  assert.deepEqual(trunkSet(p, [vlan('v100', 100), vlan('v20', 20), vlan('v20b', 20), vlan('other', 7)]), [0, 20, 100]);
  assert.deepEqual(trunkSet(pn({}), []), [0]);
});

test('plan: deleted, terminating and excluded are absent; otherwise present with NIC, trunks and bridge br-<pn>', () => {
  const base = { pnName: 'phys', vlans: [vlan('v100', 100)], node: { metadata: { name: 'n1' } }, nodeName: 'n1', macLearningFallback: true };
  assert.deepEqual(planUnderlay({ ...base, pn: undefined }), { kind: 'absent', pn: 'phys', bridge: 'br-phys', why: 'deleted' });
  assert.equal((planUnderlay({ ...base, pn: { ...pn({ defaultInterface: 'eth1' }), metadata: { name: 'phys', deletionTimestamp: '2026-01-01T00:00:00Z' } } }) as { why: string }).why, 'terminating');
  assert.equal((planUnderlay({ ...base, pn: pn({ defaultInterface: 'eth1', excludeNodes: ['n1'] }) }) as { why: string }).why, 'excluded');
  assert.deepEqual(planUnderlay({ ...base, pn: pn({ defaultInterface: 'eth1' }, { vlans: ['v100'] }) }),
    { kind: 'present', pn: 'phys', bridge: 'br-phys', nic: 'eth1', port: 'eth1', trunks: [0, 100], exchangeLinkName: false, macLearningFallback: true,
      vlanInterfaces: [], preserveVlanInterfaces: false });
});

test('labels: ready sets three and removes exclude; failure removes all but exclude; exclusion sets exclude only', () => {
  const k = (s: string): string => `phys.provider-network.kubernetes.io/${s}`;
  assert.deepEqual(nodeLabels('phys', { kind: 'ready', nic: 'eth1', mtu: 1500 }),
    { [k('ready')]: 'true', [k('interface')]: 'eth1', [k('mtu')]: '1500', [k('exclude')]: null, [k('vlan_interfaces')]: null });
  assert.deepEqual(nodeLabels('phys', { kind: 'failed' }), { [k('ready')]: null, [k('interface')]: null, [k('mtu')]: null, [k('vlan_interfaces')]: null });
  assert.deepEqual(nodeLabels('phys', { kind: 'excluded' }), { [k('ready')]: null, [k('interface')]: null, [k('mtu')]: null, [k('exclude')]: 'true', [k('vlan_interfaces')]: null });
});

test('mappings round-trip and random MACs are locally administered unicast', () => {
  const m = parseMappings('physnet:br-phys, ext:br-ext');
  assert.deepEqual([...m], [['physnet', 'br-phys'], ['ext', 'br-ext']]);
  assert.equal(formatMappings(m), 'physnet:br-phys,ext:br-ext');
  assert.equal(parseMappings(undefined).size, 0);
  assert.equal(randomMac(Uint8Array.from([0xff, 1, 2, 3, 4, 5])), 'fe:01:02:03:04:05');
});

test('FileJournal: atomic write, read back, list, clear; a torn file is an error naming the network', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'koaul-journal-'));
  try {
    const j = new FileJournal(join(dir, 'sub'));
    assert.deepEqual(await j.list(), []);
    assert.equal(await j.read('phys'), undefined);
    const rec = { pn: 'phys', op: 'transfer' as const, nic: 'eth1', bridge: 'br-phys', trunks: [0], step: 'nic-port',
      snapshot: { mac: 'aa:bb:cc:dd:ee:ff', mtu: 1500, up: true, addresses: [{ cidr: '10.0.0.2/24', family: 4 as const }], routes: [] } };
    await j.write(rec);
    assert.deepEqual(await j.read('phys'), rec);
    assert.deepEqual(await j.list(), [rec]);
    assert.deepEqual(readdirSync(join(dir, 'sub')), ['phys.move.json']); // no temp file left behind
    await j.clear('phys');
    assert.deepEqual(await j.list(), []);
    writeFileSync(join(dir, 'sub', 'bad.move.json'), '{"pn":"bad"');
    await assert.rejects(j.read('bad'), /JSON|bad/);
    await assert.rejects(j.read('../x'), /invalid provider network name/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('autoCreateVlanSubinterfaces: only for a NIC named <parent>.<id> with id 1..4094 (the last dot splits)', () => {
  assert.deepEqual(vlanSubinterface('eth1.100'), { parent: 'eth1', id: 100 });
  assert.deepEqual(vlanSubinterface('bond0.2.7'), { parent: 'bond0.2', id: 7 });
  for (const bad of ['eth1', 'eth1.', 'eth1.0', 'eth1.4095', 'eth1.10a', '.5x']) assert.equal(vlanSubinterface(bad), undefined, bad);
  const d = planUnderlay({ pnName: 'phys', pn: pn({ defaultInterface: 'eth1.100', autoCreateVlanSubinterfaces: true }), vlans: [], node: undefined, nodeName: 'n1', macLearningFallback: false });
  assert.ok(d.kind === 'present');
  assert.deepEqual(d.autoCreateVlan, { parent: 'eth1', id: 100 });
  const off = planUnderlay({ pnName: 'phys', pn: pn({ defaultInterface: 'eth1.100' }), vlans: [], node: undefined, nodeName: 'n1', macLearningFallback: false });
  assert.ok(off.kind === 'present' && off.autoCreateVlan === undefined);
});
