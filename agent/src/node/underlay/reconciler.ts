// One provider network on this node as a reconciler (reconciler.ts shape): desired = planUnderlay over the caches,
// observed = the journal, OVS (bridge, NIC port, Open_vSwitch mappings), the kernel (the NIC) and this Node's labels;
// the diff is a short list of operations that the moves of transfer.ts and a few OVSDB writes apply.
//
// Failures (spec §6.2 step 12): the ready/interface/mtu/vlan_interfaces labels go, the error is written to the Node
// annotation `<pn>.provider-network.kubernetes.io/err_mesg` (upstream aims it at its own pod and misses, §5.11; the
// Node is where `kubectl describe node` shows it), an InitOVSBridgeFailed Event goes to the ProviderNetwork, and
// the reconciler's backoff retries. Success clears the annotation and sends InitOVSBridgeSucceeded when the node
// becomes ready for the provider network.

import type { LinkInfo, Netlink, Netns } from '../../datapath/netlink/port.ts';
import type { BridgeInfo, PortInfo, Vswitch } from '../../datapath/ovsdb/port.ts';
import type { ReconcileSpec, ReconcilerLog } from '../reconciler.ts';
import type { Journal, MoveRecord } from './journal.ts';
import type { NetworkManagerPort, NmMarks } from './network-manager.ts';
import { autoVlanAlias, formatMappings, labelKey, LABEL_KEYS, nodeLabels, parseMappings, vlanPortShape, vlanSubinterface, type UnderlayDesired } from './plan.ts';
import { finishMove } from './moves.ts';
import { isLinkLocal, linkNamed, renameOrRollBack, restoreNic, transferOrRollBack, type TransferDeps } from './transfer.ts';
import { planVlanPorts, restoreOf, VLAN_SOURCE_ID, vlanRestore, vlanTransferOrRollBack, type VlanLinkObs, type VlanMove, type VlanPortObs, type VlanRestore } from './vlan-ports.ts';

export const BRIDGE_MAPPINGS = 'ovn-bridge-mappings';
export const CHASSIS_MAC_MAPPINGS = 'ovn-chassis-mac-mappings';

export interface UnderlayObserved {
  readonly journal: MoveRecord | undefined;
  readonly bridge: BridgeInfo | undefined;
  /** the bridge's NIC: its port of ours (vendor=kube-ovn) backed by a system interface (not internal, not patch) */
  readonly bridgeNic: string | undefined;
  /** the OVS port named like the NIC's port name (undefined when absent or when no NIC is wanted) */
  readonly nicPort: PortInfo | undefined;
  /** the link under the NIC's port name (`port` of the desired state) */
  readonly nicLink: LinkInfo | null;
  /** exchangeLinkName: the link under the NIC's configured name (before the rename: the NIC; after: the bridge) */
  readonly origLink: LinkInfo | null;
  /** exchangeLinkName: the link that holds the NIC's configured name as an alternative name (udev keeps old names) */
  readonly origAltOf?: string | undefined;
  /** absent, no bridge left: a NIC still renamed `br-<pn>` by exchangeLinkName, and the name it gets back */
  readonly renamed: { readonly from: string; readonly to: string } | undefined;
  /** non-link-local addresses still on the NIC */
  readonly nicAddresses: number;
  readonly bridgeMappings: ReadonlyMap<string, string>;
  readonly macMappings: ReadonlyMap<string, string>;
  /** this Node's labels and annotations under `<pn>.provider-network.kubernetes.io/` */
  readonly labels: Readonly<Record<string, string>>;
  readonly errAnnotation: string | undefined;
  /** NICs this agent set unmanaged in NetworkManager for this network (NmMarks), to hand back on removal */
  readonly nmMarked?: readonly string[];
  /** VLAN links this agent created for this provider network (alias kube-ovn:<pn>), and whether each is an OVS port */
  readonly autoVlans: readonly { readonly name: string; readonly ported: boolean }[];
  /** present: the VLAN interfaces that exist (spec entries, then with preserveVlanInterfaces the NIC's 802.1Q links) */
  readonly vlanLinks?: readonly VlanLinkObs[];
  /** present: spec entries this node does not have (skipped, as upstream; named in the success Event) */
  readonly vlanMissing?: readonly string[];
  /** the bridge's VLAN internal ports */
  readonly vlanPorts?: readonly VlanPortObs[];
}

export type UnderlayOp =
  | { readonly op: 'finish'; readonly rec: MoveRecord }
  | { readonly op: 'bridge'; readonly name: string; readonly datapathType: string | undefined; readonly macLearningFallback: boolean; readonly hwaddrIfNew: string; readonly exchangeLinkName: boolean }
  | { readonly op: 'rename'; readonly from: string; readonly to: string; readonly bridge: string }
  | { readonly op: 'transfer'; readonly nic: string; readonly bridge: string; readonly trunks: readonly number[] }
  | { readonly op: 'trunks'; readonly nic: string; readonly bridge: string; readonly trunks: readonly number[] }
  | { readonly op: 'mappings'; readonly bridgeMappings: string; readonly macMappings: string }
  | { readonly op: 'restore'; readonly nic: string; readonly bridge: string }
  | { readonly op: 'vlanTransfer'; readonly bridge: string; readonly move: VlanMove }
  | { readonly op: 'vlanRestore'; readonly bridge: string; readonly restore: VlanRestore }
  | { readonly op: 'createVlan'; readonly name: string; readonly parent: string; readonly id: number }
  | { readonly op: 'deleteVlan'; readonly name: string }
  | { readonly op: 'dropAltname'; readonly link: string; readonly altname: string }
  | { readonly op: 'nmHandBack'; readonly nics: readonly string[] }
  | { readonly op: 'labels'; readonly labels: Record<string, string | null>; readonly clearErr: boolean; readonly succeeded?: true; readonly note?: string }
  | { readonly op: 'fail'; readonly message: string };

export interface UnderlayDeps {
  readonly pn: string;
  readonly nodeName: string;
  readonly netns: Netns;
  readonly netlink: () => Netlink;
  readonly vswitch: () => Vswitch;
  readonly journal: Journal;
  readonly desired: () => UnderlayDesired;
  /** this Node's labels and annotations (from the watch cache) */
  readonly nodeMeta: () => { labels: Readonly<Record<string, string>>; annotations: Readonly<Record<string, string>> };
  readonly patchNode: (patch: { labels?: Record<string, string | null>; annotations?: Record<string, string | null> }) => Promise<void>;
  readonly event: (type: 'Normal' | 'Warning', reason: string, message: string) => void;
  /** datapath type of br-int ('netdev' on userspace-datapath nodes): the provider bridge uses the same */
  readonly datapathType: () => string | undefined;
  readonly randomMac: () => string;
  readonly timeoutMs?: number;
  readonly beforeStep?: TransferDeps['beforeStep'];
  /** NetworkManager (spec §6.5): a NIC it manages is set unmanaged before it moves, and handed back after removal */
  readonly nm?: { readonly port: NetworkManagerPort; readonly marks: NmMarks; readonly log?: ReconcilerLog };
}

const sameTrunks = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** Pure: the operations from observed to desired, in the order they must run. */
export function diffUnderlay(d: UnderlayDesired, o: UnderlayObserved, ctx: { datapathType: string | undefined; mac: () => string }): UnderlayOp[] {
  const ops: UnderlayOp[] = [];
  // a move in flight is finished first: the node must have its addresses in one place before anything else
  if (o.journal) return [{ op: 'finish', rec: o.journal }];
  if (d.kind === 'unknown') return [];
  const bm = new Map(o.bridgeMappings);
  const mm = new Map(o.macMappings);
  if (d.kind === 'absent') {
    const bridge = o.bridge?.name ?? o.bridgeMappings.get(d.pn) ?? d.bridge;
    let renamed = o.renamed;
    if (o.bridge && o.bridge.externalIds.vendor === 'kube-ovn') {
      // the VLAN ports' state goes back to the kernel first: deleting the bridge would take it with them (§6.4 step 3)
      const foreign = (o.vlanPorts ?? []).find((p) => !p.ours);
      if (foreign) return [{ op: 'fail', message: `bridge ${bridge} has the VLAN port ${foreign.name}, which is not kube-ovn's: the bridge is kept until it is moved off or deleted` }];
      // the NIC's own name: with exchangeLinkName the bridge has it; else the NIC port's (the label goes on a failure)
      const nicName = o.bridge.externalIds['exchange-link-name'] === 'true' ? bridge : o.bridgeNic ?? o.labels[labelKey(d.pn, 'interface')] ?? '';
      for (const p of o.vlanPorts ?? []) {
        ops.push({ op: 'vlanRestore', bridge, restore: restoreOf(p, { bridge, nic: nicName, port: o.bridgeNic ?? nicName, named: [] }) });
      }
      ops.push({ op: 'restore', nic: o.bridgeNic ?? '', bridge });
      // exchangeLinkName: the NIC (port `br-<pn>`) takes back its name once the bridge is gone
      if (o.bridge.externalIds['exchange-link-name'] === 'true' && o.bridgeNic) renamed = { from: o.bridgeNic, to: bridge };
    }
    if (renamed) ops.push({ op: 'rename', from: renamed.from, to: renamed.to, bridge });
    bm.delete(d.pn);
    mm.delete(d.pn);
    if (bm.size !== o.bridgeMappings.size || mm.size !== o.macMappings.size) ops.push({ op: 'mappings', bridgeMappings: formatMappings(bm), macMappings: formatMappings(mm) });
    // after the restore (which takes the NIC off the bridge), as upstream §6.4 step 5
    for (const v of o.autoVlans) ops.push({ op: 'deleteVlan', name: v.name === renamed?.from ? renamed.to : v.name });
    // once the NIC is back under its name: an op of its own, so a pass that cannot hand it back yet is repeated
    if (o.nmMarked?.length) ops.push({ op: 'nmHandBack', nics: o.nmMarked });
    const want = nodeLabels(d.pn, d.why === 'excluded' ? { kind: 'excluded' } : { kind: 'deleted' });
    const patch = labelPatch(want, o.labels);
    if (Object.keys(patch).length || o.errAnnotation !== undefined) ops.push({ op: 'labels', labels: patch, clearErr: o.errAnnotation !== undefined });
    return ops;
  }
  if (d.nic === '') return [{ op: 'fail', message: 'no interface for this node: neither a customInterfaces entry nor defaultInterface' }];
  if (d.exchangeLinkName && o.origAltOf !== undefined) {
    // the renamed NIC still answers to its old name (an altname udev kept): the bridge could not take the name
    if (o.origAltOf === d.port) return [{ op: 'dropAltname', link: d.port, altname: d.nic }];
    return [{ op: 'fail', message: `exchangeLinkName: ${d.nic} is an alternative name of ${o.origAltOf}; name the NIC by its own name` }];
  }
  if (!o.nicLink) {
    // each of these changes one link and asks for another pass, which sees it
    if (d.exchangeLinkName && o.origLink) {
      if (o.bridge) return [{ op: 'fail', message: `interface ${d.nic} (renamed ${d.port} for exchangeLinkName) not found on this node` }];
      return [{ op: 'rename', from: d.nic, to: d.port, bridge: d.bridge }];
    }
    if (d.autoCreateVlan) return [{ op: 'createVlan', name: d.nic, ...d.autoCreateVlan }];
    return [{ op: 'fail', message: `interface ${d.nic} not found on this node` }];
  }
  if (d.exchangeLinkName && o.origLink && !o.bridge) {
    return [{ op: 'fail', message: `exchangeLinkName: the bridge cannot take the name ${d.nic}: a link of that name exists and is not the bridge (was the provider network created without exchangeLinkName? delete and re-create it)` }];
  }
  const vp = planVlanPorts({ bridge: d.bridge, nic: d.nic, port: d.port, trunks: d.trunks, exchangeLinkName: d.exchangeLinkName,
    preserve: d.preserveVlanInterfaces, named: d.vlanInterfaces, links: o.vlanLinks ?? [], ports: o.vlanPorts ?? [] });
  if (vp.error !== undefined) return [{ op: 'fail', message: vp.error }];
  const trunks = vp.trunks;
  const b = o.bridge;
  const wantMlf = String(d.macLearningFallback);
  if (!b || b.externalIds.vendor !== 'kube-ovn' || b.externalIds['exchange-link-name'] !== String(d.exchangeLinkName) || b.otherConfig['mac-learning-fallback'] !== wantMlf
    || (ctx.datapathType !== undefined && b.datapathType !== ctx.datapathType)) {
    ops.push({ op: 'bridge', name: d.bridge, datapathType: ctx.datapathType, macLearningFallback: d.macLearningFallback, hwaddrIfNew: ctx.mac(),
      exchangeLinkName: d.exchangeLinkName });
  }
  // a NIC not yet on the bridge, or one that got an address back (DHCP, an operator): (re)move it
  if (!o.nicPort || o.nicPort.bridge !== d.bridge || o.nicAddresses > 0) ops.push({ op: 'transfer', nic: d.port, bridge: d.bridge, trunks });
  else if (!sameTrunks(o.nicPort.trunks, trunks)) ops.push({ op: 'trunks', nic: d.port, bridge: d.bridge, trunks });
  // after the NIC is the bridge's trunk port: until then the kernel VLAN links still work, and the ports would not
  for (const r of vp.restores) ops.push({ op: 'vlanRestore', bridge: d.bridge, restore: r });
  for (const m of vp.moves) ops.push({ op: 'vlanTransfer', bridge: d.bridge, move: m });
  if (bm.get(d.pn) !== d.bridge || !mm.has(d.pn)) {
    bm.set(d.pn, d.bridge);
    if (!mm.has(d.pn)) mm.set(d.pn, ctx.mac());
    ops.push({ op: 'mappings', bridgeMappings: formatMappings(bm), macMappings: formatMappings(mm) });
  }
  // links this agent created for an earlier NIC choice; one still a port of a bridge is left to the port's owner
  for (const v of o.autoVlans) if (v.name !== d.nic && v.name !== d.port && !v.ported) ops.push({ op: 'deleteVlan', name: v.name });
  const want = nodeLabels(d.pn, { kind: 'ready', nic: d.nic, mtu: o.nicLink.mtu, vlanInterfaces: vp.count > 0 });
  const patch = labelPatch(want, o.labels);
  const becomesReady = o.labels[labelKey(d.pn, 'ready')] !== 'true' || o.labels[labelKey(d.pn, 'interface')] !== d.nic
    || o.labels[labelKey(d.pn, 'mtu')] !== String(o.nicLink.mtu);
  if (Object.keys(patch).length || o.errAnnotation !== undefined) {
    ops.push({ op: 'labels', labels: patch, clearErr: o.errAnnotation !== undefined,
      ...(becomesReady ? { succeeded: true } : {}),
      ...(o.vlanMissing?.length ? { note: `vlanInterfaces not on this node: ${o.vlanMissing.join(', ')}` } : {}) });
  }
  return ops;
}

/** The part of `want` that differs from `have` (null = remove, only for keys present). */
function labelPatch(want: Record<string, string | null>, have: Readonly<Record<string, string>>): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const [k, v] of Object.entries(want)) {
    if (v === null ? Object.hasOwn(have, k) : have[k] !== v) out[k] = v;
  }
  return out;
}

export function underlaySpec(deps: UnderlayDeps): ReconcileSpec<UnderlayDesired, UnderlayObserved, UnderlayOp> {
  const tdeps = (): TransferDeps => ({
    netlink: deps.netlink(), vswitch: deps.vswitch(), journal: deps.journal, netns: deps.netns,
    ...(deps.timeoutMs !== undefined ? { timeoutMs: deps.timeoutMs } : {}),
    ...(deps.beforeStep ? { beforeStep: deps.beforeStep } : {}),
  });
  const pn = deps.pn;
  const fail = async (message: string, nic: string): Promise<void> => {
    await deps.patchNode({ labels: nodeLabels(pn, { kind: 'failed' }), annotations: { [labelKey(pn, 'err_mesg')]: message } }).catch(() => undefined);
    deps.event('Warning', 'InitOVSBridgeFailed', `node=${deps.nodeName} interface=${nic} error=${message}`);
  };
  return {
    name: `underlay-${pn}`.slice(0, 40).replace(/[^a-z0-9_-]/g, '-'),
    desired: () => deps.desired(),
    async observe(): Promise<UnderlayObserved> {
      const d = deps.desired();
      const nl = deps.netlink();
      const vs = deps.vswitch();
      const ids = vs.getOvsExternalIds();
      const bridgeMappings = parseMappings(ids[BRIDGE_MAPPINGS]);
      const bridgeName = bridgeMappings.get(pn) ?? d.bridge;
      const nic = d.kind === 'present' ? d.port : '';
      const nicLink = nic ? await nl.getLink(deps.netns, nic) : null;
      const origRaw = d.kind === 'present' && d.exchangeLinkName ? await nl.getLink(deps.netns, d.nic) : nicLink;
      const origAltOf = d.kind === 'present' && d.exchangeLinkName && origRaw && origRaw.name !== d.nic ? origRaw.name : undefined;
      const origLink = origAltOf !== undefined ? null : origRaw;
      const nicAddresses = nicLink ? (await nl.listAddresses(deps.netns, { dev: nic })).filter((a) => !isLinkLocal(`${a.address}/${a.prefixLen}`)).length : 0;
      const meta = deps.nodeMeta();
      const labels: Record<string, string> = {};
      for (const k of LABEL_KEYS) { const v = meta.labels[labelKey(pn, k)]; if (v !== undefined) labels[labelKey(pn, k)] = v; }
      let bridge = vs.getBridge(d.kind === 'present' ? d.bridge : bridgeName);
      if (!bridge && d.kind === 'absent') {
        // the mapping went before the bridge did (a crash between the two): with exchangeLinkName the bridge has the
        // NIC's old name and `br-<pn>` is its port
        const owner = vs.getPort(d.bridge)?.bridge;
        const b = owner !== undefined ? vs.getBridge(owner) : undefined;
        if (b && b.externalIds.vendor === 'kube-ovn' && b.externalIds['exchange-link-name'] === 'true') bridge = b;
      }
      const alias = autoVlanAlias(pn);
      const autoVlans = (await nl.listLinks(deps.netns, { kind: 'vlan' })).filter((l) => l.alias === alias)
        .map((l) => ({ name: l.name, ported: vs.getPort(l.name) !== undefined }));
      const bridgeNic = bridge?.ports.find((p) => p !== bridge.name && vs.getPort(p)?.externalIds.vendor === 'kube-ovn'
        && (vs.getInterface(p)?.type ?? '') === '');
      let renamed: UnderlayObserved['renamed'];
      if (d.kind === 'absent' && !bridge) {
        // a NIC left renamed br-<pn> (the bridge went, the rename back did not happen): the name it had is the
        // bridge's in ovn-bridge-mappings, else the `interface` label
        const orig = bridgeName !== d.bridge ? bridgeName : labels[labelKey(pn, 'interface')];
        const l = await nl.getLink(deps.netns, d.bridge);
        if (orig && l && !vs.getBridge(d.bridge) && !vs.getInterface(d.bridge) && !(await linkNamed(nl, deps.netns, orig))) renamed = { from: d.bridge, to: orig };
      }
      const vlanPorts: VlanPortObs[] = [];
      for (const p of bridge?.ports ?? []) {
        const port = p === bridge?.name ? undefined : vs.getPort(p);
        if (!port || vs.getInterface(p)?.type !== 'internal') continue;
        const vlanIf = port.externalIds[VLAN_SOURCE_ID];
        if (vlanIf === undefined && vlanPortShape(p) === undefined) continue;
        vlanPorts.push({ name: p, tag: port.tag, vlanIf, ours: port.externalIds.vendor === 'kube-ovn' });
      }
      const vlan = d.kind === 'present' ? await observeVlanLinks(deps, d.vlanInterfaces, nicLink, d.preserveVlanInterfaces) : undefined;
      return {
        ...(vlan ?? {}), vlanPorts,
        journal: await deps.journal.read(pn),
        bridge, bridgeNic, origLink, origAltOf, renamed,
        nicPort: nic ? vs.getPort(nic) : undefined,
        nicLink, nicAddresses, bridgeMappings,
        macMappings: parseMappings(ids[CHASSIS_MAC_MAPPINGS]),
        labels, errAnnotation: meta.annotations[labelKey(pn, 'err_mesg')], autoVlans,
        nmMarked: d.kind === 'absent' && deps.nm ? await deps.nm.marks.list(pn) : [],
      };
    },
    diff: (d, o) => diffUnderlay(d, o, { datapathType: deps.datapathType(), mac: deps.randomMac }),
    describe: (op) => (op.op === 'finish' ? `finish ${op.rec.op} ${op.rec.nic}<->${op.rec.to ?? op.rec.bridge} (was at ${op.rec.step})` : JSON.stringify(op)),
    async apply(ops) {
      const d = deps.desired();
      const nic = d.kind === 'present' ? d.nic : '';
      let again = false;
      try {
        for (const op of ops) {
          switch (op.op) {
            case 'finish': await finishMove(tdeps(), op.rec); again = true; break;
            case 'bridge':
              await deps.vswitch().ensureBridge({
                name: op.name, ...(op.datapathType !== undefined ? { datapathType: op.datapathType } : {}),
                externalIds: { 'exchange-link-name': String(op.exchangeLinkName) }, otherConfig: { 'mac-learning-fallback': String(op.macLearningFallback) },
                hwaddrIfNew: op.hwaddrIfNew,
              }, { wait: true, ...(deps.timeoutMs !== undefined ? { timeoutMs: deps.timeoutMs } : {}) });
              break;
            case 'transfer': await unmanageNic(deps, op.nic); await transferOrRollBack(tdeps(), pn, op.nic, op.bridge, op.trunks); break;
            case 'trunks': await deps.vswitch().addBridgePort({ bridge: op.bridge, name: op.nic, trunks: op.trunks }, { wait: true }); break;
            case 'mappings': {
              const set: Record<string, string> = {};
              const remove: string[] = [];
              (op.bridgeMappings ? (set[BRIDGE_MAPPINGS] = op.bridgeMappings) : remove.push(BRIDGE_MAPPINGS));
              (op.macMappings ? (set[CHASSIS_MAC_MAPPINGS] = op.macMappings) : remove.push(CHASSIS_MAC_MAPPINGS));
              await deps.vswitch().setOvsExternalIds(set, remove);
              break;
            }
            case 'restore': await restoreNic(tdeps(), pn, op.nic, op.bridge); break;
            case 'vlanTransfer': await vlanTransferOrRollBack(tdeps(), pn, op.bridge, op.move); break;
            case 'vlanRestore': await vlanRestore(tdeps(), pn, op.bridge, op.restore); break;
            case 'createVlan': await createAutoVlan(deps, op); again = true; break;
            case 'rename':
              // the forward rename (exchangeLinkName) moves the NIC's addresses too; the rename back hands it over
              if (d.kind === 'present') await unmanageNic(deps, op.from);
              await renameOrRollBack(tdeps(), pn, op.from, op.to, op.bridge); again = true; break;
            case 'deleteVlan': await deps.netlink().deleteLink(deps.netns, op.name, { ignoreMissing: true }); break;
            case 'dropAltname': await deps.netlink().deleteAltname(deps.netns, op.link, op.altname); again = true; break;
            case 'nmHandBack': await handBackToNm(deps, op.nics); break;
            case 'labels':
              await deps.patchNode({ labels: op.labels, ...(op.clearErr ? { annotations: { [labelKey(pn, 'err_mesg')]: null } } : {}) });
              if (op.succeeded) deps.event('Normal', 'InitOVSBridgeSucceeded', `node=${deps.nodeName} interface=${nic} provider network ${pn} is ready${op.note ? ` (${op.note})` : ''}`);
              break;
            case 'fail': throw new Error(op.message);
          }
        }
      } catch (e) {
        await fail(e instanceof Error ? e.message : String(e), nic);
        throw e;
      }
      return again ? 'again' : undefined;
    },
  };
}

/**
 * Sets the NIC unmanaged in NetworkManager before it moves (spec §6.5), noting it first (NmMarks) so that removal
 * can hand it back. No NM, a device NM does not know, one already unmanaged, or an exception (keepManagedReason):
 * the move goes on. A bus that answers but fails the call fails the move: moving under a managing NM is what
 * this step prevents.
 */
async function unmanageNic(deps: UnderlayDeps, nic: string): Promise<void> {
  const nm = deps.nm;
  if (!nm) return;
  const marked = (await nm.marks.list(deps.pn)).includes(nic);
  if (!marked) await nm.marks.add(deps.pn, nic);
  let r: Awaited<ReturnType<NetworkManagerPort['unmanage']>>;
  try {
    r = await nm.port.unmanage(nic, await vlanChildren(deps, nic));
  } catch (e) {
    if (!marked) await nm.marks.remove(deps.pn, nic);
    throw new Error(`NetworkManager: setting ${nic} unmanaged: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (r.result !== 'changed' && !marked) await nm.marks.remove(deps.pn, nic);
  if (r.result === 'changed') nm.log?.info({ pn: deps.pn, nic }, 'NetworkManager: device set unmanaged before the move');
  else if (r.result === 'kept') nm.log?.warn({ pn: deps.pn, nic, reason: r.reason }, 'NetworkManager keeps managing the device');
  else nm.log?.debug({ pn: deps.pn, nic, ...r }, 'NetworkManager: nothing to change');
}

/**
 * The VLAN interfaces as this node has them: each spec entry that exists (a missing one is skipped, as upstream),
 * then with preserveVlanInterfaces every 802.1Q link on the NIC (`nic`) named `<name>.<id>`. `nic` also tells
 * whether an 802.1Q entry sits on the NIC at all (`onNic`).
 */
async function observeVlanLinks(deps: UnderlayDeps, named: readonly string[], nic: LinkInfo | null, preserve: boolean): Promise<{ vlanLinks: VlanLinkObs[]; vlanMissing: string[] }> {
  const nl = deps.netlink();
  const vlanLinks: VlanLinkObs[] = [];
  const vlanMissing: string[] = [];
  const add = async (l: LinkInfo): Promise<void> => {
    const addresses = (await nl.listAddresses(deps.netns, { dev: l.name })).filter((a) => !isLinkLocal(`${a.address}/${a.prefixLen}`)).length;
    vlanLinks.push({ name: l.name, kind: l.kind, vlanId: l.vlanId, addresses,
      ...(l.kind === 'vlan' && nic ? { onNic: l.link === nic.index && l.linkNetnsId === undefined } : {}) });
  };
  for (const n of named) {
    // a malformed name is the planner's error to report, not a lookup (the kernel would refuse some names)
    const l = vlanSubinterface(n) && Buffer.byteLength(n) <= 15 ? await linkNamed(nl, deps.netns, n) : null;
    if (l) await add(l);
    else if (vlanSubinterface(n)) vlanMissing.push(n);
  }
  if (nic && preserve) {
    for (const l of await nl.listLinks(deps.netns, { kind: 'vlan' })) {
      if (l.link === nic.index && l.linkNetnsId === undefined && vlanSubinterface(l.name) && !named.includes(l.name)) await add(l);
    }
  }
  return { vlanLinks, vlanMissing };
}

/** Kernel VLAN links whose parent is `nic`. */
async function vlanChildren(deps: UnderlayDeps, nic: string): Promise<string[]> {
  const nl = deps.netlink();
  const parent = await nl.getLink(deps.netns, nic);
  if (!parent) return [];
  return (await nl.listLinks(deps.netns, { kind: 'vlan' })).filter((l) => l.link === parent.index).map((l) => l.name);
}

/**
 * After removal: the NICs this agent set unmanaged go back to NetworkManager (upstream leaves them unmanaged), unless
 * NM would then drop their addresses (handBackRisk: the NIC stays unmanaged, with a warning). A NIC
 * NM does not know (yet: NM may not have seen the rename back) keeps its mark, and the op comes again on the next
 * pass (the resync); one that no longer exists at all, or no NM, drops the mark.
 */
async function handBackToNm(deps: UnderlayDeps, nics: readonly string[]): Promise<void> {
  const nm = deps.nm;
  if (!nm) return;
  for (const nic of nics) {
    const r = await nm.port.manage(nic);
    if (r.result === 'unknown-device' && await linkNamed(deps.netlink(), deps.netns, nic)) continue;
    await nm.marks.remove(deps.pn, nic);
    if (r.result === 'changed') nm.log?.info({ pn: deps.pn, nic }, 'NetworkManager: device handed back (managed)');
    else if (r.result === 'kept') nm.log?.warn({ pn: deps.pn, nic, reason: r.reason }, 'NetworkManager: device left unmanaged');
  }
}

/**
 * Creates `<parent>.<id>`, marks it ours (alias) and sets it up; a failure after the create deletes it again. The alias
 * cannot ride on the create (the kernel does not apply IFLA_IFALIAS to a new link: `ip link add ... alias x` leaves
 * none), so a crash between the two leaves an unmarked link that a later removal keeps: the one case where a link
 * of ours outlives its network.
 */
async function createAutoVlan(deps: UnderlayDeps, op: { name: string; parent: string; id: number }): Promise<void> {
  const nl = deps.netlink();
  await nl.createVlan({ netns: deps.netns, name: op.name, parent: op.parent, id: op.id });
  try {
    await nl.setLink(deps.netns, op.name, { alias: autoVlanAlias(deps.pn), up: true });
  } catch (e) {
    await nl.deleteLink(deps.netns, op.name, { ignoreMissing: true }).catch(() => undefined);
    throw e;
  }
}
