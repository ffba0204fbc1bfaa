import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeVswitch } from '../../agent/src/datapath/ovsdb/fake.ts';
import { contract } from './vswitch-contract.ts';

for (const [name, run] of contract) {
  test(`fake Vswitch contract: ${name}`, async () => {
    const vs = new FakeVswitch();
    await run({ vs, tag: 't1', setIfaceExternalId: async (n, k, v) => { if (k === 'ovn-installed') vs.setOvnInstalled(n, v === 'true'); } });
  });
}

test('fake test hooks: failNext, vswitchd down, failInterface, ofports, calls, close', async () => {
  const vs = new FakeVswitch();
  vs.failNext('addPodPort');
  const spec = { name: 'v1', ifaceId: 'a.b', podName: 'a', podNamespace: 'b', podNetns: '/n' };
  await assert.rejects(vs.addPodPort(spec), /injected failure/);
  vs.vswitchdDown = true;
  await assert.rejects(vs.addPodPort(spec, { wait: true, timeoutMs: 5 }), /is ovs-vswitchd running/);
  vs.vswitchdDown = false;
  vs.autoOfport = false;
  await vs.addPodPort(spec);
  const w = vs.waitOfport('v1', 1000);
  vs.assignOfports();
  assert.ok((await w) >= 1);
  await vs.addPodPort({ ...spec, name: 'v2', ifaceId: 'c.d' });
  vs.failInterface('v2', 'could not open network device v2 (No such device)');
  await assert.rejects(vs.waitOfport('v2', 1000), /could not add interface v2: could not open network device/);
  assert.deepEqual(vs.calls, ['addPodPort v1', 'addPodPort v1', 'addPodPort v1', 'addPodPort v2']);
  vs.close();
  await assert.rejects(vs.deletePort('v1'), /closed/);
});
