// Namespaces for the netlink integration tests and benches: `koan`/`koanb` + random, created with `ip netns add`
// and always deleted (finally + process exit hook). Commands are argv arrays, never shell strings.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';

export const NETNS_DIR = '/run/netns';

export interface TestNs { name: string; path: string }

const live = new Set<string>();
process.on('exit', () => {
  for (const n of live) spawnSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
});

/** Runs argv, returns stdout; throws with stderr on failure. */
export function sh(argv: string[], input?: string): string {
  return execFileSync(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], input, encoding: 'utf8' });
}

export function shStatus(argv: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function createNs(prefix = 'koan'): TestNs {
  const name = `${prefix}${randomBytes(4).toString('hex')}`;
  sh(['ip', 'netns', 'add', name]);
  live.add(name);
  return { name, path: `${NETNS_DIR}/${name}` };
}

export function deleteNs(ns: TestNs): void {
  if (existsSync(ns.path)) spawnSync('ip', ['netns', 'del', ns.name], { stdio: 'ignore' });
  live.delete(ns.name);
}

/** Runs `fn` with `count` fresh namespaces; they are deleted afterwards whatever happens. */
export async function withNs<T>(count: number, fn: (...ns: TestNs[]) => Promise<T>, prefix = 'koan'): Promise<T> {
  const made: TestNs[] = [];
  try {
    for (let i = 0; i < count; i++) made.push(createNs(prefix));
    return await fn(...made);
  } finally {
    for (const n of made) deleteNs(n);
  }
}

/** `ip -j -n <ns> ...` parsed. */
export function ipJson<T = unknown>(ns: TestNs, args: string[]): T {
  return JSON.parse(sh(['ip', '-j', '-n', ns.name, ...args]) || '[]') as T;
}

/** Namespaces with our prefix still present (leak check). */
export function leftovers(prefix: string, names: string[]): string[] {
  const present = existsSync(NETNS_DIR) ? readdirSync(NETNS_DIR) : [];
  return present.filter((n) => n.startsWith(prefix) && names.includes(n));
}

export function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}
