// In-memory replica of monitored tables, fed by monitor ("update", RFC 7047 §4.1.6) and monitor_cond ("update2",
// ovsdb-server(7) §4.1.14) table updates. Applying an update returns the row changes it made, so the client can
// emit them as events. Values are normalised by the schema: set columns always ["set",..], maps ["map",..].
import type { Schema } from './schema.ts';
import { defaultValue } from './schema.ts';
import type { Atom, Row, Value } from './values.ts';
import { atomKey, isMap, isSet, mapEntries, setAtoms, valueEquals } from './values.ts';

export interface RowChange {
  table: string;
  uuid: string;
  /** Row before the change (undefined for an insert). */
  old: Row | undefined;
  /** Row after the change (undefined for a delete). */
  new: Row | undefined;
}

export type TableUpdates = Record<string, Record<string, { old?: Row | null; new?: Row | null }>>;
export type TableUpdates2 = Record<string, Record<string, { initial?: Row; insert?: Row; modify?: Row; delete?: null }>>;

export class Replica {
  readonly tables = new Map<string, Map<string, Row>>();
  private schema: Schema | undefined;
  /** Columns monitored per table (rows are completed with defaults for these only). */
  private readonly columns: Record<string, readonly string[]>;

  constructor(columns: Record<string, readonly string[]>, schema?: Schema) {
    this.columns = columns;
    this.schema = schema;
    for (const t of Object.keys(columns)) this.tables.set(t, new Map());
  }

  /** Sets the schema used to normalise values and to interpret update2 diffs. */
  setSchema(schema: Schema): void { this.schema = schema; }

  table(name: string): Map<string, Row> {
    let t = this.tables.get(name);
    if (!t) { t = new Map(); this.tables.set(name, t); }
    return t;
  }

  get(table: string, uuid: string): Row | undefined { return this.tables.get(table)?.get(uuid); }

  rows(table: string): IterableIterator<[string, Row]> { return this.table(table).entries(); }

  /** Normalises a column value to the schema's kind (a bare atom in a set column becomes ["set",[atom]]). */
  private norm(table: string, column: string, v: Value): Value {
    const kind = this.schema?.tables.get(table)?.columns.get(column)?.kind;
    if (kind === 'set' && !isSet(v)) return ['set', [v as Atom]];
    if (kind === 'map' && !isMap(v)) return ['map', mapEntries(v)];
    return v;
  }

  /** A full row from a partial one (update2 omits default-valued columns; monitor may too). */
  private complete(table: string, partial: Row): Row {
    const row: Row = {};
    const t = this.schema?.tables.get(table);
    for (const c of this.columns[table] ?? []) {
      const info = t?.columns.get(c);
      if (info) row[c] = defaultValue(info);
    }
    for (const [c, v] of Object.entries(partial)) row[c] = this.norm(table, c, v);
    return row;
  }

  /** Applies a monitor (v1) `update` / initial reply. */
  applyUpdate(updates: TableUpdates): RowChange[] {
    const changes: RowChange[] = [];
    for (const [table, rows] of Object.entries(updates ?? {})) {
      const t = this.table(table);
      for (const [uuid, ru] of Object.entries(rows)) {
        const old = t.get(uuid);
        if (!ru.new) {
          if (old) { t.delete(uuid); changes.push({ table, uuid, old, new: undefined }); }
          continue;
        }
        const next = old ? { ...old } : this.complete(table, {});
        for (const [c, v] of Object.entries(ru.new)) next[c] = this.norm(table, c, v);
        t.set(uuid, next);
        changes.push({ table, uuid, old, new: next });
      }
    }
    return changes;
  }

  /** Applies a monitor_cond `update2` / initial reply (modify carries diffs, see diff()). */
  applyUpdate2(updates: TableUpdates2): RowChange[] {
    const changes: RowChange[] = [];
    for (const [table, rows] of Object.entries(updates ?? {})) {
      const t = this.table(table);
      for (const [uuid, ru] of Object.entries(rows)) {
        const old = t.get(uuid);
        const full = ru.initial ?? ru.insert;
        if (full) {
          const next = this.complete(table, full);
          t.set(uuid, next);
          changes.push({ table, uuid, old, new: next });
        } else if (ru.modify) {
          if (!old) throw new Error(`update2 modify for unknown row ${table} ${uuid}`);
          const next = { ...old };
          for (const [c, d] of Object.entries(ru.modify)) next[c] = this.applyDiff(table, c, old[c], d);
          t.set(uuid, next);
          changes.push({ table, uuid, old, new: next });
        } else if ('delete' in ru) {
          if (old) { t.delete(uuid); changes.push({ table, uuid, old, new: undefined }); }
        }
      }
    }
    return changes;
  }

  /**
   * update2 modify semantics: a column holding at most one value (scalar, or optional: set with max 1) carries its
   * new value (ovsdb-server sends ["set",[]] when an optional value is cleared: verified against 3.1); a set column
   * carries the elements present in exactly one of old/new (toggle them); a map column carries pairs whose key is
   * in only one map (add or remove) and, for keys in both with different values, the new value.
   */
  private applyDiff(table: string, column: string, old: Value | undefined, diff: Value): Value {
    const info = this.schema?.tables.get(table)?.columns.get(column);
    const kind = info?.kind ?? (isMap(diff) ? 'map' : isSet(diff) ? 'set' : 'scalar');
    if (kind === 'scalar') return diff;
    if (kind === 'set' && info?.max === 1) return this.norm(table, column, diff);
    if (kind === 'set') {
      const cur = new Map(setAtoms(old).map((a) => [atomKey(a), a]));
      for (const a of setAtoms(diff)) {
        const k = atomKey(a);
        if (cur.has(k)) cur.delete(k); else cur.set(k, a);
      }
      return ['set', [...cur.values()]];
    }
    const cur = new Map(mapEntries(old).map(([k, v]) => [atomKey(k), [k, v] as [Atom, Atom]]));
    for (const [k, v] of mapEntries(diff)) {
      const key = atomKey(k);
      const prev = cur.get(key);
      if (prev === undefined) cur.set(key, [k, v]);
      else if (atomKey(prev[1]) === atomKey(v)) cur.delete(key);
      else cur.set(key, [k, v]);
    }
    return ['map', [...cur.values()]];
  }

  /**
   * Replaces the whole content with `fresh` (after a reconnect's full resync) and returns only the differences:
   * rows gone, rows new, rows whose values changed. Unchanged rows produce no event.
   */
  replaceAll(fresh: Replica): RowChange[] {
    const changes: RowChange[] = [];
    const names = new Set([...this.tables.keys(), ...fresh.tables.keys()]);
    for (const table of names) {
      const mine = this.table(table);
      const theirs = fresh.table(table);
      for (const [uuid, old] of mine) if (!theirs.has(uuid)) changes.push({ table, uuid, old, new: undefined });
      for (const [uuid, next] of theirs) {
        const old = mine.get(uuid);
        if (!old || !rowEquals(old, next)) changes.push({ table, uuid, old, new: next });
      }
      this.tables.set(table, theirs);
    }
    return changes;
  }
}

export function rowEquals(a: Row, b: Row): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) if (!valueEquals(a[k], b[k])) return false;
  return true;
}

/** Columns whose value differs between two versions of a row. */
export function changedColumns(a: Row | undefined, b: Row | undefined): string[] {
  const keys = new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})]);
  return [...keys].filter((k) => !valueEquals(a?.[k], b?.[k]));
}
