// What one provider network wants on this node (spec §6.2 steps 1-4, §6.4, §6.6): pure functions of the
// ProviderNetwork, the Vlans and this Node. No I/O here: the reconciler (reconciler.ts) compares the result with
// what OVS and the kernel show, and the transfer (transfer.ts) moves the NIC.
import { createHash } from 'node:crypto';
import type { Node } from '../../k8s/types.ts';
import type { LabelSelectorRequirement, ProviderNetwork, Vlan } from './types.ts';

/** Label suffixes under `<pn>.provider-network.kubernetes.io/` (the contract with kube-ovn-controller, §6.6). */
export const LABEL_KEYS = ['ready', 'interface', 'mtu', 'exclude', 'vlan_interfaces'] as const;
export const labelKey = (pn: string, k: (typeof LABEL_KEYS)[number] | 'err_mesg'): string => `${pn}.provider-network.kubernetes.io/${k}`;

export type UnderlayDesired =
  /** the ProviderNetworks have not been listed yet: no decision (an unknown network must not look deleted) */
  | { readonly kind: 'unknown'; readonly pn: string; readonly bridge: string }
  | { readonly kind: 'absent'; readonly pn: string; readonly bridge: string; readonly why: 'deleted' | 'excluded' | 'terminating' }
  | {
    readonly kind: 'present'; readonly pn: string; readonly bridge: string;
    /** the NIC to move onto the bridge (its name as configured: the `interface` label) */
    readonly nic: string;
    /** the NIC's name while it is a port of the bridge: `nic`, or with exchangeLinkName `br-<pn>` (the bridge then
     *  takes the name `nic`, so `bridge` is `nic`) */
    readonly port: string;
    /** the VLAN ids the NIC port trunks (always includes 0: untagged traffic keeps reaching the host) */
    readonly trunks: readonly number[];
    readonly exchangeLinkName: boolean;
    readonly macLearningFallback: boolean;
    /** autoCreateVlanSubinterfaces and the NIC is named `<parent>.<id>`: create it when missing (§6.2 step 5) */
    readonly autoCreateVlan?: { readonly parent: string; readonly id: number };
    /** spec.vlanInterfaces as given (deduplicated; a non-string kept as its JSON, for the planner to refuse by name):
     *  the links whose state moves to VLAN internal ports (§6.2 step 6) */
    readonly vlanInterfaces: readonly string[];
    /** spec.preserveVlanInterfaces: every kernel 802.1Q link `<nic>.<id>` joins them */
    readonly preserveVlanInterfaces: boolean;
  };

/** The alias that marks a VLAN link this agent created for a provider network: deleted with it (§6.2 step 7, §6.4 step 5). */
export const autoVlanAlias = (pn: string): string => `kube-ovn:${pn}`;

/** `<parent>.<id>` with id 1..4094 (the last dot splits, as upstream), else undefined. */
export function vlanSubinterface(nic: string): { parent: string; id: number } | undefined {
  const m = /^(.+)\.(\d{1,4})$/.exec(nic);
  if (!m) return undefined;
  const id = Number(m[2]);
  return id >= 1 && id <= 4094 ? { parent: m[1]!, id } : undefined;
}

export const bridgeName = (pn: string): string => `br-${pn}`;

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** RFC 4648 base32 in lower case, without padding. */
export function base32Lower(b: Uint8Array): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const x of b) {
    acc = (acc << 8) | x;
    bits += 8;
    while (bits >= 5) { bits -= 5; out += BASE32[(acc >>> bits) & 31]; }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32[(acc << (5 - bits)) & 31];
  return out;
}

/**
 * The VLAN internal port of a bridge for VLAN `id` (spec §6.2 step 11): `<bridge>-vlan<id>`, the name upstream gives
 * it, while that fits the kernel's 15 bytes; else `kv<id>-` and the base32 of the bridge name's SHA-256, cut to 15.
 */
export function vlanPortName(bridge: string, id: number): string {
  const plain = `${bridge}-vlan${id}`;
  if (Buffer.byteLength(plain) <= 15) return plain;
  return `kv${id}-${base32Lower(createHash('sha256').update(bridge).digest())}`.slice(0, 15);
}

/** A port name shaped like a VLAN internal port (either scheme above); its id. */
export function vlanPortShape(name: string): number | undefined {
  const m = /-vlan(\d{1,4})$/.exec(name) ?? /^kv(\d{1,4})-[a-z2-7]+$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** The NIC for this node: the customInterfaces entry naming it, else defaultInterface ('' when neither). */
export function chooseNic(pn: ProviderNetwork, node: string): string {
  for (const c of pn.spec?.customInterfaces ?? []) {
    if (c.interface && (c.nodes ?? []).includes(node)) return c.interface;
  }
  return pn.spec?.defaultInterface ?? '';
}

function matchesRequirement(labels: Readonly<Record<string, string>>, r: LabelSelectorRequirement): boolean {
  const has = Object.hasOwn(labels, r.key);
  switch (r.operator) {
    case 'In': return has && (r.values ?? []).includes(labels[r.key]!);
    case 'NotIn': return !has || !(r.values ?? []).includes(labels[r.key]!);
    case 'Exists': return has;
    case 'DoesNotExist': return !has;
    default: return false; // an unknown operator matches nothing (as apimachinery rejects it)
  }
}

/** Excluded: with a nodeSelector, when the node does not match it; otherwise when the node is in excludeNodes. */
export function isExcluded(pn: ProviderNetwork, node: Node | undefined, nodeName: string): boolean {
  const sel = pn.spec?.nodeSelector;
  if (sel && (sel.matchLabels || sel.matchExpressions)) {
    const labels = node?.metadata?.labels ?? {};
    const ok = Object.entries(sel.matchLabels ?? {}).every(([k, v]) => labels[k] === v)
      && (sel.matchExpressions ?? []).every((r) => matchesRequirement(labels, r));
    return !ok;
  }
  return (pn.spec?.excludeNodes ?? []).includes(nodeName);
}

/** Trunk set: the ids of the Vlans listed in status.vlans, plus 0; sorted, unique. */
export function trunkSet(pn: ProviderNetwork, vlans: readonly Vlan[]): number[] {
  const byName = new Map(vlans.map((v) => [v.metadata?.name ?? '', v]));
  const ids = new Set<number>([0]);
  for (const name of pn.status?.vlans ?? []) {
    const id = byName.get(name)?.spec?.id;
    if (typeof id === 'number' && Number.isInteger(id) && id >= 0 && id <= 4095) ids.add(id);
  }
  return [...ids].sort((a, b) => a - b);
}

export interface PlanInput {
  readonly pnName: string;
  /** undefined = deleted */
  readonly pn: ProviderNetwork | undefined;
  readonly vlans: readonly Vlan[];
  readonly node: Node | undefined;
  readonly nodeName: string;
  readonly macLearningFallback: boolean;
  /** false until the ProviderNetworks were listed once */
  readonly synced?: boolean;
}

export function planUnderlay(i: PlanInput): UnderlayDesired {
  const bridge = bridgeName(i.pnName);
  if (i.synced === false) return { kind: 'unknown', pn: i.pnName, bridge };
  if (!i.pn) return { kind: 'absent', pn: i.pnName, bridge, why: 'deleted' };
  // a requeue must not put the NIC back on a bridge that is being deleted (§6.2 step 1): treat as deleted
  if (i.pn.metadata?.deletionTimestamp) return { kind: 'absent', pn: i.pnName, bridge, why: 'terminating' };
  if (isExcluded(i.pn, i.node, i.nodeName)) return { kind: 'absent', pn: i.pnName, bridge, why: 'excluded' };
  const nic = chooseNic(i.pn, i.nodeName);
  const autoCreateVlan = i.pn.spec?.autoCreateVlanSubinterfaces === true ? vlanSubinterface(nic) : undefined;
  const exchangeLinkName = i.pn.spec?.exchangeLinkName === true && nic !== '';
  return {
    kind: 'present', pn: i.pnName, bridge: exchangeLinkName ? nic : bridge, nic, port: exchangeLinkName ? bridge : nic,
    trunks: trunkSet(i.pn, i.vlans), exchangeLinkName, macLearningFallback: i.macLearningFallback,
    ...(autoCreateVlan ? { autoCreateVlan } : {}),
    vlanInterfaces: [...new Set((Array.isArray(i.pn.spec?.vlanInterfaces) ? i.pn.spec.vlanInterfaces : []).map((x: unknown) => (typeof x === 'string' ? x : JSON.stringify(x))))],
    preserveVlanInterfaces: i.pn.spec?.preserveVlanInterfaces === true,
  };
}

/** The node labels for a provider network's outcome (merge patch: null removes). */
export function nodeLabels(pn: string, outcome: { kind: 'ready'; nic: string; mtu: number; vlanInterfaces?: boolean } | { kind: 'failed' } | { kind: 'excluded' } | { kind: 'deleted' }): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const k of LABEL_KEYS) out[labelKey(pn, k)] = null;
  switch (outcome.kind) {
    case 'ready':
      out[labelKey(pn, 'ready')] = 'true';
      out[labelKey(pn, 'interface')] = outcome.nic;
      out[labelKey(pn, 'mtu')] = String(outcome.mtu);
      if (outcome.vlanInterfaces) out[labelKey(pn, 'vlan_interfaces')] = 'true';
      break;
    case 'failed':
      delete out[labelKey(pn, 'exclude')]; // a failure leaves `exclude` as it is (§6.2 step 12)
      break;
    case 'excluded':
      out[labelKey(pn, 'exclude')] = 'true';
      break;
    case 'deleted':
      break;
  }
  return out;
}

/** Parses `a:b,c:d` (ovn-bridge-mappings, ovn-chassis-mac-mappings) into a Map, keeping order. */
export function parseMappings(v: string | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const part of (v ?? '').split(',')) {
    const i = part.indexOf(':');
    if (i > 0) m.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  return m;
}

export const formatMappings = (m: ReadonlyMap<string, string>): string => [...m].map(([k, v]) => `${k}:${v}`).join(',');

/** A random locally administered unicast MAC (`rand` = 6 random bytes, injectable for tests). */
export function randomMac(rand: Uint8Array): string {
  const b = [...rand.subarray(0, 6)];
  b[0] = (b[0]! & 0xfe) | 0x02;
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}
