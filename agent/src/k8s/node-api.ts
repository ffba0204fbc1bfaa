// What the agent writes to its own Node (spec §5.11): annotations (ovn.kubernetes.io/chassis, provider-network
// labels' neighbours) by merge patch, and status conditions (NetworkUnavailable) by strategic merge on the status
// subresource (conditions merge by `type`, so other writers' conditions stay). Both are idempotent.

import { ApiException, CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';

export interface NodeCondition {
  readonly type: string;
  readonly status: 'True' | 'False' | 'Unknown';
  readonly reason: string;
  readonly message: string;
}

export interface NodeApi {
  /** Merge-patches metadata.annotations and metadata.labels (null removes a key). */
  patchMetadata(node: string, patch: { annotations?: Record<string, string | null>; labels?: Record<string, string | null> }): Promise<void>;
  /** Sets one status condition (lastTransitionTime is the caller's: pass the time the status last changed). */
  setCondition(node: string, c: NodeCondition & { lastTransitionTime: string }): Promise<void>;
}

function apiMessage(what: string, e: unknown): Error {
  if (e instanceof ApiException) {
    const body = e.body as { message?: string } | string | undefined;
    const msg = typeof body === 'object' && body?.message ? body.message : String(body ?? e.message);
    return Object.assign(new Error(`${what}: HTTP ${e.code}: ${msg}`), { statusCode: e.code });
  }
  return new Error(`${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}

export function nodeApi(kc: KubeConfig): NodeApi {
  const core = kc.makeApiClient(CoreV1Api);
  return {
    async patchMetadata(node, patch) {
      try {
        await core.patchNode({ name: node, body: { metadata: patch } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
      } catch (e) {
        throw apiMessage(`PATCH nodes/${node}`, e);
      }
    },
    async setCondition(node, c) {
      const now = new Date().toISOString();
      const body = { status: { conditions: [{ ...c, lastHeartbeatTime: now }] } };
      try {
        await core.patchNodeStatus({ name: node, body }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch));
      } catch (e) {
        throw apiMessage(`PATCH nodes/${node}/status`, e);
      }
    },
  };
}
