// Address arithmetic for the stand-in controller (IPv4 and IPv6 as BigInt); sequential allocation only.
import { isIPv4, isIPv6 } from 'node:net';

export interface Cidr {
  family: 4 | 6;
  base: bigint;
  prefix: number;
  text: string;
}

export function ipToBig(ip: string): bigint {
  if (isIPv4(ip)) return ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
  if (!isIPv6(ip)) throw new Error(`not an IP: ${ip}`);
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g || '0', 16)), 0n);
}

export function bigToIp(v: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 255n)).join('.');
  const groups: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((v >> s) & 0xffffn).toString(16));
  // compress the longest run of zero groups, as `ip` and kube-ovn print them
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

export function parseCidr(text: string): Cidr {
  const [ip, len] = text.split('/');
  if (!ip || len === undefined) throw new Error(`bad CIDR ${text}`);
  const family = isIPv4(ip) ? 4 : 6;
  const prefix = Number(len);
  const bits = family === 4 ? 32 : 128;
  const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefix)) - 1n);
  return { family, base: ipToBig(ip) & mask, prefix, text };
}

export function contains(c: Cidr, ip: string): boolean {
  if ((isIPv4(ip) ? 4 : 6) !== c.family) return false;
  const bits = c.family === 4 ? 32 : 128;
  return ipToBig(ip) >> BigInt(bits - c.prefix) === c.base >> BigInt(bits - c.prefix);
}

/** The n-th address of the CIDR (1 = first usable, the usual gateway). */
export function nth(c: Cidr, n: number): string {
  return bigToIp(c.base + BigInt(n), c.family);
}
