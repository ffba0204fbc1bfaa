// The Open vSwitch operations the agent's logic sees (`Vswitch`). Implemented natively over OVSDB by vswitch.ts and
// in memory by fake.ts (for other modules' unit tests). Every write is one OVSDB transaction; `wait: true` also
// waits until ovs-vswitchd has applied it (as `ovs-vsctl` without --no-wait does). Facts behind the shapes:
// ../shared/spec/upstream-agent-behaviour.md §3.5-§3.7 (pod ports, QoS), §5.3 (Open_vSwitch keys), §5.4 (ovn0),
// §5.10 (stale port GC), §6 (provider bridges).

/** external_ids value marking rows the agent owns. Cleaning touches only rows carrying it (or pod QoS rows). */
export const VENDOR = 'kube-ovn';

export interface ApplyOptions {
  /** Wait until ovs-vswitchd applied the change (next_cfg/cur_cfg). Default false. */
  wait?: boolean;
  timeoutMs?: number;
}

export interface PodPortSpec {
  /** Default br-int. */
  bridge?: string;
  /** Host-side interface name (e.g. `<cid12>_h`); also the OVS Port and Interface name. */
  name: string;
  /** OVN logical switch port name: `<pod>.<ns>[.<provider>]`. */
  ifaceId: string;
  podName: string;
  podNamespace: string;
  /** Netns path of the pod. */
  podNetns: string;
  /** Pod IPs without mask; omitted (no `ip` key) when empty (MAC-only / no IPAM). */
  ips?: readonly string[];
  /** `encap-ip` key, only for subnets with nodeNetwork. */
  encapIp?: string;
  /** Interface type; '' (system) by default, e.g. 'dpdk' for vhost-user. */
  type?: string;
  mtu?: number;
  /** Extra Interface external_ids (merged last). */
  externalIds?: Readonly<Record<string, string>>;
}

export interface InternalPortSpec {
  bridge?: string;
  name: string;
  mac?: string;
  mtu?: number;
  externalIds?: Readonly<Record<string, string>>;
}

export interface BridgeSpec {
  name: string;
  /** 'netdev' for the userspace datapath; '' / undefined = system. Applied on create and on update. */
  datapathType?: string;
  failMode?: 'standalone' | 'secure';
  /** Bridge external_ids to set (vendor=kube-ovn is always added). */
  externalIds?: Readonly<Record<string, string>>;
  /** other_config keys to set. */
  otherConfig?: Readonly<Record<string, string>>;
  /** other_config:hwaddr only when the bridge is created (upstream: random MAC for a new bridge). */
  hwaddrIfNew?: string;
}

export interface BridgePortSpec {
  bridge: string;
  name: string;
  /** Interface type ('' = system NIC, 'internal', 'patch', ...). */
  type?: string;
  /** VLAN trunks; undefined leaves them as they are, [] clears. */
  trunks?: readonly number[];
  /** Access VLAN tag; null clears, undefined leaves it. */
  tag?: number | null;
  /** Port external_ids to set (vendor=kube-ovn is always added). */
  externalIds?: Readonly<Record<string, string>>;
  ifaceExternalIds?: Readonly<Record<string, string>>;
  mac?: string;
  mtu?: number;
}

export interface InterfaceInfo {
  uuid: string;
  name: string;
  type: string;
  /** OpenFlow port number; undefined until vswitchd assigned one, -1 on error. */
  ofport: number | undefined;
  error: string | undefined;
  linkState: string | undefined;
  mac: string | undefined;
  mtuRequest: number | undefined;
  ingressPolicingRate: number;
  ingressPolicingBurst: number;
  externalIds: Record<string, string>;
}

export interface PortInfo {
  uuid: string;
  name: string;
  /** Bridge holding the port (undefined if none, which OVS garbage-collects). */
  bridge: string | undefined;
  interfaces: string[];
  tag: number | undefined;
  trunks: number[];
  qos: string | undefined;
  externalIds: Record<string, string>;
}

export interface BridgeInfo {
  uuid: string;
  name: string;
  datapathType: string;
  failMode: string | undefined;
  ports: string[];
  externalIds: Record<string, string>;
  otherConfig: Record<string, string>;
}

/** Egress shaping of a pod port (the pod's ingress_rate, §3.7): linux-htb QoS + Queue. */
export interface HtbSpec {
  ifaceId: string;
  /** `<ns>/<pod>` (external_ids:pod). */
  pod: string;
  /** Port to bind the QoS to. */
  port: string;
  /** Mbit/s; 0 removes the shaping. */
  rateMbps: number;
  /** Mbit; default 80 % of one second at the rate. */
  burstMbit?: number;
}

/** linux-netem impairment of a pod port (§3.7). All zero removes it. */
export interface NetemSpec {
  ifaceId: string;
  pod: string;
  port: string;
  latencyMs?: number;
  jitterMs?: number;
  limit?: number;
  lossPercent?: number;
}

export type QosResult = 'applied' | 'unchanged' | 'removed' | 'skipped-htb-present';

export interface InterfaceEvent { name: string; old: InterfaceInfo | undefined; new: InterfaceInfo | undefined }

export interface Vswitch {
  /**
   * Adds (or updates, "--may-exist") a pod port on br-int with the upstream external_ids, first stripping iface-id
   * from any other Interface claiming the same iface-id. One transaction.
   */
  addPodPort(spec: PodPortSpec, opts?: ApplyOptions): Promise<InterfaceInfo>;
  /** Removes the port and its interfaces from whatever bridge holds it, plus our QoS rows only it used. Idempotent: false when absent. */
  deletePort(name: string, opts?: ApplyOptions): Promise<boolean>;
  getInterface(name: string): InterfaceInfo | undefined;
  getPort(name: string): PortInfo | undefined;
  getBridge(name: string): BridgeInfo | undefined;
  /** Every bridge name. */
  listBridges(): string[];
  /** Interfaces whose external_ids contain every given key=value (value '*' = key present). */
  findInterfaces(externalIds: Readonly<Record<string, string>>): InterfaceInfo[];
  findPorts(externalIds: Readonly<Record<string, string>>): PortInfo[];
  /** Port names on a bridge. */
  listPorts(bridge: string): string[];
  /** Resolves once ovn-controller set external_ids:ovn-installed="true" on the interface (a monitor event). */
  waitOvnInstalled(name: string, timeoutMs: number): Promise<void>;
  /** Resolves with the interface's ofport once vswitchd assigned one (>= 1); rejects on error (-1) or timeout. */
  waitOfport(name: string, timeoutMs: number): Promise<number>;
  /** Interface changes (from the monitor). Returns an unsubscribe function. */
  onInterfaceChange(listener: (ev: InterfaceEvent) => void): () => void;

  /** ingress_policing_rate/burst on every Interface with this iface-id (pod egress, §3.7). Returns how many. */
  setIngressPolicing(ifaceId: string, rateMbps: number, burstMbit?: number, opts?: ApplyOptions): Promise<number>;
  setHtbQos(spec: HtbSpec, opts?: ApplyOptions): Promise<QosResult>;
  setNetemQos(spec: NetemSpec, opts?: ApplyOptions): Promise<QosResult>;
  /** Deletes QoS/Queue rows of a pod (external_ids:pod) that no Port/QoS references. Returns rows deleted. */
  deletePodQos(pod: string, opts?: ApplyOptions): Promise<number>;
  /** Deletes every QoS/Queue row we own that nothing references. Returns rows deleted. */
  gcQos(opts?: ApplyOptions): Promise<number>;

  addInternalPort(spec: InternalPortSpec, opts?: ApplyOptions): Promise<InterfaceInfo>;
  ensureBridge(spec: BridgeSpec, opts?: ApplyOptions): Promise<BridgeInfo>;
  /** Deletes a bridge we own (external_ids:vendor=kube-ovn); false when absent; throws for a foreign bridge. */
  deleteBridge(name: string, opts?: ApplyOptions): Promise<boolean>;
  addBridgePort(spec: BridgePortSpec, opts?: ApplyOptions): Promise<PortInfo>;

  getOvsExternalIds(): Record<string, string>;
  /** Sets and removes Open_vSwitch external_ids keys (other keys untouched). */
  setOvsExternalIds(set: Readonly<Record<string, string>>, remove?: readonly string[], opts?: ApplyOptions): Promise<void>;

  close(): void;
}

/** Burst for ingress policing in kbit: explicit burst, else 80 % of the rate; 0 when the rate is 0. */
export function policingBurstKbit(rateMbps: number, burstMbit?: number): number {
  if (rateMbps === 0) return 0;
  return burstMbit !== undefined ? burstMbit * 1000 : Math.floor(rateMbps * 1000 * 0.8);
}

/** HTB queue other_config: max-rate in bit/s and burst in bytes (explicit burst×125000, default rate_bps/10). */
export function htbQueueConfig(rateMbps: number, burstMbit?: number): Record<string, string> {
  const bps = rateMbps * 1_000_000;
  const burst = burstMbit !== undefined ? burstMbit * 125_000 : Math.floor(bps / 10);
  return { 'max-rate': String(bps), burst: String(burst) };
}

/** netem other_config: only non-zero keys; latency/jitter in microseconds. */
export function netemConfig(s: NetemSpec): Record<string, string> {
  const out: Record<string, string> = {};
  if (s.latencyMs) out.latency = String(Math.round(s.latencyMs * 1000));
  if (s.jitterMs) out.jitter = String(Math.round(s.jitterMs * 1000));
  if (s.limit) out.limit = String(s.limit);
  if (s.lossPercent) out.loss = String(s.lossPercent);
  return out;
}

/** Validates a rate/burst: non-negative integer Mbit that does not overflow (rejected before touching OVS). */
export function checkRate(what: string, v: number | undefined): void {
  if (v === undefined) return;
  if (!Number.isSafeInteger(v) || v < 0 || v * 1_000_000 > Number.MAX_SAFE_INTEGER) {
    throw new RangeError(`invalid ${what} ${v}: must be a non-negative integer (Mbit)`);
  }
}

/** Upstream pod port external_ids (§3.6 step 5), extra keys last. */
export function podExternalIds(spec: PodPortSpec): Record<string, string> {
  const ids: Record<string, string> = {
    'iface-id': spec.ifaceId,
    vendor: VENDOR,
    pod_name: spec.podName,
    pod_namespace: spec.podNamespace,
    pod_netns: spec.podNetns,
  };
  if (spec.ips && spec.ips.length) ids.ip = spec.ips.map((ip) => ip.replace(/\/\d+$/, '')).join(',');
  if (spec.encapIp) ids['encap-ip'] = spec.encapIp;
  return { ...ids, ...spec.externalIds };
}

export function matchesIds(have: Readonly<Record<string, string>>, want: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(want)) {
    if (!(k in have)) return false;
    if (v !== '*' && have[k] !== v) return false;
  }
  return true;
}
