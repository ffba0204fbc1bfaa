// What the watch caches keep of each object (types.ts declares the same fields): copied at decode time, so the
// rest of what the API server sends (managedFields, a Pod's containers and status, a Node's images and capacity,
// a Subnet's IP usage ranges) is garbage as soon as the event is handled. Upstream strips managedFields only
// (kube-ovn #6119/#6546); the agent reads far less than that. On a 1,000-node cluster the Node cache is the big
// one: README "Memory" has the measured sizes.

import type { Node, ObjectMeta, Pod, Subnet } from './types.ts';

const NETWORK_UNAVAILABLE = 'NetworkUnavailable';

/** Copies the keys of `o` that are defined, in order (no undefined-valued keys, so objects stay small). */
function pick<T extends object, K extends keyof T>(o: T | undefined, keys: readonly K[]): Pick<T, K> | undefined {
  if (!o) return undefined;
  const out = {} as Pick<T, K>;
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

const META_KEYS = ['name', 'namespace', 'uid', 'resourceVersion', 'labels', 'annotations', 'deletionTimestamp'] as const;
const meta = (m: ObjectMeta | undefined): ObjectMeta | undefined => pick(m, META_KEYS);

/** Pod: name, namespace, uid, resourceVersion, labels, annotations, deletionTimestamp; spec.nodeName/hostNetwork. */
export function slimPod(p: Pod): Pod {
  return { metadata: meta(p.metadata) ?? {}, ...(p.spec ? { spec: pick(p.spec, ['nodeName', 'hostNetwork']) } : {}) };
}

/** Node: metadata as for pods, status.addresses and the NetworkUnavailable condition. */
export function slimNode(n: Node): Node {
  const st = n.status;
  const cond = st?.conditions?.filter((c) => c.type === NETWORK_UNAVAILABLE).map((c) => pick(c, ['type', 'status', 'reason', 'message'])!);
  return {
    metadata: meta(n.metadata) ?? {},
    ...(st ? { status: { ...(st.addresses ? { addresses: st.addresses.map((a) => ({ type: a.type, address: a.address })) } : {}), ...(cond?.length ? { conditions: cond } : {}) } } : {}),
  };
}

/** Subnet: metadata as for pods, the whole spec, and of the status what types.ts declares. */
export function slimSubnet(s: Subnet): Subnet {
  const st = s.status;
  return {
    metadata: meta(s.metadata) ?? {},
    ...(s.spec ? { spec: s.spec } : {}),
    ...(st ? {
      status: {
        ...pick(st, ['u2oInterconnectionIP', 'u2oInterconnectionMAC', 'activateGateway', 'natOutgoingPolicyRules']),
        ...(st.conditions ? { conditions: st.conditions.map((c) => ({ type: c.type, status: c.status })) } : {}),
      },
    } : {}),
  };
}
