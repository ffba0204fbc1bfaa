// ipset text formats, pure: parse `ipset save` / `ipset list -o save` output, render `ipset restore` input, and
// write members the way ipset prints them back (hash:net drops a full-length prefix and clears host bits).
import { splitArgs, rawArg } from './args.ts';
import { canonicalAddress } from './addr.ts';
import type { IpSet, IpsetState } from './types.ts';

/** Create options that take no value. */
const FLAGS = new Set(['counters', 'comment', 'skbinfo', 'forceadd']);

export interface ParseIpsetOptions {
  /** Keep members only of sets this accepts (headers of all sets are kept). Default: all. */
  members?: (name: string) => boolean;
}

/** Parses `ipset save` output. Unknown lines throw: the format is small and fixed. */
export function parseIpsetSave(text: string, opts: ParseIpsetOptions = {}): IpsetState {
  const state: IpsetState = new Map();
  const keep = opts.members ?? (() => true);
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('add ')) {
      const sp = line.indexOf(' ', 4);
      const name = line.slice(4, sp < 0 ? undefined : sp);
      const set = state.get(name);
      if (!set) throw new Error(`ipset save line ${i + 1}: add to undeclared set: ${line}`);
      if (!set.membersKnown) continue;
      set.members.add(memberOf(splitArgs(line.slice(sp + 1))));
      continue;
    }
    if (!line.startsWith('create ')) throw new Error(`ipset save line ${i + 1}: unexpected: ${line}`);
    const [, name, type, ...rest] = splitArgs(line);
    if (!name || !type) throw new Error(`ipset save line ${i + 1}: bad create: ${line}`);
    const set: IpSet = { name, type, options: new Map(), members: new Set(), membersKnown: keep(name) };
    for (let k = 0; k < rest.length; k++) {
      const key = rest[k]!;
      if (FLAGS.has(key)) { set.options.set(key, true); continue; }
      const value = rest[++k];
      if (value === undefined) throw new Error(`ipset save line ${i + 1}: option ${key} without value`);
      if (key === 'family') set.family = value === 'inet6' ? 'inet6' : 'inet';
      else if (key === 'hashsize') set.hashsize = Number(value);
      else if (key === 'maxelem') set.maxelem = Number(value);
      else set.options.set(key, value);
    }
    state.set(name, set);
  }
  return state;
}

/** An entry's identity: the element, plus `nomatch` (which changes its meaning); timeouts/comments/counters dropped. */
function memberOf(args: string[]): string {
  const m = args[0] ?? '';
  return args.includes('nomatch') ? `${m} nomatch` : m;
}

export interface SetSpec {
  name: string;
  type: string;
  family?: 'inet' | 'inet6';
  hashsize?: number;
  maxelem?: number;
}

/** `create NAME TYPE family F [hashsize H] [maxelem M]`. */
export function createLine(s: SetSpec): string {
  const parts = ['create', s.name, s.type];
  if (s.family) parts.push('family', s.family);
  if (s.hashsize !== undefined) parts.push('hashsize', String(s.hashsize));
  if (s.maxelem !== undefined) parts.push('maxelem', String(s.maxelem));
  return parts.join(' ');
}

export const addLine = (name: string, member: string): string => `add ${name} ${member.split(' ').map(rawArg).join(' ')}`;
export const delLine = (name: string, member: string): string => `del ${name} ${member.split(' ').map(rawArg).join(' ')}`;
export const flushLine = (name: string): string => `flush ${name}`;
export const destroyLine = (name: string): string => `destroy ${name}`;
export const swapLine = (a: string, b: string): string => `swap ${a} ${b}`;

/** A member written the way `ipset save` prints it back, for types whose element is one address or CIDR
 * (hash:ip, hash:net); other types are returned unchanged. Throws on an address of the wrong family. */
export function canonicalMember(type: string, family: 'inet' | 'inet6' | undefined, member: string): string {
  if (type !== 'hash:net' && type !== 'hash:ip') return member;
  const [elem, ...flags] = member.trim().split(/\s+/);
  const want = family === 'inet6' ? 6 : 4;
  const a = canonicalAddress(elem!, want, type === 'hash:net' ? 'network' : 'host');
  if (!a) throw new Error(`ipset member "${member}" is not an IPv${want} ${type === 'hash:net' ? 'address or CIDR' : 'address'}`);
  return [a, ...flags.filter((f) => f === 'nomatch')].join(' ');
}
