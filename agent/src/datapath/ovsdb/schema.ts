// Database schema (RFC 7047 §3.2), reduced to what the client needs: per column its kind (scalar/set/map), its
// default value (update2 rows omit default-valued columns), and a check that the columns we use exist in the
// server's version of the schema.
import type { Atom, Value } from './values.ts';

export type ColumnKind = 'scalar' | 'set' | 'map';
/** `max` is the set's maximum size (1 for scalars and optional values, Infinity for "unlimited"). */
export interface ColumnInfo { kind: ColumnKind; keyType: string; valueType?: string; max: number }
export interface TableInfo { columns: Map<string, ColumnInfo> }
export interface Schema { name: string; version: string; tables: Map<string, TableInfo> }

const baseType = (t: unknown): string => (typeof t === 'string' ? t : (t as { type?: string } | null)?.type ?? 'string');

export function columnInfo(type: unknown): ColumnInfo {
  if (typeof type === 'string') return { kind: 'scalar', keyType: type, max: 1 };
  const t = type as { key?: unknown; value?: unknown; min?: number; max?: number | 'unlimited' };
  const keyType = baseType(t.key);
  const min = t.min ?? 1, max = t.max === 'unlimited' ? Infinity : t.max ?? 1;
  if (t.value !== undefined) return { kind: 'map', keyType, valueType: baseType(t.value), max };
  return { kind: min === 1 && max === 1 ? 'scalar' : 'set', keyType, max };
}

/** Parses a get_schema reply. The implicit `_uuid` and `_version` columns are added. */
export function parseSchema(json: unknown): Schema {
  const s = json as { name?: string; version?: string; tables?: Record<string, { columns?: Record<string, { type?: unknown }> }> };
  if (!s || typeof s !== 'object' || typeof s.tables !== 'object' || s.tables === null) throw new Error('malformed schema');
  const tables = new Map<string, TableInfo>();
  for (const [name, t] of Object.entries(s.tables)) {
    const columns = new Map<string, ColumnInfo>();
    columns.set('_uuid', { kind: 'scalar', keyType: 'uuid', max: 1 });
    columns.set('_version', { kind: 'scalar', keyType: 'uuid', max: 1 });
    for (const [cname, c] of Object.entries(t.columns ?? {})) columns.set(cname, columnInfo(c.type));
    tables.set(name, { columns });
  }
  return { name: s.name ?? '', version: s.version ?? '', tables };
}

function atomDefault(type: string): Atom {
  switch (type) {
    case 'integer': case 'real': return 0;
    case 'boolean': return false;
    case 'uuid': return ['uuid', '00000000-0000-0000-0000-000000000000'];
    default: return '';
  }
}

export function defaultValue(c: ColumnInfo): Value {
  if (c.kind === 'map') return ['map', []];
  if (c.kind === 'set') return ['set', []];
  return atomDefault(c.keyType);
}

/** Columns (per table) that are missing from the schema; empty when all exist. */
export function missingColumns(schema: Schema, wanted: Record<string, readonly string[]>): string[] {
  const missing: string[] = [];
  for (const [table, cols] of Object.entries(wanted)) {
    const t = schema.tables.get(table);
    if (!t) { missing.push(`${table} (table)`); continue; }
    for (const c of cols) if (!t.columns.has(c)) missing.push(`${table}.${c}`);
  }
  return missing;
}
