// Multus v4.3.0 on the real node (kubelet + containerd, the agent as the DaemonSet runs it, the stand-in controller),
// once per form, each on a bring-up of its own: thin (the `multus` executable and our 00-multus.conf) and thick
// (`multus-shim` + `multus-daemon` in the node, which writes 00-multus.conf itself). Both in front of
// 01-kube-ovn.conflist, with a NetworkAttachmentDefinition whose config is a Kube-OVN attachment (provider
// attach.default.ovn). A pod annotated with it gets eth0 and net1 from our agent (two ADDs through Multus), reaches
// both gateways through OVN, and Multus' network-status lists net1; deleting it DELs both and leaves no pod port.
// Bounds are generous: a loaded 2-core machine.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../bed/exec.ts';
import { newPrefix } from '../bed/netns.ts';
import { downRealNode, upStandInNode, type StandInNode } from './cluster.ts';
import { cniRequestCounts, countOf } from './daemonset.ts';
import { waitNoPodPorts } from './deletion.ts';
import { createKubeOvnNad, diagnosePod, installMultus, installNadCrd, MULTUS_MODES, multusMissing, shimForwardedAdd, type Multus } from './multus.ts';
import { createBusyboxPod, deleteAndWait, podLog, waitFinished } from './pods.ts';

for (const mode of MULTUS_MODES) {
  describe(`Multus ${mode}`, () => {
    let real: StandInNode | undefined;
    let multus: Multus | undefined;
    let prefix: string | undefined;
    // built by `npm run setup` unless KOA_BUILD_UPSTREAM=0: without it the test is reported as skipped, with this reason
    const skip = multusMissing(mode);

    before(async () => {
      if (skip) return;
      prefix = newPrefix('koarn');
      real = await upStandInNode(prefix, async (b) => {
        await installNadCrd(b.kube!);
        await b.controller!.createSubnet({ name: 'attach', cidrBlock: '172.18.0.0/16', provider: 'attach.default.ovn' });
      });
    }, { timeout: 900_000 });

    after(async () => {
      try {
        await multus?.stop();
      } finally {
        await downRealNode(prefix, real);
      }
    }, { timeout: 300_000 });

    test('a Kube-OVN NetworkAttachmentDefinition: the pod gets eth0 and net1 from the agent, both reach their gateways', { timeout: 900_000, skip }, async () => {
      const { bed, node, rn, agent } = real!;
      const api = bed.kube!.api;
      multus = await installMultus(bed.kube!, rn, { mode });
      const conf = JSON.parse(readFileSync(join(rn.cniConfDir, '00-multus.conf'), 'utf8')) as { type?: string; clusterNetwork?: string };
      // thick: the daemon generated the shim's config from our conflist, the first other file of the dir
      assert.deepEqual([conf.type, conf.clusterNetwork], [mode === 'thin' ? 'multus' : 'multus-shim', join(rn.cniConfDir, '01-kube-ovn.conflist')]);
      const provider = await createKubeOvnNad(bed.kube!, 'attach');
      const before = await cniRequestCounts(agent);
      // the stand-in allocates both NICs once the pod exists (the real controller does the same from the NAD's subnet)
      const name = 'multi';
      const gw = ['10.16.0.1', '172.18.0.1'];
      await createBusyboxPod(api, {
        name, nodeName: node.name, restartPolicy: 'Never', annotations: { 'k8s.v1.cni.cncf.io/networks': 'attach' },
        command: ['sh', '-c', 'ip -4 -o addr show dev net1 && ip -4 -o addr show dev eth0 && ' + gw.map((g) => `ping -c 3 -W 5 ${g}`).join(' && ')],
      });
      const eth0 = await bed.controller!.allocatePod('default', name);
      const net1 = await bed.controller!.allocatePod('default', name, { provider });
      const done = await waitFinished(api, name).catch(async (e: unknown) => {
        throw new Error(`${String(e)}\n${await diagnosePod(api, rn, agent, name)}`);
      });
      const logs = podLog(rn.podLogsDir, name);
      assert.deepEqual(done, { phase: 'Succeeded', exitCode: 0 }, logs);
      assert.match(logs, new RegExp(`net1\\s+inet ${net1.ips[0]!.replaceAll('.', '\\.')}/16`), `net1 has the attachment address: ${logs}`);
      assert.match(logs, new RegExp(`eth0\\s+inet ${eth0.ips[0]!.replaceAll('.', '\\.')}/16`), `eth0 has the primary address: ${logs}`);
      assert.equal(logs.match(/3 packets transmitted, 3 packets received/g)?.length, 2, logs);
      // Multus reports both attachments in the pod's network-status annotation
      const pod = await api.get(`/api/v1/namespaces/default/pods/${name}`);
      const status = JSON.parse(pod.metadata.annotations?.['k8s.v1.cni.cncf.io/network-status'] ?? '[]') as { interface?: string; ips?: string[] }[];
      assert.deepEqual(status.find((s) => s.interface === 'net1')?.ips, [net1.ips[0]], JSON.stringify(status));
      const after = await cniRequestCounts(agent);
      assert.ok(countOf(after, 'ADD', true) - countOf(before, 'ADD', true) >= 2, 'two ADDs through Multus: eth0 and net1');
      assert.equal(countOf(after, 'ADD', false), 0);
      if (mode === 'thick') {
        // the calls went through the shim to the daemon, which ran the delegates
        assert.ok(shimForwardedAdd(multus), 'the shim forwarded the ADD');
        assert.ok(multus.daemon!.alive(), 'multus-daemon still runs');
      }
      await deleteAndWait(api, name);
      await bed.controller!.releasePod('default', name);
      await bed.controller!.releasePod('default', name, provider);
      await waitFor('DELs of both NICs', async () => countOf(await cniRequestCounts(agent), 'DEL', true) - countOf(before, 'DEL', true) >= 2, 120_000, 1000);
      assert.equal(countOf(await cniRequestCounts(agent), 'DEL', false), 0);
      await waitNoPodPorts(node.ovs);
      if (mode === 'thick') {
        await multus.stop();
        assert.ok(!multus.daemon!.alive(), 'multus-daemon stopped by its PID');
        assert.ok(!existsSync(join(rn.cniConfDir, '00-multus.conf')), 'the daemon removed the 00-multus.conf it wrote');
      }
    });
  });
}
