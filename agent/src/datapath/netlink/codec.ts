// Netlink framing: nlmsghdr, attributes (TLV, 4-byte aligned, nested), NLMSG_ERROR with extended ACK.
// Pure: builds and parses bytes, no syscalls. Host byte order is little-endian on every platform we ship.
import {
  NLA_F_NESTED, NLA_TYPE_MASK, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLMSGERR_ATTR_MSG,
  NLMSGERR_ATTR_OFFS,
} from './constants.ts';

export const align4 = (n: number): number => (n + 3) & ~3;

/** Growable little-endian writer with attribute nesting (lengths patched when a nest closes). */
export class NlWriter {
  private buf: Buffer;
  private off = 0;

  constructor(size = 256) {
    this.buf = Buffer.alloc(size);
  }

  get length(): number {
    return this.off;
  }

  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }

  u8(v: number): this { this.ensure(1); this.buf.writeUInt8(v & 0xff, this.off); this.off += 1; return this; }
  u16(v: number): this { this.ensure(2); this.buf.writeUInt16LE(v & 0xffff, this.off); this.off += 2; return this; }
  u32(v: number): this { this.ensure(4); this.buf.writeUInt32LE(v >>> 0, this.off); this.off += 4; return this; }
  i32(v: number): this { this.ensure(4); this.buf.writeInt32LE(v | 0, this.off); this.off += 4; return this; }
  bytes(b: Uint8Array): this { this.ensure(b.length); this.buf.set(b, this.off); this.off += b.length; return this; }
  zeros(n: number): this { this.ensure(n); this.buf.fill(0, this.off, this.off + n); this.off += n; return this; }
  /** Pads with zeros to the next 4-byte boundary. */
  pad(): this { return this.zeros(align4(this.off) - this.off); }

  /** Attribute with raw payload. */
  attr(type: number, payload: Uint8Array): this {
    this.u16(4 + payload.length).u16(type).bytes(payload);
    return this.pad();
  }
  attrU8(type: number, v: number): this { return this.u16(5).u16(type).u8(v).pad(); }
  attrU16(type: number, v: number): this { return this.u16(6).u16(type).u16(v).pad(); }
  attrU32(type: number, v: number): this { return this.u16(8).u16(type).u32(v); }
  attrS32(type: number, v: number): this { return this.u16(8).u16(type).i32(v); }
  /** NUL-terminated string attribute. */
  attrStr(type: number, s: string): this {
    const b = Buffer.from(s, 'utf8');
    this.u16(4 + b.length + 1).u16(type).bytes(b).u8(0);
    return this.pad();
  }
  /** Nested attribute: `body` writes the inner attributes; NLA_F_NESTED is set when `flagNested`. */
  nest(type: number, body: (w: this) => void, flagNested = false): this {
    const start = this.off;
    this.u16(0).u16(flagNested ? type | NLA_F_NESTED : type);
    body(this);
    this.buf.writeUInt16LE(this.off - start, start);
    return this.pad();
  }
  /** Patches a u32 written earlier (e.g. nlmsg_len). */
  patchU32(at: number, v: number): void { this.buf.writeUInt32LE(v >>> 0, at); }

  /** A copy-free view of what was written. */
  finish(): Buffer {
    return this.buf.subarray(0, this.off);
  }
}

export interface NlHeader { type: number; flags: number; seq: number; pid?: number }

/** One netlink message: header + fixed family header + attributes written by `body`. */
export function buildMessage(h: NlHeader, body: (w: NlWriter) => void, sizeHint = 256): Buffer {
  const w = new NlWriter(sizeHint);
  w.u32(0).u16(h.type).u16(h.flags).u32(h.seq).u32(h.pid ?? 0);
  body(w);
  w.pad();
  w.patchU32(0, w.length);
  return w.finish();
}

export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** Bytes after the 16-byte header (a view into the receive buffer: decode before the next receive). */
  payload: Buffer;
}

/** Splits a datagram into messages; throws on a malformed length. */
export function parseMessages(buf: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) throw new Error(`malformed netlink message: length ${len} at ${off} of ${buf.length}`);
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** Attributes of a message body from `start`: type (flags masked) -> payload view. Later duplicates win. */
export function parseAttrs(buf: Buffer, start = 0, end = buf.length): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let off = start;
  while (off + 4 <= end) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > end) break; // truncated tail: ignore, like the kernel's nla_for_each_attr
    out.set(buf.readUInt16LE(off + 2) & NLA_TYPE_MASK, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
  return out;
}

/** All attributes in order, duplicates kept (for lists such as RTA_MULTIPATH or IFLA_PROP_LIST). */
export function parseAttrList(buf: Buffer, start = 0, end = buf.length): Array<[number, Buffer]> {
  const out: Array<[number, Buffer]> = [];
  let off = start;
  while (off + 4 <= end) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > end) break;
    out.push([buf.readUInt16LE(off + 2) & NLA_TYPE_MASK, buf.subarray(off + 4, off + len)]);
    off += align4(len);
  }
  return out;
}

/** NUL-terminated string payload. */
export function attrString(b: Buffer | undefined): string | undefined {
  if (!b) return undefined;
  const nul = b.indexOf(0);
  return b.toString('utf8', 0, nul < 0 ? b.length : nul);
}

export const attrU32 = (b: Buffer | undefined): number | undefined => (b && b.length >= 4 ? b.readUInt32LE(0) : undefined);
export const attrS32 = (b: Buffer | undefined): number | undefined => (b && b.length >= 4 ? b.readInt32LE(0) : undefined);
export const attrU8 = (b: Buffer | undefined): number | undefined => (b && b.length >= 1 ? b.readUInt8(0) : undefined);
export const attrU16 = (b: Buffer | undefined): number | undefined => (b && b.length >= 2 ? b.readUInt16LE(0) : undefined);

export interface NlError {
  /** 0 = ACK, else a negative errno. */
  error: number;
  /** Sequence number of the request it answers (from the echoed header). */
  seq: number;
  /** Type of the request it answers. */
  requestType: number;
  /** Extended ACK message, if any. */
  extack?: string;
  /** Offset of the offending attribute in the request, if the kernel said. */
  extackOffset?: number;
}

/** Decodes an NLMSG_ERROR payload (with or without NETLINK_CAP_ACK, with or without ACK TLVs). */
export function parseError(msg: NlMessage): NlError {
  const p = msg.payload;
  if (p.length < 4 + NLMSG_HDRLEN) throw new Error(`short NLMSG_ERROR (${p.length} bytes)`);
  const error = p.readInt32LE(0);
  const origLen = p.readUInt32LE(4);
  const out: NlError = { error, requestType: p.readUInt16LE(8), seq: p.readUInt32LE(12) };
  if (msg.flags & NLM_F_ACK_TLVS) {
    // The echoed request is cut to its header when capped (NETLINK_CAP_ACK) or on success.
    const echoed = msg.flags & NLM_F_CAPPED || error === 0 ? NLMSG_HDRLEN : align4(origLen);
    const attrs = parseAttrs(p, 4 + echoed);
    const m = attrString(attrs.get(NLMSGERR_ATTR_MSG));
    if (m) out.extack = m;
    const o = attrU32(attrs.get(NLMSGERR_ATTR_OFFS));
    if (o !== undefined) out.extackOffset = o;
  }
  return out;
}

export const isDone = (m: NlMessage): boolean => m.type === NLMSG_DONE;
export const isError = (m: NlMessage): boolean => m.type === NLMSG_ERROR;

/** Tests: `"hex with spaces"` -> Buffer. */
export function hex(s: string): Buffer {
  return Buffer.from(s.replace(/[^0-9a-fA-F]/g, ''), 'hex');
}

export { NLA_F_NESTED };
