// OVSDB value encodings (RFC 7047 §5.1) as typed helpers: atoms, ["uuid",..], ["named-uuid",..], ["set",[..]],
// ["map",[[k,v],..]], plus decoders that accept both the bare-atom and the ["set",..] form of a set.

export type Uuid = ['uuid', string];
export type NamedUuid = ['named-uuid', string];
export type Atom = string | number | boolean | Uuid | NamedUuid;
export type OvsSet = ['set', Atom[]];
export type OvsMap = ['map', [Atom, Atom][]];
export type Value = Atom | OvsSet | OvsMap;
export type Row = Record<string, Value>;

export const uuid = (u: string): Uuid => ['uuid', u];
export const namedUuid = (name: string): NamedUuid => ['named-uuid', name];
export const set = (atoms: readonly Atom[]): OvsSet => ['set', [...atoms]];
export const emptySet = (): OvsSet => ['set', []];
/** Optional value (set of 0 or 1 atom). */
export const optional = (a: Atom | undefined | null): OvsSet => (a === undefined || a === null ? ['set', []] : ['set', [a]]);

/** Map from an object or entry list. Keys with `undefined` values are skipped. */
export function map(entries: Record<string, Atom | undefined> | readonly (readonly [Atom, Atom])[]): OvsMap {
  const list: [Atom, Atom][] = [];
  if (Array.isArray(entries)) for (const [k, v] of entries as readonly (readonly [Atom, Atom])[]) list.push([k, v]);
  else for (const [k, v] of Object.entries(entries)) if (v !== undefined) list.push([k, v]);
  return ['map', list];
}

export const isUuid = (v: unknown): v is Uuid => Array.isArray(v) && v.length === 2 && v[0] === 'uuid' && typeof v[1] === 'string';
export const isNamedUuid = (v: unknown): v is NamedUuid =>
  Array.isArray(v) && v.length === 2 && v[0] === 'named-uuid' && typeof v[1] === 'string';
export const isSet = (v: unknown): v is OvsSet => Array.isArray(v) && v.length === 2 && v[0] === 'set' && Array.isArray(v[1]);
export const isMap = (v: unknown): v is OvsMap => Array.isArray(v) && v.length === 2 && v[0] === 'map' && Array.isArray(v[1]);

export function isAtom(v: unknown): v is Atom {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || isUuid(v) || isNamedUuid(v);
}

/** A string key identifying an atom by type and value (for Set/Map lookups and equality). */
export function atomKey(a: Atom): string {
  if (Array.isArray(a)) return `${a[0]}:${a[1]}`;
  return `${typeof a}:${String(a)}`;
}

export function atomEquals(a: Atom, b: Atom): boolean { return atomKey(a) === atomKey(b); }

/** Elements of a set value (a bare atom is a one-element set). */
export function setAtoms(v: Value | undefined): Atom[] {
  if (v === undefined) return [];
  if (isSet(v)) return v[1];
  if (isMap(v)) throw new TypeError('expected a set, got a map');
  return [v];
}

/** Entries of a map value. */
export function mapEntries(v: Value | undefined): [Atom, Atom][] {
  if (v === undefined) return [];
  if (isMap(v)) return v[1];
  if (isSet(v) && v[1].length === 0) return []; // tolerate ["set",[]] as an empty map
  throw new TypeError('expected a map');
}

/** A map with string keys and values (external_ids, other_config, options) as a plain object. */
export function strMap(v: Value | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, val] of mapEntries(v)) out[String(k)] = String(val);
  return out;
}

/** The uuid string of a uuid atom (or of a one-element set of it); undefined for an empty set. */
export function uuidOf(v: Value | undefined): string | undefined {
  const a = setAtoms(v);
  const first = a[0];
  if (first === undefined) return undefined;
  if (!isUuid(first)) throw new TypeError('expected a uuid');
  return first[1];
}

/** All uuid strings in a set value. */
export function uuidsOf(v: Value | undefined): string[] {
  return setAtoms(v).filter(isUuid).map((u) => u[1]);
}

/** An optional scalar: the atom or undefined for an empty set. */
export function optAtom(v: Value | undefined): Atom | undefined { return setAtoms(v)[0]; }

/** Deep equality of two values, with sets and maps compared as unordered collections. */
export function valueEquals(a: Value | undefined, b: Value | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  const aMap = isMap(a), bMap = isMap(b);
  if (aMap || bMap) {
    const ea = mapEntries(a), eb = mapEntries(b);
    if (ea.length !== eb.length) return false;
    const m = new Map(ea.map(([k, v]) => [atomKey(k), atomKey(v)]));
    return eb.every(([k, v]) => m.get(atomKey(k)) === atomKey(v));
  }
  const sa = setAtoms(a), sb = setAtoms(b);
  if (sa.length !== sb.length) return false;
  const keys = new Set(sa.map(atomKey));
  return sb.every((x) => keys.has(atomKey(x)));
}
