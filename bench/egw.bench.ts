// External egress gateway policy routing (node/egress-gateway.ts) on the real bed, the shipped bundle at its built-in
// resync (30 s), one node linked to an egress gateway namespace:
//   node.egw_reconcile_250_rules  ms of one pass of `egress-gateway` with nothing to change over 250 centralized EGW
//                                 subnets on this (gateway) node: 250 rules and 250 table routes (from the agent's
//                                 reconcile_duration histogram, one pass per sample, woken by the netlink event of
//                                 a foreign rule added or deleted by hand: a Subnet change would also wake host-routes
//                                 and netfilter, whose work on the same event loop would be counted in the pass);
//                                 baseline: reading the same state once with the tools (`ip rule show` + `ip route
//                                 show table all`).
//   node.egw_rule_repair          ms from `ip rule del` of one of our rules to the rule being back (the netlink rule
//                                 event); baseline: putting it back by hand with one `ip rule add`.
import { waitFor } from '../integration/bed/exec.ts';
import { addAddress, cleanupAll, createNetns } from '../integration/bed/netns.ts';
import { buildBundle, type NodeAgent } from '../integration/e2e/agent-harness.ts';
import { metric, nodeBed, startAgent, type NodeBed } from '../integration/node/lib.ts';
import { percentile, report, type BenchContext } from './lib.ts';

export const ids = ['node.egw_reconcile_250_rules', 'node.egw_rule_repair'] as const;

const N = Math.max(3, Number(process.env.KOA_BENCH_NODE_N) || 5);
const SUBNETS = 250;
const EGW = '192.168.90.2';

export default async function bench(ctx: BenchContext): Promise<void> {
  if (!ids.some((id) => ctx.wants(id))) return;
  buildBundle();
  let nb: NodeBed | undefined;
  let agent: NodeAgent | undefined;
  try {
    nb = await nodeBed();
    const node = nb.bed.nodes[0]!;
    const egw = await createNetns(`${nb.bed.prefix}egw`);
    await node.ns.ip(['link', 'add', 'koand-egw', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', egw.name]);
    await addAddress(node.ns, 'koand-egw', '192.168.90.1/24');
    await node.ns.ip(['link', 'set', 'koand-egw', 'up']);
    await addAddress(egw, 'eth0', `${EGW}/24`);
    await egw.ip(['link', 'set', 'eth0', 'up']);
    agent = await startAgent(nb.bed, node, { entry: 'bundle', resyncS: 0 });
    await addEgwSubnets(nb, node.name, SUBNETS);
    const ours = async () => (await node.ns.ip(['rule', 'show'])).stdout.split('\n').filter((l) => l.includes('proto 107'));
    await waitFor(`${SUBNETS} rules of ours`, async () => (await ours()).length >= SUBNETS, 180_000, 500);

    if (ctx.wants('node.egw_reconcile_250_rules')) {
      const ms: number[] = [];
      for (let i = 0; i < N; i++) ms.push(await onePass(agent, () => node.ns.ip(['rule', i % 2 ? 'del' : 'add', 'from', '10.250.0.0/16', 'lookup', '99', 'priority', '99'])));
      const base: number[] = [];
      for (let i = 0; i < N; i++) {
        const t0 = performance.now();
        await node.ns.ip(['rule', 'show']);
        await node.ns.ip(['route', 'show', 'table', 'all']);
        base.push(performance.now() - t0);
      }
      report('node.egw_reconcile_250_rules', 'ms', ms, { name: 'ip rule show + ip route show table all (read once by hand)', p50: percentile(base, 50) });
    }

    if (ctx.wants('node.egw_rule_repair')) {
      const sel = ['from', '10.160.7.0/24', 'lookup', '2007', 'priority', '3007'];
      const ms: number[] = [];
      for (let i = 0; i < N; i++) {
        await node.ns.ip(['rule', 'del', ...sel, 'protocol', '107']);
        const t0 = performance.now();
        await waitFor('rule back', async () => (await ours()).some((l) => l.includes('from 10.160.7.0/24 lookup 2007')), 120_000, 10);
        ms.push(performance.now() - t0);
      }
      const base: number[] = [];
      for (let i = 0; i < N; i++) {
        const t0 = performance.now();
        await node.ns.ip(['rule', 'add', ...sel.map((x) => (x === '10.160.7.0/24' ? '10.161.7.0/24' : x))]);
        base.push(performance.now() - t0);
        await node.ns.ip(['rule', 'del', 'from', '10.161.7.0/24', 'lookup', '2007', 'priority', '3007']);
      }
      report('node.egw_rule_repair', 'ms', ms, { name: 'ip rule add by hand', p50: percentile(base, 50) });
    }
  } finally {
    await agent?.stop().catch(() => undefined);
    await nb?.bed.down().catch(() => undefined);
    await cleanupAll().catch(() => undefined);
  }
}

/** Centralized EGW Subnet CRs with this node as gateway, each with its own table and priority (no OVN objects). */
async function addEgwSubnets(nb: NodeBed, nodeName: string, n: number): Promise<void> {
  const api = nb.bed.kube!.api;
  for (let i = 0; i < n; i += 25) {
    await Promise.all(Array.from({ length: Math.min(25, n - i) }, async (_x, k) => {
      const j = i + k;
      const cidr = `10.${160 + (j >> 8)}.${j & 255}.0/24`;
      await api.post('/apis/kubeovn.io/v1/subnets', { apiVersion: 'kubeovn.io/v1', kind: 'Subnet', metadata: { name: `egw-${j}` },
        spec: { cidrBlock: cidr, gateway: cidr.replace(/0\/24$/, '1'), protocol: 'IPv4', provider: 'ovn', vpc: 'ovn-cluster', natOutgoing: false,
          gatewayType: 'centralized', gatewayNode: nodeName, externalEgressGateway: EGW, policyRoutingTableID: 2000 + j, policyRoutingPriority: 3000 + j } });
    }));
  }
}

/** Wakes the reconciler with `poke` and returns the ms of its pass (histogram sum delta / count delta). */
async function onePass(agent: NodeAgent, poke: () => Promise<unknown>): Promise<number> {
  const r = 'reconciler="egress-gateway"';
  const read = async () => Promise.all([metric(agent, 'kube_ovn_agent_reconcile_duration_seconds_sum', r), metric(agent, 'kube_ovn_agent_reconcile_duration_seconds_count', r),
    metric(agent, 'kube_ovn_agent_reconcile_changes_total', r)]);
  const before = await read();
  await poke();
  const after = await waitFor('one pass', async () => { const a = await read(); return a[1]! > before[1]! ? a : undefined; }, 60_000, 50);
  if (after[2]! !== before[2]!) throw new Error('a pass changed something: not converged');
  return ((after[0]! - before[0]!) / (after[1]! - before[1]!)) * 1000;
}
