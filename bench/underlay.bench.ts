// Underlay benchmarks on the simulated physical network of integration/node/underlay-bed.ts (prefix koaulb):
//   underlay.transfer  ms to move a NIC with 2 addresses and 3 routes onto its OVS bridge (journaled, each step's
//                      intent fsync'ed; the port add waits for ovs-vswitchd), the bridge existing already
//   underlay.restore   ms to move them back, remove the port and delete the bridge
// Baselines in the same run: the same moves with `ip` and `ovs-vsctl` processes (no journal).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { promisify } from 'node:util';
import type { BenchContext } from './lib.ts';
import { percentile, report } from './lib.ts';
import { cleanupAll, newPrefix } from '../integration/bed/netns.ts';
import { GW, NIC, underlayBed } from '../integration/node/underlay-bed.ts';
import { warmUp } from '../agent/src/native.ts';
import { RtNetlink } from '../agent/src/datapath/netlink/rtnl.ts';
import { FileJournal } from '../agent/src/node/underlay/journal.ts';
import { restoreNic, transferNic } from '../agent/src/node/underlay/transfer.ts';

export const ids = ['underlay.transfer', 'underlay.restore'] as const;
const exec = promisify(execFile);
const BR = 'br-phys';
const ADDRS = ['172.30.50.10/24', '172.30.60.10/24'];

export default async function bench(ctx: BenchContext): Promise<void> {
  if (!ids.some((id) => ctx.wants(id))) return;
  await warmUp();
  const prefix = newPrefix('koaulb');
  const dir = mkdtempSync(`/tmp/${prefix}journal-`);
  const nl = new RtNetlink();
  try {
    const bed = await underlayBed(prefix);
    const ns = bed.node.name;
    const ip = (args: string[]): Promise<unknown> => exec('ip', ['-n', ns, ...args]);
    const vsctl = (args: string[]): Promise<unknown> => exec('ovs-vsctl', ['--timeout=10', ...args], { env: bed.ovs.env });
    const mac = JSON.parse((await bed.node.ip(['-j', 'link', 'show', NIC])).stdout)[0].address as string;
    const d = { netlink: nl, vswitch: bed.vs, journal: new FileJournal(dir), netns: bed.node.path };
    const routesOn = (dev: string): string[][] => [
      ['route', 'replace', '10.201.0.0/16', 'dev', dev, 'scope', 'link'],
      ['route', 'replace', 'default', 'via', GW, 'dev', dev],
      ['route', 'replace', '10.200.0.0/16', 'via', GW, 'dev', dev, 'metric', '100'],
    ];
    const byHand = {
      async transfer(): Promise<void> {
        await vsctl(['set', 'bridge', BR, `other_config:hwaddr="${mac}"`]);
        await ip(['link', 'set', BR, 'address', mac, 'mtu', '1500', 'up']);
        for (const a of ADDRS) await ip(['addr', 'replace', a, 'brd', '+', 'dev', BR]);
        await vsctl(['--may-exist', 'add-port', BR, NIC, '--', 'set', 'port', NIC, 'trunks=0', 'external_ids:vendor=kube-ovn']);
        for (const r of routesOn(BR)) await ip(r);
        for (const a of ADDRS) await ip(['addr', 'del', a, 'dev', NIC]);
        await ip(['link', 'set', NIC, 'up']);
      },
      async restore(): Promise<void> {
        await ip(['link', 'set', NIC, 'up']);
        for (const a of ADDRS) await ip(['addr', 'replace', a, 'brd', '+', 'dev', NIC]);
        for (const r of routesOn(NIC)) await ip(r);
        await vsctl(['--if-exists', 'del-port', BR, NIC]);
        for (const a of ADDRS) await ip(['addr', 'del', a, 'dev', BR]);
        await vsctl(['--if-exists', 'del-br', BR]);
      },
    };
    const N = 10;
    const ours = { transfer: [] as number[], restore: [] as number[] };
    const base = { transfer: [] as number[], restore: [] as number[] };
    for (let i = -2; i < N; i++) {
      await bed.vs.ensureBridge({ name: BR, datapathType: 'netdev' }, { wait: true });
      let t = performance.now();
      await transferNic(d, 'phys', NIC, BR, [0]);
      if (i >= 0) ours.transfer.push(performance.now() - t);
      t = performance.now();
      await restoreNic(d, 'phys', NIC, BR);
      if (i >= 0) ours.restore.push(performance.now() - t);

      await vsctl(['--may-exist', 'add-br', BR, '--', 'set', 'bridge', BR, 'datapath_type=netdev']);
      t = performance.now();
      await byHand.transfer();
      if (i >= 0) base.transfer.push(performance.now() - t);
      t = performance.now();
      await byHand.restore();
      if (i >= 0) base.restore.push(performance.now() - t);
    }
    if (ctx.wants('underlay.transfer')) report('underlay.transfer', 'ms', ours.transfer, { name: 'ip + ovs-vsctl, same steps, no journal', p50: percentile(base.transfer, 50) });
    if (ctx.wants('underlay.restore')) report('underlay.restore', 'ms', ours.restore, { name: 'ip + ovs-vsctl, same steps, no journal', p50: percentile(base.restore, 50) });
    bed.vs.close();
  } finally {
    nl.close();
    rmSync(dir, { recursive: true, force: true });
    await cleanupAll();
  }
}
