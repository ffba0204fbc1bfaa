// The executor around the port: read the state (observe), write a plan (apply), and the two together
// (reconcile). The reconciler loop (node/reconciler.ts) decides when; this decides nothing.
import { parseIpsetSave } from './ipset-codec.ts';
import { parseIptablesSave } from './iptables-codec.ts';
import { plan, ownsSet, type Plan } from './plan.ts';
import { kubeOvnOwnership, type DesiredState, type Ownership } from './desired.ts';
import type { NetfilterRunner } from './port.ts';
import type { Family, Observed } from './types.ts';

/** One iptables-save of the family and one ipset save, in parallel. Members are kept for our own sets only (given
 * `own`), so kube-proxy's large IPVS sets cost no parsing. */
export async function observe(runner: NetfilterRunner, family: Family, own?: Ownership): Promise<Observed> {
  const [ipt, sets] = await Promise.all([runner.save(family), runner.ipsetSave()]);
  return { family, iptables: parseIptablesSave(ipt), ipsets: parseIpsetSave(sets, own ? { members: (n) => ownsSet(own, n) } : {}) };
}

/** Runs a plan: ipset (creates, members, swaps), then one iptables-restore for all changed tables, then ipset
 * (destroys). Nothing is spawned for an empty part. */
export async function apply(runner: NetfilterRunner, p: Plan): Promise<void> {
  if (p.ipset) await runner.ipsetRestore(p.ipset);
  const ipt = [...p.iptables.values()].join('');
  if (ipt) await runner.restore(p.family, ipt);
  if (p.ipsetAfter) await runner.ipsetRestore(p.ipsetAfter);
}

export interface ReconcileResult {
  /** Lines applied over all passes (0 = was already in sync). */
  lines: number;
  /** Plans applied (a set rebuilt in place needs a second pass to put back the rules naming it). */
  passes: number;
  notes: string[];
}

/** observe -> plan -> apply, repeated while a plan says `again` (at most 3 passes). */
export async function reconcile(runner: NetfilterRunner, desired: DesiredState, own: Ownership = kubeOvnOwnership(desired.family)): Promise<ReconcileResult> {
  let lines = 0;
  let passes = 0;
  const notes: string[] = [];
  for (;;) {
    const p = plan(desired, await observe(runner, desired.family, own), own);
    notes.push(...p.notes);
    if (p.lines === 0) break;
    await apply(runner, p);
    lines += p.lines;
    passes++;
    if (!p.again || passes >= 3) break;
  }
  return { lines, passes, notes };
}

/** Removes everything of ours in one back end: rules, jumps, chains, and (sets: true) the family's owned sets.
 * Used once for non-primary mode (spec §5.9 end) and, with sets: false, for our rules left in the legacy tables
 * of an nft node (the sets are shared with the back end in use). */
export function removeOwned(runner: NetfilterRunner, family: Family, own: Ownership, opts: { sets: boolean }): Promise<ReconcileResult> {
  return reconcile(runner, { family, tables: {}, ...(opts.sets ? { ipsets: [] } : {}) }, own);
}
