// Addresses the way iptables-save and ipset print them (glibc inet_ntop text; host bits cleared).
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from '../netlink/ip.ts';

/** inet_ntop's IPv6 text: RFC 5952 compression, except IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible
 * (::a.b.c.d) addresses, which glibc prints with a dotted tail. */
export function ntop6(b: Uint8Array): string {
  const zeros = (n: number) => b.subarray(0, n).every((x) => x === 0);
  const tail = `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  if (zeros(10) && b[10] === 0xff && b[11] === 0xff) return `::ffff:${tail}`;
  if (zeros(12) && (b[12] !== 0 || b[13] !== 0)) return `::${tail}`;
  return formatIPv6(b);
}

function parseMask4(s: string): number | undefined {
  const m = parseIPv4(s);
  if (!m) return undefined;
  const bits = ((m[0]! << 24) | (m[1]! << 16) | (m[2]! << 8) | m[3]!) >>> 0;
  const len = Math.clz32(~bits >>> 0);
  return ((len === 32 ? 0xffffffff : ~(0xffffffff >>> len)) >>> 0) === bits ? len : undefined;
}

/**
 * Address text in the form the tools print back, or undefined when it is not an address of that family.
 * - `iptables`: `-s/-d` form, always with a prefix (`10.0.0.1/32`), host bits cleared, a dotted IPv4 netmask
 *   turned into a length; `0.0.0.0/0` and `::/0` give '' (iptables drops a match-all address).
 * - `network`: ipset hash:net form, a full-length prefix dropped (`10.0.0.1`), host bits cleared.
 * - `host`: a single address (a full-length prefix is accepted and dropped).
 */
export function canonicalAddress(text: string, family: 4 | 6, mode: 'iptables' | 'network' | 'host'): string | undefined {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const bytes = family === 4 ? parseIPv4(addrText) : parseIPv6(addrText);
  if (!bytes) return undefined;
  const max = family === 4 ? 32 : 128;
  let len = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (/^\d{1,3}$/.test(p)) len = Number(p);
    else if (family === 4 && p.includes('.')) {
      const l = parseMask4(p);
      if (l === undefined) return undefined;
      len = l;
    } else return undefined;
    if (len > max) return undefined;
  }
  if (mode === 'host' && len !== max) return undefined;
  for (let bit = len; bit < max; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  const a = family === 4 ? formatIPv4(bytes) : ntop6(bytes);
  if (mode === 'iptables') return len === 0 ? '' : `${a}/${len}`;
  return len === max ? a : `${a}/${len}`;
}

/** A plain address in inet_ntop form (SNAT --to-source etc.), or undefined. */
export function canonicalIp(text: string, family: 4 | 6): string | undefined {
  return canonicalAddress(text, family, 'host');
}
