// One real node (or two, `nodes: 2`) with the real kube-ovn-controller, in the order their dependencies ask for:
//   bed without the stand-in (OVN from the controller's schemas, its CRDs) -> `prepare(bed)` (e.g. the NAD CRD,
//   which the controller only looks for at start and then every 10 s) -> holder -> install-cni.sh ->
//   containerd + kubelet (the kubelet registers the Node) -> the agent via start-cniserver.sh (it writes the Node's
//   ovn.kubernetes.io/chassis) -> kube-ovn-controller (it would garbage-collect an unclaimed chassis at start) ->
//   the agent ready (ovn0 on the join address the controller allocated). With two nodes, each node's part from the
//   holder to its chassis annotation runs side by side; the controller starts once both nodes claimed their chassis.
// Used by controller.test.ts, multus-controller.test.ts, two-nodes.test.ts and the demo. `down()` stops everything, even after a failed start.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { leaks, up, type Bed, type BedNode } from '../bed/bed.ts';
import { cleanupAll, onCleanup } from '../bed/netns.ts';
import { trace, waitFor } from '../bed/exec.ts';
import { checkUpstream, startRealController, UPSTREAM_CRDS, writeUpstreamSchemas, type RealController } from './controller.ts';
import { assembleRootfs, installCni, startDaemonSetAgent, type DaemonSetAgent } from './daemonset.ts';
import { cgroupLeaks, startRealNode, type RealNode } from './node.ts';
import type { AgentOptions } from '../e2e/agent-harness.ts';

/** The work dir (image tree, OVN schemas) removed by down(), and by the bed's exit/signal clean-up before that. */
function workCleanup(work: string): () => Promise<void> {
  const rm = () => rmSync(work, { recursive: true, force: true });
  return onCleanup({ label: `work dir ${work}`, run: rm, runSync: rm });
}

/** One real node of the cluster: the bed node, its kubelet + containerd, our agent on it. */
export interface RealClusterNode {
  readonly node: BedNode;
  readonly rn: RealNode;
  readonly agent: DaemonSetAgent;
}

export interface RealCluster {
  readonly bed: Bed;
  /** The first node (the only one unless `nodes: 2`), as `nodes[0]`. */
  readonly node: BedNode;
  readonly rn: RealNode;
  readonly agent: DaemonSetAgent;
  /** Every real node, in bed order. */
  readonly nodes: readonly RealClusterNode[];
  readonly controller: RealController;
  down(): Promise<void>;
}

export interface RealClusterOptions {
  /**
   * 2: two real nodes on the two-node bed, geneve between them over its `br-phy` underlay. Each node's InternalIP
   * (kubelet `--node-ip`, the agent's POD_IPS) is its underlay address, so the tunnel endpoint our agent derives from
   * it (ovn-encap-ip) is the one the bed's ovn-controller was started with; each kubelet has its own cgroupRoot
   * (`/<prefix>nodeNkubelet`). Default 1: the bed's one node, node IP on a veth of its own, as before.
   */
  nodes?: 1 | 2;
  /** the agents' options (e.g. `args: ['--non-primary-cni-mode=true']`) */
  agent?: AgentOptions;
  /** extra kube-ovn-controller flags */
  controllerFlags?: readonly string[];
}

/** Runs `f` for each item at once; waits for all, then throws the first failure (nothing is left running). */
async function eachAtOnce<T, R>(items: readonly T[], f: (x: T) => Promise<R>): Promise<R[]> {
  const r = await Promise.allSettled(items.map(f));
  const failed = r.find((x): x is PromiseRejectedResult => x.status === 'rejected');
  if (failed) throw failed.reason;
  return r.map((x) => (x as PromiseFulfilledResult<R>).value);
}

export async function upRealCluster(prefix: string, prepare?: (bed: Bed) => Promise<void>, opts: RealClusterOptions = {}): Promise<RealCluster> {
  checkUpstream();
  const count = opts.nodes ?? 1;
  const work = mkdtempSync(`/tmp/${prefix}work-`);
  const dropWork = workCleanup(work);
  const parts: { bed?: Bed; rns: RealNode[]; agents: DaemonSetAgent[]; controller?: RealController } = { rns: [], agents: [] };
  const down = async () => {
    try {
      for (const a of parts.agents) await a.stop();
      await parts.controller?.stop();
      for (const rn of parts.rns) await rn.stop();
      await parts.bed?.down();
    } finally {
      await dropWork();
    }
  };
  try {
    const rootfs = join(work, 'rootfs');
    assembleRootfs(rootfs);
    trace('cluster: image tree assembled');
    const bed = (parts.bed = await up({ prefix, nodes: count, controller: 'none', ovnSchemas: writeUpstreamSchemas(work), crdFile: UPSTREAM_CRDS }));
    await prepare?.(bed);
    // the nodes come up side by side (most of it is waiting on the kubelet), each: holder -> install-cni.sh ->
    // containerd + kubelet -> the agent
    const nodes = await eachAtOnce(bed.nodes, async (node): Promise<RealClusterNode> => {
      const rn = await startRealNode(bed, node, count === 1 ? {} : { nodeIp: node.encapIp, addNodeIp: false, cgroupRoot: `/${node.name}kubelet` });
      parts.rns.push(rn);
      await installCni(rn, rootfs);
      await rn.startRuntime();
      const agent = await startDaemonSetAgent(bed, rn, rootfs, { ...opts.agent, waitReady: false });
      parts.agents.push(agent);
      await waitFor(`the agent annotates Node ${node.name} with its chassis`, async () =>
        (await bed.kube!.api.get(`/api/v1/nodes/${node.name}`)).metadata.annotations?.['ovn.kubernetes.io/chassis'] === node.name, 120_000, 500);
      trace(`cluster: chassis annotation of ${node.name}`);
      return { node, rn, agent };
    });
    const controller = (parts.controller = await startRealController(bed, opts.controllerFlags));
    trace('cluster: kube-ovn-controller ready');
    await eachAtOnce(nodes, (n) => n.agent.ready());
    trace('cluster: agents ready');
    const first = nodes[0]!;
    return { bed, node: first.node, rn: first.rn, agent: first.agent, nodes, controller, down };
  } catch (e) {
    await down().catch(() => undefined);
    throw e;
  }
}

export interface StandInNode {
  readonly bed: Bed;
  readonly node: BedNode;
  readonly rn: RealNode;
  readonly agent: DaemonSetAgent;
  down(): Promise<void>;
}

/**
 * A real node with the bed's stand-in controller (which addresses each pod when the test calls allocatePod):
 * bed -> `prepare(bed)` (e.g. extra subnets) -> holder -> install-cni.sh -> the agent -> containerd + kubelet.
 */
export async function upStandInNode(prefix: string, prepare?: (bed: Bed) => Promise<void>): Promise<StandInNode> {
  const work = mkdtempSync(`/tmp/${prefix}work-`);
  const dropWork = workCleanup(work);
  const parts: { bed?: Bed; rn?: RealNode; agent?: DaemonSetAgent } = {};
  const down = async () => {
    try {
      await parts.agent?.stop();
      await parts.rn?.stop();
      await parts.bed?.down();
    } finally {
      await dropWork();
    }
  };
  try {
    const rootfs = join(work, 'rootfs');
    assembleRootfs(rootfs);
    const bed = (parts.bed = await up({ prefix }));
    const node = bed.nodes[0]!;
    await prepare?.(bed);
    const rn = (parts.rn = await startRealNode(bed, node));
    await installCni(rn, rootfs);
    const agent = (parts.agent = await startDaemonSetAgent(bed, rn, rootfs));
    await rn.startRuntime();
    return { bed, node, rn, agent, down };
  } catch (e) {
    await down().catch(() => undefined);
    throw e;
  }
}

/** A real-node test file's after(): tear down, then nothing of `prefix` may be left (namespaces, temp dirs, processes). */
export async function downRealNode(prefix: string | undefined, bed: { down(): Promise<void> } | undefined): Promise<void> {
  try {
    await bed?.down();
  } finally {
    await cleanupAll();
  }
  if (prefix) {
    assert.deepEqual(leaks(prefix), { netns: [], tmpDirs: [], processes: [] });
    // every kubelet's cgroupRoot in every hierarchy, the hybrid layout's cgroup2 `unified` too
    assert.deepEqual(cgroupLeaks(prefix), [], 'no cgroup of the node is left');
  }
}
