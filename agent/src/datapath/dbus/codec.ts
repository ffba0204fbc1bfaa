// The D-Bus wire format (specification "Message Protocol"), pure: values by signature, and whole messages. Written
// little-endian; read in either byte order. Enough of the type system for NetworkManager's API: every basic type,
// arrays, structs, dict entries and variants (no Unix fds).
//
// Values in JavaScript: y n q i u d -> number, x t -> bigint, b -> boolean, s o g -> string, v -> Variant,
// a{kv} -> Map, other arrays -> array, structs -> array of members.

export interface Variant { readonly sig: string; readonly value: DBusValue }
export type DBusValue = number | bigint | boolean | string | Variant | DBusValue[] | Map<DBusValue, DBusValue>;

export class DBusCodecError extends Error {
  constructor(message: string) { super(`D-Bus: ${message}`); this.name = 'DBusCodecError'; }
}

const ALIGN: Record<string, number> = { y: 1, g: 1, v: 1, n: 2, q: 2, b: 4, i: 4, u: 4, s: 4, o: 4, a: 4, h: 4, x: 8, t: 8, d: 8, '(': 8, '{': 8 };
const MAX_DEPTH = 32;

/** The end index of the single complete type starting at `i` of `sig`. */
export function typeEnd(sig: string, i: number): number {
  const c = sig[i];
  if (c === undefined) throw new DBusCodecError(`signature ${JSON.stringify(sig)} ends early`);
  if (c === 'a') return typeEnd(sig, i + 1);
  if (c === '(' || c === '{') {
    const close = c === '(' ? ')' : '}';
    let j = i + 1;
    while (sig[j] !== close) {
      if (j >= sig.length) throw new DBusCodecError(`signature ${JSON.stringify(sig)}: unclosed ${c}`);
      j = typeEnd(sig, j);
    }
    return j + 1;
  }
  if (!(c in ALIGN) || c === 'h') throw new DBusCodecError(`signature ${JSON.stringify(sig)}: unsupported type ${c}`);
  return i + 1;
}

/** The complete types of a signature, e.g. "sa{sv}" -> ["s", "a{sv}"]. */
export function splitSignature(sig: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < sig.length;) { const e = typeEnd(sig, i); out.push(sig.slice(i, e)); i = e; }
  return out;
}

/** Members of a struct "(...)" or dict entry "{..}" signature. */
const members = (sig: string): string[] => splitSignature(sig.slice(1, -1));

class Writer {
  buf = Buffer.alloc(256);
  pos = 0;
  /** alignment is counted from the message start; a body starts at a multiple of 8 */
  readonly base: number;
  constructor(base = 0) { this.base = base; }
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const b = Buffer.alloc(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(b, 0, 0, this.pos);
    this.buf = b;
  }
  align(n: number): void {
    const pad = (n - ((this.base + this.pos) % n)) % n;
    this.ensure(pad);
    this.buf.fill(0, this.pos, this.pos + pad);
    this.pos += pad;
  }
  u8(v: number): void { this.ensure(1); this.buf.writeUInt8(v, this.pos); this.pos += 1; }
  u32(v: number): void { this.align(4); this.ensure(4); this.buf.writeUInt32LE(v, this.pos); this.pos += 4; }
  bytes(b: Buffer): void { this.ensure(b.length); b.copy(this.buf, this.pos); this.pos += b.length; }
  done(): Buffer { return this.buf.subarray(0, this.pos); }
}

const RANGE: Record<string, [number, number]> = { y: [0, 0xff], n: [-0x8000, 0x7fff], q: [0, 0xffff], i: [-0x80000000, 0x7fffffff], u: [0, 0xffffffff] };

function num(v: DBusValue, sig: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new DBusCodecError(`${sig}: expected a number, got ${typeof v}`);
  const r = RANGE[sig];
  if (r && (!Number.isInteger(v) || v < r[0] || v > r[1])) throw new DBusCodecError(`${sig}: ${v} is out of range`);
  return v;
}

function writeValue(w: Writer, sig: string, v: DBusValue, depth = 0): void {
  if (depth > MAX_DEPTH) throw new DBusCodecError('value nested too deeply');
  const c = sig[0]!;
  w.align(ALIGN[c] ?? 1);
  switch (c) {
    case 'y': w.u8(num(v, c)); return;
    case 'b': if (typeof v !== 'boolean') throw new DBusCodecError('b: expected a boolean'); w.u32(v ? 1 : 0); return;
    case 'n': w.ensure(2); w.buf.writeInt16LE(num(v, c), w.pos); w.pos += 2; return;
    case 'q': w.ensure(2); w.buf.writeUInt16LE(num(v, c), w.pos); w.pos += 2; return;
    case 'i': w.ensure(4); w.buf.writeInt32LE(num(v, c), w.pos); w.pos += 4; return;
    case 'u': w.u32(num(v, c)); return;
    case 'x': case 't': {
      if (typeof v !== 'bigint') throw new DBusCodecError(`${c}: expected a bigint`);
      w.ensure(8);
      if (c === 'x') w.buf.writeBigInt64LE(v, w.pos); else w.buf.writeBigUInt64LE(v, w.pos);
      w.pos += 8;
      return;
    }
    case 'd': w.ensure(8); w.buf.writeDoubleLE(num(v, c), w.pos); w.pos += 8; return;
    case 's': case 'o': {
      if (typeof v !== 'string') throw new DBusCodecError(`${c}: expected a string`);
      const b = Buffer.from(v, 'utf8');
      if (b.includes(0)) throw new DBusCodecError(`${c}: a string cannot hold NUL`);
      w.u32(b.length); w.bytes(b); w.u8(0);
      return;
    }
    case 'g': {
      if (typeof v !== 'string' || v.length > 255) throw new DBusCodecError('g: expected a signature of at most 255 bytes');
      w.u8(v.length); w.bytes(Buffer.from(v, 'ascii')); w.u8(0);
      return;
    }
    case 'v': {
      const x = v as Variant;
      if (typeof x !== 'object' || x === null || typeof x.sig !== 'string') throw new DBusCodecError('v: expected {sig, value}');
      if (typeEnd(x.sig, 0) !== x.sig.length) throw new DBusCodecError(`v: ${JSON.stringify(x.sig)} is not one complete type`);
      writeValue(w, 'g', x.sig, depth + 1);
      writeValue(w, x.sig, x.value, depth + 1);
      return;
    }
    case 'a': {
      const elem = sig.slice(1);
      w.u32(0); // length, patched below
      const lenAt = w.pos - 4;
      w.align(ALIGN[elem[0]!] ?? 1);
      const start = w.pos;
      const items: DBusValue[] = elem[0] === '{'
        ? [...(v instanceof Map ? v : new Map(Object.entries(v as object)))].map(([k, x]) => [k, x] as DBusValue[])
        : (Array.isArray(v) ? v : (() => { throw new DBusCodecError('a: expected an array'); })());
      for (const it of items) writeValue(w, elem, it, depth + 1);
      w.buf.writeUInt32LE(w.pos - start, lenAt);
      return;
    }
    case '(': case '{': {
      const ms = members(sig);
      if (!Array.isArray(v) || v.length !== ms.length) throw new DBusCodecError(`${sig}: expected ${ms.length} members`);
      ms.forEach((m, i) => writeValue(w, m, v[i]!, depth + 1));
      return;
    }
    default: throw new DBusCodecError(`unsupported type ${c}`);
  }
}

/** Marshals `values` by `signature` (a body, aligned from offset `base` of its message). */
export function marshal(signature: string, values: readonly DBusValue[], base = 0): Buffer {
  const types = splitSignature(signature);
  if (types.length !== values.length) throw new DBusCodecError(`signature ${JSON.stringify(signature)} has ${types.length} types, ${values.length} values given`);
  const w = new Writer(base);
  types.forEach((t, i) => writeValue(w, t, values[i]!));
  return w.done();
}

class Reader {
  pos = 0;
  readonly buf: Buffer;
  readonly le: boolean;
  readonly base: number;
  constructor(buf: Buffer, le: boolean, base = 0) { this.buf = buf; this.le = le; this.base = base; }
  need(n: number): void { if (this.pos + n > this.buf.length) throw new DBusCodecError('message truncated'); }
  align(n: number): void { this.pos += (n - ((this.base + this.pos) % n)) % n; this.need(0); }
  u8(): number { this.need(1); return this.buf.readUInt8(this.pos++); }
  u32(): number { this.align(4); this.need(4); const v = this.le ? this.buf.readUInt32LE(this.pos) : this.buf.readUInt32BE(this.pos); this.pos += 4; return v; }
}

function readValue(r: Reader, sig: string, depth = 0): DBusValue {
  if (depth > MAX_DEPTH) throw new DBusCodecError('value nested too deeply');
  const c = sig[0]!;
  r.align(ALIGN[c] ?? 1);
  const b = r.buf;
  const le = r.le;
  switch (c) {
    case 'y': return r.u8();
    case 'b': { const v = r.u32(); if (v > 1) throw new DBusCodecError(`b: ${v} is not 0 or 1`); return v === 1; }
    case 'n': { r.need(2); const v = le ? b.readInt16LE(r.pos) : b.readInt16BE(r.pos); r.pos += 2; return v; }
    case 'q': { r.need(2); const v = le ? b.readUInt16LE(r.pos) : b.readUInt16BE(r.pos); r.pos += 2; return v; }
    case 'i': { r.need(4); const v = le ? b.readInt32LE(r.pos) : b.readInt32BE(r.pos); r.pos += 4; return v; }
    case 'u': return r.u32();
    case 'x': { r.need(8); const v = le ? b.readBigInt64LE(r.pos) : b.readBigInt64BE(r.pos); r.pos += 8; return v; }
    case 't': { r.need(8); const v = le ? b.readBigUInt64LE(r.pos) : b.readBigUInt64BE(r.pos); r.pos += 8; return v; }
    case 'd': { r.need(8); const v = le ? b.readDoubleLE(r.pos) : b.readDoubleBE(r.pos); r.pos += 8; return v; }
    case 's': case 'o': {
      const n = r.u32();
      r.need(n + 1);
      const v = b.toString('utf8', r.pos, r.pos + n);
      r.pos += n + 1;
      return v;
    }
    case 'g': {
      const n = r.u8();
      r.need(n + 1);
      const v = b.toString('ascii', r.pos, r.pos + n);
      r.pos += n + 1;
      return v;
    }
    case 'v': {
      const s = readValue(r, 'g', depth + 1) as string;
      if (typeEnd(s, 0) !== s.length) throw new DBusCodecError(`variant signature ${JSON.stringify(s)} is not one complete type`);
      return { sig: s, value: readValue(r, s, depth + 1) };
    }
    case 'a': {
      const n = r.u32();
      const elem = sig.slice(1);
      r.align(ALIGN[elem[0]!] ?? 1);
      const end = r.pos + n;
      r.need(n);
      if (elem[0] === '{') {
        const m = new Map<DBusValue, DBusValue>();
        while (r.pos < end) { const [k, v] = readValue(r, elem, depth + 1) as DBusValue[]; m.set(k!, v!); }
        if (r.pos !== end) throw new DBusCodecError('array length does not match its elements');
        return m;
      }
      const out: DBusValue[] = [];
      while (r.pos < end) out.push(readValue(r, elem, depth + 1));
      if (r.pos !== end) throw new DBusCodecError('array length does not match its elements');
      return out;
    }
    case '(': case '{': return members(sig).map((m) => readValue(r, m, depth + 1));
    default: throw new DBusCodecError(`unsupported type ${c}`);
  }
}

/** Unmarshals a body by `signature` (aligned from offset `base` of its message). */
export function unmarshal(signature: string, buf: Buffer, littleEndian = true, base = 0): DBusValue[] {
  const r = new Reader(buf, littleEndian, base);
  const out = splitSignature(signature).map((t) => readValue(r, t));
  if (r.pos !== buf.length) throw new DBusCodecError(`${buf.length - r.pos} bytes left after the body`);
  return out;
}

export const MessageType = { METHOD_CALL: 1, METHOD_RETURN: 2, ERROR: 3, SIGNAL: 4 } as const;
/** header flag: the caller wants no reply */
export const NO_REPLY_EXPECTED = 0x1;

export interface Message {
  readonly type: number;
  readonly flags?: number;
  readonly serial: number;
  readonly path?: string;
  readonly interface?: string;
  readonly member?: string;
  readonly errorName?: string;
  readonly replySerial?: number;
  readonly destination?: string;
  readonly sender?: string;
  readonly signature?: string;
  readonly body?: readonly DBusValue[];
}

// header field codes and their types
const FIELDS = [
  [1, 'path', 'o'], [2, 'interface', 's'], [3, 'member', 's'], [4, 'errorName', 's'], [5, 'replySerial', 'u'],
  [6, 'destination', 's'], [7, 'sender', 's'], [8, 'signature', 'g'],
] as const;

/** One whole message, little-endian. */
export function encodeMessage(m: Message): Buffer {
  const sig = m.signature ?? '';
  const body = marshal(sig, m.body ?? []);
  const fields: DBusValue[] = [];
  for (const [code, key, t] of FIELDS) {
    const v = key === 'signature' ? (sig === '' ? undefined : sig) : m[key];
    if (v !== undefined) fields.push([code, { sig: t, value: v }]);
  }
  const head = marshal('yyyyuua(yv)', ['l'.charCodeAt(0), m.type, m.flags ?? 0, 1, body.length, m.serial, fields]);
  const pad = (8 - (head.length % 8)) % 8;
  return Buffer.concat([head, Buffer.alloc(pad), body]);
}

/** Bytes of the whole message starting at `buf[0]` once its 16-byte fixed header is there; undefined before. */
export function messageLength(buf: Buffer): number | undefined {
  if (buf.length < 16) return undefined;
  const le = buf[0] === 0x6c;
  if (!le && buf[0] !== 0x42) throw new DBusCodecError(`bad endianness byte 0x${buf[0]!.toString(16)}`);
  const bodyLen = le ? buf.readUInt32LE(4) : buf.readUInt32BE(4);
  const fieldsLen = le ? buf.readUInt32LE(12) : buf.readUInt32BE(12);
  const total = 16 + fieldsLen + ((8 - ((16 + fieldsLen) % 8)) % 8) + bodyLen;
  if (total > 128 * 1024 * 1024) throw new DBusCodecError(`message of ${total} bytes exceeds the 128 MiB maximum`);
  return total;
}

/** Decodes one whole message (exactly messageLength bytes). */
export function decodeMessage(buf: Buffer): Message {
  const le = buf[0] === 0x6c;
  const total = messageLength(buf);
  if (total === undefined || buf.length !== total) throw new DBusCodecError('not one whole message');
  const r = new Reader(buf, le);
  r.pos = 1;
  const type = r.u8();
  const flags = r.u8();
  const version = r.u8();
  if (version !== 1) throw new DBusCodecError(`protocol version ${version}`);
  const bodyLen = r.u32();
  const serial = r.u32();
  const fields = readValue(r, 'a(yv)') as [number, Variant][];
  r.align(8);
  const bodyStart = r.pos;
  if (bodyStart + bodyLen !== buf.length) throw new DBusCodecError('body length does not match');
  const m: Record<string, unknown> = { type, flags, serial };
  for (const [code, v] of fields) {
    const f = FIELDS.find(([c]) => c === code);
    if (f) m[f[1]] = v.value;
  }
  const sig = (m.signature as string | undefined) ?? '';
  m.body = unmarshal(sig, buf.subarray(bodyStart), le, 0);
  return m as unknown as Message;
}
