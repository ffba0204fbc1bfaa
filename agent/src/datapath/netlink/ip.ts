// IP / CIDR / MAC text <-> bytes, strict. Pure functions; bad input throws NetlinkError EINVAL (nothing sent).
import { invalid } from './errors.ts';

export interface IpAddr { family: 4 | 6; bytes: Uint8Array }
export interface Cidr extends IpAddr { prefixLen: number }

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function parseIPv4(s: string): Uint8Array | null {
  const m = V4.exec(s);
  if (!m) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = m[i + 1]!;
    if (part.length > 1 && part[0] === '0') return null; // no octal-looking forms
    const v = Number(part);
    if (v > 255) return null;
    out[i] = v;
  }
  return out;
}

export function parseIPv6(s: string): Uint8Array | null {
  if (s.length < 2 || s.length > 45 || s.includes('%')) return null;
  let tail4: Uint8Array | null = null;
  let text = s;
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.')) {
    tail4 = parseIPv4(s.slice(lastColon + 1));
    if (!tail4) return null;
    text = s.slice(0, lastColon + 1) + '0:0';
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const parseGroups = (h: string): number[] | null => {
    if (h === '') return [];
    const out: number[] = [];
    for (const g of h.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = parseGroups(halves[0]!);
  const tail = halves.length === 2 ? parseGroups(halves[1]!) : [];
  if (!head || !tail) return null;
  let groups: number[];
  if (halves.length === 2) {
    const fill = 8 - head.length - tail.length;
    if (fill < 1) return null;
    groups = [...head, ...new Array<number>(fill).fill(0), ...tail];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return null;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => { out[2 * i] = g >> 8; out[2 * i + 1] = g & 0xff; });
  if (tail4) out.set(tail4, 12);
  return out;
}

/** "10.0.0.1" or "fd00::1" -> family + bytes; throws EINVAL. */
export function parseIp(s: string, what = 'address'): IpAddr {
  const v4 = parseIPv4(s);
  if (v4) return { family: 4, bytes: v4 };
  const v6 = parseIPv6(s);
  if (v6) return { family: 6, bytes: v6 };
  throw invalid('parse', `invalid IP ${what} "${s}"`);
}

/** "10.0.0.1/24" -> address bytes (host bits kept) + prefix length; throws EINVAL. */
export function parseCidr(s: string, what = 'CIDR'): Cidr {
  const slash = s.indexOf('/');
  if (slash < 0) throw invalid('parse', `invalid ${what} "${s}": missing /prefix`);
  const ip = parseIp(s.slice(0, slash), what);
  const p = s.slice(slash + 1);
  const max = ip.family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(p) || Number(p) > max) throw invalid('parse', `invalid ${what} "${s}": prefix must be 0..${max}`);
  return { ...ip, prefixLen: Number(p) };
}

export function formatIPv4(b: Uint8Array): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/** RFC 5952 text: lower case, longest run (>1) of zero groups compressed, first one on ties. */
export function formatIPv6(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((b[i]! << 8) | b[i + 1]!);
  let bestStart = -1, bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

export function formatIp(b: Uint8Array): string {
  if (b.length === 4) return formatIPv4(b);
  if (b.length === 16) return formatIPv6(b);
  throw invalid('format', `address of ${b.length} bytes`);
}

/** Network address of a CIDR (host bits cleared). */
export function networkOf(c: Cidr): Uint8Array {
  const out = new Uint8Array(c.bytes);
  for (let bit = c.prefixLen; bit < out.length * 8; bit++) out[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return out;
}

/** IPv4 broadcast of a CIDR (host bits set). */
export function broadcastOf(c: Cidr): Uint8Array {
  const out = new Uint8Array(c.bytes);
  for (let bit = c.prefixLen; bit < out.length * 8; bit++) out[bit >> 3]! |= 0x80 >> (bit & 7);
  return out;
}

export function parseMac(s: string, what = 'MAC'): Uint8Array {
  const m = /^([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})$/.exec(s);
  if (!m) throw invalid('parse', `invalid ${what} "${s}"`);
  return Uint8Array.from(m.slice(1, 7), (h) => parseInt(h, 16));
}

export function formatMac(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}
