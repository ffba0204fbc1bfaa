// Static FDB entries for u2o VLAN subnets (spec §5.17): on a provider bridge, the subnet's u2oInterconnectionMAC
// (its OVN router port) is learned on the localnet patch port `patch-localnet.<subnet>-to-br-int`, so frames from
// the physical network to the router never flood while the MAC ages out of the table (300 s). One reconciler for
// the node: desired = every VLAN subnet with u2oInterconnection and a MAC, through its Vlan (id, provider) and
// ovn-bridge-mappings to a bridge; observed = the static entries of `fdb/show` on those bridges; a static entry on
// a localnet patch port that nothing wants goes (another subnet's old MAC, a subnet deleted), and so does a static
// entry for a wanted MAC and VLAN on another port (the MAC moves); any other entry is left alone. No pass runs before
// the Subnet, Vlan and ProviderNetwork watches have listed: an empty cache would look like "nothing wanted". The calls go to ovs-vswitchd's control socket (ovsdb/unixctl.ts). A vswitchd
// restart forgets the entries: the 100 s resync (below the aging time) and the patch port's OVSDB event put them back.

import type { Subnet } from '../../k8s/types.ts';
import type { Vswitch } from '../../datapath/ovsdb/port.ts';
import type { Unixctl } from '../../datapath/ovsdb/unixctl.ts';
import type { ReconcileSpec } from '../reconciler.ts';
import type { Vlan } from './types.ts';

export const FDB_RESYNC_MS = 100_000;
export const localnetPort = (subnet: string): string => `patch-localnet.${subnet}-to-br-int`;
const LOCALNET = /^patch-localnet\..+-to-br-int$/;

export interface FdbEntry { readonly bridge: string; readonly port: string; readonly vlan: number; readonly mac: string }
export interface ShownEntry { readonly port: string; readonly vlan: number; readonly mac: string; readonly static: boolean }

/** Parses `fdb/show` (" port  VLAN  MAC  Age" rows; the port is an OpenFlow number or LOCAL). Pure. */
export function parseFdbShow(text: string): ShownEntry[] {
  const out: ShownEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\S+)\s+(\d+)\s+([0-9a-f]{2}(?::[0-9a-f]{2}){5})\s+(\S+)\s*$/i.exec(line);
    if (m) out.push({ port: m[1]!, vlan: Number(m[2]), mac: m[3]!.toLowerCase(), static: m[4] === 'static' });
  }
  return out;
}

/** The entries the subnets want (pure): `bridgeOf(provider)` is ovn-bridge-mappings. */
export function desiredFdb(subnets: readonly Subnet[], vlans: readonly Vlan[], bridgeOf: (provider: string) => string | undefined): FdbEntry[] {
  const byName = new Map(vlans.map((v) => [v.metadata?.name ?? '', v]));
  const out: FdbEntry[] = [];
  for (const s of subnets) {
    const name = s.metadata?.name;
    const mac = s.status?.u2oInterconnectionMAC;
    if (!name || !s.spec?.vlan || s.spec.u2oInterconnection !== true || typeof mac !== 'string' || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) continue;
    const vlan = byName.get(s.spec.vlan);
    const provider = vlan?.spec?.provider;
    const bridge = provider ? bridgeOf(provider) : undefined;
    if (!vlan || !bridge) continue;
    out.push({ bridge, port: localnetPort(name), vlan: vlan.spec?.id ?? 0, mac: mac.toLowerCase() });
  }
  return out;
}

export interface FdbObserved {
  /** static entries of the bridges looked at, the port as an interface name (`#<ofport>` when unknown) */
  readonly entries: readonly FdbEntry[];
  /** ports with an OpenFlow number (an entry on a port vswitchd has not numbered yet would fail) */
  readonly numbered: ReadonlySet<string>;
}

export type FdbOp =
  | { readonly op: 'add'; readonly entry: FdbEntry }
  | { readonly op: 'del'; readonly entry: FdbEntry };

const k = (e: FdbEntry): string => `${e.bridge}|${e.vlan}|${e.mac}`;

/** Pure: deletes first (a MAC moving to another port), then adds. */
export function diffFdb(want: readonly FdbEntry[], o: FdbObserved): FdbOp[] {
  const have = new Map(o.entries.map((e) => [k(e), e]));
  const wanted = new Map(want.filter((e) => o.numbered.has(e.port)).map((e) => [k(e), e]));
  const dels: FdbOp[] = [];
  const adds: FdbOp[] = [];
  for (const e of o.entries) {
    const w = wanted.get(k(e));
    if (w ? w.port !== e.port : LOCALNET.test(e.port)) dels.push({ op: 'del', entry: e });
  }
  for (const w of wanted.values()) if (have.get(k(w))?.port !== w.port) adds.push({ op: 'add', entry: w });
  return [...dels, ...adds];
}

export interface FdbDeps {
  /** the caches the desired state comes from have listed once */
  readonly synced: () => boolean;
  readonly subnets: () => readonly Subnet[];
  readonly vlans: () => readonly Vlan[];
  /** ovn-bridge-mappings */
  readonly bridgeMappings: () => ReadonlyMap<string, string>;
  readonly vswitch: () => Vswitch;
  readonly unixctl: Unixctl;
}

/** The wanted entries as one comparable string (to trigger a pass only when they change). */
export function wantedKey(d: Pick<FdbDeps, 'subnets' | 'vlans' | 'bridgeMappings'>): string {
  const m = d.bridgeMappings();
  return desiredFdb(d.subnets(), d.vlans(), (p) => m.get(p)).map((e) => `${e.bridge} ${e.port} ${e.vlan} ${e.mac}`).sort().join('\n');
}

export function fdbSpec(d: FdbDeps): ReconcileSpec<FdbEntry[] | null, FdbObserved, FdbOp> {
  return {
    name: 'underlay-fdb',
    desired: () => {
      if (!d.synced()) return null;
      const m = d.bridgeMappings();
      return desiredFdb(d.subnets(), d.vlans(), (p) => m.get(p));
    },
    async observe(): Promise<FdbObserved> {
      if (!d.synced()) return { entries: [], numbered: new Set() };
      const vs = d.vswitch();
      const bridges = new Set([...d.bridgeMappings().values()].filter((b) => vs.getBridge(b)));
      const entries: FdbEntry[] = [];
      const numbered = new Set<string>();
      for (const bridge of bridges) {
        const byOfport = new Map<string, string>();
        for (const p of vs.listPorts(bridge)) {
          const ofport = vs.getInterface(p)?.ofport;
          if (ofport !== undefined && ofport > 0) { byOfport.set(String(ofport), p); numbered.add(p); }
        }
        for (const e of parseFdbShow(await d.unixctl.call('fdb/show', [bridge]))) {
          if (e.static) entries.push({ bridge, port: byOfport.get(e.port) ?? `#${e.port}`, vlan: e.vlan, mac: e.mac });
        }
      }
      return { entries, numbered };
    },
    diff: (want, o) => (want === null ? [] : diffFdb(want, o)),
    describe: (op) => `fdb ${op.op} ${op.entry.bridge} ${op.entry.port} vlan ${op.entry.vlan} ${op.entry.mac}`,
    async apply(ops) {
      for (const { op, entry: e } of ops) {
        if (op === 'add') await d.unixctl.call('fdb/add', [e.bridge, e.port, String(e.vlan), e.mac]);
        else await d.unixctl.call('fdb/del', [e.bridge, String(e.vlan), e.mac]);
      }
    },
  };
}
