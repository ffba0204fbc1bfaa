// The canonical rule form: a rule written exactly as iptables-save prints it back. Desired rules are compared with
// observed ones as strings, so a desired rule in any other spelling would never match and would be deleted and
// re-inserted on every pass (upstream's kube-ovn#5420). canonicalRule() rewrites a rule into that form; the
// contract test (integration/netfilter/canonical.test.ts) proves, for every rule shape the agent uses, IPv4 and
// IPv6, legacy and nft, that real iptables-save prints canonicalRule(x) for a rule restored as x.
//
// What iptables-save does to a rule (iptables 1.8.9, both back ends), and so what this does:
//  * `-s -d -i -o -p -f` (each optionally negated) come first in that order, wherever they were written;
//    addresses get a prefix length and lose host bits (`10.0.0.1` -> `10.0.0.1/32`, IPv6 compressed, `/0` dropped);
//    `-p 6` -> `-p tcp`, `-p all` dropped.
//  * matches keep the order they were loaded in; `--dport` after `-p tcp` without `-m tcp` loads `-m tcp` there.
//    Inside a match, options print in the module's own order (`--sport` before `--dport`; `--src-type` before
//    `--dst-type`; `--ctstate` first), and lists in bit order (`NEW,RELATED,ESTABLISHED`).
//  * `--syn` -> `--tcp-flags FIN,SYN,RST,ACK SYN`; `ALL` -> `FIN,SYN,RST,PSH,ACK,URG`.
//  * marks print in hex; `--mark X/0xffffffff` -> `--mark X`; MARK's --set-mark/--or-mark/--and-mark/--xor-mark and
//    a mask-less --set-xmark all become `--set-xmark V/M`.
//  * REJECT gets `--reject-with icmp-port-unreachable` (IPv6: icmp6-port-unreachable); TPROXY gets `--on-ip 0.0.0.0`
//    (::) and a full mask; SNAT/MASQUERADE flags print as --to-*, --random, --random-fully, --persistent.
//  * `--comment` is quoted unless it is non-empty [A-Za-z0-9_-]* (see args.ts).
// Anything not listed (unknown modules or options) is kept as written, in place, which is still the identity on
// text iptables-save printed. Recommendation for planners: write rules in this form directly (the test files list
// every shape); canonicalRule is the safety net, not a licence for creative spellings.
import { quoteArg, rawArg, splitArgsRaw, type Arg } from './args.ts';
import { canonicalAddress, canonicalIp } from './addr.ts';
import type { Family } from './types.ts';

interface Opt { neg: boolean; flag: string; vals: Arg[] }
interface Match { name: string; opts: Opt[] }
interface OptDef { arity: number; canon?: string }
interface ModDef { opts: Record<string, OptDef>; order?: readonly string[] }

const one: OptDef = { arity: 1 };
const flag: OptDef = { arity: 0 };

const TCP_FLAGS = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG'] as const;
const CT_STATES = ['INVALID', 'NEW', 'RELATED', 'ESTABLISHED', 'UNTRACKED', 'SNAT', 'DNAT'];
const ADDR_TYPES = ['UNSPEC', 'UNICAST', 'LOCAL', 'BROADCAST', 'ANYCAST', 'MULTICAST', 'BLACKHOLE', 'UNREACHABLE',
  'PROHIBIT', 'THROW', 'NAT', 'XRESOLVE'];

const portOpts: Record<string, OptDef> = {
  '--sport': one, '--source-port': { arity: 1, canon: '--sport' },
  '--dport': one, '--destination-port': { arity: 1, canon: '--dport' },
};

const MATCHES: Record<string, ModDef> = {
  tcp: {
    opts: { ...portOpts, '--tcp-flags': { arity: 2 }, '--syn': flag, '--tcp-option': one },
    order: ['--sport', '--dport', '--tcp-option', '--tcp-flags'],
  },
  udp: { opts: portOpts, order: ['--sport', '--dport'] },
  comment: { opts: { '--comment': one } },
  set: { opts: { '--match-set': { arity: 2 }, '--set': { arity: 2, canon: '--match-set' }, '--return-nomatch': flag,
    '--update-counters': flag, '--update-subcounters': flag, '--packets-eq': one, '--packets-lt': one,
    '--packets-gt': one, '--bytes-eq': one, '--bytes-lt': one, '--bytes-gt': one } },
  mark: { opts: { '--mark': one } },
  conntrack: {
    opts: { '--ctstate': one, '--ctproto': one, '--ctorigsrc': one, '--ctorigdst': one, '--ctreplsrc': one,
      '--ctrepldst': one, '--ctorigsrcport': one, '--ctorigdstport': one, '--ctreplsrcport': one,
      '--ctrepldstport': one, '--ctstatus': one, '--ctexpire': one, '--ctdir': one },
    order: ['--ctstate', '--ctproto', '--ctorigsrc', '--ctorigdst', '--ctreplsrc', '--ctrepldst', '--ctorigsrcport',
      '--ctorigdstport', '--ctreplsrcport', '--ctrepldstport', '--ctstatus', '--ctexpire', '--ctdir'],
  },
  state: { opts: { '--state': one } },
  addrtype: {
    opts: { '--src-type': one, '--dst-type': one, '--limit-iface-in': flag, '--limit-iface-out': flag },
    order: ['--src-type', '--dst-type', '--limit-iface-in', '--limit-iface-out'],
  },
  multiport: { opts: { '--ports': one, '--dports': one, '--sports': one, '--source-ports': { arity: 1, canon: '--sports' },
    '--destination-ports': { arity: 1, canon: '--dports' } } },
  icmp: { opts: { '--icmp-type': one } },
  icmp6: { opts: { '--icmpv6-type': one } },
};

interface TargetDef { opts: Record<string, OptDef>; finish?: (opts: Opt[], family: Family) => Opt[] }

const arg = (value: string): Arg => ({ value, raw: rawArg(value) });
const opt = (f: string, ...vals: string[]): Opt => ({ neg: false, flag: f, vals: vals.map(arg) });

function ordered(opts: Opt[], order: readonly string[]): Opt[] {
  const rank = (o: Opt) => { const i = order.indexOf(o.flag); return i < 0 ? order.length : i; };
  return opts.map((o, i) => [o, i] as const).sort((a, b) => rank(a[0]) - rank(b[0]) || a[1] - b[1]).map(([o]) => o);
}

const U32 = 0xffffffff;
function num(text: string): number | undefined {
  const n = /^0x[0-9a-f]+$/i.test(text) ? parseInt(text, 16) : /^\d+$/.test(text) ? Number(text) : NaN;
  return Number.isFinite(n) && n >= 0 && n <= U32 ? n : undefined;
}
const hex = (n: number) => `0x${(n >>> 0).toString(16)}`;

/** `V[/M]` -> [V, M|undefined], or undefined when not numeric. */
function valueMask(text: string): [number, number | undefined] | undefined {
  const [v, m, ...rest] = text.split('/');
  const vn = num(v ?? '');
  const mn = m === undefined ? undefined : num(m);
  if (vn === undefined || rest.length || (m !== undefined && mn === undefined)) return undefined;
  return [vn, mn];
}

const TARGETS: Record<string, TargetDef> = {
  MARK: {
    opts: { '--set-xmark': one, '--set-mark': one, '--or-mark': one, '--and-mark': one, '--xor-mark': one },
    finish: (opts) => opts.map((o) => {
      const vm = o.vals[0] ? valueMask(o.vals[0].value) : undefined;
      if (!vm) return o;
      const [v, m] = vm;
      switch (o.flag) {
        case '--set-xmark': case '--set-mark': return opt('--set-xmark', `${hex(v)}/${hex(m ?? U32)}`);
        case '--or-mark': return opt('--set-xmark', `${hex(v)}/${hex(v)}`);
        case '--and-mark': return opt('--set-xmark', `0x0/${hex(~v)}`);
        case '--xor-mark': return opt('--set-xmark', `${hex(v)}/0x0`);
        default: return o;
      }
    }),
  },
  REJECT: {
    opts: { '--reject-with': one },
    finish: (opts, family) => opts.some((o) => o.flag === '--reject-with') ? opts
      : [...opts, opt('--reject-with', family === 4 ? 'icmp-port-unreachable' : 'icmp6-port-unreachable')],
  },
  SNAT: { opts: { '--to-source': one, '--random': flag, '--random-fully': flag, '--persistent': flag },
    finish: (opts, family) => ordered(opts.map((o) => natAddress(o, '--to-source', family)), ['--to-source', '--random', '--random-fully', '--persistent']) },
  DNAT: { opts: { '--to-destination': one, '--random': flag, '--persistent': flag },
    finish: (opts, family) => ordered(opts.map((o) => natAddress(o, '--to-destination', family)), ['--to-destination', '--random', '--persistent']) },
  MASQUERADE: { opts: { '--to-ports': one, '--random': flag, '--random-fully': flag },
    finish: (opts) => ordered(opts, ['--to-ports', '--random', '--random-fully']) },
  TPROXY: {
    opts: { '--on-port': one, '--on-ip': one, '--tproxy-mark': one },
    finish: (opts, family) => {
      const get = (f: string) => opts.find((o) => o.flag === f)?.vals[0]?.value;
      const out = opts.filter((o) => !['--on-port', '--on-ip', '--tproxy-mark'].includes(o.flag));
      const port = get('--on-port');
      const ip = get('--on-ip');
      const mark = get('--tproxy-mark');
      const vm = mark === undefined ? [0, 0] as const : valueMask(mark);
      return [
        ...(port !== undefined ? [opt('--on-port', port)] : []),
        opt('--on-ip', ip === undefined ? (family === 4 ? '0.0.0.0' : '::') : canonicalIp(ip, family) ?? ip),
        opt('--tproxy-mark', vm ? `${hex(vm[0])}/${hex(vm[1] ?? U32)}` : mark!),
        ...out,
      ];
    },
  },
  LOG: { opts: { '--log-prefix': one, '--log-level': one, '--log-tcp-sequence': flag, '--log-tcp-options': flag,
    '--log-ip-options': flag, '--log-uid': flag, '--log-macdecode': flag } },
};

/** SNAT/DNAT range `A[-B][:P[-Q]]` with A, B in inet_ntop form (IPv6 with a port is `[A]:P`). */
function natAddress(o: Opt, f: string, family: Family): Opt {
  if (o.flag !== f || !o.vals[0]) return o;
  const text = o.vals[0].value;
  let addrs = text;
  let ports = '';
  if (family === 6 && text.startsWith('[')) {
    const end = text.indexOf(']');
    addrs = text.slice(1, end);
    ports = text.slice(end + 1);
  } else if (family === 4 && text.includes(':')) {
    addrs = text.slice(0, text.indexOf(':'));
    ports = text.slice(text.indexOf(':'));
  }
  const parts = addrs.split('-').map((a) => canonicalIp(a, family));
  if (parts.some((p) => p === undefined)) return o;
  const joined = parts.join('-');
  return opt(f, family === 6 && ports ? `[${joined}]${ports}` : `${joined}${ports}`);
}

const BASE: Record<string, string> = {
  '-s': 's', '--source': 's', '--src': 's', '-d': 'd', '--destination': 'd', '--dst': 'd',
  '-i': 'i', '--in-interface': 'i', '-o': 'o', '--out-interface': 'o', '-p': 'p', '--protocol': 'p',
  '-f': 'f', '--fragment': 'f',
};
const BASE_ORDER = ['s', 'd', 'i', 'o', 'p', 'f'] as const;

/** Protocol names iptables prints for numbers it knows without /etc/protocols. */
const PROTO_NAMES: Record<string, string> = { '6': 'tcp', '17': 'udp', '1': 'icmp', icmpv6: 'ipv6-icmp', '58': 'ipv6-icmp' };

/** The implicit match loaded by an option after `-p <proto>`. */
const PROTO_MATCH: Record<string, string> = { tcp: 'tcp', udp: 'udp', icmp: 'icmp', 'ipv6-icmp': 'icmp6' };

function isOptionToken(a: Arg | undefined): boolean {
  return a !== undefined && a.raw.startsWith('-') && a.raw.length > 1 && !/^-\d/.test(a.raw);
}

function formatMatchOpt(m: string, o: Opt, family: Family): string[] {
  const v = o.vals.map((a) => a.value);
  switch (`${m} ${o.flag}`) {
    case 'comment --comment': return [o.flag, quoteArg(v[0] ?? '')];
    case 'mark --mark': {
      const vm = valueMask(v[0] ?? '');
      if (!vm) break;
      return [o.flag, vm[1] === undefined || vm[1] === U32 ? hex(vm[0]) : `${hex(vm[0])}/${hex(vm[1])}`];
    }
    case 'conntrack --ctstate': case 'state --state': return [o.flag, sortList(v[0] ?? '', CT_STATES)];
    case 'addrtype --src-type': case 'addrtype --dst-type': return [o.flag, sortList(v[0] ?? '', ADDR_TYPES)];
    case 'tcp --tcp-flags': return [o.flag, tcpFlags(v[0] ?? ''), tcpFlags(v[1] ?? '')];
    case 'conntrack --ctorigsrc': case 'conntrack --ctorigdst': case 'conntrack --ctreplsrc': case 'conntrack --ctrepldst':
      return [o.flag, canonicalAddress(v[0] ?? '', family, 'iptables') || (v[0] ?? '')];
  }
  return [o.flag, ...o.vals.map((a) => a.raw)];
}

function sortList(text: string, order: readonly string[]): string {
  const items = text.split(',').map((s) => s.toUpperCase());
  if (items.some((i) => !order.includes(i))) return text;
  return order.filter((s) => items.includes(s)).join(',');
}

function tcpFlags(text: string): string {
  let bits = 0;
  for (const f of text.toUpperCase().split(',')) {
    if (f === 'ALL') bits = 0x3f;
    else if (f === 'NONE') continue;
    else {
      const i = (TCP_FLAGS as readonly string[]).indexOf(f);
      if (i < 0) return text;
      bits |= 1 << i;
    }
  }
  return bits === 0 ? 'NONE' : TCP_FLAGS.filter((_, i) => bits & (1 << i)).join(',');
}

/** Rewrites a rule spec (the part after `-A CHAIN`) into the form iptables-save prints. Idempotent. */
export function canonicalRule(spec: string, family: Family): string {
  const toks = splitArgsRaw(spec);
  const base = new Map<string, { neg: boolean; val: string }>();
  const matches: Match[] = [];
  let target: { jump: string; name: string; opts: Opt[] } | undefined;
  const loose: string[] = [];
  let neg = false;
  for (let i = 0; i < toks.length; ) {
    const t = toks[i]!;
    if (t.raw === '!') { neg = true; i++; continue; }
    const b = BASE[t.raw];
    if (b) {
      const val = b === 'f' ? '' : toks[i + 1]?.value ?? '';
      base.set(b, { neg, val });
      neg = false;
      i += b === 'f' ? 1 : 2;
      continue;
    }
    if (t.raw === '-m' || t.raw === '--match') {
      matches.push({ name: toks[i + 1]?.value ?? '', opts: [] });
      i += 2;
      continue;
    }
    if (t.raw === '-j' || t.raw === '--jump' || t.raw === '-g' || t.raw === '--goto') {
      target = { jump: t.raw === '-j' || t.raw === '--jump' ? '-j' : '-g', name: toks[i + 1]?.value ?? '', opts: [] };
      i += 2;
      continue;
    }
    if (isOptionToken(t)) {
      const owner = ownerOf(t.raw, target, matches, base.get('p')?.val.toLowerCase());
      const def = owner?.def?.opts[t.raw];
      let arity = def?.arity;
      if (arity === undefined) { arity = 0; while (i + 1 + arity < toks.length && !isOptionToken(toks[i + 1 + arity]) && toks[i + 1 + arity]!.raw !== '!') arity++; }
      const o: Opt = { neg, flag: def?.canon ?? t.raw, vals: toks.slice(i + 1, i + 1 + arity) };
      if (owner) owner.opts.push(o);
      else loose.push(...(neg ? ['!'] : []), o.flag, ...o.vals.map((a) => a.raw)); // nobody owns it: keep it in place
      neg = false;
      i += 1 + arity;
      continue;
    }
    loose.push(t.raw); // a value without an option: keep it where it stands (iptables would reject it anyway)
    i++;
  }

  const out: string[] = [];
  for (const k of BASE_ORDER) {
    const b = base.get(k);
    if (!b) continue;
    let val = b.val;
    if (k === 's' || k === 'd') {
      const a = canonicalAddress(val, family, 'iptables');
      if (a === '' && !b.neg) continue;
      val = a || val;
    } else if (k === 'p') {
      val = val.toLowerCase();
      val = PROTO_NAMES[val] ?? val;
      if ((val === 'all' || val === '0') && !b.neg) continue;
    }
    if (b.neg) out.push('!');
    out.push(`-${k}`);
    if (k !== 'f') out.push(rawArg(val));
  }
  for (const m of matches) {
    const def = MATCHES[m.name];
    let opts = m.opts.flatMap((o): Opt[] => (m.name === 'tcp' && o.flag === '--syn' ? [{ ...opt('--tcp-flags', 'FIN,SYN,RST,ACK', 'SYN'), neg: o.neg }] : [o]));
    if (def?.order) opts = ordered(opts, def.order);
    out.push('-m', rawArg(m.name));
    for (const o of opts) {
      if (o.neg) out.push('!');
      out.push(...(def ? formatMatchOpt(m.name, o, family) : [o.flag, ...o.vals.map((a) => a.raw)]));
    }
  }
  out.push(...loose);
  if (target) {
    const def = TARGETS[target.name];
    const opts = def?.finish ? def.finish(target.opts, family) : target.opts;
    out.push(target.jump, rawArg(target.name));
    for (const o of opts) {
      if (o.neg) out.push('!');
      out.push(o.flag, ...o.vals.map((a) => (target!.name === 'LOG' && o.flag === '--log-prefix' ? quoteArg(a.value) : a.raw)));
    }
  }
  return out.join(' ');

  function ownerOf(flagText: string, tgt: typeof target, ms: Match[], proto: string | undefined): { def: ModDef | TargetDef | undefined; opts: Opt[] } | undefined {
    if (tgt) {
      const tdef = TARGETS[tgt.name];
      if (!tdef || tdef.opts[flagText]) return { def: tdef, opts: tgt.opts };
    }
    for (let k = ms.length - 1; k >= 0; k--) {
      const mdef = MATCHES[ms[k]!.name];
      if (mdef?.opts[flagText]) return { def: mdef, opts: ms[k]!.opts };
    }
    const implicit = proto ? PROTO_MATCH[PROTO_NAMES[proto] ?? proto] : undefined;
    if (implicit && MATCHES[implicit]!.opts[flagText]) {
      const m: Match = { name: implicit, opts: [] };
      ms.push(m);
      return { def: MATCHES[implicit], opts: m.opts };
    }
    const last = ms[ms.length - 1];
    if (last && !MATCHES[last.name]) return { def: undefined, opts: last.opts };
    if (tgt) return { def: undefined, opts: tgt.opts };
    return undefined;
  }
}
