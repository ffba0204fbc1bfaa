// Dynamic QoS (spec §3.7, "re-applied on pod annotation updates"): a running pod's `ingress_rate`, `egress_rate`,
// bursts and netem annotations follow their changes, removal included, as a reconciler of the pod wing. Desired: for
// every pod port on br-int, the QoS its pod's annotations ask for now (absent = none). Observed: what was last
// applied to that port (the OVS writes are idempotent, and ingress policing is also read back from the replica).
// Triggered by pod watch events (a change lands within one event-loop turn), plus a resync. Emits PodQoSUpdated /
// PodQoSUpdateFailed.

import { policingBurstKbit, type InterfaceInfo, type Vswitch } from '../datapath/ovsdb/port.ts';
import type { AgentEvent } from '../k8s/events.ts';
import { podTarget } from '../k8s/events.ts';
import type { Pod } from '../k8s/types.ts';
import type { ReconcileSpec } from '../node/reconciler.ts';
import { decodePodNic, type NicQos } from './annotations.ts';
import { INTEGRATION_BRIDGE } from './plan.ts';

/** What one port should have: rates (Mbit/s, 0 = none), bursts, netem. */
export interface PortQos {
  readonly port: string;
  readonly ifaceId: string;
  /** `<ns>/<pod or VM>`: external_ids:pod of the QoS rows */
  readonly podKey: string;
  readonly pod: { namespace: string; name: string; uid?: string };
  readonly egressRate: number;
  readonly egressBurst?: number;
  readonly ingressRate: number;
  readonly ingressBurst?: number;
  readonly latency: number;
  readonly jitter: number;
  readonly limit: number;
  readonly loss: number;
}

/** Provider and interface name of a pod port, from its iface-id and name (`<cid>_h` = eth0, `<cid>_<if>_h`). */
export function portNic(i: InterfaceInfo): { provider: string; ifName: string } | undefined {
  const x = i.externalIds;
  const base = `${x.pod_name}.${x.pod_namespace}`;
  const id = x['iface-id'] ?? '';
  if (!x.pod_name || !x.pod_namespace || !id.startsWith(base)) return undefined;
  const rest = id.slice(base.length);
  const provider = rest === '' ? 'ovn' : rest.startsWith('.') ? rest.slice(1) : '';
  if (!provider) return undefined;
  const stem = i.name.endsWith('_h') ? i.name.slice(0, -2) : '';
  const parts = stem.split('_');
  const ifName = parts.length >= 2 ? parts.slice(1).join('_') : 'eth0';
  return { provider, ifName };
}

const qosOf = (q: NicQos) => ({
  egressRate: q.egressRate ?? 0, ...(q.egressBurst !== undefined ? { egressBurst: q.egressBurst } : {}),
  ingressRate: q.ingressRate ?? 0, ...(q.ingressBurst !== undefined ? { ingressBurst: q.ingressBurst } : {}),
  latency: q.latency ?? 0, jitter: q.jitter ?? 0, limit: q.limit ?? 0, loss: q.loss ?? 0,
});

/** Pure: the QoS every pod port should have now. Ports of pods not in the cache are the GC's, not ours. */
export function desiredQos(ports: readonly InterfaceInfo[], podOf: (ns: string, name: string) => Pod | undefined): PortQos[] {
  const out: PortQos[] = [];
  for (const i of ports) {
    const nic = portNic(i);
    if (!nic) continue;
    const ns = i.externalIds.pod_namespace!;
    // KubeVirt ports carry the VM name: the launcher pod is found by the VM label
    const pod = podOf(ns, i.externalIds.pod_name!);
    if (!pod) continue;
    const d = decodePodNic(pod.metadata?.annotations ?? {}, nic.provider, nic.ifName);
    if (!d.ok) continue;
    out.push({
      port: i.name, ifaceId: i.externalIds['iface-id']!, podKey: `${ns}/${i.externalIds.pod_name}`,
      pod: { namespace: ns, name: pod.metadata?.name ?? '', ...(pod.metadata?.uid ? { uid: pod.metadata.uid } : {}) },
      ...qosOf(d.nic.qos),
    });
  }
  return out;
}

export interface QosObserved {
  readonly ports: ReadonlyMap<string, InterfaceInfo>;
  /** what this agent last applied per port (htb/netem are not in the replica's Interface view) */
  readonly applied: ReadonlyMap<string, PortQos>;
}

const same = (a: PortQos, b: PortQos): boolean =>
  a.ingressRate === b.ingressRate && a.ingressBurst === b.ingressBurst && a.latency === b.latency && a.jitter === b.jitter
  && a.limit === b.limit && a.loss === b.loss && a.egressRate === b.egressRate && a.egressBurst === b.egressBurst;

/** Pure: the ports whose QoS must be (re)written. */
export function diffQos(desired: readonly PortQos[], o: QosObserved): PortQos[] {
  return desired.filter((d) => {
    const last = o.applied.get(d.port);
    const i = o.ports.get(d.port);
    // ingress policing is visible in the replica: a change made behind our back is repaired too
    const policing = i ? i.ingressPolicingRate === d.egressRate * 1000 : true;
    return !last || !same(last, d) || !policing;
  });
}

export interface QosSyncDeps {
  readonly vswitch: Vswitch;
  podOf(namespace: string, name: string): Pod | undefined;
  readonly events?: { record(e: AgentEvent): boolean };
  /** ports with an ADD in flight: their QoS is the ADD's to set */
  busy(port: string): boolean;
}

export function qosSyncSpec(d: QosSyncDeps): ReconcileSpec<PortQos[], QosObserved, PortQos> {
  const applied = new Map<string, PortQos>();
  const ours = (): InterfaceInfo[] => d.vswitch.listPorts(INTEGRATION_BRIDGE).map((n) => d.vswitch.getInterface(n))
    .filter((i): i is InterfaceInfo => i !== undefined && i.externalIds.vendor === 'kube-ovn' && !!i.externalIds.pod_name);
  return {
    name: 'pod-qos',
    desired: () => desiredQos(ours(), d.podOf),
    async observe() {
      const ports = new Map(ours().map((i) => [i.name, i]));
      for (const k of [...applied.keys()]) if (!ports.has(k)) applied.delete(k);
      return { ports, applied };
    },
    // after a start every port is written once (the writes compare with the replica and change nothing that is right)
    diff: (want, o) => diffQos(want, o).filter((q) => !d.busy(q.port)),
    async apply(ops) {
      const failed: string[] = [];
      for (const q of ops) {
        try {
          const i = d.vswitch.getInterface(q.port);
          if (!i || i.ingressPolicingRate !== q.egressRate * 1000 || i.ingressPolicingBurst !== policingBurstKbit(q.egressRate, q.egressBurst)) {
            await d.vswitch.setIngressPolicing(q.ifaceId, q.egressRate, q.egressBurst);
          }
          await d.vswitch.setHtbQos({ ifaceId: q.ifaceId, pod: q.podKey, port: q.port, rateMbps: q.ingressRate,
            ...(q.ingressBurst !== undefined ? { burstMbit: q.ingressBurst } : {}) });
          await d.vswitch.setNetemQos({ ifaceId: q.ifaceId, pod: q.podKey, port: q.port, latencyMs: q.latency, jitterMs: q.jitter,
            limit: q.limit, lossPercent: q.loss });
          const last = applied.get(q.port);
          applied.set(q.port, q);
          if (last && !same(last, q)) {
            d.events?.record({ target: podTarget(q.pod.namespace, q.pod.name, q.pod.uid), type: 'Normal', reason: 'PodQoSUpdated',
              message: `QoS of ${q.ifaceId}: egress ${q.egressRate} Mbit/s, ingress ${q.ingressRate} Mbit/s${q.latency || q.loss ? `, netem latency ${q.latency} ms loss ${q.loss} %` : ''}` });
          }
        } catch (e) {
          failed.push(`${q.port}: ${e instanceof Error ? e.message : String(e)}`);
          d.events?.record({ target: podTarget(q.pod.namespace, q.pod.name, q.pod.uid), type: 'Warning', reason: 'PodQoSUpdateFailed',
            message: `QoS of ${q.ifaceId}: ${e instanceof Error ? e.message : String(e)}` });
        }
      }
      if (failed.length) throw new Error(`QoS not applied: ${failed.join('; ')}`);
    },
    describe: (q) => `QoS ${q.port}: egress ${q.egressRate} ingress ${q.ingressRate} netem ${q.latency}/${q.jitter}/${q.limit}/${q.loss}`,
  };
}
