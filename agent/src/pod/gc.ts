// The pod wing's garbage collector, as a reconciler (node/reconciler.ts): at start and every resync it compares the
// pod ports on br-int with the pods this node runs, and removes what no live pod owns (spec §5.10, done better):
//  - OVS pod ports we created (external_ids vendor=kube-ovn, pod_name, pod_namespace, a `…_h` name) whose pod is not
//    in the synced pod cache (KubeVirt: nor a launcher pod of a VM of that name), or whose interface error says
//    "No such device" (the veth vanished with its netns);
//  - host `…_h` veths that have no OVS interface of the same name;
//  - QoS/Queue rows we own that nothing references.
// Never touched: anything whose container has an ADD or DEL in flight, anything while the pod cache is not synced
// (everything would look stale), anything not ours.

import type { Netlink } from '../datapath/netlink/port.ts';
import type { InterfaceInfo, Vswitch } from '../datapath/ovsdb/port.ts';
import type { Pod } from '../k8s/types.ts';
import type { ReconcileSpec } from '../node/reconciler.ts';
import { portContainerPrefix } from './names.ts';
import { INTEGRATION_BRIDGE } from './plan.ts';

export interface PodGcDeps {
  readonly vswitch: Vswitch;
  readonly netlink: Netlink;
  /** the pods of this node (the watch cache) */
  listPods(): readonly Pod[];
  /** false until the pod watch has listed once: GC does nothing before */
  podsSynced(): boolean;
  /** container IDs with an ADD or DEL in flight */
  inFlight(): readonly string[];
  /** removes one pod port (OVS port, its QoS rows, the host veth); idempotent */
  removePort(port: string, pod: string): Promise<void>;
  /** deletes QoS/Queue rows we own that nothing references; returns how many */
  gcQos(): Promise<number>;
  /** objects removed, by kind (metrics) */
  onRemoved?: (kind: 'port' | 'veth' | 'qos', n: number) => void;
}

export interface GcDesired {
  readonly synced: boolean;
  /** `<namespace>/<name>` of live pods, plus `<namespace>/<vm>` of KubeVirt VMs with a launcher pod here */
  readonly owners: ReadonlySet<string>;
}

export interface GcObserved {
  readonly ports: readonly InterfaceInfo[];
  /** `…_h` veths in the agent's namespace */
  readonly hostVeths: readonly string[];
  readonly first: boolean;
}

export type GcOp =
  | { readonly kind: 'port'; readonly port: string; readonly pod: string; readonly why: string }
  | { readonly kind: 'veth'; readonly link: string }
  | { readonly kind: 'qos' };

/** `<ns>/<name>` keys a port may belong to: the pod, and for KubeVirt the VM its launcher pod runs. */
export function podOwners(pods: readonly Pod[]): Set<string> {
  const out = new Set<string>();
  for (const p of pods) {
    const ns = p.metadata?.namespace ?? '';
    out.add(`${ns}/${p.metadata?.name ?? ''}`);
    const vm = p.metadata?.labels?.['vm.kubevirt.io/name'] ?? p.metadata?.annotations?.['kubevirt.io/domain'];
    if (vm) out.add(`${ns}/${vm}`);
  }
  return out;
}

const isOurPodPort = (i: InterfaceInfo): boolean => {
  const x = i.externalIds;
  return x.vendor === 'kube-ovn' && !!x.pod_name && !!x.pod_namespace && portContainerPrefix(i.name) !== undefined
    && (i.type === '' || i.type === 'system');
};

/** Pure: what to remove. */
export function diffGc(desired: GcDesired, observed: GcObserved, inFlight: readonly string[]): GcOp[] {
  if (!desired.synced) return [];
  const busy = (name: string): boolean => {
    const prefix = portContainerPrefix(name);
    return prefix !== undefined && inFlight.some((c) => c.startsWith(prefix));
  };
  const ops: GcOp[] = [];
  const portNames = new Set(observed.ports.map((p) => p.name));
  for (const p of observed.ports) {
    if (!isOurPodPort(p) || busy(p.name)) continue;
    const pod = `${p.externalIds.pod_namespace}/${p.externalIds.pod_name}`;
    if (p.error?.includes('No such device')) ops.push({ kind: 'port', port: p.name, pod, why: 'the device is gone' });
    else if (!desired.owners.has(pod)) ops.push({ kind: 'port', port: p.name, pod, why: 'no such pod on this node' });
  }
  for (const v of observed.hostVeths) {
    if (!portNames.has(v) && !busy(v)) ops.push({ kind: 'veth', link: v });
  }
  if (ops.length || observed.first) ops.push({ kind: 'qos' });
  return ops;
}

/** The reconcile spec of the pod GC (wrap it in a Reconciler with a resync of one minute). */
export function podGcSpec(d: PodGcDeps): ReconcileSpec<GcDesired, GcObserved, GcOp> {
  let first = true;
  return {
    name: 'pod-gc',
    desired: () => ({ synced: d.podsSynced(), owners: podOwners(d.listPods()) }),
    async observe() {
      const names = d.vswitch.listPorts(INTEGRATION_BRIDGE);
      const ports = names.map((n) => d.vswitch.getInterface(n)).filter((i): i is InterfaceInfo => i !== undefined);
      const hostVeths = (await d.netlink.listLinks(null))
        .filter((l) => l.kind === 'veth' && portContainerPrefix(l.name) !== undefined)
        .map((l) => l.name);
      const o = { ports, hostVeths, first };
      first = false;
      return o;
    },
    diff: (desired, observed) => diffGc(desired, observed, d.inFlight()),
    async apply(ops) {
      let ports = 0;
      let veths = 0;
      for (const op of ops) {
        // the snapshot may be old by now: an ADD that started since owns its container's objects
        if (op.kind !== 'qos' && d.inFlight().some((c) => { const p = portContainerPrefix(op.kind === 'port' ? op.port : op.link); return p !== undefined && c.startsWith(p); })) continue;
        if (op.kind === 'port') { await d.removePort(op.port, op.pod); ports++; }
        else if (op.kind === 'veth') { if (await d.netlink.deleteLink(null, op.link, { ignoreMissing: true })) veths++; }
        else { const n = await d.gcQos(); if (n) d.onRemoved?.('qos', n); }
      }
      if (ports) d.onRemoved?.('port', ports);
      if (veths) d.onRemoved?.('veth', veths);
    },
    describe: (op) => (op.kind === 'port' ? `remove port ${op.port} of ${op.pod}: ${op.why}` : op.kind === 'veth' ? `remove host veth ${op.link} (no OVS port)` : 'delete unreferenced QoS rows'),
  };
}

/** CNI GC (spec 1.1): our pod ports on br-int whose container matches none of `keep` (container IDs). */
export function portsNotKept(vs: Vswitch, keep: readonly string[]): string[] {
  const out: string[] = [];
  for (const name of vs.listPorts(INTEGRATION_BRIDGE)) {
    const iface = vs.getInterface(name);
    if (!iface || !isOurPodPort(iface)) continue;
    const prefix = portContainerPrefix(name)!;
    if (!keep.some((c) => c.startsWith(prefix))) out.push(name);
  }
  return out;
}
