// The order in which the kernel dumps a link's main-table routes, so that an ADD's response lists them as upstream
// does: upstream reads the routes back from the kernel after adding them (spec §3.8.8), and its CNI executable prints
// them in that order. Ours plans them and never reads them back, so it sorts them the kernel's way instead.
// Measured on this kernel (`ip route show dev X` after adding routes in a shuffled order):
// - IPv4 before IPv6 (an AF_UNSPEC dump walks the families in number order);
// - IPv4, the FIB trie: by network address, and for the same address the longer prefix first
//   (default, 10.0.0.0/8, 10.16.0.0/24, 10.16.0.0/17, 10.16.0.0/16, 10.16.5.0/24, 192.168.0.0/16);
// - IPv6, the fib6 radix tree walked children first: a prefix after every prefix it contains, and of two disjoint
//   prefixes the one whose first differing bit is 0 first (2001:db8::/32, fd00:10:16::/80, fd00:10:16:0:8000::/65,
//   fd00:10:16::/64, fd00:10:16::/48, fc00::/7, fe80::/64, default).
import { parseCidr, type ParsedCidr } from './ip.ts';

const bits = (c: ParsedCidr) => (c.family === 4 ? 32 : 128);

function compareV4(a: ParsedCidr, b: ParsedCidr): number {
  if (a.ip.value !== b.ip.value) return a.ip.value < b.ip.value ? -1 : 1;
  return b.prefixLen - a.prefixLen;
}

function compareV6(a: ParsedCidr, b: ParsedCidr): number {
  const width = BigInt(bits(a));
  const common = Math.min(a.prefixLen, b.prefixLen);
  for (let i = 0; i < common; i++) {
    const shift = width - 1n - BigInt(i);
    const x = (a.ip.value >> shift) & 1n;
    const y = (b.ip.value >> shift) & 1n;
    if (x !== y) return x < y ? -1 : 1;
  }
  // one contains the other (or they are the same prefix): the more specific comes first
  return b.prefixLen - a.prefixLen;
}

/** `routes` (each with a canonical `dst` network) in the kernel's dump order; the input is not changed. */
export function kernelRouteOrder<R extends { readonly dst: string }>(routes: readonly R[]): R[] {
  const keyed = routes.map((r) => ({ r, c: parseCidr(r.dst) }));
  return keyed.sort((p, q) => {
    if (!p.c || !q.c) return p.c ? -1 : q.c ? 1 : 0; // unparsable destinations (none are planned) keep to the end
    if (p.c.family !== q.c.family) return p.c.family - q.c.family;
    return p.c.family === 4 ? compareV4(p.c, q.c) : compareV6(p.c, q.c);
  }).map((k) => k.r);
}
