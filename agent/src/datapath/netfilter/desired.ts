// What the planner hands to the diff (desired state) and what the diff may touch (ownership).
import type { Family, TableName } from './types.ts';

/** Picks a rule in a chain we do not own: the first whose target is `jump` (and whose comment is `comment`). */
export interface RuleAnchor { jump: string; comment?: string }

/**
 * Where one of our rules goes in a chain we do not own, when it is missing. An existing rule is never moved,
 * except that an `above` rule found below its anchor is moved above it (upstream's PREROUTING jump above
 * kube-proxy's KUBE-SERVICES jump). Missing `top` rules of one chain end up in the listed order.
 */
export type Position = 'top' | 'bottom' | { above: RuleAnchor };

export interface PlacedRule {
  chain: string;
  /** The rule spec (after `-A CHAIN`), ideally already canonical (canonical.ts). */
  rule: string;
  /** Default 'top' (upstream inserts at position 1). */
  position?: Position;
}

export interface DesiredTable {
  /** Our own chains with their exact ordered rules; every name must be owned (Ownership). */
  chains?: ReadonlyMap<string, readonly string[]> | Readonly<Record<string, readonly string[]>>;
  /** Our rules in chains we do not own (built-in chains such as nat PREROUTING or filter INPUT). */
  rules?: readonly PlacedRule[];
}

export interface DesiredSet {
  name: string;
  type: string;
  family?: 'inet' | 'inet6';
  hashsize?: number;
  maxelem?: number;
  members: Iterable<string>;
}

export interface DesiredState {
  family: Family;
  tables: Partial<Record<TableName, DesiredTable>>;
  /** Our ipsets of this family. Undefined: sets are not managed by this plan (e.g. cleaning a second back end,
   * whose rules share the node's sets). An empty list: every owned set of the family is destroyed. */
  ipsets?: readonly DesiredSet[];
}

export interface OwnedRule { table: TableName; chain: string; rule: string }

/**
 * What the diff treats as ours; everything else is never touched.
 * - chains: by exact name or prefix, in any table; stale ones are flushed and deleted (unless a foreign chain
 *   still jumps to them: then only flushed).
 * - rules in chains we do not own: a desired rule (exact text), a rule whose comment starts with one of
 *   `commentPrefixes`, a rule in a built-in chain jumping to one of our chains, one of `rules` (exact text,
 *   e.g. shapes older versions installed), or a rule `match` accepts (for patterns such as upstream's obsolete
 *   "any POSTROUTING rule with --to-source"). User-defined chains we do not own are never read for rules of ours
 *   (unless we place rules there).
 * - ipsets: by name prefix; `tempPrefix` maps a real prefix to its swap-temp prefix.
 */
export interface Ownership {
  chains: readonly string[];
  chainPrefixes: readonly string[];
  commentPrefixes: readonly string[];
  rules?: readonly OwnedRule[];
  /** Called with the canonical text of rules in chains we do not own; true = ours. Keep it narrow. */
  match?: (table: string, chain: string, spec: string) => boolean;
  setPrefixes: readonly string[];
  tempPrefix: Readonly<Record<string, string>>;
}

/** Upstream Kube-OVN's names (spec §5.7, §5.8): OVN-* chains, `kube-ovn <parent> rules` jump comments,
 * `ovn-subnet-gateway,<subnet>` counters, ovn40/ovn60 sets with ovn41/ovn61 temps. */
export function kubeOvnOwnership(family: Family, rules: readonly OwnedRule[] = []): Ownership {
  const [real, temp] = family === 4 ? ['ovn40', 'ovn41'] : ['ovn60', 'ovn61'];
  return {
    chains: ['OVN-PREROUTING', 'OVN-POSTROUTING', 'OVN-MASQUERADE', 'OVN-NAT-POLICY', 'OVN-OUTPUT'],
    chainPrefixes: ['OVN-NAT-PSUBNET-'],
    commentPrefixes: ['kube-ovn ', 'ovn-subnet-gateway,'],
    rules,
    setPrefixes: [real, temp],
    tempPrefix: { [real]: temp },
  };
}
