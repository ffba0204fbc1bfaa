// iptables text formats, pure: parse `iptables-save [-c]` output into tables/chains/rules, render and parse
// `iptables-restore --noflush` input. No I/O here (the runner carries the text).
import { splitArgs } from './args.ts';
import type { Counters, IptablesState, SavedChain, SavedTable } from './types.ts';

const COUNTERS = /^\[(\d+):(\d+)\]$/;

function counters(text: string | undefined): Counters | undefined {
  const m = text === undefined ? null : COUNTERS.exec(text);
  return m ? { packets: Number(m[1]), bytes: Number(m[2]) } : undefined;
}

export class IptablesParseError extends Error {
  constructor(lineNo: number, line: string, why: string) {
    super(`iptables-save line ${lineNo}: ${why}: ${line}`);
  }
}

/** Parses iptables-save output (with or without -c). Comment lines (`# ...`, including iptables-nft's "legacy tables
 * present" warning) are skipped. A rule's spec is kept verbatim: it is the text compared against desired rules. */
export function parseIptablesSave(text: string): IptablesState {
  const state: IptablesState = new Map();
  let table: SavedTable | undefined;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      const name = line.slice(1).trim();
      table = state.get(name) ?? { name, chains: new Map() };
      state.set(name, table);
      continue;
    }
    if (!table) throw new IptablesParseError(i + 1, line, 'content outside a table');
    if (line === 'COMMIT') { table = undefined; continue; }
    if (line.startsWith(':')) {
      const [name, policy, cnt] = line.slice(1).split(' ');
      if (!name || !policy) throw new IptablesParseError(i + 1, line, 'bad chain line');
      const c = counters(cnt);
      const chain: SavedChain = { name, policy, rules: [], ...(c ? { counters: c } : {}) };
      table.chains.set(name, chain);
      continue;
    }
    let rest = line;
    let c: Counters | undefined;
    if (rest.startsWith('[')) {
      const end = rest.indexOf('] ');
      c = counters(rest.slice(0, end + 1));
      if (end < 0 || !c) throw new IptablesParseError(i + 1, line, 'bad counters');
      rest = rest.slice(end + 2);
    }
    if (!rest.startsWith('-A ')) throw new IptablesParseError(i + 1, line, 'expected -A');
    const sp = rest.indexOf(' ', 3);
    const chainName = sp < 0 ? rest.slice(3) : rest.slice(3, sp);
    const spec = sp < 0 ? '' : rest.slice(sp + 1);
    let chain = table.chains.get(chainName);
    if (!chain) {
      // save always declares chains first; tolerate a missing declaration rather than lose the rule
      chain = { name: chainName, policy: '-', rules: [] };
      table.chains.set(chainName, chain);
    }
    chain.rules.push(c ? { spec, counters: c } : { spec });
  }
  return state;
}

/** `-A CHAIN spec` (or any command with a chain and a spec), without a trailing blank for an empty spec. */
export function ruleLine(op: string, chain: string, spec: string): string {
  return spec === '' ? `${op} ${chain}` : `${op} ${chain} ${spec}`;
}

/** One table's block of restore input: `*table`, the lines, `COMMIT`. Empty lines -> empty string. */
export function renderTable(table: string, lines: readonly string[]): string {
  if (lines.length === 0) return '';
  return `*${table}\n${lines.join('\n')}\nCOMMIT\n`;
}

/** One line of restore input, parsed (for the fake and for tests). */
export type RestoreLine =
  | { kind: 'chain'; lineNo: number; chain: string; policy: string; counters?: Counters }
  | { kind: 'command'; lineNo: number; args: string[]; text: string; counters?: Counters };

export interface RestoreTable { table: string; lineNo: number; lines: RestoreLine[] }

/** Parses iptables-restore input into per-table command lists; throws on a structural error. */
export function parseRestore(text: string): RestoreTable[] {
  const out: RestoreTable[] = [];
  let cur: RestoreTable | undefined;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      if (cur) throw new Error(`line ${lineNo}: table ${line} opened before COMMIT of ${cur.table}`);
      cur = { table: line.slice(1), lineNo, lines: [] };
      continue;
    }
    if (!cur) throw new Error(`line ${lineNo}: no table: ${line}`);
    if (line === 'COMMIT') { out.push(cur); cur = undefined; continue; }
    if (line.startsWith(':')) {
      const [chain, policy, cnt] = line.slice(1).split(/\s+/);
      if (!chain || !policy) throw new Error(`line ${lineNo}: bad chain line: ${line}`);
      const c = counters(cnt);
      cur.lines.push({ kind: 'chain', lineNo, chain, policy, ...(c ? { counters: c } : {}) });
      continue;
    }
    let rest = line;
    let c: Counters | undefined;
    if (rest.startsWith('[')) {
      const end = rest.indexOf(']');
      c = counters(rest.slice(0, end + 1));
      if (!c) throw new Error(`line ${lineNo}: bad counters: ${line}`);
      rest = rest.slice(end + 1).trimStart();
    }
    cur.lines.push({ kind: 'command', lineNo, args: splitArgs(rest), text: rest, ...(c ? { counters: c } : {}) });
  }
  if (cur) throw new Error(`table ${cur.table} has no COMMIT`);
  return out;
}

/** Removes counters (for comparing states saved at different times or by different back ends). */
export function withoutCounters(state: IptablesState): IptablesState {
  const out: IptablesState = new Map();
  for (const [name, t] of state) {
    const chains = new Map<string, SavedChain>();
    for (const [cn, ch] of t.chains) chains.set(cn, { name: cn, policy: ch.policy, rules: ch.rules.map((r) => ({ spec: r.spec })) });
    out.set(name, { name, chains });
  }
  return out;
}
