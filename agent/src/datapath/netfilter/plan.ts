// The diff: desired state + observed state -> the smallest restore batches that make them equal, touching only
// what Ownership calls ours. Pure. Nothing differs -> no line at all (Plan.lines === 0).
//
// Anchors: Calico Felix's table model (bulk restore, never rewrite unchanged rules so counters survive, repair
// rules clobbered by others, mark our rules so stale ones can be found). Unlike Felix, rules are compared by
// their full canonical text (canonical.ts), because upstream's rule shapes carry no hash comment.
//
// Order inside one table's block (one iptables-restore commit):
//   1. declare missing own chains;
//   2. in chains we do not own: delete our stale, duplicate or misplaced rules (`-D CHAIN <spec>`: deleting by
//      text can only ever hit a rule identical to ours, even if someone changed the chain since we read it; so a
//      duplicated rule loses all its copies and one is inserted back where the first copy was);
//   3. edit own chains to their exact lists (`-R/-D/-I CHAIN <n>`, prefix/suffix kept, so counters survive);
//   4. insert our missing rules in chains we do not own (after 3, so a jump never lands in a half-built chain);
//   5. flush, then delete, stale own chains (after 2 removed the jumps to them).
// ipsets: creates/adds/dels/swaps run before iptables (rules may name new sets); destroys after (rules that name
// a dying set are gone by then).
import { canonicalRule } from './canonical.ts';
import { splitArgs } from './args.ts';
import { addLine, canonicalMember, createLine, delLine, destroyLine, flushLine, swapLine, type SetSpec } from './ipset-codec.ts';
import { renderTable, ruleLine } from './iptables-codec.ts';
import { kubeOvnOwnership, type DesiredSet, type DesiredState, type DesiredTable, type Ownership, type PlacedRule, type RuleAnchor } from './desired.ts';
import { TABLE_NAMES, isBuiltinChain, type Family, type IpSet, type Observed, type SavedTable, type TableName } from './types.ts';

export interface Plan {
  family: Family;
  /** Restore input per table (only tables with changes), in TABLE_NAMES order. */
  iptables: Map<TableName | string, string>;
  /** `ipset restore` input to run before iptables ('' = nothing). */
  ipset: string;
  /** `ipset restore` input to run after iptables ('' = nothing). */
  ipsetAfter: string;
  /** Command lines in all batches (table headers and COMMIT not counted). 0 = in sync. */
  lines: number;
  /** True when a set had to be rebuilt and the rules naming it were held back: plan and apply once more. */
  again: boolean;
  /** Things left alone on purpose (e.g. a stale chain still used by a foreign rule). */
  notes: string[];
}

const canonCache = new Map<string, string>();
/** canonicalRule, memoised: planners hand the same few hundred rules over on every pass. */
function canon(rule: string, family: Family): string {
  const key = `${family}\u0000${rule}`;
  let c = canonCache.get(key);
  if (c === undefined) {
    if (canonCache.size > 50_000) canonCache.clear();
    c = canonicalRule(rule, family);
    canonCache.set(key, c);
  }
  return c;
}

const JUMP = / -[jg] (\S+)/;
export function jumpTarget(spec: string): string | undefined {
  return JUMP.exec(` ${spec}`)?.[1];
}

const COMMENT = /(?:^| )--comment ("(?:[^"\\]|\\.)*"|\S+)/;
export function commentOf(spec: string): string | undefined {
  const m = COMMENT.exec(spec);
  return m ? splitArgs(m[1]!)[0] ?? '' : undefined;
}

const MATCH_SET = /--match-set (\S+)/g;
export function setsNamedBy(spec: string): string[] {
  return spec.includes('--match-set') ? [...spec.matchAll(MATCH_SET)].map((m) => m[1]!) : [];
}

function anchorMatches(spec: string, a: RuleAnchor): boolean {
  return jumpTarget(spec) === a.jump && (a.comment === undefined || commentOf(spec) === a.comment);
}

export function ownsChain(own: Ownership, name: string): boolean {
  return own.chains.includes(name) || own.chainPrefixes.some((p) => name.startsWith(p));
}

export function ownsSet(own: Ownership, name: string): boolean {
  return own.setPrefixes.some((p) => name.startsWith(p));
}

function chainEntries(t: DesiredTable | undefined): [string, readonly string[]][] {
  if (!t?.chains) return [];
  return t.chains instanceof Map ? [...t.chains] : Object.entries(t.chains as Record<string, readonly string[]>);
}

/** Edits turning `have` into `want` in one of our chains: keep the common prefix and suffix, replace the middle
 * in place, then delete surplus / insert the rest. Indexes are 1-based and account for earlier lines. */
function chainEdits(chain: string, have: readonly string[], want: readonly string[]): string[] {
  let p = 0;
  while (p < have.length && p < want.length && have[p] === want[p]) p++;
  let s = 0;
  while (s < have.length - p && s < want.length - p && have[have.length - 1 - s] === want[want.length - 1 - s]) s++;
  const hm = have.length - p - s;
  const wm = want.slice(p, want.length - s);
  const out: string[] = [];
  const common = Math.min(hm, wm.length);
  for (let i = 0; i < common; i++) out.push(ruleLine('-R', `${chain} ${p + i + 1}`, wm[i]!));
  for (let k = common; k < hm; k++) out.push(`-D ${chain} ${p + common + 1}`);
  for (let j = common; j < wm.length; j++) out.push(ruleLine('-I', `${chain} ${p + j + 1}`, wm[j]!));
  return out;
}

interface TableWork { lines: string[]; remainingRefs: Set<string>; notes: string[] }

function planTable(table: string, des: DesiredTable | undefined, obs: SavedTable | undefined, family: Family,
  own: Ownership, heldSets: ReadonlySet<string>): TableWork {
  const notes: string[] = [];
  const obsChains = obs?.chains ?? new Map();
  const holds = (rule: string) => heldSets.size > 0 && setsNamedBy(rule).some((s) => heldSets.has(s));

  // desired, canonical
  const wantChains = new Map<string, string[]>();
  for (const [name, rules] of chainEntries(des)) {
    if (!ownsChain(own, name)) throw new Error(`desired chain ${table}/${name} is not owned (add it to Ownership)`);
    wantChains.set(name, rules.map((r) => canon(r, family)).filter((r) => !holds(r)));
  }
  const placed = new Map<string, Map<string, PlacedRule>>();
  const extraOurs = new Map<string, Set<string>>();
  const addExtra = (chain: string, rule: string) => {
    let s = extraOurs.get(chain);
    if (!s) extraOurs.set(chain, (s = new Set()));
    s.add(rule);
  };
  for (const r of des?.rules ?? []) {
    if (ownsChain(own, r.chain)) throw new Error(`rule for ${table}/${r.chain} placed in an owned chain: list it in chains`);
    const rule = canon(r.rule, family);
    if (holds(rule)) { addExtra(r.chain, rule); continue; }
    let m = placed.get(r.chain);
    if (!m) placed.set(r.chain, (m = new Map()));
    if (!m.has(rule)) m.set(rule, { ...r, rule });
  }
  for (const r of own.rules ?? []) if (r.table === table) addExtra(r.chain, canon(r.rule, family));

  const declare: string[] = [];
  const deletes: string[] = [];
  const edits: string[] = [];
  const inserts: string[] = [];
  const tail: string[] = [];
  const remainingRefs = new Set<string>(); // sets named by rules that stay (foreign + desired)
  const chainRefs = new Set<string>(); // chains jumped to by rules that are not ours

  for (const [name, want] of wantChains) {
    for (const r of want) for (const s of setsNamedBy(r)) remainingRefs.add(s);
    const have = obsChains.get(name);
    if (!have) {
      declare.push(`:${name} - [0:0]`);
      for (const r of want) edits.push(ruleLine('-A', name, r));
    } else edits.push(...chainEdits(name, have.rules.map((r: { spec: string }) => r.spec), want));
  }

  const builtin = (c: string) => isBuiltinChain(table, c);
  const visit = new Set<string>([...obsChains.keys()].filter((c) => !ownsChain(own, c)));
  for (const c of placed.keys()) visit.add(c);
  for (const chain of visit) {
    const have: string[] = obsChains.get(chain)?.rules.map((r: { spec: string }) => r.spec) ?? [];
    const want = placed.get(chain) ?? new Map<string, PlacedRule>();
    const extra = extraOurs.get(chain);
    const mayHoldOurs = builtin(chain) || want.size > 0 || extra !== undefined;
    if (!obsChains.has(chain) && !builtin(chain)) {
      notes.push(`${table}/${chain} does not exist: ${want.size} rule(s) of ours not placed`);
      continue;
    }
    const isOurs = (spec: string): boolean => {
      if (want.has(spec) || extra?.has(spec)) return true;
      const c = spec.includes('--comment') ? commentOf(spec) : undefined;
      if (c !== undefined && own.commentPrefixes.some((p) => c.startsWith(p))) return true;
      const j = builtin(chain) ? jumpTarget(spec) : undefined;
      if (j !== undefined && ownsChain(own, j)) return true;
      return own.match?.(table, chain, spec) ?? false;
    };
    const cur = [...have];
    if (mayHoldOurs) {
      const counts = new Map<string, number>();
      for (const spec of have) if (isOurs(spec)) counts.set(spec, (counts.get(spec) ?? 0) + 1);
      for (const [spec, count] of counts) {
        const w = want.get(spec);
        let drop = 0;
        let keepAt = -1; // duplicates: all copies go (-D by text), one comes back where the first one was
        if (!w) drop = count;
        else if (typeof w.position === 'object') {
          const a = w.position.above;
          const anchor = cur.findIndex((s) => anchorMatches(s, a));
          drop = count > 1 || (anchor >= 0 && cur.indexOf(spec) > anchor) ? count : 0; // re-inserted above below
        } else if (count > 1) { drop = count; keepAt = cur.indexOf(spec); }
        for (let k = 0; k < drop; k++) {
          deletes.push(ruleLine('-D', chain, spec));
          cur.splice(cur.indexOf(spec), 1);
        }
        if (keepAt >= 0) {
          deletes.push(ruleLine('-I', `${chain} ${keepAt + 1}`, spec));
          cur.splice(keepAt, 0, spec);
        }
      }
      const missing = [...want.values()].filter((w) => !cur.includes(w.rule));
      for (const w of missing.filter((m) => (m.position ?? 'top') === 'top').reverse()) {
        inserts.push(ruleLine('-I', `${chain} 1`, w.rule));
        cur.unshift(w.rule);
      }
      for (const w of missing.filter((m) => m.position === 'bottom')) {
        inserts.push(ruleLine('-A', chain, w.rule));
        cur.push(w.rule);
      }
      for (const w of missing) {
        if (typeof w.position !== 'object') continue;
        const a = w.position.above;
        const at = cur.findIndex((s) => anchorMatches(s, a));
        const pos = at >= 0 ? at + 1 : 1;
        inserts.push(ruleLine('-I', `${chain} ${pos}`, w.rule));
        cur.splice(pos - 1, 0, w.rule);
      }
    }
    for (const spec of cur) {
      for (const s of setsNamedBy(spec)) remainingRefs.add(s);
      if (!mayHoldOurs || !isOurs(spec)) { const j = jumpTarget(spec); if (j) chainRefs.add(j); }
    }
  }
  for (const want of wantChains.values()) for (const r of want) { const j = jumpTarget(r); if (j) chainRefs.add(j); }

  const stale = [...obsChains.keys()].filter((c) => ownsChain(own, c) && !wantChains.has(c));
  for (const c of stale) if (obsChains.get(c)!.rules.length > 0) tail.push(`-F ${c}`);
  for (const c of stale) {
    if (chainRefs.has(c)) notes.push(`${table}/${c} is stale but still jumped to by a rule that is not ours: flushed, not deleted`);
    else tail.push(`-X ${c}`);
  }
  return { lines: [...declare, ...deletes, ...edits, ...inserts, ...tail], remainingRefs, notes };
}

function setSpec(d: DesiredSet): SetSpec {
  return { name: d.name, type: d.type, family: d.family ?? 'inet', ...(d.hashsize !== undefined ? { hashsize: d.hashsize } : {}),
    ...(d.maxelem !== undefined ? { maxelem: d.maxelem } : {}) };
}

function tempName(own: Ownership, name: string): string {
  for (const [real, temp] of Object.entries(own.tempPrefix)) if (name.startsWith(real)) return temp + name.slice(real.length);
  throw new Error(`no temp prefix for set ${name}`);
}

/** Rules of ours that name `set`, in observed state (to know whether a set can be destroyed right away). */
function namedByAnyRule(observed: Observed, set: string): boolean {
  for (const t of observed.iptables.values()) for (const c of t.chains.values()) for (const r of c.rules) if (setsNamedBy(r.spec).includes(set)) return true;
  return false;
}

/** The diff. `own` defaults to upstream's names for the family (kubeOvnOwnership). */
export function plan(desired: DesiredState, observed: Observed, own: Ownership = kubeOvnOwnership(desired.family)): Plan {
  if (desired.family !== observed.family) throw new Error(`desired IPv${desired.family} vs observed IPv${observed.family}`);
  const family = desired.family;
  const pre: string[] = [];
  const post: string[] = [];
  const notes: string[] = [];
  const held = new Set<string>();
  const rebuild: string[] = [];
  const managedSets = desired.ipsets !== undefined;
  const wantSets = new Map<string, { d: DesiredSet; members: Set<string> }>();

  if (desired.ipsets) {
    for (const d of desired.ipsets) {
      if (!ownsSet(own, d.name)) throw new Error(`desired set ${d.name} is not owned (prefixes ${own.setPrefixes.join(', ')})`);
      const fam = d.family ?? 'inet';
      if ((fam === 'inet') !== (family === 4)) throw new Error(`set ${d.name} is ${fam} in an IPv${family} plan`);
      const members = new Set<string>();
      for (const m of d.members) members.add(canonicalMember(d.type, fam, m));
      wantSets.set(d.name, { d, members });
    }
    for (const { d, members } of wantSets.values()) {
      const o: IpSet | undefined = observed.ipsets.get(d.name);
      const fill = (name: string) => { for (const m of members) pre.push(addLine(name, m)); };
      if (!o) { pre.push(createLine(setSpec(d))); fill(d.name); continue; }
      if (o.type !== d.type || (o.family ?? 'inet') !== (d.family ?? 'inet')) {
        // the kernel swaps only sets of the same type and family: rebuild in place once no rule names it
        if (namedByAnyRule(observed, d.name)) {
          held.add(d.name);
          rebuild.push(d.name);
          post.push(destroyLine(d.name), createLine(setSpec(d)), ...[...members].map((m) => addLine(d.name, m)));
        } else {
          pre.push(destroyLine(d.name), createLine(setSpec(d)));
          fill(d.name);
        }
        continue;
      }
      if ((d.maxelem !== undefined && o.maxelem !== d.maxelem) || (d.hashsize !== undefined && o.hashsize !== d.hashsize)) {
        // same type, new parameters: build a temp set, swap it in (rules keep pointing at the name), drop the old
        const tmp = tempName(own, d.name);
        if (observed.ipsets.has(tmp)) pre.push(destroyLine(tmp));
        pre.push(createLine({ ...setSpec(d), name: tmp }));
        fill(tmp);
        pre.push(swapLine(tmp, d.name), destroyLine(tmp));
        continue;
      }
      if (!o.membersKnown) { pre.push(flushLine(d.name)); fill(d.name); continue; }
      for (const m of o.members) if (!members.has(m)) pre.push(delLine(d.name, m));
      for (const m of members) if (!o.members.has(m)) pre.push(addLine(d.name, m));
    }
  }

  const iptables = new Map<string, string>();
  let lines = 0;
  const remainingRefs = new Set<string>();
  const tables = [...new Set<string>([...TABLE_NAMES.filter((t) => desired.tables[t] || observed.iptables.has(t)), ...observed.iptables.keys()])];
  for (const t of tables) {
    const work = planTable(t, desired.tables[t as TableName], observed.iptables.get(t), family, own, held);
    notes.push(...work.notes);
    for (const s of work.remainingRefs) remainingRefs.add(s);
    if (work.lines.length === 0) continue;
    iptables.set(t, renderTable(t, work.lines));
    lines += work.lines.length;
  }

  if (managedSets) {
    const temps = new Set([...wantSets.keys()].map((n) => { try { return tempName(own, n); } catch { return ''; } }));
    for (const name of observed.ipsets.keys()) {
      if (!ownsSet(own, name) || wantSets.has(name)) continue;
      if (temps.has(name) && pre.includes(destroyLine(name))) continue; // already replaced through a swap above
      if (remainingRefs.has(name)) { notes.push(`set ${name} is stale but still named by a rule that is not ours: kept`); continue; }
      post.push(destroyLine(name));
    }
  }
  for (const s of rebuild) if (remainingRefs.has(s)) notes.push(`set ${s} changed type; rules that are not ours still name it, so its rebuild may fail`);

  lines += pre.length + post.length;
  return {
    family, iptables, lines, notes, again: held.size > 0,
    ipset: pre.length ? `${pre.join('\n')}\n` : '',
    ipsetAfter: post.length ? `${post.join('\n')}\n` : '',
  };
}
