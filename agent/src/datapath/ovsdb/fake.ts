// In-memory Vswitch for other modules' unit tests: same contract as vswitch.ts (may-exist adds, idempotent
// deletes, iface-id stripping, ownership rules, QoS semantics), no OVS. Test hooks: simulate ovn-controller
// (`setOvnInstalled`), vswitchd (`assignOfports`, `failInterface`), inject failures (`failNext`), inspect `calls`.
import { EventEmitter } from 'node:events';
import { agentError } from '../../errors.ts';
import type { AgentError } from '../../errors.ts';
import {
  VENDOR, checkRate, htbQueueConfig, matchesIds, netemConfig, podExternalIds, policingBurstKbit,
} from './port.ts';
import type {
  ApplyOptions, BridgeInfo, BridgePortSpec, BridgeSpec, HtbSpec, InterfaceEvent, InterfaceInfo, InternalPortSpec,
  NetemSpec, PodPortSpec, PortInfo, QosResult, Vswitch,
} from './port.ts';

interface FakeQos { uuid: string; type: string; otherConfig: Record<string, string>; externalIds: Record<string, string>; queue: string | undefined }
interface FakeQueue { uuid: string; otherConfig: Record<string, string>; externalIds: Record<string, string> }

export class FakeVswitch implements Vswitch {
  readonly bridges = new Map<string, BridgeInfo>();
  readonly ports = new Map<string, PortInfo>();
  readonly interfaces = new Map<string, InterfaceInfo>();
  readonly qos = new Map<string, FakeQos>();
  readonly queues = new Map<string, FakeQueue>();
  ovsExternalIds: Record<string, string> = {};
  /** Every mutating call, e.g. `addPodPort veth1`. */
  readonly calls: string[] = [];
  /** When true, new interfaces get an ofport at once (as a running vswitchd would). */
  autoOfport = true;
  /** When set, `wait: true` writes fail as if vswitchd were not running. */
  vswitchdDown = false;
  private readonly events = new EventEmitter();
  private readonly failures = new Map<string, AgentError>();
  private seq = 0;
  private nextOfport = 1;
  private closed = false;

  constructor(opts: { bridges?: string[] } = {}) {
    this.events.setMaxListeners(0);
    for (const b of opts.bridges ?? ['br-int']) this.addBridgeRow(b, {}, {});
  }

  // ---- test hooks -------------------------------------------------------------------------------------------

  /** The next call of `method` rejects with `err` (default: a KOA_OVSDB error). */
  failNext(method: keyof Vswitch, err: AgentError = agentError('KOA_OVSDB', String(method), 'injected failure')): void {
    this.failures.set(method, err);
  }

  /** Simulates ovn-controller claiming the port. */
  setOvnInstalled(name: string, value = true): void {
    this.patchIface(name, (i) => {
      if (value) i.externalIds['ovn-installed'] = 'true';
      else delete i.externalIds['ovn-installed'];
    });
  }

  /** Simulates vswitchd failing to open the device. */
  failInterface(name: string, error: string): void {
    this.patchIface(name, (i) => { i.ofport = -1; i.error = error; });
  }

  assignOfports(): void {
    for (const i of this.interfaces.values()) if (i.ofport === undefined) this.patchIface(i.name, (x) => { x.ofport = this.nextOfport++; });
  }

  // ---- plumbing ---------------------------------------------------------------------------------------------

  private uuid(): string { return `00000000-0000-4000-8000-${(++this.seq).toString(16).padStart(12, '0')}`; }

  private async enter(method: keyof Vswitch, what: string, opts: ApplyOptions = {}): Promise<void> {
    if (this.closed) throw agentError('KOA_OVSDB', method, 'client is closed');
    this.calls.push(`${method} ${what}`);
    const f = this.failures.get(method);
    if (f) { this.failures.delete(method); throw f; }
    if (opts.wait && this.vswitchdDown) {
      throw agentError('KOA_TIMEOUT', opts.timeoutMs ?? 10_000, 'ovs-vswitchd to apply the change; is ovs-vswitchd running?');
    }
    await Promise.resolve();
  }

  private emitIface(name: string, old: InterfaceInfo | undefined, cur: InterfaceInfo | undefined): void {
    const ev: InterfaceEvent = { name, old: old && clone(old), new: cur && clone(cur) };
    this.events.emit('iface', ev);
  }

  private patchIface(name: string, f: (i: InterfaceInfo) => void): void {
    const i = this.interfaces.get(name);
    if (!i) throw new Error(`fake: no interface ${name}`);
    const old = clone(i);
    f(i);
    this.emitIface(name, old, i);
  }

  private addBridgeRow(name: string, externalIds: Record<string, string>, otherConfig: Record<string, string>): BridgeInfo {
    const b: BridgeInfo = { uuid: this.uuid(), name, datapathType: '', failMode: undefined, ports: [], externalIds, otherConfig };
    this.bridges.set(name, b);
    this.upsertPort(name, name, { type: 'internal' }, {}, undefined);
    return b;
  }

  private upsertPort(bridge: string, name: string, iface: { type?: string; mac?: string; mtu?: number }, ifaceIds: Record<string, string>,
    port: { trunks?: readonly number[]; tag?: number | null; externalIds?: Record<string, string> } | undefined): void {
    const br = this.bridges.get(bridge);
    if (!br) throw agentError('KOA_OVSDB', `add port ${name}`, `bridge ${bridge} does not exist`);
    let i = this.interfaces.get(name);
    const old = i && clone(i);
    if (!i) {
      i = { uuid: this.uuid(), name, type: '', ofport: undefined, error: undefined, linkState: undefined, mac: undefined, mtuRequest: undefined,
        ingressPolicingRate: 0, ingressPolicingBurst: 0, externalIds: {} };
      this.interfaces.set(name, i);
    }
    if (iface.type !== undefined) i.type = iface.type;
    if (iface.mac !== undefined) i.mac = iface.mac;
    if (iface.mtu !== undefined && iface.mtu > 0) i.mtuRequest = iface.mtu;
    Object.assign(i.externalIds, ifaceIds);
    if (this.autoOfport && i.ofport === undefined) i.ofport = this.nextOfport++;
    let p = this.ports.get(name);
    if (!p) {
      p = { uuid: this.uuid(), name, bridge, interfaces: [name], tag: undefined, trunks: [], qos: undefined, externalIds: {} };
      this.ports.set(name, p);
    }
    if (p.bridge !== bridge) {
      const prev = p.bridge ? this.bridges.get(p.bridge) : undefined;
      if (prev) prev.ports = prev.ports.filter((x) => x !== name);
      p.bridge = bridge;
    }
    if (!br.ports.includes(name)) br.ports.push(name);
    if (port?.trunks !== undefined) p.trunks = [...port.trunks];
    if (port?.tag !== undefined) p.tag = port.tag ?? undefined;
    if (port?.externalIds) Object.assign(p.externalIds, port.externalIds);
    this.emitIface(name, old, i);
  }

  private removePort(name: string): void {
    const p = this.ports.get(name);
    if (!p) return;
    if (p.bridge) { const b = this.bridges.get(p.bridge); if (b) b.ports = b.ports.filter((x) => x !== name); }
    this.ports.delete(name);
    for (const n of p.interfaces) {
      const i = this.interfaces.get(n);
      this.interfaces.delete(n);
      if (i) this.emitIface(n, i, undefined);
    }
  }

  private owned(ids: Record<string, string>): boolean { return ids.vendor === VENDOR || ('iface-id' in ids && 'pod' in ids); }

  private qosUsers(q: string): PortInfo[] { return [...this.ports.values()].filter((p) => p.qos === q); }

  private destroyQos(q: string): number {
    const row = this.qos.get(q);
    if (!row) return 0;
    for (const p of this.qosUsers(q)) p.qos = undefined;
    this.qos.delete(q);
    let n = 1;
    if (row.queue && ![...this.qos.values()].some((o) => o.queue === row.queue) && this.queues.has(row.queue)) {
      this.queues.delete(row.queue);
      n++;
    }
    return n;
  }

  private qosOf(ifaceId: string): FakeQos | undefined {
    return [...this.qos.values()].find((q) => q.externalIds['iface-id'] === ifaceId);
  }

  // ---- Vswitch ----------------------------------------------------------------------------------------------

  async addPodPort(spec: PodPortSpec, opts?: ApplyOptions): Promise<InterfaceInfo> {
    await this.enter('addPodPort', spec.name, opts);
    const br = spec.bridge ?? 'br-int';
    if (!this.bridges.has(br)) throw agentError('KOA_OVSDB', `add port ${spec.name}`, `bridge ${br} does not exist`);
    for (const i of this.interfaces.values()) {
      if (i.name !== spec.name && i.externalIds['iface-id'] === spec.ifaceId) this.patchIface(i.name, (x) => { delete x.externalIds['iface-id']; });
    }
    this.upsertPort(br, spec.name, { ...(spec.type !== undefined ? { type: spec.type } : {}), ...(spec.mtu !== undefined ? { mtu: spec.mtu } : {}) },
      podExternalIds(spec), undefined);
    return clone(this.interfaces.get(spec.name)!);
  }

  async deletePort(name: string, opts?: ApplyOptions): Promise<boolean> {
    await this.enter('deletePort', name, opts);
    const p = this.ports.get(name);
    if (!p) return false;
    if (p.qos && this.owned(this.qos.get(p.qos)?.externalIds ?? {}) && this.qosUsers(p.qos).length === 1) this.destroyQos(p.qos);
    this.removePort(name);
    return true;
  }

  getInterface(name: string): InterfaceInfo | undefined { const i = this.interfaces.get(name); return i && clone(i); }
  getPort(name: string): PortInfo | undefined { const p = this.ports.get(name); return p && clone(p); }
  getBridge(name: string): BridgeInfo | undefined { const b = this.bridges.get(name); return b && clone(b); }
  listBridges(): string[] { return [...this.bridges.keys()]; }
  findInterfaces(ids: Readonly<Record<string, string>>): InterfaceInfo[] {
    return [...this.interfaces.values()].filter((i) => matchesIds(i.externalIds, ids)).map(clone);
  }
  findPorts(ids: Readonly<Record<string, string>>): PortInfo[] {
    return [...this.ports.values()].filter((p) => matchesIds(p.externalIds, ids)).map(clone);
  }
  listPorts(bridge: string): string[] { return [...(this.bridges.get(bridge)?.ports ?? [])]; }

  waitOvnInstalled(name: string, timeoutMs: number): Promise<void> {
    return this.waitIface(name, timeoutMs, (i) => (i?.externalIds['ovn-installed'] === 'true' ? true : undefined),
      `external_ids:ovn-installed="true" on OVS interface ${name}`).then(() => undefined);
  }

  waitOfport(name: string, timeoutMs: number): Promise<number> {
    return this.waitIface(name, timeoutMs, (i) => {
      if (i?.ofport === -1) throw agentError('KOA_DATAPATH', `ovs-vswitchd could not add interface ${name}: ${i.error ?? 'ofport -1'}`);
      return i?.ofport !== undefined && i.ofport >= 1 ? i.ofport : undefined;
    }, `an OpenFlow port number for OVS interface ${name}`);
  }

  private waitIface<T>(name: string, timeoutMs: number, check: (i: InterfaceInfo | undefined) => T | undefined, what: string): Promise<T> {
    try {
      const now = check(this.interfaces.get(name));
      if (now !== undefined) return Promise.resolve(now);
    } catch (e) { return Promise.reject(e); }
    return new Promise<T>((resolve, reject) => {
      const on = (ev: InterfaceEvent): void => {
        if (ev.name !== name) return;
        try {
          const v = check(ev.new);
          if (v !== undefined) { done(); resolve(v); }
        } catch (e) { done(); reject(e); }
      };
      const t = setTimeout(() => { done(); reject(agentError('KOA_TIMEOUT', timeoutMs, what)); }, timeoutMs);
      const done = (): void => { clearTimeout(t); this.events.off('iface', on); };
      this.events.on('iface', on);
    });
  }

  onInterfaceChange(listener: (ev: InterfaceEvent) => void): () => void {
    this.events.on('iface', listener);
    return () => { this.events.off('iface', listener); };
  }

  async setIngressPolicing(ifaceId: string, rateMbps: number, burstMbit?: number, opts?: ApplyOptions): Promise<number> {
    checkRate('egress rate', rateMbps);
    checkRate('egress burst', burstMbit);
    await this.enter('setIngressPolicing', ifaceId, opts);
    const targets = [...this.interfaces.values()].filter((i) => i.externalIds['iface-id'] === ifaceId);
    for (const t of targets) {
      this.patchIface(t.name, (i) => { i.ingressPolicingRate = rateMbps * 1000; i.ingressPolicingBurst = policingBurstKbit(rateMbps, burstMbit); });
    }
    return targets.length;
  }

  async setHtbQos(spec: HtbSpec, opts?: ApplyOptions): Promise<QosResult> {
    checkRate('ingress rate', spec.rateMbps);
    checkRate('ingress burst', spec.burstMbit);
    await this.enter('setHtbQos', spec.port, opts);
    const existing = this.qosOf(spec.ifaceId);
    if (spec.rateMbps === 0) {
      if (!existing || existing.type !== 'linux-htb') return 'unchanged';
      this.destroyQos(existing.uuid);
      return 'removed';
    }
    const port = this.ports.get(spec.port);
    if (!port) throw agentError('KOA_OVSDB', `set QoS on ${spec.port}`, 'no such port');
    const cfg = htbQueueConfig(spec.rateMbps, spec.burstMbit);
    const ids = { 'iface-id': spec.ifaceId, pod: spec.pod, vendor: VENDOR };
    const q = existing?.queue ? this.queues.get(existing.queue) : undefined;
    if (existing?.type === 'linux-htb' && q && q.otherConfig['max-rate'] === cfg['max-rate'] && q.otherConfig.burst === cfg.burst && port.qos === existing.uuid) return 'unchanged';
    const queue = q ?? { uuid: this.uuid(), otherConfig: {}, externalIds: {} };
    Object.assign(queue.otherConfig, cfg);
    Object.assign(queue.externalIds, ids);
    this.queues.set(queue.uuid, queue);
    const qos = existing ?? { uuid: this.uuid(), type: 'linux-htb', otherConfig: {}, externalIds: {}, queue: undefined };
    qos.type = 'linux-htb';
    qos.otherConfig = {};
    qos.queue = queue.uuid;
    Object.assign(qos.externalIds, ids);
    this.qos.set(qos.uuid, qos);
    port.qos = qos.uuid;
    return 'applied';
  }

  async setNetemQos(spec: NetemSpec, opts?: ApplyOptions): Promise<QosResult> {
    await this.enter('setNetemQos', spec.port, opts);
    const cfg = netemConfig(spec);
    const existing = this.qosOf(spec.ifaceId);
    if (existing?.type === 'linux-htb') return 'skipped-htb-present';
    const port = this.ports.get(spec.port);
    if (existing) {
      const same = Object.keys(existing.otherConfig).length === Object.keys(cfg).length && Object.entries(cfg).every(([k, v]) => existing.otherConfig[k] === v);
      if (same && (Object.keys(cfg).length === 0 || port?.qos === existing.uuid)) return 'unchanged';
      this.destroyQos(existing.uuid);
    }
    if (Object.keys(cfg).length === 0) return existing ? 'removed' : 'unchanged';
    if (!port) throw agentError('KOA_OVSDB', `set netem on ${spec.port}`, 'no such port');
    const qos: FakeQos = { uuid: this.uuid(), type: 'linux-netem', otherConfig: cfg, externalIds: { 'iface-id': spec.ifaceId, pod: spec.pod, vendor: VENDOR }, queue: undefined };
    this.qos.set(qos.uuid, qos);
    port.qos = qos.uuid;
    return 'applied';
  }

  async deletePodQos(pod: string, opts?: ApplyOptions): Promise<number> {
    await this.enter('deletePodQos', pod, opts);
    return this.gc((ids) => ids.pod === pod);
  }

  async gcQos(opts?: ApplyOptions): Promise<number> {
    await this.enter('gcQos', '', opts);
    return this.gc(() => true);
  }

  private gc(pick: (ids: Record<string, string>) => boolean): number {
    let n = 0;
    for (const q of [...this.qos.values()]) {
      if (this.qosUsers(q.uuid).length === 0 && this.owned(q.externalIds) && pick(q.externalIds)) { this.qos.delete(q.uuid); n++; }
    }
    const used = new Set([...this.qos.values()].map((q) => q.queue));
    for (const q of [...this.queues.values()]) {
      if (!used.has(q.uuid) && this.owned(q.externalIds) && pick(q.externalIds)) { this.queues.delete(q.uuid); n++; }
    }
    return n;
  }

  async addInternalPort(spec: InternalPortSpec, opts?: ApplyOptions): Promise<InterfaceInfo> {
    await this.enter('addInternalPort', spec.name, opts);
    this.upsertPort(spec.bridge ?? 'br-int', spec.name,
      { type: 'internal', ...(spec.mac !== undefined ? { mac: spec.mac } : {}), ...(spec.mtu !== undefined ? { mtu: spec.mtu } : {}) },
      { ...spec.externalIds }, undefined);
    return clone(this.interfaces.get(spec.name)!);
  }

  async ensureBridge(spec: BridgeSpec, opts?: ApplyOptions): Promise<BridgeInfo> {
    await this.enter('ensureBridge', spec.name, opts);
    let b = this.bridges.get(spec.name);
    if (!b) {
      b = this.addBridgeRow(spec.name, {}, spec.hwaddrIfNew ? { hwaddr: spec.hwaddrIfNew } : {});
    }
    Object.assign(b.externalIds, spec.externalIds, { vendor: VENDOR });
    Object.assign(b.otherConfig, spec.otherConfig);
    if (spec.datapathType !== undefined) b.datapathType = spec.datapathType;
    if (spec.failMode !== undefined) b.failMode = spec.failMode;
    return clone(b);
  }

  async deleteBridge(name: string, opts?: ApplyOptions): Promise<boolean> {
    await this.enter('deleteBridge', name, opts);
    const b = this.bridges.get(name);
    if (!b) return false;
    if (b.externalIds.vendor !== VENDOR) throw agentError('KOA_OVSDB', `delete bridge ${name}`, 'the bridge is not owned by kube-ovn (external_ids:vendor)');
    for (const p of [...b.ports]) this.removePort(p);
    this.bridges.delete(name);
    return true;
  }

  async addBridgePort(spec: BridgePortSpec, opts?: ApplyOptions): Promise<PortInfo> {
    await this.enter('addBridgePort', `${spec.bridge} ${spec.name}`, opts);
    this.upsertPort(spec.bridge, spec.name,
      { ...(spec.type !== undefined ? { type: spec.type } : {}), ...(spec.mac !== undefined ? { mac: spec.mac } : {}), ...(spec.mtu !== undefined ? { mtu: spec.mtu } : {}) },
      { ...spec.ifaceExternalIds },
      { ...(spec.trunks !== undefined ? { trunks: spec.trunks } : {}), ...(spec.tag !== undefined ? { tag: spec.tag } : {}), externalIds: { ...spec.externalIds, vendor: VENDOR } });
    return clone(this.ports.get(spec.name)!);
  }

  getOvsExternalIds(): Record<string, string> { return { ...this.ovsExternalIds }; }

  async setOvsExternalIds(set: Readonly<Record<string, string>>, remove: readonly string[] = [], opts?: ApplyOptions): Promise<void> {
    await this.enter('setOvsExternalIds', Object.keys(set).join(','), opts);
    for (const k of remove) if (!(k in set)) delete this.ovsExternalIds[k];
    Object.assign(this.ovsExternalIds, set);
  }

  close(): void { this.closed = true; }
}

function clone<T>(v: T): T { return structuredClone(v); }
