// What the real-node tests wait for after deleting pods: the controller removed their LSPs, the agent answered
// their DELs, no pod port is left on br-int.
import type { OvnCentral } from '../bed/ovn.ts';
import type { OvsNode } from '../bed/ovs.ts';
import { waitFor } from '../bed/exec.ts';
import { cniRequestCounts, countOf, type DaemonSetAgent } from './daemonset.ts';

/** The controller has removed the logical switch port of every pod (`<pod>.default`). */
export async function waitLspsRemoved(central: OvnCentral, pods: readonly string[], timeoutMs = 120_000): Promise<void> {
  await waitFor('LSPs of the pods removed by the controller', async () => {
    const lsps = (await central.nbctl(['--bare', '--columns=name', 'list', 'logical_switch_port'])).split('\n');
    return pods.every((p) => !lsps.includes(`${p}.default`));
  }, timeoutMs, 500);
}

/** The agent's CNI request counts once it has answered at least `n` DELs. */
export function waitDels(agent: DaemonSetAgent, n: number): Promise<Map<string, number>> {
  return waitFor('a DEL per pod at least', async () => {
    const c = await cniRequestCounts(agent);
    return countOf(c, 'DEL') >= n ? c : undefined;
  }, 120_000, 1000);
}

/** No `_h` pod port is left on br-int. */
export async function waitNoPodPorts(ovs: OvsNode): Promise<void> {
  await waitFor('no pod port on br-int', async () =>
    (await ovs.vsctl(['list-ports', 'br-int'])).split('\n').filter((p) => p.endsWith('_h')).length === 0, 60_000, 500);
}
