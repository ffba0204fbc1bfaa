// The node's iptables rules and ipsets as reconcilers, one per IP family (spec §5.7-§5.9): desired = the planner
// (netfilter-plan.ts) over the caches, observed = one iptables-save and one ipset save, diff = the netfilter plan
// (datapath/netfilter), apply = at most one `ipset restore` before and after and one `iptables-restore --noflush`.
// A converged pass spawns two save processes and writes nothing; the resync runs it once a minute (network.ts says
// why). Upstream re-checks rule by rule with one exec each every 3 s (kube-ovn#4859); foreign rules are never
// touched (the netfilter diff owns only our names).
//
// Also here: the subnet gateway counters (the `ovn-subnet-gateway,<subnet>` FORWARD rules' packet/byte counts, read
// from the same save at every pass, fed to ovn_subnet_gateway_packets/_bytes), and the non-primary mode's one-time
// cleanup.

import {
  apply, kubeOvnOwnership, observe, plan, removeOwned, type DesiredState, type NetfilterRunner, type Observed, type Plan,
} from '../datapath/netfilter/index.ts';
import type { Family } from '../net/ip.ts';
import { desiredNetfilter, unmarkedRules, type NetfilterInputs } from './netfilter-plan.ts';
import type { ReconcileSpec } from './reconciler.ts';

export type NetfilterFacts = Omit<NetfilterInputs, 'family' | 'existingSets'>;

export interface SubnetTraffic {
  subnet: string;
  cidr: string;
  direction: 'egress' | 'ingress';
  protocol: 'IPv4' | 'IPv6';
  packets: number;
  bytes: number;
}

export interface NetfilterDeps {
  readonly runner: NetfilterRunner;
  facts(): NetfilterFacts;
  /** deltas of the per-subnet counter rules since the last pass */
  onTraffic?(t: SubnetTraffic[]): void;
  /** lines and time of each batch (metrics) */
  onApplied?(p: Plan, seconds: number): void;
}

const COUNTER = /^-([sd]) (\S+) -m comment --comment "?ovn-subnet-gateway,([^"\s]+)"?$/;

/** Pure: per-subnet counter deltas from the FORWARD chain of an observed filter table. */
export function counterDeltas(o: Observed, last: Map<string, { packets: number; bytes: number }>): SubnetTraffic[] {
  const out: SubnetTraffic[] = [];
  const fwd = o.iptables.get('filter')?.chains.get('FORWARD');
  const seen = new Set<string>();
  for (const r of fwd?.rules ?? []) {
    const m = COUNTER.exec(r.spec);
    if (!m || !r.counters) continue;
    const key = `${m[1]} ${m[2]} ${m[3]}`;
    seen.add(key);
    const prev = last.get(key);
    last.set(key, { ...r.counters });
    if (!prev) continue; // the first sight is the baseline
    const packets = r.counters.packets - prev.packets;
    const bytes = r.counters.bytes - prev.bytes;
    if (packets <= 0 && bytes <= 0) continue;
    out.push({ subnet: m[3]!, cidr: m[2]!, direction: m[1] === 's' ? 'egress' : 'ingress', protocol: o.family === 4 ? 'IPv4' : 'IPv6',
      packets: Math.max(0, packets), bytes: Math.max(0, bytes) });
  }
  for (const k of [...last.keys()]) if (!seen.has(k)) last.delete(k);
  return out;
}

/** One family's reconcile spec. The desired state needs the observed set names (kube-proxy's IPVS sets), so it is
 * completed inside diff, which stays pure. */
export function netfilterSpec(family: Family, d: NetfilterDeps): ReconcileSpec<NetfilterFacts, Observed, Plan> {
  const own = ownership(family);
  const last = new Map<string, { packets: number; bytes: number }>();
  return {
    name: `netfilter-v${family}`,
    desired: () => d.facts(),
    async observe() {
      const o = await observe(d.runner, family, own);
      const t = counterDeltas(o, last);
      if (t.length) d.onTraffic?.(t);
      return o;
    },
    diff: (facts, o) => {
      const desired: DesiredState = desiredNetfilter({ ...facts, family, existingSets: new Set(o.ipsets.keys()) });
      const p = plan(desired, o, own);
      return p.lines > 0 ? [p] : [];
    },
    async apply(plans) {
      let again = false;
      for (const p of plans) {
        const t0 = performance.now();
        await apply(d.runner, p);
        d.onApplied?.(p, (performance.now() - t0) / 1000);
        // a set rebuilt in place held back the rules naming it: one more pass puts them back
        again ||= p.again;
      }
      return again ? 'again' : undefined;
    },
    describe: (p) => `${p.lines} netfilter lines (${[...p.iptables.keys()].join(', ') || 'ipsets only'})${p.notes.length ? `; ${p.notes.join('; ')}` : ''}`,
  };
}

/** What of a family's netfilter state is ours: upstream's names plus our comment-less rules by exact text. */
export function ownership(family: Family): ReturnType<typeof kubeOvnOwnership> {
  return kubeOvnOwnership(family, unmarkedRules(family));
}

/**
 * Removes everything of ours, once, from the given back ends (non-primary mode, §5.9 end; a switch to it). Rules go
 * from every back end first, and only then the shared sets, so no rule still names a set being destroyed.
 */
export async function removeAllOwned(runners: readonly NetfilterRunner[], families: readonly Family[]): Promise<number> {
  let lines = 0;
  for (const r of runners) for (const f of families) lines += (await removeOwned(r, f, ownership(f), { sets: false })).lines;
  for (const f of families) lines += (await removeOwned(runners[0]!, f, ownership(f), { sets: true })).lines;
  return lines;
}
