// Which iptables back end the node uses, and whether rules of ours may be left in the other one.
//
// Upstream (spec §5.8): legacy when `iptables` resolves to the same binary as `iptables-legacy`, else nft plus a
// one-time cleanup of its rules in the legacy tables when `ip_tables`/`ip6_tables` is in /proc/modules.
// The image's iptables-wrapper (deploy/image/iptables-wrapper) decides first, the way kubelet/kube-proxy do
// (KUBE-IPTABLES-HINT / KUBE-KUBELET-CANARY chain, else the back end holding more rules), and points `iptables`
// at the winner; so the question "what does `iptables` run?" has one answer for everyone on the node.
// We ask it directly: `iptables -V` prints "(legacy)" or "(nf_tables)", through the wrapper if there is one.
// The realpath comparison is the fallback when -V says neither.
//
// Cleanup of the legacy tables: /proc/modules does not list a built-in ip_tables (this test bed's kernel has no
// /proc/modules at all), so the signal used is /proc/net/ip_tables_names (ip6_tables_names): it exists only when
// the legacy x_tables code is present, and lists the tables instantiated in this network namespace. No table
// there = nothing of ours can be left there, and reading the file creates nothing (unlike `iptables-legacy -t nat`).
import { readFile, realpath } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { execArgv } from './runner.ts';
import type { Backend, Family } from './types.ts';

export interface BackendProbe {
  /** `iptables -V` output, e.g. "iptables v1.8.9 (nf_tables)"; undefined when it could not run. */
  version?: string;
  /** realpath of `iptables` and `iptables-legacy` found on PATH (undefined when not found). */
  iptablesPath?: string;
  legacyPath?: string;
  /** Table names listed in /proc/net/ip_tables_names / ip6_tables_names; null when the file is absent. */
  legacyTables: Record<Family, string[] | null>;
  /** /proc/modules text, null when absent (monolithic kernel); informational, as upstream's signal. */
  procModules?: string | null;
}

export interface BackendDecision {
  backend: Backend;
  /** Why (for the start-up log). */
  reason: string;
  /** Families whose legacy tables should be cleaned of our rules once (nft mode only). */
  cleanupLegacy: Family[];
}

export function decideBackend(p: BackendProbe): BackendDecision {
  let backend: Backend;
  let reason: string;
  if (p.version && /\(legacy\)/.test(p.version)) { backend = 'legacy'; reason = `iptables -V: ${p.version.trim()}`; }
  else if (p.version && /\(nf_tables\)/.test(p.version)) { backend = 'nft'; reason = `iptables -V: ${p.version.trim()}`; }
  else if (p.iptablesPath && p.legacyPath && p.iptablesPath === p.legacyPath) { backend = 'legacy'; reason = `iptables is ${p.legacyPath}`; }
  else { backend = 'nft'; reason = p.iptablesPath ? `iptables is ${p.iptablesPath}, not iptables-legacy` : 'no iptables -V answer; nft is the default'; }
  const cleanupLegacy = backend === 'nft' ? ([4, 6] as const).filter((f) => (p.legacyTables[f]?.length ?? 0) > 0) : [];
  return { backend, reason, cleanupLegacy };
}

export interface ProbeDeps {
  /** Runs argv and returns stdout (in tests: inside a netns). */
  run(argv: readonly string[]): Promise<string>;
  /** Reads a file, null when absent (in tests: from inside a netns, since /proc/net is per namespace). */
  read(path: string): Promise<string | null>;
  /** PATH lookup + realpath (undefined when not found). */
  which(cmd: string): Promise<string | undefined>;
}

export const hostProbeDeps: ProbeDeps = {
  run: async (argv) => {
    const r = await execArgv(argv, undefined, 10_000);
    return r.code === 0 ? r.stdout + r.stderr : '';
  },
  read: async (path) => { try { return await readFile(path, 'utf8'); } catch { return null; } },
  which: async (cmd) => {
    for (const dir of (process.env.PATH ?? '').split(delimiter)) {
      if (!dir) continue;
      try { return await realpath(join(dir, cmd)); } catch { /* next */ }
    }
    return undefined;
  },
};

const names = (text: string | null): string[] | null => (text === null ? null : text.split('\n').map((s) => s.trim()).filter(Boolean));

export async function probeBackend(deps: ProbeDeps = hostProbeDeps): Promise<BackendProbe> {
  const [version, iptablesPath, legacyPath, v4, v6, procModules] = await Promise.all([
    deps.run(['iptables', '-V']).catch(() => ''),
    deps.which('iptables'),
    deps.which('iptables-legacy'),
    deps.read('/proc/net/ip_tables_names'),
    deps.read('/proc/net/ip6_tables_names'),
    deps.read('/proc/modules'),
  ]);
  return {
    ...(version ? { version: version.trim() } : {}),
    ...(iptablesPath ? { iptablesPath } : {}),
    ...(legacyPath ? { legacyPath } : {}),
    legacyTables: { 4: names(v4), 6: names(v6) },
    procModules,
  };
}
