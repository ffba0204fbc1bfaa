// What the agent writes to its own Node (spec §5.11): annotations (ovn.kubernetes.io/chassis, provider-network
// labels' neighbours) by merge patch, and status conditions (NetworkUnavailable) by strategic merge on the status
// subresource (conditions merge by `type`, so other writers' conditions stay). Both are idempotent.

import type { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { apiError, KubeRest } from './rest.ts';

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

export function nodeApi(kc: KubeConfig): NodeApi {
  const rest = new KubeRest(kc);
  const path = (node: string) => `/api/v1/nodes/${encodeURIComponent(node)}`;
  return {
    async patchMetadata(node, patch) {
      try {
        await rest.call('PATCH', path(node), { body: { metadata: patch }, contentType: 'application/merge-patch+json' });
      } catch (e) {
        throw apiError(`PATCH nodes/${node}`, e);
      }
    },
    async setCondition(node, c) {
      const now = new Date().toISOString();
      const body = { status: { conditions: [{ ...c, lastHeartbeatTime: now }] } };
      try {
        await rest.call('PATCH', `${path(node)}/status`, { body, contentType: 'application/strategic-merge-patch+json' });
      } catch (e) {
        throw apiError(`PATCH nodes/${node}/status`, e);
      }
    },
  };
}
