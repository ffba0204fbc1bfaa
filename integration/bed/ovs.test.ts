// Real OVS in a node namespace: two pod namespaces on a standalone netdev bridge ping each other;
// stop() leaves no daemon, temp dir or namespace behind.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { isAlive } from './daemon.ts';
import { addAddress, addVeth, cleanupAll, createNetns, listNetns, newPrefix, ping } from './netns.ts';
import { startOvs } from './ovs.ts';

const prefix = newPrefix('koab');
after(async () => {
  await cleanupAll();
});

test('ovs: userspace datapath bridge switches between two pod namespaces', async () => {
  const ovs = await startOvs({ prefix, name: 'n1' });
  assert.equal(ovs.pids().length, 2);
  assert.ok(ovs.pids().every(isAlive));
  assert.ok(existsSync(ovs.dbSock));
  await ovs.addBridge('br-test', { standalone: true });
  assert.equal(await ovs.vsctl(['get', 'bridge', 'br-test', 'datapath_type']), 'netdev');
  // vswitchd runs in the node namespace, so the bridge's tap is there and not in the host namespace
  const links = await ovs.nodeNs.ip(['-o', 'link', 'show', 'br-test']);
  assert.match(links.stdout, /br-test/);
  const pods = [];
  for (const i of [1, 2]) {
    const pod = await createNetns(`${prefix}pod${i}`);
    await addVeth(ovs.nodeNs, `vp${i}`, pod, 'eth0');
    await addAddress(pod, 'eth0', `10.99.0.${i}/24`);
    await pod.exec(['ethtool', '-K', 'eth0', 'tx', 'off']);
    await ovs.vsctl(['add-port', 'br-test', `vp${i}`]);
    pods.push(pod);
  }
  assert.equal(await ovs.vsctl(['get', 'interface', 'vp1', 'ofport']) !== '-1', true);
  const r = await ping(pods[0]!, '10.99.0.2', { count: 3 });
  assert.equal(r.ok, true, r.output);
  assert.match(await ovs.appctl(['dpif/show']), /netdev@ovs-netdev/);
  const pids = ovs.pids();
  await ovs.stop();
  await ovs.stop();
  assert.ok(pids.every((p) => !isAlive(p)), 'daemons gone');
  assert.equal(existsSync(ovs.dir), false, 'temp dir gone');
  assert.deepEqual(listNetns(`${prefix}n1`), []);
});
