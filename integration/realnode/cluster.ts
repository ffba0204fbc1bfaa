// One real node with the real kube-ovn-controller, in the order their dependencies ask for:
//   bed without the stand-in (OVN from the controller's schemas, its CRDs) -> `prepare(bed)` (e.g. the NAD CRD,
//   which the controller only looks for at start and then every 10 s) -> holder -> install-cni.sh ->
//   containerd + kubelet (the kubelet registers the Node) -> the agent via start-cniserver.sh (it writes the Node's
//   ovn.kubernetes.io/chassis) -> kube-ovn-controller (it would garbage-collect an unclaimed chassis at start) ->
//   the agent ready (ovn0 on the join address the controller allocated).
// Used by controller.test.ts, multus-controller.test.ts and the demo. `down()` stops everything, even after a failed start.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { leaks, up, type Bed, type BedNode } from '../bed/bed.ts';
import { cleanupAll, onCleanup } from '../bed/netns.ts';
import { trace, waitFor } from '../bed/exec.ts';
import { checkUpstream, startRealController, UPSTREAM_CRDS, writeUpstreamSchemas, type RealController } from './controller.ts';
import { assembleRootfs, installCni, startDaemonSetAgent, type DaemonSetAgent } from './daemonset.ts';
import { startRealNode, type RealNode } from './node.ts';
import type { AgentOptions } from '../e2e/agent-harness.ts';

/** The work dir (image tree, OVN schemas) removed by down(), and by the bed's exit/signal clean-up before that. */
function workCleanup(work: string): () => Promise<void> {
  const rm = () => rmSync(work, { recursive: true, force: true });
  return onCleanup({ label: `work dir ${work}`, run: rm, runSync: rm });
}

export interface RealCluster {
  readonly bed: Bed;
  readonly node: BedNode;
  readonly rn: RealNode;
  readonly agent: DaemonSetAgent;
  readonly controller: RealController;
  down(): Promise<void>;
}

export interface RealClusterOptions {
  /** the agent's options (e.g. `args: ['--non-primary-cni-mode=true']`) */
  agent?: AgentOptions;
  /** extra kube-ovn-controller flags */
  controllerFlags?: readonly string[];
}

export async function upRealCluster(prefix: string, prepare?: (bed: Bed) => Promise<void>, opts: RealClusterOptions = {}): Promise<RealCluster> {
  checkUpstream();
  const work = mkdtempSync(`/tmp/${prefix}work-`);
  const dropWork = workCleanup(work);
  const parts: { bed?: Bed; rn?: RealNode; agent?: DaemonSetAgent; controller?: RealController } = {};
  const down = async () => {
    try {
      await parts.agent?.stop();
      await parts.controller?.stop();
      await parts.rn?.stop();
      await parts.bed?.down();
    } finally {
      await dropWork();
    }
  };
  try {
    const rootfs = join(work, 'rootfs');
    assembleRootfs(rootfs);
    trace('cluster: image tree assembled');
    const bed = (parts.bed = await up({ prefix, controller: 'none', ovnSchemas: writeUpstreamSchemas(work), crdFile: UPSTREAM_CRDS }));
    const node = bed.nodes[0]!;
    await prepare?.(bed);
    const rn = (parts.rn = await startRealNode(bed, node));
    await installCni(rn, rootfs);
    await rn.startRuntime();
    const agent = await startDaemonSetAgent(bed, rn, rootfs, { ...opts.agent, waitReady: false });
    parts.agent = agent;
    await waitFor('the agent annotates the Node with its chassis', async () =>
      (await bed.kube!.api.get(`/api/v1/nodes/${node.name}`)).metadata.annotations?.['ovn.kubernetes.io/chassis'] === node.name, 120_000, 500);
    trace('cluster: chassis annotation');
    const controller = (parts.controller = await startRealController(bed, opts.controllerFlags));
    trace('cluster: kube-ovn-controller ready');
    await agent.ready();
    trace('cluster: agent ready');
    return { bed, node, rn, agent, controller, down };
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
    // the kubelet's cgroupRoot (`/<prefix>kubelet`) in every hierarchy, the hybrid layout's cgroup2 `unified` too
    const cgroups = readdirSync('/sys/fs/cgroup').flatMap((h) => {
      try { return readdirSync(join('/sys/fs/cgroup', h)).filter((d) => d.startsWith(prefix)).map((d) => `${h}/${d}`); } catch { return []; }
    });
    assert.deepEqual(cgroups, [], 'no cgroup of the node is left');
  }
}
