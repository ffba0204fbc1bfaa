// Minimal IP arithmetic for planning: parse, canonical form, prefix containment, network address.
// Pure and allocation-light; node:net's isIP does the syntax check, the bigint form does the maths.

import { isIP } from 'node:net';

export type Family = 4 | 6;

export interface ParsedIp {
  family: Family;
  /** the address as a number (32 or 128 bits) */
  value: bigint;
}

function parseV6(text: string): bigint {
  let s = text;
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  // an embedded IPv4 tail (::ffff:1.2.3.4) becomes two hextets
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = parseV4(tail);
    s = `${s.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const halves = s.split('::');
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  const rest = halves.length > 1 ? (halves[1] === '' ? [] : halves[1]!.split(':')) : [];
  const groups = halves.length > 1 ? [...head, ...Array<string>(8 - head.length - rest.length).fill('0'), ...rest] : head;
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(parseInt(g, 16));
  return v;
}

function parseV4(text: string): bigint {
  let v = 0n;
  for (const p of text.split('.')) v = (v << 8n) | BigInt(Number(p));
  return v;
}

/** The address, or undefined when `text` is not a plain IPv4/IPv6 address. */
export function parseIp(text: string): ParsedIp | undefined {
  const fam = isIP(text);
  if (fam === 4) return { family: 4, value: parseV4(text) };
  if (fam === 6) return { family: 6, value: parseV6(text) };
  return undefined;
}

export function formatIp(ip: ParsedIp): string {
  if (ip.family === 4) {
    const v = ip.value;
    return [24n, 16n, 8n, 0n].map((s) => ((v >> s) & 0xffn).toString()).join('.');
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on ties
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export interface ParsedCidr {
  family: Family;
  /** the address as written (may have host bits) */
  ip: ParsedIp;
  prefixLen: number;
}

/** `a.b.c.d/n` or `x::y/n`, or undefined. */
export function parseCidr(text: string): ParsedCidr | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const ip = parseIp(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if (!ip || !/^\d{1,3}$/.test(lenText)) return undefined;
  const prefixLen = Number(lenText);
  if (prefixLen > (ip.family === 4 ? 32 : 128)) return undefined;
  return { family: ip.family, ip, prefixLen };
}

function mask(family: Family, prefixLen: number): bigint {
  const bits = family === 4 ? 32n : 128n;
  const all = (1n << bits) - 1n;
  return (all >> (bits - BigInt(prefixLen))) << (bits - BigInt(prefixLen)) & all;
}

/** The network of an address with a prefix length, as `net/len` in canonical form. */
export function networkOf(ip: ParsedIp, prefixLen: number): string {
  return `${formatIp({ family: ip.family, value: ip.value & mask(ip.family, prefixLen) })}/${prefixLen}`;
}

export function cidrContains(cidr: ParsedCidr, ip: ParsedIp): boolean {
  if (cidr.family !== ip.family) return false;
  const m = mask(cidr.family, cidr.prefixLen);
  return (cidr.ip.value & m) === (ip.value & m);
}

export function defaultDst(family: Family): string {
  return family === 4 ? '0.0.0.0/0' : '::/0';
}

/** The family of a plain address (4 or 6), or 0 when it is not one. */
export function familyOf(text: string | undefined): Family | 0 {
  if (text === undefined) return 0;
  const f = isIP(text);
  return f === 4 || f === 6 ? f : 0;
}

/** Is `text` a valid `addr/len`? */
export function isCidr(text: string): boolean {
  return parseCidr(text) !== undefined;
}

/** The canonical network of a CIDR text ("10.16.0.5/16" -> "10.16.0.0/16"), or undefined when it is not a CIDR. */
export function cidrNetwork(text: string): string | undefined {
  const c = parseCidr(text);
  return c ? networkOf(c.ip, c.prefixLen) : undefined;
}

/** The canonical form of an address text (RFC 5952 for IPv6), or the text unchanged when it is not an address. */
export function canonicalIp(text: string): string {
  const p = parseIp(text);
  return p ? formatIp(p) : text;
}

/** Do two address texts name the same address (any IPv6 spelling)? */
export function sameIp(a: string, b: string): boolean {
  if (a === b) return true;
  const x = parseIp(a);
  const y = parseIp(b);
  return x !== undefined && y !== undefined && x.family === y.family && x.value === y.value;
}
