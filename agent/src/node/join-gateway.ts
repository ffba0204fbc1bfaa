// The join gateway check and the Node condition NetworkUnavailable (spec §5.4), as a reconciler: observed = does
// each join gateway answer a ping from this node (through ovn0), desired = the condition saying so. Upstream exits
// the process when the check fails; here the condition says False/True and readiness follows, and the next pass
// (an ovn0 repair, a Node event, the resync) checks again. Primary-CNI mode only (non-primary mode sets no
// condition, as upstream).

import type { PodNet } from '../datapath/netlink/port.ts';
import type { NodeApi, NodeCondition } from '../k8s/node-api.ts';
import type { Node } from '../k8s/types.ts';
import { decodeJoin } from './facts.ts';
import type { ReconcileSpec } from './reconciler.ts';

export const NETWORK_UNAVAILABLE = 'NetworkUnavailable';

export interface GatewayObserved {
  readonly gateways: readonly { gateway: string; ok: boolean }[];
  readonly current: NodeCondition | undefined;
}

/** Pure: the condition that says what the pings found (upstream's reasons and messages). */
export function conditionFor(gateways: readonly { gateway: string; ok: boolean }[]): NodeCondition {
  const failed = gateways.filter((g) => !g.ok).map((g) => g.gateway);
  if (failed.length === 0) {
    return { type: NETWORK_UNAVAILABLE, status: 'False', reason: 'JoinSubnetGatewayReachable',
      message: `ping check to gateway ip ${gateways.map((g) => g.gateway).join(',')} succeeded` };
  }
  return { type: NETWORK_UNAVAILABLE, status: 'True', reason: 'JoinSubnetGatewayUnreachable', message: `ping check to gateway ip ${failed.join(',')} failed` };
}

export interface JoinGatewayDeps {
  readonly podNet: PodNet;
  readonly api: NodeApi;
  readonly nodeName: string;
  node(): Node | undefined;
  /** false in non-primary mode: the check runs (readiness), the condition is not written */
  readonly writeCondition: boolean;
  /** the last check's result, for readiness */
  onChecked?(ok: boolean, detail: string): void;
}

const currentCondition = (n: Node | undefined): NodeCondition | undefined =>
  ((n?.status as { conditions?: NodeCondition[] } | undefined)?.conditions ?? []).find((c) => c.type === NETWORK_UNAVAILABLE);

export function joinGatewaySpec(d: JoinGatewayDeps): ReconcileSpec<string[], GatewayObserved, { condition: NodeCondition }> {
  return {
    name: 'join-gateway',
    desired: () => {
      const j = decodeJoin(d.node());
      if (!j.ok) throw new Error(j.reason);
      return j.join.addresses.map((a) => a.gateway);
    },
    async observe() {
      const j = decodeJoin(d.node());
      const gws = j.ok ? j.join.addresses.map((a) => a.gateway) : [];
      const gateways = await Promise.all(gws.map(async (gateway) => ({
        gateway, ok: (await d.podNet.ping(null, gateway, { timeoutMs: 1000, tries: 3 }).catch(() => null)) !== null,
      })));
      const c = conditionFor(gateways);
      d.onChecked?.(c.status === 'False', c.message);
      return { gateways, current: currentCondition(d.node()) };
    },
    diff: (_want, o) => {
      if (!d.writeCondition || o.gateways.length === 0) return [];
      const c = conditionFor(o.gateways);
      const cur = o.current;
      return cur && cur.status === c.status && cur.reason === c.reason && cur.message === c.message ? [] : [{ condition: c }];
    },
    async apply(ops) {
      for (const op of ops) await d.api.setCondition(d.nodeName, { ...op.condition, lastTransitionTime: new Date().toISOString() });
    },
    describe: (op) => `node condition ${op.condition.type}=${op.condition.status} (${op.condition.reason})`,
  };
}
