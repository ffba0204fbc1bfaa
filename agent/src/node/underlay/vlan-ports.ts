// VLAN internal ports (spec §6.2 steps 6 and 11, §6.3): once the NIC is a trunk port of its provider bridge, the
// kernel's 802.1Q links on it no longer receive anything (OVS takes the NIC's frames first). So the addresses and
// routes of each VLAN interface the provider network names (`vlanInterfaces`, or with `preserveVlanInterfaces`
// every `<nic>.<id>` 802.1Q link) move to an OVS internal port of the bridge with the access tag `<id>`, and move
// back when the port goes. Both moves are journaled (journal.ts) in the order of the NIC move: the target gets every
// address and route before the source loses one, so a crash at any instant leaves each address on one of the two.
//
// Upstream picks the source of a restore from the port's name (`br-<nic>-vlan<id>` -> `<nic>.<id>`), which names
// the wrong link when the provider network is not called like its NIC; the port records its source instead
// (external_ids:provider-vlan-interface).
import type { MoveRecord } from './journal.ts';
import { vlanPortName, vlanPortShape, vlanSubinterface } from './plan.ts';
import { addressSpec, byScope, EMPTY_SNAPSHOT, errorText, journalStep, linkNamed, routeSpec, snapshotLink, type TransferDeps } from './transfer.ts';

/** The external id that records which kernel link a VLAN internal port took its addresses from. */
export const VLAN_SOURCE_ID = 'provider-vlan-interface';

/** A VLAN interface named by the provider network, as this node has it. */
export interface VlanLinkObs {
  readonly name: string;
  readonly kind: string | undefined;
  readonly vlanId: number | undefined;
  /** an 802.1Q link: whether its parent is the provider network's NIC (undefined for other kinds) */
  readonly onNic?: boolean;
  /** non-link-local addresses still on it */
  readonly addresses: number;
}

/** A VLAN internal port on the bridge (internal, and named like one or recording its source). */
export interface VlanPortObs {
  readonly name: string;
  readonly tag: number | undefined;
  /** external_ids:provider-vlan-interface (upstream does not record it) */
  readonly vlanIf: string | undefined;
  readonly ours: boolean;
}

export interface VlanMove { readonly vlanIf: string; readonly id: number; readonly port: string }
export interface VlanRestore { readonly vlanIf: string; readonly id: number; readonly port: string; readonly parent: string }

export type VlanPlan =
  | { readonly error: string }
  | {
    readonly error?: undefined;
    /** the NIC port's trunks: the network's plus every VLAN interface's id */
    readonly trunks: readonly number[];
    /** VLAN interfaces whose port is missing, untagged, unrecorded, or whose link holds addresses again */
    readonly moves: readonly VlanMove[];
    /** ports of ours that no VLAN interface wants any more: their state goes back to the kernel link */
    readonly restores: readonly VlanRestore[];
    /** how many VLAN interfaces the network has on this node (the `vlan_interfaces` label) */
    readonly count: number;
  };

/**
 * Pure: the VLAN interfaces' ports from what the node shows. `links` holds the named links that exist (the spec's
 * entries first, then the detected 802.1Q links), `named` every spec entry (present or not, to validate names).
 */
export function planVlanPorts(p: {
  bridge: string; nic: string; port: string; trunks: readonly number[]; exchangeLinkName: boolean; preserve: boolean;
  named: readonly string[]; links: readonly VlanLinkObs[]; ports: readonly VlanPortObs[];
}): VlanPlan {
  for (const n of p.named) {
    if (!vlanSubinterface(n)) return { error: `vlanInterfaces: ${JSON.stringify(n)} is not named <interface>.<VLAN id 1-4094>` };
  }
  // the rename takes the NIC down, and its VLAN links with it (renameNic refuses while they hold addresses); the
  // rename back on removal would then be refused for good
  if (p.exchangeLinkName && p.links.length) return { error: `vlanInterfaces and preserveVlanInterfaces cannot be used with exchangeLinkName: renaming ${p.nic} would take its VLAN links down` };
  const byId = new Map<number, VlanLinkObs>();
  const wanted: (VlanLinkObs & { id: number })[] = [];
  for (const l of p.links) {
    const id = vlanSubinterface(l.name)!.id;
    if (l.name === p.nic || l.name === p.port) return { error: `vlanInterfaces: ${l.name} is the provider network's own interface` };
    if (l.kind === 'vlan' && l.vlanId !== undefined && l.vlanId !== id) return { error: `vlanInterfaces: ${l.name} is an 802.1Q link with id ${l.vlanId}, not ${id}` };
    // its frames leave through another NIC: a port of this bridge is not where its addresses belong
    if (l.onNic === false) return { error: `vlanInterfaces: ${l.name} is an 802.1Q link on another interface than ${p.nic}` };
    const other = byId.get(id);
    if (other && other.name !== l.name) return { error: `vlanInterfaces: VLAN id ${id} is claimed by both ${other.name} and ${l.name}` };
    if (other) continue;
    byId.set(id, l);
    wanted.push({ ...l, id });
  }
  const moves: VlanMove[] = [];
  const ports = new Map(p.ports.map((x) => [x.name, x]));
  for (const w of wanted) {
    const port = vlanPortName(p.bridge, w.id);
    const have = ports.get(port);
    if (have && !have.ours) return { error: `port ${port} on ${p.bridge} is not kube-ovn's: not adopted for ${w.name}` };
    if (have?.vlanIf !== undefined && have.vlanIf !== w.name) return { error: `port ${port} holds the state of ${have.vlanIf}, not of ${w.name}` };
    if (!have || have.tag !== w.id || have.vlanIf === undefined || w.addresses > 0) moves.push({ vlanIf: w.name, id: w.id, port });
  }
  // a port stays while the network still asks for its interface, even when the link itself is gone (an operator
  // deleted it, or it is not there yet): restoring would make the link again, and the next pass would move it back
  const asked = (vlanIf: string | undefined, id: number | undefined): boolean => (vlanIf !== undefined
    ? p.named.includes(vlanIf) || (p.preserve && vlanSubinterface(vlanIf)?.parent === p.nic)
    : p.named.some((n) => vlanSubinterface(n)?.id === id));
  const keep = new Set(wanted.map((w) => vlanPortName(p.bridge, w.id)));
  const restores = p.ports.filter((x) => x.ours && !keep.has(x.name) && !asked(x.vlanIf, portId(x)))
    .map((x) => restoreOf(x, { bridge: p.bridge, nic: p.nic, port: p.port, named: p.named }));
  // the ids of every VLAN interface, moved or to move, including kept ports whose link is gone: they still serve it
  const restored = new Set(restores.map((r) => r.port));
  const ids = new Set([...byId.keys(), ...p.ports.filter((x) => x.ours && !restored.has(x.name)).map(portId).filter((x): x is number => x !== undefined)]);
  const trunks = [...new Set([...p.trunks, ...ids])].sort((a, b) => a - b);
  return { trunks, moves, restores, count: ids.size };
}

/**
 * Where a port's state goes back to (§6.3): the link it recorded, else the one spec entry with its VLAN id, else
 * `<nic>.<id>`. The parent of a link to create is its name's parent, except that after exchangeLinkName the bridge
 * has the NIC's name and the NIC is the bridge's port.
 */
export function restoreOf(x: VlanPortObs, ctx: { bridge: string; nic: string; port: string; named: readonly string[] }): VlanRestore {
  const id = portId(x) ?? 0;
  const fromSpec = ctx.named.filter((n) => vlanSubinterface(n)?.id === id);
  const vlanIf = x.vlanIf ?? (fromSpec.length === 1 ? fromSpec[0]! : `${ctx.nic}.${id}`);
  const parent = vlanParent(vlanIf) ?? ctx.nic;
  return { vlanIf, id, port: x.name, parent: parent === ctx.bridge ? ctx.port : parent };
}

/** A VLAN port's id: its tag, else the one in its name. */
const portId = (x: VlanPortObs): number | undefined => x.tag ?? vlanPortShape(x.name);

/** The parent in a VLAN link's name (`<parent>.<id>`). */
export const vlanParent = (vlanIf: string): string | undefined => vlanSubinterface(vlanIf)?.parent;

/** Moves a VLAN link's addresses and routes to its internal port (created, tagged, with the link's MAC and MTU). */
export async function vlanTransfer(d: TransferDeps, pn: string, bridge: string, m: VlanMove, rec?: MoveRecord): Promise<void> {
  const { netlink: nl, netns } = d;
  const timeout = d.timeoutMs ?? 10_000;
  const base: MoveRecord = rec ?? { pn, op: 'vlan-transfer', nic: m.vlanIf, bridge, to: m.port, trunks: [m.id], snapshot: await snapshotLink(nl, netns, m.vlanIf), step: 'begin' };
  const s = base.snapshot;
  const port = base.to!;
  await journalStep(d, base, 'vlan-port', async () => {
    await d.vswitch.addBridgePort({
      bridge: base.bridge, name: port, type: 'internal', tag: base.trunks[0]!, externalIds: { [VLAN_SOURCE_ID]: base.nic },
      // the VLAN link's MAC (its parent's): peers' ARP caches stay valid; the Interface column keeps vswitchd from
      // giving the port another one
      ...(s.mac ? { mac: s.mac } : {}),
    }, { wait: true, timeoutMs: timeout });
    await d.vswitch.waitOfport(port, timeout);
    // up as the interface was: an admin-down interface's addresses stay inactive on the port
    await nl.setLink(netns, port, { ...(s.mac ? { mac: s.mac } : {}), ...(s.mtu ? { mtu: s.mtu } : {}), up: s.up });
  });
  await journalStep(d, base, 'addresses-to-port', async () => {
    for (const a of s.addresses) await nl.addAddress(netns, port, addressSpec(a), { replace: true });
  });
  await journalStep(d, base, 'routes-to-port', async () => {
    for (const r of [...s.routes].sort(byScope)) await nl.addRoute(netns, routeSpec(r, port), { replace: true });
  });
  await journalStep(d, base, 'addresses-off-vlan', async () => {
    if (await linkNamed(nl, netns, base.nic)) for (const a of s.addresses) await nl.deleteAddress(netns, base.nic, a.cidr, { ignoreMissing: true });
  });
  await d.journal.clear(pn);
}

/**
 * Gives a VLAN internal port's addresses and routes back to its kernel link and deletes the port (§6.3). A kernel
 * link that is gone is created again as 802.1Q on `parent` first; a port without state is just deleted. When the
 * link cannot be made (no 802.1Q in the kernel, no parent), the port keeps everything and the error says why.
 */
export async function vlanRestore(d: TransferDeps, pn: string, bridge: string, r: VlanRestore, rec?: MoveRecord): Promise<void> {
  const { netlink: nl, netns } = d;
  const timeout = d.timeoutMs ?? 10_000;
  let base = rec;
  if (!base) {
    const snapshot = (await linkNamed(nl, netns, r.port)) ? await snapshotLink(nl, netns, r.port) : EMPTY_SNAPSHOT;
    base = { pn, op: 'vlan-restore', nic: r.vlanIf, bridge, to: r.port, parent: r.parent, trunks: [r.id], snapshot, step: 'begin' };
  }
  const s = base.snapshot;
  const port = base.to!;
  const vlanIf = base.nic;
  if (s.addresses.length || s.routes.length) {
    await journalStep(d, base, 'vlan-link', async () => {
      if (!(await linkNamed(nl, netns, vlanIf))) {
        const parent = base.parent ?? vlanParent(vlanIf) ?? '';
        try {
          await nl.createVlan({ netns, name: vlanIf, parent, id: base.trunks[0]! });
        } catch (e) {
          throw new Error(`${port} keeps its addresses: ${vlanIf} is gone and cannot be made again as VLAN ${base.trunks[0]} on ${parent}: ${errorText(e)}`, { cause: e });
        }
      }
      await nl.setLink(netns, vlanIf, { up: s.up });
    });
    await journalStep(d, base, 'addresses-to-vlan', async () => {
      for (const a of s.addresses) await nl.addAddress(netns, vlanIf, addressSpec(a), { replace: true });
    });
    await journalStep(d, base, 'routes-to-vlan', async () => {
      for (const x of [...s.routes].sort(byScope)) await nl.addRoute(netns, routeSpec(x, vlanIf), { replace: true });
    });
    await journalStep(d, base, 'addresses-off-port', async () => {
      if (await linkNamed(nl, netns, port)) for (const a of s.addresses) await nl.deleteAddress(netns, port, a.cidr, { ignoreMissing: true });
    });
  }
  await journalStep(d, base, 'port-delete', async () => {
    const p = d.vswitch.getPort(port);
    // absent from the replica may mean "not seen yet" (deletePort asks the server); on another bridge: not ours to take
    if (!p || p.bridge === base.bridge || p.bridge === undefined) await d.vswitch.deletePort(port, { wait: true, timeoutMs: timeout });
  });
  await d.journal.clear(pn);
}

/**
 * A VLAN move whose failure (an error, not a crash) is rolled back: the link gets back what the move's snapshot
 * recorded and the port goes. Throws the move's error after the rollback.
 */
export async function vlanTransferOrRollBack(d: TransferDeps, pn: string, bridge: string, m: VlanMove): Promise<void> {
  const snapshot = await snapshotLink(d.netlink, d.netns, m.vlanIf);
  const first: MoveRecord = { pn, op: 'vlan-transfer', nic: m.vlanIf, bridge, to: m.port, trunks: [m.id], snapshot, step: 'begin' };
  // a port that was there before (adopted, or its link got an address back) holds state of its own: a rollback
  // must not delete it; every address is still on the link or the port, so the journal just goes
  const existed = d.vswitch.getPort(m.port) !== undefined;
  try {
    await vlanTransfer(d, pn, bridge, m, first);
  } catch (e) {
    if (existed) {
      await d.journal.clear(pn).catch(() => undefined);
      throw e;
    }
    const parent = vlanParent(m.vlanIf) ?? '';
    try {
      await vlanRestore(d, pn, bridge, { ...m, parent }, { ...first, op: 'vlan-restore', parent, step: 'rollback' });
    } catch (e2) {
      throw new AggregateError([e, e2], `moving ${m.vlanIf} onto ${m.port} failed (${errorText(e)}) and so did the rollback (${errorText(e2)}); the journal keeps the move for the next pass`);
    }
    throw e;
  }
}

