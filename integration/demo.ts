// `npm run demo [-- --stand-in]`: the demo on a real Kubernetes node (integration/realnode): kubelet +
// containerd + runc in a sandbox node's namespaces, the real kube-ovn-controller v1.16.2 (or, with --stand-in, the
// bed's stand-in controller), and the agent installed and started the way the DaemonSet does it. Busybox pods are
// created as plain Pod objects: the controller allocates their addresses (the stand-in when the demo asks it to),
// the kubelet asks containerd for a sandbox, containerd calls `kube-ovn`, the agent wires eth0.
//   1. bring-up (bed, holder, kubelet + containerd, agent, controller), with timings; a dual-stack Subnet `dual`
//   2. four busybox pods (web, api, db on ovn-default; dual on `dual`): subnet, addresses reported by the kubelet,
//      the controller's MAC, time from create to Running
//   3. a ping matrix from inside the pods' network namespaces (entered by PID: no kubectl exec here) through OVN:
//      pod -> pod (IPv4, across the router for `dual`), pod -> its IPv4 and IPv6 gateways
//   4. delete the pods (the kubelet stops them, containerd calls DEL), tear everything down, check nothing is left
// The sandbox demo (no kubelet: pods wired by calling `kube-ovn` by hand) is `npm run demo:sandbox`.
// Last line: `demo: <pods> pods, <ok>/<total> pings ok`; exit status 0 only when every ping succeeded and nothing
// of the demo was left behind.
import { existsSync } from 'node:fs';
import { leaks, type Bed } from './bed/bed.ts';
import { run, waitFor } from './bed/exec.ts';
import { FIXTURE_BIN } from './bed/kube.ts';
import { cleanupAll, newPrefix } from './bed/netns.ts';
import { upRealCluster, upStandInNode, type RealCluster, type StandInNode } from './realnode/cluster.ts';
import { subnetReady } from './realnode/controller.ts';
import { cgroupLeaks, IMAGE_DIR } from './realnode/node.ts';
import { createBusyboxPod, deleteAndWait, waitRunning } from './realnode/pods.ts';

const t0 = performance.now();
const secs = () => `${((performance.now() - t0) / 1000).toFixed(1)}s`;
const say = (s: string) => process.stdout.write(`[${secs().padStart(6)}] ${s}\n`);
let ok = 0;
let total = 0;
let podCount = 0;
let leftBehind = false;
const standIn = process.argv.includes('--stand-in');
const DUAL = { name: 'dual', cidrBlock: '10.18.0.0/16,fd00:10:18::/64' };
const PODS: [string, string][] = [['web', 'ovn-default'], ['api', 'ovn-default'], ['db', 'ovn-default'], ['dual', DUAL.name]];

// the bed's own SIGINT handler (registered later, so it runs after this one) removes everything and exits 130
process.once('SIGINT', () => {
  process.stdout.write('\ninterrupted: tearing everything down\n');
  setImmediate(() => process.exit(130)); // only reached when nothing was started yet
});

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error('the demo creates namespaces, cgroups and daemons: run it as root');
  for (const f of ['kube-apiserver', 'etcd', 'kubelet', ...(standIn ? [] : ['kube-ovn-controller'])]) {
    if (!existsSync(`${FIXTURE_BIN}/${f}`)) {
      throw new Error(`${FIXTURE_BIN}/${f} is missing: run \`npm run setup\` first` +
        (f === 'kube-ovn-controller' ? ' (without KOA_BUILD_UPSTREAM=0), or `npm run demo -- --stand-in`' : ''));
    }
  }
  for (const f of ['pause.tar', 'busybox.tar']) {
    if (!existsSync(`${IMAGE_DIR}/${f}`)) throw new Error(`${IMAGE_DIR}/${f} is missing: run \`npm run setup\` first`);
  }
  say(standIn
    ? 'starting: OVS + OVN, kube-apiserver + etcd, the stand-in controller, kubelet + containerd, agent ...'
    : 'starting: OVS + OVN (kube-ovn-controller\'s schemas), kube-apiserver + etcd, kubelet + containerd, agent, kube-ovn-controller ...');
  const prefix = newPrefix('koadr');
  let cluster: RealCluster | StandInNode | undefined;
  try {
    cluster = standIn
      ? await upStandInNode(prefix, (b: Bed) => b.controller!.createSubnet(DUAL))
      : await upRealCluster(prefix);
    const { bed, node, rn } = cluster;
    const api = bed.kube!.api;
    const n = await api.get(`/api/v1/nodes/${node.name}`);
    const a = n.metadata.annotations ?? {};
    say(`node ${node.name} Ready (kubelet ${n.status.nodeInfo.kubeletVersion}, ${n.status.nodeInfo.containerRuntimeVersion}), ` +
      `InternalIP ${rn.nodeIp}, chassis ${a['ovn.kubernetes.io/chassis']}, ovn0 ${a['ovn.kubernetes.io/ip_address']} on join`);
    if (!standIn) {
      await api.post('/apis/kubeovn.io/v1/subnets', {
        apiVersion: 'kubeovn.io/v1', kind: 'Subnet', metadata: { name: DUAL.name }, spec: { cidrBlock: DUAL.cidrBlock, protocol: 'Dual' },
      });
      await waitFor(`subnet ${DUAL.name} Ready (set up by kube-ovn-controller)`, () => subnetReady(api, DUAL.name), 300_000, 250);
    }
    say(`subnet ${DUAL.name} ${DUAL.cidrBlock.replace(',', ' + ')} ${standIn ? 'created' : 'Ready (kube-ovn-controller)'}`);

    const started = new Map<string, number>();
    const uids = new Map<string, string>();
    for (const [name, subnet] of PODS) {
      started.set(name, performance.now());
      const annotations = subnet === 'ovn-default' ? undefined : { 'ovn.kubernetes.io/logical_switch': subnet };
      uids.set(name, (await createBusyboxPod(api, { name, nodeName: node.name, ...(annotations ? { annotations } : {}) })).uid);
      if (standIn) await bed.controller!.allocatePod('default', name, subnet === 'ovn-default' ? {} : { subnet });
    }
    process.stdout.write(`\npods (busybox, created as Pod objects; addresses from ${standIn ? 'the stand-in' : 'kube-ovn-controller'}, eth0 from the agent):\n`);
    process.stdout.write(`  ${'pod'.padEnd(6)} ${'subnet'.padEnd(12)} ${'addresses (kubelet)'.padEnd(28)} ${'mac (controller)'.padEnd(18)} create -> Running\n`);
    const ips = new Map<string, string>();
    const gateways = new Map<string, string[]>();
    for (const [name, subnet] of PODS) {
      const s = await waitRunning(api, name);
      const ms = performance.now() - started.get(name)!;
      const ann = (await api.get(`/api/v1/namespaces/default/pods/${name}`)).metadata.annotations ?? {};
      ips.set(name, s.podIP!);
      gateways.set(name, String(ann['ovn.kubernetes.io/gateway'] ?? '').split(',').filter(Boolean));
      const addrs = (s.podIPs ?? [{ ip: s.podIP! }]).map((x) => x.ip).join(', ');
      process.stdout.write(`  ${name.padEnd(6)} ${subnet.padEnd(12)} ${addrs.padEnd(28)} ${String(ann['ovn.kubernetes.io/mac_address']).padEnd(18)} ` +
        `${(ms / 1000).toFixed(1)} s\n`);
    }
    podCount = PODS.length;

    // every pod to every other pod (IPv4) and to its gateways; the pings of one row run at once
    const cols = [...PODS.map(([p]) => p), 'gw', 'gw6'];
    process.stdout.write(`\nping matrix (rows ping columns, from inside each pod's network namespace; ok = replies through OVN, - = not applicable):\n` +
      `  ${''.padEnd(6)}${cols.map((c) => c.padStart(6)).join('')}\n`);
    for (const [src] of PODS) {
      const pid = rn.podPid(uids.get(src)!);
      const gw = gateways.get(src)!;
      const targets = cols.map((c) => {
        if (c === src) return undefined;
        if (c === 'gw') return gw.find((g) => !g.includes(':'));
        if (c === 'gw6') return gw.find((g) => g.includes(':'));
        return ips.get(c);
      });
      const results = await Promise.all(targets.map((t) => t === undefined ? undefined
        : pid ? run(['nsenter', '-t', String(pid), '-n', 'ping', '-n', '-q', '-c', '2', '-i', '0.2', '-W', '2', t], { allowFail: true, timeoutMs: 20_000 }) : null));
      const cells = results.map((r) => (r === undefined ? '-' : r?.code === 0 ? 'ok' : 'FAIL'));
      for (const r of results) if (r !== undefined) { total++; if (r?.code === 0) ok++; }
      process.stdout.write(`  ${src.padEnd(6)}${cells.map((c) => c.padStart(6)).join('')}\n`);
    }
    process.stdout.write('\n');
    // all at once, as `kubectl delete pods --all` would: each waits out its 2 s grace period in parallel
    await Promise.all(PODS.map(([name]) => deleteAndWait(api, name)));
    if (standIn) for (const [name] of PODS) await bed.controller!.releasePod('default', name);
    const left = (await node.ovs.vsctl(['list-ports', 'br-int'])).split('\n').filter((p) => p.endsWith('_h'));
    say(`pods deleted (kubelet -> containerd -> kube-ovn DEL); pod ports left on br-int: ${left.length}`);
  } finally {
    say(`tearing down: agent, ${standIn ? '' : 'kube-ovn-controller, '}kubelet, containerd, OVN, OVS, kube-apiserver, namespaces ...`);
    await cluster?.down().catch((e: unknown) => say(`teardown error: ${(e as Error).message}`));
    await cleanupAll().catch(() => undefined);
    const l = { ...leaks(prefix), cgroups: cgroupLeaks(prefix) };
    const n = l.netns.length + l.tmpDirs.length + l.processes.length + l.cgroups.length;
    leftBehind = n > 0;
    say(leftBehind ? `sandbox removed, but left behind: ${JSON.stringify(l)}` : `sandbox removed: no namespace, temp dir, process or cgroup of ${prefix}* left`);
  }
  process.stdout.write(`demo: ${podCount} pods, ${ok}/${total} pings ok\n`);
  return podCount > 0 && total > 0 && ok === total && !leftBehind ? 0 : 1;
}

main().then((code) => process.exit(code), (e: unknown) => {
  process.stderr.write(`demo failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.stdout.write(`demo: ${podCount} pods, ${ok}/${total} pings ok\n`);
  process.exit(1);
});
