// The netfilter room: codecs (iptables-codec, ipset-codec, canonical), the port and its real runner, the diff
// (plan) and the executor (observe/apply/reconcile), back-end detection. Test fakes live in fake.ts, not here.
export type { Backend, Family, TableName, Observed, IptablesState, IpsetState, IpSet, SavedTable, SavedChain, SavedRule, Counters } from './types.ts';
export type { DesiredState, DesiredTable, DesiredSet, PlacedRule, Position, RuleAnchor, Ownership, OwnedRule } from './desired.ts';
export { kubeOvnOwnership } from './desired.ts';
export { canonicalRule } from './canonical.ts';
export { parseIptablesSave, parseRestore, renderTable } from './iptables-codec.ts';
export { parseIpsetSave, canonicalMember } from './ipset-codec.ts';
export { plan, commentOf, jumpTarget, setsNamedBy, type Plan } from './plan.ts';
export { observe, apply, reconcile, removeOwned, type ReconcileResult } from './apply.ts';
export { NetfilterError, type NetfilterRunner } from './port.ts';
export { ExecNetfilterRunner, type ExecRunnerOptions } from './runner.ts';
export { decideBackend, probeBackend, hostProbeDeps, type BackendDecision, type BackendProbe, type ProbeDeps } from './backend.ts';
