// Shared set-up of the underlay unit tests: a node namespace in the fake netlink with a "NIC" that has addresses and
// routes (default included), a fake Vswitch whose bridges get a kernel link the way vswitchd makes one, and an
// in-memory journal.
import { FakeNetlink } from '../../../agent/src/datapath/netlink/fake.ts';
import { FakeVswitch } from '../../../agent/src/datapath/ovsdb/fake.ts';
import type { ApplyOptions, BridgeInfo, BridgePortSpec, BridgeSpec, PortInfo } from '../../../agent/src/datapath/ovsdb/port.ts';
import { Reconciler } from '../../../agent/src/node/reconciler.ts';
import type { Journal, MoveRecord } from '../../../agent/src/node/underlay/journal.ts';
import { planUnderlay } from '../../../agent/src/node/underlay/plan.ts';
import { underlaySpec } from '../../../agent/src/node/underlay/reconciler.ts';
import type { ProviderNetwork, Vlan } from '../../../agent/src/node/underlay/types.ts';

export const NS = '/var/run/netns/node1';
export const NIC = 'eth1';
export const NIC_MAC = '52:54:00:12:34:56';

export class MemoryJournal implements Journal {
  readonly records = new Map<string, MoveRecord>();
  readonly writes: MoveRecord[] = [];
  async read(pn: string): Promise<MoveRecord | undefined> { return this.records.get(pn); }
  async write(rec: MoveRecord): Promise<void> { this.records.set(rec.pn, structuredClone(rec)); this.writes.push(rec); }
  async clear(pn: string): Promise<void> { this.records.delete(pn); }
  async list(): Promise<MoveRecord[]> { return [...this.records.values()]; }
}

/** A FakeVswitch whose bridges and internal ports have a kernel device in the node namespace (a tap, as with the
 *  userspace datapath). */
export class LinkedVswitch extends FakeVswitch {
  readonly nl: FakeNetlink;
  readonly ns: string;
  constructor(nl: FakeNetlink, ns: string) { super({ bridges: ['br-int'] }); this.nl = nl; this.ns = ns; }
  override async ensureBridge(spec: BridgeSpec, opts?: ApplyOptions): Promise<BridgeInfo> {
    const b = await super.ensureBridge(spec, opts);
    if (!(await this.nl.getLink(this.ns, spec.name))) this.nl.addLink(this.ns, { name: spec.name, kind: 'tun', tunType: 'tap' });
    // the bridge's interface row (vswitchd gives it an ofport)
    if (!this.interfaces.has(spec.name)) await this.addInternalPort({ bridge: spec.name, name: spec.name });
    return b;
  }
  override async deleteBridge(name: string, opts?: ApplyOptions): Promise<boolean> {
    const ports = this.getBridge(name)?.ports ?? [];
    const r = await super.deleteBridge(name, opts);
    if (r) {
      await this.nl.deleteLink(this.ns, name, { ignoreMissing: true });
      for (const p of ports) if (p !== name && this.#internal.delete(p)) await this.nl.deleteLink(this.ns, p, { ignoreMissing: true });
    }
    return r;
  }
  readonly #internal = new Set<string>();
  override async addBridgePort(spec: BridgePortSpec, opts?: ApplyOptions): Promise<PortInfo> {
    const p = await super.addBridgePort(spec, opts);
    if (spec.type === 'internal' && !(await this.nl.getLink(this.ns, spec.name))) {
      this.nl.addLink(this.ns, { name: spec.name, kind: 'tun', tunType: 'tap', ...(spec.mac ? { mac: spec.mac } : {}) });
      this.#internal.add(spec.name);
    }
    return p;
  }
  override async deletePort(name: string, opts?: ApplyOptions): Promise<boolean> {
    const r = await super.deletePort(name, opts);
    if (this.#internal.delete(name)) await this.nl.deleteLink(this.ns, name, { ignoreMissing: true });
    return r;
  }
}

export async function makeNode(): Promise<{ nl: FakeNetlink; vs: LinkedVswitch; journal: MemoryJournal }> {
  const nl = new FakeNetlink();
  nl.addNamespace(NS);
  nl.addLink(NS, { name: NIC, kind: 'veth', mac: NIC_MAC, mtu: 1500 });
  await nl.setLink(NS, NIC, { up: true });
  await nl.addAddress(NS, NIC, { cidr: '172.30.50.10/24' });
  await nl.addAddress(NS, NIC, { cidr: '172.30.60.10/24' });
  await nl.addRoute(NS, { family: 4, gateway: '172.30.50.1', dev: NIC });
  await nl.addRoute(NS, { dst: '10.200.0.0/16', gateway: '172.30.50.1', dev: NIC, metric: 100 });
  await nl.addRoute(NS, { dst: '10.201.0.0/16', dev: NIC, scope: 253 });
  return { nl, vs: new LinkedVswitch(nl, NS), journal: new MemoryJournal() };
}

/** What `ip addr` / `ip route` would show for a link, minus indexes: comparable across links. */
export async function linkState(nl: FakeNetlink, dev: string): Promise<{ mac: string | undefined; mtu: number; up: boolean; addrs: string[]; routes: string[] }> {
  const l = await nl.getLink(NS, dev);
  if (!l) return { mac: undefined, mtu: 0, up: false, addrs: [], routes: [] };
  const addrs = (await nl.listAddresses(NS, { dev })).map((a) => `${a.address}/${a.prefixLen} flags=${a.flags} scope=${a.scope}`).sort();
  const routes = (await nl.listRoutes(NS, { table: 0 })).filter((r) => r.oif === l.index)
    .map((r) => JSON.stringify({ ...r, oif: undefined })).sort();
  return { mac: l.mac, mtu: l.mtu, up: l.up, addrs, routes };
}

/** Every original address is on the NIC or the bridge, and a default route exists on one of them. */
export async function nodeReachable(nl: FakeNetlink, bridge: string): Promise<string | true> {
  const nic = await nl.getLink(NS, NIC);
  const br = await nl.getLink(NS, bridge);
  const idx = new Set([nic?.index, br?.index].filter((x) => x !== undefined));
  const addrs = (await nl.listAddresses(NS)).filter((a) => idx.has(a.index)).map((a) => `${a.address}/${a.prefixLen}`);
  for (const want of ['172.30.50.10/24', '172.30.60.10/24']) if (!addrs.includes(want)) return `address ${want} on neither link`;
  const def = (await nl.listRoutes(NS)).some((r) => r.dst === null && r.oif !== undefined && idx.has(r.oif));
  return def ? true : 'no default route';
}

/** One provider network `phys` on node n1 through its reconciler, Kubernetes kept in memory (labels, annotations,
 *  Events). */
export async function setupNetwork(spec: ProviderNetwork['spec'] = { defaultInterface: NIC }) {
  const node = await makeNode();
  const state = {
    pn: { metadata: { name: 'phys' }, spec, status: { vlans: [] as string[] } } as ProviderNetwork | undefined,
    vlans: [] as Vlan[],
    labels: {} as Record<string, string>,
    annotations: {} as Record<string, string>,
    events: [] as string[],
  };
  let macs = 0;
  const spec_ = underlaySpec({
    pn: 'phys', nodeName: 'n1', netns: NS, netlink: () => node.nl, vswitch: () => node.vs, journal: node.journal,
    desired: () => planUnderlay({ pnName: 'phys', pn: state.pn, vlans: state.vlans, node: { metadata: { name: 'n1', labels: state.labels } }, nodeName: 'n1', macLearningFallback: false }),
    nodeMeta: () => ({ labels: state.labels, annotations: state.annotations }),
    patchNode: async (p) => {
      for (const [key, v] of Object.entries(p.labels ?? {})) { if (v === null) delete state.labels[key]; else state.labels[key] = v; }
      for (const [key, v] of Object.entries(p.annotations ?? {})) { if (v === null) delete state.annotations[key]; else state.annotations[key] = v; }
    },
    event: (type, reason, message) => { state.events.push(`${type} ${reason} ${message}`); },
    datapathType: () => 'netdev',
    randomMac: () => `02:00:00:00:00:${(macs++).toString(16).padStart(2, '0')}`,
  });
  const r = new Reconciler(spec_, { resyncMs: 0 });
  return { ...node, state, r, spec: spec_ };
}
