// What the watch caches keep of each object (types.ts declares the same fields): copied at decode time, so the
// rest of what the API server sends (managedFields, a Pod's containers and status, a Node's images and capacity,
// a Subnet's IP usage ranges) is garbage as soon as the event is handled. Upstream strips managedFields only
// (kube-ovn #6119/#6546); the agent reads far less than that. On a 1,000-node cluster the Node cache is the big
// one: README "Memory" has the measured sizes.

import type { Node, ObjectMeta, Pod, Service, Subnet } from './types.ts';

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

/** The annotation naming the subnet a Service's LoadBalancer addresses come from (spec §5.17). */
export const EXTERNAL_IP_FROM_SUBNET = 'ovn.kubernetes.io/service_external_ip_from_subnet';

/** Service: name, namespace, uid, resourceVersion and, only when it carries EXTERNAL_IP_FROM_SUBNET, that
 * annotation, spec.ports (port, protocol) and status.loadBalancer.ingress[].ip. A cluster has many Services; the
 * agent reads a few. */
export function slimService(s: Service): Service {
  const m = s.metadata ?? {};
  const out: Service = { metadata: pick(m, ['name', 'namespace', 'uid', 'resourceVersion'] as const) ?? {} };
  const from = m.annotations?.[EXTERNAL_IP_FROM_SUBNET];
  if (from === undefined) return out;
  out.metadata!.annotations = { [EXTERNAL_IP_FROM_SUBNET]: from };
  const ports = s.spec?.ports?.map((p) => pick(p, ['port', 'protocol'] as const)!);
  if (ports) out.spec = { ports };
  const ingress = s.status?.loadBalancer?.ingress?.filter((i) => typeof i.ip === 'string' && i.ip !== '').map((i) => ({ ip: i.ip! }));
  if (ingress?.length) out.status = { loadBalancer: { ingress } };
  return out;
}
