// A simulated physical network for the underlay tests (issue 13, ../shared/notes/testbed.md §6): a node namespace
// running OVS (userspace datapath) whose "NIC" eth1 is one end of a veth; the other end is in a "router" namespace
// that owns the physical gateway 172.30.50.1/24 and a remote address 10.200.0.1 on its loopback. The NIC starts
// with two addresses (one without a broadcast), a default route, a gateway route with a metric and a link-scope route. Bed configuration
// (not product code): the router's veth has TX checksum offload off, as the userspace datapath needs.
import { mkdtempSync, rmSync } from 'node:fs';
import { startOvs, type OvsNode } from '../bed/ovs.ts';
import { addVeth, createNetns, onCleanup, type Netns } from '../bed/netns.ts';
import { OvsVswitch } from '../../agent/src/datapath/ovsdb/vswitch.ts';
import type { RtNetlink } from '../../agent/src/datapath/netlink/rtnl.ts';
import { Reconciler } from '../../agent/src/node/reconciler.ts';
import { FileJournal } from '../../agent/src/node/underlay/journal.ts';
import { planUnderlay } from '../../agent/src/node/underlay/plan.ts';
import { underlaySpec, type UnderlayDeps } from '../../agent/src/node/underlay/reconciler.ts';
import type { ProviderNetwork } from '../../agent/src/node/underlay/types.ts';

export const NIC = 'eth1';
export const NODE_IP = '172.30.50.10';
export const GW = '172.30.50.1';
export const REMOTE = '10.200.0.1';

export interface UnderlayBed {
  readonly ovs: OvsNode;
  readonly node: Netns;
  readonly router: Netns;
  readonly vs: OvsVswitch;
}

export async function underlayBed(prefix: string): Promise<UnderlayBed> {
  const ovs = await startOvs({ prefix, name: 'n1' });
  await ovs.addBridge('br-int');
  const node = ovs.nodeNs;
  const router = await createNetns(`${prefix}rt`);
  await addVeth(node, NIC, router, 'eth0');
  await router.ip(['addr', 'add', `${GW}/24`, 'brd', '+', 'dev', 'eth0']);
  await router.ip(['addr', 'add', `${REMOTE}/32`, 'dev', 'lo']);
  await router.ip(['route', 'add', '172.30.60.0/24', 'via', NODE_IP]);
  await router.exec(['ethtool', '-K', 'eth0', 'tx', 'off']);
  await node.ip(['addr', 'add', `${NODE_IP}/24`, 'brd', '+', 'dev', NIC]);
  // no broadcast on purpose: a move must not add one (`ip -d addr` is compared byte for byte)
  await node.ip(['addr', 'add', '172.30.60.10/24', 'dev', NIC]);
  await node.ip(['route', 'add', 'default', 'via', GW, 'dev', NIC]);
  await node.ip(['route', 'add', '10.200.0.0/16', 'via', GW, 'dev', NIC, 'metric', '100']);
  await node.ip(['route', 'add', '10.201.0.0/16', 'dev', NIC, 'scope', 'link']);
  const vs = await OvsVswitch.connect({ remote: `unix:${ovs.dbSock}`, requestTimeoutMs: 10_000 });
  return { ovs, node, router, vs };
}

/** `ip -4 route show table all`, sorted, with the device name replaced (to compare a NIC's routes with a bridge's). */
export async function routes(ns: Netns, dev: string, as = dev): Promise<string[]> {
  const out = (await ns.ip(['-4', 'route', 'show', 'table', 'all'])).stdout;
  return out.split('\n').filter((l) => l.includes(` dev ${dev} `) || l.endsWith(` dev ${dev}`))
    .map((l) => l.replaceAll(` dev ${dev}`, ` dev ${as}`).trim()).sort();
}

/** The `inet` lines of `ip -4 addr show dev`, with the label replaced. */
export async function inet(ns: Netns, dev: string, as = dev): Promise<string[]> {
  const out = (await ns.ip(['-4', 'addr', 'show', 'dev', dev], { allowFail: true })).stdout;
  return out.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('inet ') || l.startsWith('valid_lft'))
    .map((l) => l.replace(new RegExp(` ${dev}$`), ` ${as}`));
}

export async function linkJson(ns: Netns, dev: string): Promise<{ address: string; mtu: number; flags: string[]; operstate: string } | undefined> {
  const r = await ns.ip(['-j', 'link', 'show', 'dev', dev], { allowFail: true });
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.stdout) as { address: string; mtu: number; flags: string[]; operstate: string }[])[0];
}

/** A journal directory of the test's own, removed at clean-up. */
export function journalDir(prefix: string): string {
  const dir = mkdtempSync(`/tmp/${prefix}journal-`);
  onCleanup({ label: `journal ${dir}`, run: async () => rmSync(dir, { recursive: true, force: true }), runSync: () => rmSync(dir, { recursive: true, force: true }) });
  return dir;
}

/** The provider network `phys` on the bed's node through its reconciler, with Kubernetes (labels, annotations,
 *  Events) kept in memory: these tests are about the kernel and OVS. `settle` runs passes to a fixed point. */
export function bedNetwork(bed: UnderlayBed, nl: RtNetlink, journalDir: string, spec: NonNullable<ProviderNetwork['spec']>, extra: Pick<UnderlayDeps, 'nm'> = {}) {
  const state = {
    pn: { metadata: { name: 'phys' }, spec } as ProviderNetwork | undefined,
    labels: {} as Record<string, string>, annotations: {} as Record<string, string>, events: [] as string[],
  };
  let macs = 0;
  const r = new Reconciler(underlaySpec({
    pn: 'phys', nodeName: 'n1', netns: bed.node.path, netlink: () => nl, vswitch: () => bed.vs, journal: new FileJournal(journalDir),
    desired: () => planUnderlay({ pnName: 'phys', pn: state.pn, vlans: [], node: { metadata: { name: 'n1' } }, nodeName: 'n1', macLearningFallback: false }),
    nodeMeta: () => ({ labels: state.labels, annotations: state.annotations }),
    patchNode: async (p) => {
      for (const [k, v] of Object.entries(p.labels ?? {})) { if (v === null) delete state.labels[k]; else state.labels[k] = v; }
      for (const [k, v] of Object.entries(p.annotations ?? {})) { if (v === null) delete state.annotations[k]; else state.annotations[k] = v; }
    },
    event: (type, reason, message) => { state.events.push(`${type} ${reason} ${message}`); },
    datapathType: () => 'netdev',
    randomMac: () => `02:00:00:00:01:${(macs++).toString(16).padStart(2, '0')}`,
    ...extra,
  }), { resyncMs: 0 });
  const settle = async (): Promise<void> => {
    for (let n = 0; n < 8; n++) if ((await r.runNow()).changes === 0) return;
    throw new Error('no fixed point in 8 passes');
  };
  return { state, r, settle };
}
