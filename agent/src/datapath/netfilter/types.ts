// The data model shared by the codecs, the diff and the runner: iptables tables as iptables-save prints them and
// ipsets as `ipset save` prints them. A rule is kept as its save text after `-A <chain> ` (the "spec"), because
// that text is what comparison must be done on (see canonical.ts): two rules are the same rule when their specs
// are the same string.

/** IP family of an iptables binary (iptables / ip6tables) and of an ipset (`family inet` / `inet6`). */
export type Family = 4 | 6;

/** iptables back end: the nf_tables-based tools or the legacy x_tables ones. */
export type Backend = 'legacy' | 'nft';

export type TableName = 'filter' | 'nat' | 'mangle' | 'raw' | 'security';

export const TABLE_NAMES: readonly TableName[] = ['filter', 'nat', 'mangle', 'raw', 'security'];

/** The built-in chains of each table, in the order iptables-save prints them. */
export const BUILTIN_CHAINS: Readonly<Record<TableName, readonly string[]>> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
  security: ['INPUT', 'FORWARD', 'OUTPUT'],
};

export function isBuiltinChain(table: string, chain: string): boolean {
  return (BUILTIN_CHAINS[table as TableName] ?? []).includes(chain);
}

export interface Counters { packets: number; bytes: number }

export interface SavedRule {
  /** The rule as iptables-save prints it after `-A <chain> `, e.g. `-s 10.16.0.0/16 -j ACCEPT`. */
  spec: string;
  /** From `iptables-save -c` (`[pkts:bytes]` before the rule); absent when saved without -c. */
  counters?: Counters;
}

export interface SavedChain {
  name: string;
  /** ACCEPT/DROP for built-in chains, `-` for user-defined ones. */
  policy: string;
  counters?: Counters;
  rules: SavedRule[];
}

export interface SavedTable {
  name: string;
  /** In save order: built-ins first, then user chains. */
  chains: Map<string, SavedChain>;
}

/** Parsed iptables-save output of one family: table name -> table. */
export type IptablesState = Map<string, SavedTable>;

export interface IpSet {
  name: string;
  /** e.g. hash:net, hash:ip, hash:ip,port, list:set. */
  type: string;
  family?: 'inet' | 'inet6';
  hashsize?: number;
  maxelem?: number;
  /** Remaining create options (bucketsize, initval, timeout, comment, counters, ...): value or true for flags. */
  options: Map<string, string | true>;
  /** Members as ipset prints them (`10.16.0.0/16`, a host as `10.0.0.1`), without per-entry options. */
  members: Set<string>;
  /** False when members were not read (observe reads members of our own sets only). */
  membersKnown: boolean;
}

/** Parsed `ipset save` output: set name -> set, in save order. */
export type IpsetState = Map<string, IpSet>;

/** What observe() reads for one family: that family's iptables tables and all ipsets (ipsets have no family split
 * in the kernel; our own are told apart by name prefix). */
export interface Observed {
  family: Family;
  iptables: IptablesState;
  ipsets: IpsetState;
}
