// Network namespaces as simulated hosts and pods. Every namespace gets the run's unique prefix
// (`koa` + random + `-`) so parallel helpers and leftovers from crashed runs never collide, and it is
// registered for cleanup the moment it exists. Nothing here touches the host namespace.
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { onCleanup } from './cleanup.ts';
import { run, runSyncQuiet, waitFor, type RunOptions, type RunResult } from './exec.ts';

export { cleanupAll, onCleanup, pendingCleanups } from './cleanup.ts';

export const NETNS_DIR = '/var/run/netns';

/** A fresh prefix such as `koab3f9a1-`; `base` names the test area (e.g. `koab` for the bed's own tests). */
export function newPrefix(base = 'koa'): string {
  return `${base}${randomBytes(3).toString('hex')}-`;
}

export interface Netns {
  readonly name: string;
  /** /var/run/netns/<name>, what CNI_NETNS and setns() want. */
  readonly path: string;
  /** Runs argv inside the namespace (`ip netns exec <name> ...`). */
  exec(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** `ip -n <name> ...` (cheaper than exec: no mount namespace dance). */
  ip(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Deletes the namespace now (idempotent). */
  delete(): Promise<void>;
}

export async function createNetns(fullName: string): Promise<Netns> {
  if (fullName.length > 60 || !/^[A-Za-z0-9_.-]+$/.test(fullName)) throw new Error(`bad netns name ${fullName}`);
  await run(['ip', 'netns', 'add', fullName]);
  const del = onCleanup({
    label: `netns ${fullName}`,
    run: async () => {
      if (existsSync(`${NETNS_DIR}/${fullName}`)) await run(['ip', 'netns', 'del', fullName], { allowFail: true });
    },
    runSync: () => runSyncQuiet(['ip', 'netns', 'del', fullName]),
  });
  await run(['ip', '-n', fullName, 'link', 'set', 'lo', 'up']);
  return {
    name: fullName,
    path: `${NETNS_DIR}/${fullName}`,
    exec: (argv, opts) => run(['ip', 'netns', 'exec', fullName, ...argv], opts),
    ip: (args, opts) => run(['ip', '-n', fullName, ...args], opts),
    delete: del,
  };
}

/** Namespaces that currently exist with the given prefix (for leak checks). */
export function listNetns(prefix: string): string[] {
  if (!existsSync(NETNS_DIR)) return [];
  return readdirSync(NETNS_DIR).filter((n) => n.startsWith(prefix));
}

/** A veth pair with one end in each namespace (both up). Names must be <= 15 chars. */
export async function addVeth(a: Netns, aName: string, b: Netns, bName: string, opts: { mtu?: number } = {}): Promise<void> {
  if (aName.length > 15 || bName.length > 15) throw new Error(`interface name too long: ${aName}/${bName}`);
  const mtu = opts.mtu ? ['mtu', String(opts.mtu)] : [];
  await a.ip(['link', 'add', aName, ...mtu, 'type', 'veth', 'peer', 'name', bName, ...mtu, 'netns', b.name]);
  await a.ip(['link', 'set', aName, 'up']);
  await b.ip(['link', 'set', bName, 'up']);
}

export async function addAddress(ns: Netns, dev: string, cidr: string): Promise<void> {
  await ns.ip([cidr.includes(':') ? '-6' : '-4', 'addr', 'add', cidr, 'dev', dev, ...(cidr.includes(':') ? ['nodad'] : [])]);
}

export async function setMac(ns: Netns, dev: string, mac: string): Promise<void> {
  await ns.ip(['link', 'set', dev, 'address', mac]);
}

export async function addRoute(ns: Netns, dst: string, via: string, dev?: string): Promise<void> {
  await ns.ip([via.includes(':') ? '-6' : '-4', 'route', 'replace', dst, 'via', via, ...(dev ? ['dev', dev] : [])]);
}

export interface PingResult {
  ok: boolean;
  transmitted: number;
  received: number;
  output: string;
}

/** Pings from inside `ns`; `ok` means at least `minReceived` replies (default: all of them). */
export async function ping(ns: Netns, addr: string, opts: { count?: number; intervalS?: number; waitS?: number; minReceived?: number } = {}): Promise<PingResult> {
  const count = opts.count ?? 3;
  const r = await ns.exec(
    ['ping', ...(addr.includes(':') ? ['-6'] : []), '-n', '-q', '-c', String(count), '-i', String(opts.intervalS ?? 0.2), '-W', String(opts.waitS ?? 1), addr],
    { allowFail: true, timeoutMs: (count * 2 + 5) * 1000 },
  );
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(r.stdout);
  const transmitted = m ? Number(m[1]) : 0;
  const received = m ? Number(m[2]) : 0;
  return { ok: received >= (opts.minReceived ?? count) && received > 0, transmitted, received, output: r.stdout + r.stderr };
}

/** `ip -d addr show dev`: the link's addresses with their flags and lifetimes, as text to compare. */
export async function addrDetail(ns: Netns, dev: string): Promise<string> {
  return (await ns.ip(['-d', 'addr', 'show', 'dev', dev])).stdout;
}

/**
 * `addrDetail` once the link has settled: no address in DAD (`tentative`; a down/up or NetworkManager taking the link
 * restarts it for the IPv6 link-local) and the same text on two reads half a second apart (a takeover that has not
 * yet added or removed an address is not "no address in DAD").
 */
export async function settledAddr(ns: Netns, dev: string): Promise<string> {
  let prev = '';
  return waitFor(`${dev}: addresses settled (none in DAD, unchanged for 0.5 s)`, async () => {
    const cur = await addrDetail(ns, dev);
    const same = cur === prev;
    prev = cur;
    return same && !/tentative/.test(cur) && cur;
  }, 60_000, 500);
}
