// `npm run demo:realnode [-- --stand-in]`: the demo on a real Kubernetes node (integration/realnode): kubelet +
// containerd + runc in a sandbox node's namespaces, the real kube-ovn-controller v1.16.2 (or, with --stand-in, the
// bed's stand-in controller), and the agent installed and started the way the DaemonSet does it. Busybox pods are
// created as plain Pod objects: the controller allocates their addresses (the stand-in when the demo asks it to),
// the kubelet asks containerd for a sandbox, containerd calls `kube-ovn`, the agent wires eth0.
//   1. bring-up (bed, holder, kubelet + containerd, agent, controller), with timings
//   2. three busybox pods: time from create to Running, IP reported by the kubelet, the controller's MAC
//   3. a ping matrix from inside the pods' network namespaces (entered by PID: no kubectl exec here) through OVN
//   4. delete the pods (the kubelet stops them, containerd calls DEL) and tear everything down
// Last line: `demo: <pods> pods, <ok>/<total> pings ok`; exit status 0 only when every ping succeeded.
import { existsSync } from 'node:fs';
import { run } from './bed/exec.ts';
import { FIXTURE_BIN } from './bed/kube.ts';
import { cleanupAll, newPrefix } from './bed/netns.ts';
import { upRealCluster, upStandInNode, type RealCluster, type StandInNode } from './realnode/cluster.ts';
import { IMAGE_DIR } from './realnode/node.ts';
import { createBusyboxPod, deleteAndWait, waitRunning } from './realnode/pods.ts';

const t0 = performance.now();
const secs = () => `${((performance.now() - t0) / 1000).toFixed(1)}s`;
const say = (s: string) => process.stdout.write(`[${secs().padStart(6)}] ${s}\n`);
let ok = 0;
let total = 0;
let podCount = 0;
const standIn = process.argv.includes('--stand-in');

process.once('SIGINT', () => {
  process.stdout.write('\ninterrupted: tearing everything down\n');
  setImmediate(() => process.exit(130));
});

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error('the demo creates namespaces, cgroups and daemons: run it as root');
  for (const f of [`${FIXTURE_BIN}/kubelet`, ...(standIn ? [] : [`${FIXTURE_BIN}/kube-ovn-controller`]), `${IMAGE_DIR}/busybox.tar`]) {
    if (!existsSync(f)) throw new Error(`${f} is missing: run \`npm run setup\` first`);
  }
  say(standIn
    ? 'starting: OVS + OVN, kube-apiserver + etcd, the stand-in controller, kubelet + containerd, agent ...'
    : 'starting: OVS + OVN (kube-ovn-controller\'s schemas), kube-apiserver + etcd, kubelet + containerd, agent, kube-ovn-controller ...');
  let cluster: RealCluster | StandInNode | undefined;
  try {
    cluster = standIn ? await upStandInNode(newPrefix('koadr')) : await upRealCluster(newPrefix('koadr'));
    const { bed, node, rn } = cluster;
    const api = bed.kube!.api;
    const n = await api.get(`/api/v1/nodes/${node.name}`);
    const a = n.metadata.annotations ?? {};
    say(`node ${node.name} Ready (kubelet ${n.status.nodeInfo.kubeletVersion}, ${n.status.nodeInfo.containerRuntimeVersion}), ` +
      `InternalIP ${rn.nodeIp}, chassis ${a['ovn.kubernetes.io/chassis']}, ovn0 ${a['ovn.kubernetes.io/ip_address']} on join`);

    const names = ['web', 'api', 'db'];
    const started = new Map<string, number>();
    const uids = new Map<string, string>();
    for (const name of names) {
      started.set(name, performance.now());
      uids.set(name, (await createBusyboxPod(api, { name, nodeName: node.name })).uid);
      if (standIn) await bed.controller!.allocatePod('default', name);
    }
    process.stdout.write(`\npods (busybox, created as Pod objects; addresses from ${standIn ? 'the stand-in' : 'kube-ovn-controller'}, eth0 from the agent):\n`);
    process.stdout.write(`  ${'pod'.padEnd(6)} ${'IP (kubelet)'.padEnd(14)} ${'mac (controller)'.padEnd(18)} create -> Running\n`);
    const ips = new Map<string, string>();
    for (const name of names) {
      const s = await waitRunning(api, name);
      const ms = performance.now() - started.get(name)!;
      const pod = await api.get(`/api/v1/namespaces/default/pods/${name}`);
      ips.set(name, s.podIP!);
      process.stdout.write(`  ${name.padEnd(6)} ${s.podIP!.padEnd(14)} ${String(pod.metadata.annotations?.['ovn.kubernetes.io/mac_address']).padEnd(18)} ${(ms / 1000).toFixed(1)} s\n`);
    }
    podCount = names.length;

    const cols = [...names, 'gw'];
    process.stdout.write(`\nping matrix (rows ping columns, from inside each pod's network namespace):\n  ${''.padEnd(6)}${cols.map((c) => c.padStart(6)).join('')}\n`);
    for (const src of names) {
      const pid = rn.podPid(uids.get(src)!);
      const cells: string[] = [];
      for (const c of cols) {
        if (c === src) { cells.push('-'); continue; }
        const target = c === 'gw' ? '10.16.0.1' : ips.get(c)!;
        const r = pid ? await run(['nsenter', '-t', String(pid), '-n', 'ping', '-n', '-q', '-c', '2', '-i', '0.2', '-W', '2', target], { allowFail: true, timeoutMs: 20_000 }) : undefined;
        total++;
        if (r?.code === 0) ok++;
        cells.push(r?.code === 0 ? 'ok' : 'FAIL');
      }
      process.stdout.write(`  ${src.padEnd(6)}${cells.map((c) => c.padStart(6)).join('')}\n`);
    }
    process.stdout.write('\n');
    for (const name of names) await deleteAndWait(api, name);
    if (standIn) for (const name of names) await bed.controller!.releasePod('default', name);
    const left = (await node.ovs.vsctl(['list-ports', 'br-int'])).split('\n').filter((p) => p.endsWith('_h'));
    say(`pods deleted (kubelet -> containerd -> kube-ovn DEL); pod ports left on br-int: ${left.length}`);
  } finally {
    say(`tearing down: agent, ${standIn ? '' : 'kube-ovn-controller, '}kubelet, containerd, OVN, OVS, kube-apiserver, namespaces ...`);
    await cluster?.down().catch((e: unknown) => say(`teardown error: ${(e as Error).message}`));
    await cleanupAll().catch(() => undefined);
    say('sandbox removed');
  }
  process.stdout.write(`demo: ${podCount} pods, ${ok}/${total} pings ok\n`);
  return podCount > 0 && total > 0 && ok === total ? 0 : 1;
}

main().then((code) => process.exit(code), (e: unknown) => {
  process.stderr.write(`demo failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.stdout.write(`demo: ${podCount} pods, ${ok}/${total} pings ok\n`);
  process.exit(1);
});
