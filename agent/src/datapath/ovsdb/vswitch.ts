// Vswitch over a native OVSDB connection: every operation is one transaction built from the monitor replica, with
// `wait` guards that make a stale replica (or a replay after reconnect) fail cleanly instead of doing the wrong
// thing; a guard failure rebuilds the transaction from the refreshed replica and tries again. All transactions
// are therefore safe to replay and are marked idempotent for the client's reconnect logic.
import { agentError } from '../../errors.ts';
import { OvsdbClient } from './client.ts';
import type { ClientOptions } from './client.ts';
import { TransactError, byUuid, cond, del, eq, insert, mutate, select, update, wait } from './ops.ts';
import type { OpResult, Operation } from './ops.ts';
import type { RowChange } from './replica.ts';
import type { Atom, Row, Value } from './values.ts';
import { isUuid, map, namedUuid, optAtom, optional, set, strMap, uuid, uuidOf, uuidsOf } from './values.ts';
import {
  VENDOR, checkRate, htbQueueConfig, matchesIds, netemConfig, podExternalIds, policingBurstKbit,
} from './port.ts';
import type {
  ApplyOptions, BridgeInfo, BridgePortSpec, BridgeSpec, HtbSpec, InterfaceEvent, InterfaceInfo, InternalPortSpec,
  NetemSpec, PodPortSpec, PortInfo, QosResult, Vswitch,
} from './port.ts';

/** Tables and columns the agent replicates (and therefore requires in the server's schema). */
export const VSWITCH_MONITOR: Record<string, readonly string[]> = {
  Open_vSwitch: ['bridges', 'next_cfg', 'cur_cfg', 'external_ids', 'other_config'],
  Bridge: ['name', 'ports', 'datapath_type', 'fail_mode', 'external_ids', 'other_config'],
  Port: ['name', 'interfaces', 'tag', 'trunks', 'qos', 'external_ids'],
  Interface: ['name', 'type', 'ofport', 'error', 'link_state', 'mac', 'mtu_request', 'ingress_policing_rate',
    'ingress_policing_burst', 'external_ids'],
  QoS: ['type', 'queues', 'other_config', 'external_ids'],
  Queue: ['other_config', 'external_ids'],
};

export type VswitchOptions = Omit<ClientOptions, 'monitor' | 'database'>;

const GUARD_RETRIES = 5;

/** A transaction plan: operations plus how to turn results into the caller's answer. */
interface Plan<T> {
  ops: Operation[];
  done(results: OpResult[]): T;
  /** Replica condition that must hold before the caller sees the answer (our own write observed). */
  settled?(results: OpResult[]): boolean;
}

const str = (v: Value | undefined): string => String(optAtom(v) ?? '');
const num = (v: Value | undefined): number | undefined => {
  const a = optAtom(v);
  return a === undefined ? undefined : Number(a);
};

export class OvsVswitch implements Vswitch {
  readonly client: OvsdbClient;
  private readonly names = { Interface: new Map<string, string>(), Port: new Map<string, string>(), Bridge: new Map<string, string>() };
  private readonly portOfIface = new Map<string, string>();
  private readonly bridgeOfPort = new Map<string, string>();
  private readonly ifaceListeners = new Set<(ev: InterfaceEvent) => void>();

  constructor(client: OvsdbClient) {
    this.client = client;
    client.on('change', (c: RowChange) => this.index(c));
    // Rows already in the replica (client started before us).
    for (const table of ['Bridge', 'Port', 'Interface']) {
      for (const [u, row] of client.replica.rows(table)) this.index({ table, uuid: u, old: undefined, new: row });
    }
  }

  /** Connects to ovsdb-server (e.g. `unix:/run/openvswitch/db.sock`), checks the schema, loads the replica. */
  static async connect(opts: VswitchOptions): Promise<OvsVswitch> {
    const client = new OvsdbClient({ ...opts, database: 'Open_vSwitch', monitor: VSWITCH_MONITOR });
    const vs = new OvsVswitch(client);
    await client.start();
    return vs;
  }

  close(): void { this.client.close(); }

  // ---- replica indexes and readers --------------------------------------------------------------------------

  private index(c: RowChange): void {
    if (c.table === 'Interface' || c.table === 'Port' || c.table === 'Bridge') {
      const names = this.names[c.table];
      const oldName = c.old ? str(c.old.name) : undefined;
      const newName = c.new ? str(c.new.name) : undefined;
      if (oldName !== undefined && oldName !== newName && names.get(oldName) === c.uuid) names.delete(oldName);
      if (newName !== undefined) names.set(newName, c.uuid);
    }
    if (c.table === 'Port') {
      for (const i of uuidsOf(c.old?.interfaces)) if (this.portOfIface.get(i) === c.uuid) this.portOfIface.delete(i);
      for (const i of uuidsOf(c.new?.interfaces)) this.portOfIface.set(i, c.uuid);
    }
    if (c.table === 'Bridge') {
      for (const p of uuidsOf(c.old?.ports)) if (this.bridgeOfPort.get(p) === c.uuid) this.bridgeOfPort.delete(p);
      for (const p of uuidsOf(c.new?.ports)) this.bridgeOfPort.set(p, c.uuid);
    }
    if (c.table === 'Interface' && this.ifaceListeners.size) {
      const ev: InterfaceEvent = {
        name: str((c.new ?? c.old)!.name),
        old: c.old ? this.ifaceInfo(c.uuid, c.old) : undefined,
        new: c.new ? this.ifaceInfo(c.uuid, c.new) : undefined,
      };
      for (const l of this.ifaceListeners) l(ev);
    }
  }

  private row(table: string, u: string | undefined): Row | undefined {
    return u === undefined ? undefined : this.client.replica.get(table, u);
  }

  private ifaceInfo(u: string, r: Row): InterfaceInfo {
    return {
      uuid: u, name: str(r.name), type: str(r.type), ofport: num(r.ofport),
      error: optAtom(r.error) === undefined ? undefined : str(r.error),
      linkState: optAtom(r.link_state) === undefined ? undefined : str(r.link_state),
      mac: optAtom(r.mac) === undefined ? undefined : str(r.mac),
      mtuRequest: num(r.mtu_request),
      ingressPolicingRate: num(r.ingress_policing_rate) ?? 0,
      ingressPolicingBurst: num(r.ingress_policing_burst) ?? 0,
      externalIds: strMap(r.external_ids),
    };
  }

  private portInfo(u: string, r: Row): PortInfo {
    const b = this.bridgeOfPort.get(u);
    return {
      uuid: u, name: str(r.name), bridge: b ? str(this.row('Bridge', b)?.name) : undefined,
      interfaces: uuidsOf(r.interfaces).map((i) => str(this.row('Interface', i)?.name)),
      tag: num(r.tag), trunks: (intSet(r.trunks)),
      qos: uuidOf(r.qos), externalIds: strMap(r.external_ids),
    };
  }

  private bridgeInfo(u: string, r: Row): BridgeInfo {
    return {
      uuid: u, name: str(r.name), datapathType: str(r.datapath_type),
      failMode: optAtom(r.fail_mode) === undefined ? undefined : str(r.fail_mode),
      ports: uuidsOf(r.ports).map((p) => str(this.row('Port', p)?.name)),
      externalIds: strMap(r.external_ids), otherConfig: strMap(r.other_config),
    };
  }

  getInterface(name: string): InterfaceInfo | undefined {
    const u = this.names.Interface.get(name);
    const r = this.row('Interface', u);
    return u && r ? this.ifaceInfo(u, r) : undefined;
  }

  getPort(name: string): PortInfo | undefined {
    const u = this.names.Port.get(name);
    const r = this.row('Port', u);
    return u && r ? this.portInfo(u, r) : undefined;
  }

  listBridges(): string[] { return [...this.names.Bridge.keys()]; }

  getBridge(name: string): BridgeInfo | undefined {
    const u = this.names.Bridge.get(name);
    const r = this.row('Bridge', u);
    return u && r ? this.bridgeInfo(u, r) : undefined;
  }

  findInterfaces(ids: Readonly<Record<string, string>>): InterfaceInfo[] {
    const out: InterfaceInfo[] = [];
    for (const [u, r] of this.client.replica.rows('Interface')) {
      if (matchesIds(strMap(r.external_ids), ids)) out.push(this.ifaceInfo(u, r));
    }
    return out;
  }

  findPorts(ids: Readonly<Record<string, string>>): PortInfo[] {
    const out: PortInfo[] = [];
    for (const [u, r] of this.client.replica.rows('Port')) if (matchesIds(strMap(r.external_ids), ids)) out.push(this.portInfo(u, r));
    return out;
  }

  listPorts(bridge: string): string[] {
    return this.getBridge(bridge)?.ports ?? [];
  }

  getOvsExternalIds(): Record<string, string> {
    for (const [, r] of this.client.replica.rows('Open_vSwitch')) return strMap(r.external_ids);
    return {};
  }

  onInterfaceChange(listener: (ev: InterfaceEvent) => void): () => void {
    this.ifaceListeners.add(listener);
    return () => { this.ifaceListeners.delete(listener); };
  }

  waitOvnInstalled(name: string, timeoutMs: number): Promise<void> {
    return this.client.waitUntil(() => (this.getInterface(name)?.externalIds['ovn-installed'] === 'true' ? true : undefined),
      timeoutMs, () => `external_ids:ovn-installed="true" on OVS interface ${name}${this.getInterface(name) ? '' : ' (no such interface)'}`)
      .then(() => undefined);
  }

  waitOfport(name: string, timeoutMs: number): Promise<number> {
    return this.client.waitUntil(() => {
      const i = this.getInterface(name);
      if (i?.ofport === -1) throw agentError('KOA_DATAPATH', `ovs-vswitchd could not add interface ${name}: ${i.error ?? 'ofport -1'}`);
      return i?.ofport !== undefined && i.ofport >= 1 ? i.ofport : undefined;
    }, timeoutMs, () => `an OpenFlow port number for OVS interface ${name}`);
  }

  // ---- writing ----------------------------------------------------------------------------------------------

  /** Plans from the replica, transacts, and on a failed guard (`wait` op) replans after the replica moves. */
  private async write<T>(plan: () => Plan<T>, opts: ApplyOptions = {}): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const p = plan();
      if (p.ops.length === 0) return p.done([]);
      let results: OpResult[];
      try {
        const ro = { idempotent: true, ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }) };
        results = opts.wait ? await this.client.transactApplied(p.ops, ro) : await this.client.transact(p.ops, ro);
      } catch (e) {
        if (e instanceof TransactError && e.op === 'wait' && e.error === 'timed out' && attempt < GUARD_RETRIES) {
          await this.nextChange(50 * (attempt + 1));
          continue;
        }
        throw e;
      }
      if (p.settled && !p.settled(results)) {
        await this.client.waitUntil(() => (p.settled!(results) ? true : undefined), opts.timeoutMs ?? 5000,
          () => 'the monitor to show our own committed change');
      }
      return p.done(results);
    }
  }

  private nextChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void { clearTimeout(t); resolve(); }
      this.client.once('changes', done);
    });
  }

  /** Inserted rows (by op index) are visible in the replica. */
  private insertedVisible(ops: Operation[], results: OpResult[]): boolean {
    return ops.every((o, i) => o.op !== 'insert' || !isUuid(results[i]?.uuid) || this.row(o.table, (results[i]!.uuid as [string, string])[1]) !== undefined);
  }

  /** Guard: no row in `table` with column == value (fails the transaction if one exists). */
  private absent(table: string, column: string, value: Atom): Operation {
    return wait(table, [eq(column, value)], [column], '==', [], 0);
  }

  /** Guard: exactly this row exists with this name (the replica's view is current). */
  private present(table: string, u: string, column: string, value: Atom): Operation {
    return wait(table, byUuid(u), [column], '==', [{ [column]: value }], 0);
  }

  /** Ops setting map keys (replacing their values) and removing keys; other keys untouched. */
  private static mapSet(table: string, where: ReturnType<typeof byUuid>, column: string, setKeys: Readonly<Record<string, string>>, removeKeys: readonly string[] = []): Operation[] {
    const keys = [...Object.keys(setKeys), ...removeKeys];
    if (keys.length === 0) return [];
    const mutations: Array<[string, 'delete' | 'insert', Value]> = [[column, 'delete', set(keys)]];
    if (Object.keys(setKeys).length) mutations.push([column, 'insert', map(setKeys)]);
    return [mutate(table, where, mutations)];
  }

  /**
   * "--may-exist add-port" core: one Port with one Interface on `bridge`. Existing port: its interface gets the
   * given columns/keys, the port is (re)attached to the bridge. New: Interface+Port inserted, bridge mutated.
   */
  private upsertPortOps(p: {
    bridge: string; name: string; ifaceRow: Row; ifaceIds: Readonly<Record<string, string>>; portRow?: Row;
    portIds?: Readonly<Record<string, string>>;
  }): Operation[] {
    const bridgeUuid = this.names.Bridge.get(p.bridge);
    if (!bridgeUuid) throw agentError('KOA_OVSDB', `add port ${p.name}`, `bridge ${p.bridge} does not exist`);
    const ops: Operation[] = [this.present('Bridge', bridgeUuid, 'name', p.bridge)];
    const portUuid = this.names.Port.get(p.name);
    const ifaceUuid = this.names.Interface.get(p.name);
    if (portUuid && ifaceUuid && this.portOfIface.get(ifaceUuid) === portUuid) {
      ops.push(this.present('Port', portUuid, 'name', p.name), this.present('Interface', ifaceUuid, 'name', p.name));
      if (Object.keys(p.ifaceRow).length) ops.push(update('Interface', byUuid(ifaceUuid), p.ifaceRow));
      ops.push(...OvsVswitch.mapSet('Interface', byUuid(ifaceUuid), 'external_ids', p.ifaceIds));
      if (p.portRow && Object.keys(p.portRow).length) ops.push(update('Port', byUuid(portUuid), p.portRow));
      if (p.portIds) ops.push(...OvsVswitch.mapSet('Port', byUuid(portUuid), 'external_ids', p.portIds));
      const cur = this.bridgeOfPort.get(portUuid);
      if (cur && cur !== bridgeUuid) ops.push(mutate('Bridge', byUuid(cur), [['ports', 'delete', set([uuid(portUuid)])]]));
      if (cur !== bridgeUuid) ops.push(mutate('Bridge', byUuid(bridgeUuid), [['ports', 'insert', set([uuid(portUuid)])]]));
      return ops;
    }
    if (ifaceUuid || portUuid) {
      throw agentError('KOA_OVSDB', `add port ${p.name}`, `a ${portUuid ? 'Port' : 'Interface'} named ${p.name} exists with a different layout`);
    }
    ops.push(this.absent('Port', 'name', p.name), this.absent('Interface', 'name', p.name));
    ops.push(insert('Interface', { name: p.name, ...p.ifaceRow, external_ids: map(p.ifaceIds) }, 'iface'));
    ops.push(insert('Port', {
      name: p.name, interfaces: set([namedUuid('iface')]), ...p.portRow,
      ...(p.portIds ? { external_ids: map(p.portIds) } : {}),
    }, 'port'));
    ops.push(mutate('Bridge', byUuid(bridgeUuid), [['ports', 'insert', set([namedUuid('port')])]]));
    return ops;
  }

  async addPodPort(spec: PodPortSpec, opts: ApplyOptions = {}): Promise<InterfaceInfo> {
    const ids = podExternalIds(spec);
    const ifaceRow: Row = {};
    if (spec.type !== undefined) ifaceRow.type = spec.type;
    if (spec.mtu !== undefined && spec.mtu > 0) ifaceRow.mtu_request = optional(spec.mtu);
    return this.write(() => {
      const ops: Operation[] = [];
      // Stale sandboxes must not claim the logical port: strip iface-id from other interfaces that carry it.
      for (const other of this.findInterfaces({ 'iface-id': spec.ifaceId })) {
        if (other.name !== spec.name) ops.push(mutate('Interface', byUuid(other.uuid), [['external_ids', 'delete', set(['iface-id'])]]));
      }
      ops.push(...this.upsertPortOps({ bridge: spec.bridge ?? 'br-int', name: spec.name, ifaceRow, ifaceIds: ids }));
      return {
        ops,
        settled: (r) => this.insertedVisible(ops, r) && this.getInterface(spec.name)?.externalIds['iface-id'] === spec.ifaceId,
        done: () => this.getInterface(spec.name)!,
      };
    }, opts);
  }

  async addInternalPort(spec: InternalPortSpec, opts: ApplyOptions = {}): Promise<InterfaceInfo> {
    const ifaceRow: Row = { type: 'internal' };
    if (spec.mac !== undefined) ifaceRow.mac = optional(spec.mac);
    if (spec.mtu !== undefined && spec.mtu > 0) ifaceRow.mtu_request = optional(spec.mtu);
    return this.write(() => {
      const ops = this.upsertPortOps({ bridge: spec.bridge ?? 'br-int', name: spec.name, ifaceRow, ifaceIds: { ...spec.externalIds } });
      return { ops, settled: (r) => this.insertedVisible(ops, r), done: () => this.getInterface(spec.name)! };
    }, opts);
  }

  async addBridgePort(spec: BridgePortSpec, opts: ApplyOptions = {}): Promise<PortInfo> {
    const ifaceRow: Row = {};
    if (spec.type !== undefined) ifaceRow.type = spec.type;
    if (spec.mac !== undefined) ifaceRow.mac = optional(spec.mac);
    if (spec.mtu !== undefined && spec.mtu > 0) ifaceRow.mtu_request = optional(spec.mtu);
    const portRow: Row = {};
    if (spec.trunks !== undefined) portRow.trunks = set([...spec.trunks]);
    if (spec.tag !== undefined) portRow.tag = optional(spec.tag ?? undefined);
    return this.write(() => {
      const ops = this.upsertPortOps({
        bridge: spec.bridge, name: spec.name, ifaceRow, ifaceIds: { ...spec.ifaceExternalIds }, portRow,
        portIds: { ...spec.externalIds, vendor: VENDOR },
      });
      return { ops, settled: (r) => this.insertedVisible(ops, r), done: () => this.getPort(spec.name)! };
    }, opts);
  }

  async deletePort(name: string, opts: ApplyOptions = {}): Promise<boolean> {
    if (!this.names.Port.has(name)) {
      // The replica may not show a port someone (or we) just added yet: ask the server before saying "absent".
      const [r] = await this.client.transact([select('Port', [eq('name', name)], ['_uuid'])]);
      if (!r?.rows?.length) return false;
      await this.client.waitUntil(() => (this.names.Port.has(name) ? true : undefined), opts.timeoutMs ?? 5000, () => `port ${name} in the monitor`);
    }
    return this.write(() => {
      const portUuid = this.names.Port.get(name);
      if (!portUuid) return { ops: [], done: () => false };
      const ops: Operation[] = [this.present('Port', portUuid, 'name', name)];
      // the index, not a scan of the bridge's port set: that set has every pod's port, and a burst deletes hundreds.
      // A port is on one bridge (ovs-vswitchd refuses a port in two; upsertPortOps assumes the same).
      const bridge = this.bridgeOfPort.get(portUuid);
      const bridges = bridge !== undefined && this.row('Bridge', bridge) ? [bridge] : [];
      for (const b of bridges) ops.push(mutate('Bridge', byUuid(b), [['ports', 'delete', set([uuid(portUuid)])]]));
      // The port's own QoS (ours, used by no other port) goes with it; Port/Interface are garbage-collected.
      const port = this.row('Port', portUuid)!;
      const qos = uuidOf(port.qos);
      if (qos && this.ownsQos(qos) && this.qosUsers(qos).every((p) => p === portUuid)) {
        ops.push(update('Port', byUuid(portUuid), { qos: optional(undefined) }));
        ops.push(...this.deleteQosOps([qos]));
      }
      if (bridges.length === 0) ops.push(del('Port', byUuid(portUuid))); // orphan: delete explicitly
      return { ops, settled: () => !this.names.Port.has(name), done: () => true };
    }, opts);
  }

  // ---- bridges ----------------------------------------------------------------------------------------------

  async ensureBridge(spec: BridgeSpec, opts: ApplyOptions = {}): Promise<BridgeInfo> {
    const ids = { ...spec.externalIds, vendor: VENDOR };
    return this.write(() => {
      const u = this.names.Bridge.get(spec.name);
      const ops: Operation[] = [];
      if (u) {
        ops.push(this.present('Bridge', u, 'name', spec.name));
        const row: Row = {};
        if (spec.datapathType !== undefined) row.datapath_type = spec.datapathType;
        if (spec.failMode !== undefined) row.fail_mode = optional(spec.failMode);
        if (Object.keys(row).length) ops.push(update('Bridge', byUuid(u), row));
        ops.push(...OvsVswitch.mapSet('Bridge', byUuid(u), 'external_ids', ids));
        if (spec.otherConfig) ops.push(...OvsVswitch.mapSet('Bridge', byUuid(u), 'other_config', spec.otherConfig));
      } else {
        const other: Record<string, string> = { ...spec.otherConfig };
        if (spec.hwaddrIfNew) other.hwaddr = spec.hwaddrIfNew;
        ops.push(this.absent('Bridge', 'name', spec.name), this.absent('Port', 'name', spec.name), this.absent('Interface', 'name', spec.name));
        ops.push(insert('Interface', { name: spec.name, type: 'internal' }, 'iface'));
        ops.push(insert('Port', { name: spec.name, interfaces: set([namedUuid('iface')]) }, 'port'));
        ops.push(insert('Bridge', {
          name: spec.name, ports: set([namedUuid('port')]), external_ids: map(ids), other_config: map(other),
          ...(spec.datapathType !== undefined ? { datapath_type: spec.datapathType } : {}),
          ...(spec.failMode !== undefined ? { fail_mode: optional(spec.failMode) } : {}),
        }, 'br'));
        ops.push(mutate('Open_vSwitch', [], [['bridges', 'insert', set([namedUuid('br')])]]));
      }
      return { ops, settled: (r) => this.insertedVisible(ops, r), done: () => this.getBridge(spec.name)! };
    }, opts);
  }

  async deleteBridge(name: string, opts: ApplyOptions = {}): Promise<boolean> {
    return this.write(() => {
      const u = this.names.Bridge.get(name);
      if (!u) return { ops: [], done: () => false };
      if (strMap(this.row('Bridge', u)!.external_ids).vendor !== VENDOR) {
        throw agentError('KOA_OVSDB', `delete bridge ${name}`, 'the bridge is not owned by kube-ovn (external_ids:vendor)');
      }
      const ops: Operation[] = [this.present('Bridge', u, 'name', name), mutate('Open_vSwitch', [], [['bridges', 'delete', set([uuid(u)])]])];
      return { ops, settled: () => !this.names.Bridge.has(name), done: () => true };
    }, opts);
  }

  async setOvsExternalIds(setKeys: Readonly<Record<string, string>>, remove: readonly string[] = [], opts: ApplyOptions = {}): Promise<void> {
    const want = { ...setKeys };
    await this.write(() => {
      const ops = OvsVswitch.mapSet('Open_vSwitch', [], 'external_ids', want, remove.filter((k) => !(k in want)));
      return {
        ops,
        settled: () => { const cur = this.getOvsExternalIds(); return Object.entries(want).every(([k, v]) => cur[k] === v) && remove.every((k) => k in want || !(k in cur)); },
        done: () => undefined,
      };
    }, opts);
  }

  // ---- QoS (§3.7) -------------------------------------------------------------------------------------------

  /** Rows we own: vendor=kube-ovn, or the upstream pod QoS shape (iface-id + pod keys). */
  private ownsQos(u: string): boolean { return this.owned(this.row('QoS', u)); }
  private owned(r: Row | undefined): boolean {
    if (!r) return false;
    const ids = strMap(r.external_ids);
    return ids.vendor === VENDOR || ('iface-id' in ids && 'pod' in ids);
  }

  private qosUsers(qos: string): string[] {
    const out: string[] = [];
    for (const [u, r] of this.client.replica.rows('Port')) if (uuidOf(r.qos) === qos) out.push(u);
    return out;
  }

  /** Deletes the QoS rows and their queues that no other (surviving) QoS uses. */
  private deleteQosOps(qosUuids: string[]): Operation[] {
    const ops: Operation[] = [];
    const dying = new Set(qosUuids);
    const queues = new Set<string>();
    for (const q of qosUuids) {
      ops.push(del('QoS', byUuid(q)));
      for (const [, v] of mapEntriesSafe(this.row('QoS', q)?.queues)) if (isUuid(v)) queues.add(v[1]);
    }
    for (const [u, r] of this.client.replica.rows('QoS')) {
      if (dying.has(u)) continue;
      for (const [, v] of mapEntriesSafe(r.queues)) if (isUuid(v)) queues.delete(v[1]);
    }
    for (const q of queues) if (this.owned(this.row('Queue', q))) ops.push(del('Queue', byUuid(q)));
    return ops;
  }

  private qosOf(ifaceId: string, type?: string): string | undefined {
    for (const [u, r] of this.client.replica.rows('QoS')) {
      if (strMap(r.external_ids)['iface-id'] === ifaceId && (type === undefined || str(r.type) === type)) return u;
    }
    return undefined;
  }

  async setIngressPolicing(ifaceId: string, rateMbps: number, burstMbit?: number, opts: ApplyOptions = {}): Promise<number> {
    checkRate('egress rate', rateMbps);
    checkRate('egress burst', burstMbit);
    const rate = rateMbps * 1000;
    const burst = policingBurstKbit(rateMbps, burstMbit);
    return this.write(() => {
      const targets = this.findInterfaces({ 'iface-id': ifaceId });
      const ops = targets.map((i) => update('Interface', byUuid(i.uuid), { ingress_policing_rate: rate, ingress_policing_burst: burst }));
      return {
        ops,
        settled: () => targets.every((t) => this.getInterface(t.name)?.ingressPolicingRate === rate),
        done: () => targets.length,
      };
    }, opts);
  }

  async setHtbQos(spec: HtbSpec, opts: ApplyOptions = {}): Promise<QosResult> {
    checkRate('ingress rate', spec.rateMbps);
    checkRate('ingress burst', spec.burstMbit);
    const ids = { 'iface-id': spec.ifaceId, pod: spec.pod, vendor: VENDOR };
    return this.write((): Plan<QosResult> => {
      const portUuid = this.names.Port.get(spec.port);
      const qosUuid = this.qosOf(spec.ifaceId);
      const qos = this.row('QoS', qosUuid);
      const queueUuid = qos ? mapEntriesSafe(qos.queues).map(([, v]) => v).filter(isUuid).map((v) => v[1])[0] : undefined;
      const queue = this.row('Queue', queueUuid);
      if (spec.rateMbps === 0) {
        if (!qosUuid || str(qos!.type) !== 'linux-htb') return { ops: [], done: () => 'unchanged' };
        // Rate back to 0: unbind and destroy (the queue would have an empty other_config).
        const ops: Operation[] = [];
        for (const p of this.qosUsers(qosUuid)) ops.push(update('Port', byUuid(p), { qos: optional(undefined) }));
        ops.push(...this.deleteQosOps([qosUuid]));
        return { ops, settled: () => !this.row('QoS', qosUuid), done: () => 'removed' };
      }
      if (!portUuid) throw agentError('KOA_OVSDB', `set QoS on ${spec.port}`, 'no such port');
      const cfg = htbQueueConfig(spec.rateMbps, spec.burstMbit);
      const cur = queue ? strMap(queue.other_config) : {};
      if (qos && str(qos.type) === 'linux-htb' && queue && cur['max-rate'] === cfg['max-rate'] && cur.burst === cfg.burst
        && uuidOf(this.row('Port', portUuid)!.qos) === qosUuid) {
        return { ops: [], done: () => 'unchanged' };
      }
      const ops: Operation[] = [];
      let queueRef: Atom;
      if (queueUuid && queue) {
        ops.push(this.present('Queue', queueUuid, '_uuid', uuid(queueUuid)));
        ops.push(...OvsVswitch.mapSet('Queue', byUuid(queueUuid), 'other_config', cfg), ...OvsVswitch.mapSet('Queue', byUuid(queueUuid), 'external_ids', ids));
        queueRef = uuid(queueUuid);
      } else {
        ops.push(insert('Queue', { other_config: map(cfg), external_ids: map(ids) }, 'queue'));
        queueRef = namedUuid('queue');
      }
      let qosRef: Atom;
      if (qosUuid) {
        ops.push(this.present('QoS', qosUuid, '_uuid', uuid(qosUuid)));
        // An existing netem QoS is switched to htb (htb wins); its netem keys go.
        ops.push(update('QoS', byUuid(qosUuid), { type: 'linux-htb', queues: map([[0, queueRef]]), other_config: map({}) }));
        ops.push(...OvsVswitch.mapSet('QoS', byUuid(qosUuid), 'external_ids', ids));
        qosRef = uuid(qosUuid);
      } else {
        ops.push(wait('QoS', [cond('external_ids', 'includes', map({ 'iface-id': spec.ifaceId }))], ['_uuid'], '==', [], 0));
        ops.push(insert('QoS', { type: 'linux-htb', queues: map([[0, queueRef]]), external_ids: map(ids) }, 'qos'));
        qosRef = namedUuid('qos');
      }
      ops.push(update('Port', byUuid(portUuid), { qos: set([qosRef]) }));
      return {
        ops,
        settled: (r) => this.insertedVisible(ops, r) && str(this.row('QoS', this.qosOf(spec.ifaceId))?.type) === 'linux-htb',
        done: () => 'applied',
      };
    }, opts);
  }

  async setNetemQos(spec: NetemSpec, opts: ApplyOptions = {}): Promise<QosResult> {
    const cfg = netemConfig(spec);
    const ids = { 'iface-id': spec.ifaceId, pod: spec.pod, vendor: VENDOR };
    return this.write((): Plan<QosResult> => {
      const existing = this.qosOf(spec.ifaceId);
      const row = this.row('QoS', existing);
      if (row && str(row.type) === 'linux-htb') return { ops: [], done: () => 'skipped-htb-present' };
      const portUuid = this.names.Port.get(spec.port);
      const ops: Operation[] = [];
      if (existing) {
        const cur = strMap(row!.other_config);
        const same = Object.keys(cur).length === Object.keys(cfg).length && Object.entries(cfg).every(([k, v]) => cur[k] === v);
        if (same && (Object.keys(cfg).length === 0 || uuidOf(this.row('Port', portUuid)?.qos) === existing)) return { ops: [], done: () => 'unchanged' };
        for (const p of this.qosUsers(existing)) ops.push(update('Port', byUuid(p), { qos: optional(undefined) }));
        ops.push(...this.deleteQosOps([existing]));
      }
      if (Object.keys(cfg).length === 0) return { ops, settled: () => !this.qosOf(spec.ifaceId), done: () => (existing ? 'removed' : 'unchanged') };
      if (!portUuid) throw agentError('KOA_OVSDB', `set netem on ${spec.port}`, 'no such port');
      if (!existing) ops.push(wait('QoS', [cond('external_ids', 'includes', map({ 'iface-id': spec.ifaceId }))], ['_uuid'], '==', [], 0));
      ops.push(insert('QoS', { type: 'linux-netem', other_config: map(cfg), external_ids: map(ids) }, 'qos'));
      ops.push(update('Port', byUuid(portUuid), { qos: set([namedUuid('qos')]) }));
      return { ops, settled: (r) => this.insertedVisible(ops, r), done: () => 'applied' };
    }, opts);
  }

  async deletePodQos(pod: string, opts: ApplyOptions = {}): Promise<number> {
    return this.gc((ids) => ids.pod === pod, opts);
  }

  async gcQos(opts: ApplyOptions = {}): Promise<number> {
    return this.gc(() => true, opts);
  }

  /** Deletes our unreferenced QoS rows (and then our unreferenced Queue rows) matching `pick`. */
  private gc(pick: (ids: Record<string, string>) => boolean, opts: ApplyOptions): Promise<number> {
    return this.write(() => {
      const picked = (table: 'QoS' | 'Queue'): string[] => {
        const out: string[] = [];
        for (const [u, r] of this.client.replica.rows(table)) if (this.owned(r) && pick(strMap(r.external_ids))) out.push(u);
        return out;
      };
      const qosPicked = picked('QoS');
      const queuePicked = picked('Queue');
      // Every DEL asks for its pod's rows, which its port's delete has usually taken already: with nothing picked,
      // the scan of every Port row below (hundreds on a busy node, for each of a burst's DELs) is skipped.
      if (qosPicked.length === 0 && queuePicked.length === 0) return { ops: [], done: () => 0 };
      const referenced = new Set<string>();
      if (qosPicked.length > 0) for (const [, r] of this.client.replica.rows('Port')) { const q = uuidOf(r.qos); if (q) referenced.add(q); }
      const qosDead = qosPicked.filter((u) => !referenced.has(u));
      const usedQueues = new Set<string>();
      for (const [u, r] of this.client.replica.rows('QoS')) {
        if (qosDead.includes(u)) continue;
        for (const [, v] of mapEntriesSafe(r.queues)) if (isUuid(v)) usedQueues.add(v[1]);
      }
      const ops: Operation[] = [];
      for (const q of qosDead) {
        // Guard: still unreferenced at commit time.
        ops.push(wait('Port', [cond('qos', 'includes', uuid(q))], ['_uuid'], '==', [], 0), del('QoS', byUuid(q)));
      }
      const queueDead = queuePicked.filter((u) => !usedQueues.has(u));
      for (const q of queueDead) ops.push(del('Queue', byUuid(q)));
      const n = qosDead.length + queueDead.length;
      return { ops, settled: () => [...qosDead].every((q) => !this.row('QoS', q)), done: () => n };
    }, opts);
  }
}

function mapEntriesSafe(v: Value | undefined): Array<[Atom, Atom]> {
  if (!Array.isArray(v) || v[0] !== 'map') return [];
  return v[1] as Array<[Atom, Atom]>;
}

function intSet(v: Value | undefined): number[] {
  if (v === undefined) return [];
  if (Array.isArray(v) && v[0] === 'set') return (v[1] as Atom[]).map(Number);
  return [Number(v)];
}

