// `npm run demo:sandbox`: a sandbox Kubernetes node on this machine, wired by the real agent through the real CNI executable.
//   1. the bed: network namespaces as node and pods, Open vSwitch (userspace datapath), OVN (NB/SB/northd/
//      ovn-controller), kube-apiserver + etcd, and a stand-in for kube-ovn-controller (subnets, addresses, annotations)
//   2. the agent (agent/src/main.ts) in the node's namespace, as the DaemonSet would run it
//   3. four pods (one dual-stack, on a second subnet): Pod object -> controller annotations -> `kube-ovn` ADD
//   4. their addresses and a ping matrix through OVN (pod -> pod, pod -> gateway), then DEL and teardown
// Exits by itself; Ctrl-C also tears everything down. Last line: `demo: <pods> pods, <ok>/<total> pings ok`;
// exit status 0 only when every ping succeeded.
import { existsSync } from 'node:fs';
import { up, type Bed } from './bed/bed.ts';
import { FIXTURE_BIN } from './bed/kube.ts';
import type { Allocation } from './bed/controller.ts';
import { cleanupAll, newPrefix, ping } from './bed/netns.ts';
import { buildShim, newPod, podCall, startNodeAgent, type NodeAgent, type TestPod } from './e2e/agent-harness.ts';

const t0 = performance.now();
const secs = () => `${((performance.now() - t0) / 1000).toFixed(1)}s`;
const say = (s: string) => process.stdout.write(`[${secs().padStart(6)}] ${s}\n`);

interface DemoPod { pod: TestPod; alloc: Allocation; addMs: number; subnet: string }

const pods: DemoPod[] = [];
let ok = 0;
let total = 0;

// the bed's own SIGINT handler (registered later, so it runs after this one) removes everything and exits 130
process.once('SIGINT', () => {
  process.stdout.write('\ninterrupted: tearing everything down\n');
  setImmediate(() => process.exit(130)); // only reached when nothing was started yet
});

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error('the demo creates network namespaces and OVS/OVN daemons: run it as root');
  for (const f of ['kube-apiserver', 'etcd']) {
    if (!existsSync(`${FIXTURE_BIN}/${f}`)) throw new Error(`${FIXTURE_BIN}/${f} is missing: run \`npm run setup\` first`);
  }
  buildShim();
  say('starting the sandbox node: netns, Open vSwitch, OVN, kube-apiserver + etcd, stand-in controller ...');
  const bed: Bed = await up({ prefix: newPrefix('koad') });
  let agent: NodeAgent | undefined;
  try {
    const node = bed.nodes[0]!;
    say(`node ${node.name} up (chassis ${node.name}, router ovn-cluster, subnets join 100.64.0.0/16 and ovn-default 10.16.0.0/16)`);
    await bed.controller!.createSubnet({ name: 'dual', cidrBlock: '10.18.0.0/16,fd00:10:18::/64' });
    say('subnet dual 10.18.0.0/16 + fd00:10:18::/64 created');
    agent = await startNodeAgent(bed, node, { logLevel: 'warn' });
    say(`agent running in ${node.ns.name} (pid ${agent.pid}), CNI socket ${agent.socket}`);

    const plan: [string, string][] = [['web', 'ovn-default'], ['api', 'ovn-default'], ['db', 'ovn-default'], ['dual', 'dual']];
    for (const [name, subnet] of plan) {
      const pod = await newPod(bed, node, name);
      const alloc = await bed.controller!.allocatePod(pod.namespace, name, subnet === 'ovn-default' ? {} : { subnet });
      const r = await podCall('ADD', agent, pod);
      if (r.code !== 0) throw new Error(`ADD ${name} failed: ${r.stdout}${r.stderr}`);
      pods.push({ pod, alloc, addMs: r.ms, subnet });
    }
    process.stdout.write('\npods (wired by `kube-ovn` ADD through the agent):\n');
    process.stdout.write(`  ${'pod'.padEnd(6)} ${'subnet'.padEnd(12)} ${'addresses'.padEnd(30)} ${'mac'.padEnd(18)} ${'host veth'.padEnd(16)} ADD\n`);
    for (const p of pods) {
      process.stdout.write(`  ${p.pod.name.padEnd(6)} ${p.subnet.padEnd(12)} ${p.alloc.ips.join(', ').padEnd(30)} ${p.alloc.mac.padEnd(18)} ` +
        `${`${p.pod.containerId.slice(0, 12)}_h`.padEnd(16)} ${p.addMs.toFixed(0)} ms\n`);
    }

    // ping matrix: every pod to every other pod (IPv4, across the router for the dual-stack one) and to its gateways
    const cols = [...pods.map((p) => p.pod.name), 'gw', 'gw6'];
    process.stdout.write(`\nping matrix (rows ping columns; ok = replies through OVN, - = not applicable):\n  ${''.padEnd(6)}${cols.map((c) => c.padStart(6)).join('')}\n`);
    for (const src of pods) {
      const targets = cols.map((c) => {
        if (c === src.pod.name) return undefined;
        if (c === 'gw') return src.alloc.gateway.split(',')[0];
        if (c === 'gw6') return src.alloc.gateway.split(',')[1];
        return pods.find((p) => p.pod.name === c)!.alloc.ips[0];
      });
      const results = await Promise.all(targets.map((t) => (t ? ping(src.pod.ns, t, { count: 2, intervalS: 0.2, minReceived: 1 }) : undefined)));
      const cells = results.map((r) => (r === undefined ? '-' : r.ok ? 'ok' : 'FAIL'));
      for (const r of results) if (r) { total++; if (r.ok) ok++; }
      process.stdout.write(`  ${src.pod.name.padEnd(6)}${cells.map((c) => c.padStart(6)).join('')}\n`);
    }
    process.stdout.write('\n');

    for (const p of pods) {
      const d = await podCall('DEL', agent, p.pod);
      if (d.code !== 0) throw new Error(`DEL ${p.pod.name} failed: ${d.stdout}`);
    }
    const leftPorts = (await node.ovs.vsctl(['list-ports', 'br-int'])).split('\n').filter((x) => x.endsWith('_h'));
    say(`pods deleted through \`kube-ovn\` DEL; OVS ports left on br-int: ${leftPorts.length}`);
  } finally {
    say('tearing down: agent, OVN, OVS, kube-apiserver, namespaces ...');
    await agent?.stop().catch(() => undefined);
    await bed.down().catch((e: unknown) => say(`teardown error: ${(e as Error).message}`));
    await cleanupAll().catch(() => undefined);
    say('sandbox removed');
  }
  process.stdout.write(`demo: ${pods.length} pods, ${ok}/${total} pings ok\n`);
  return pods.length > 0 && total > 0 && ok === total ? 0 : 1;
}

main().then((code) => process.exit(code), (e: unknown) => {
  process.stderr.write(`demo failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.stdout.write(`demo: ${pods.length} pods, ${ok}/${total} pings ok\n`);
  process.exit(1);
});
