// Whose NIC a host-side name belongs to. Host names are `<cid[0:12]>_h` (upstream's scheme, kept), so two containers
// whose IDs share their first 12 characters map to the same host veth and OVS port. Before an ADD removes a
// "leftover" of that name, or a DEL removes the host side, the OVS row must prove it belongs to the caller's pod:
// external_ids pod_name/pod_namespace equal the pod's (KubeVirt: the VM's), and the row's pod_netns is the caller's
// netns or no longer exists. Anything else belongs to another pod and is never touched (issue 14 item 3).

import { access } from 'node:fs/promises';
import type { Vswitch } from '../datapath/ports.ts';

export interface HostSideClaim {
  /** the host veth / OVS port name */
  readonly host: string;
  readonly podName: string;
  readonly podNamespace: string;
  /** the KubeVirt VM the pod runs (the name OVS rows carry), when known */
  readonly vm?: string | undefined;
  /** the caller's netns path; '' = unknown (a DEL after the sandbox is gone): only the pod identity is compared */
  readonly netns: string;
}

export type HostSideOwner = { readonly mine: true } | { readonly mine: false; readonly why: string };

export interface OwnershipDeps {
  readonly vswitch: Pick<Vswitch, 'getInterface'>;
  /** does this netns path still exist (default: the filesystem says so) */
  readonly netnsExists?: (path: string) => Promise<boolean>;
}

const fsExists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);

/** KubeVirt launcher pods are `virt-launcher-<vm>-<suffix>`: a DEL of one whose pod is no longer cached. */
const launcherOf = (pod: string, vm: string): boolean => pod.startsWith(`virt-launcher-${vm}-`);

/**
 * Whether the host side named `c.host` may be removed on behalf of `c`. No OVS row: nothing is wired through the
 * name (a veth without a port carries no traffic; ADDs in flight are guarded by the backend), so it is the caller's.
 */
export async function hostSideOwner(d: OwnershipDeps, c: HostSideClaim): Promise<HostSideOwner> {
  const row = d.vswitch.getInterface(c.host);
  if (!row) return { mine: true };
  const ids = row.externalIds;
  if (ids.pod_name === undefined || ids.pod_namespace === undefined) {
    return { mine: false, why: `OVS port ${c.host} is not a kube-ovn pod port (no pod_name/pod_namespace)` };
  }
  const samePod = ids.pod_namespace === c.podNamespace
    && (ids.pod_name === c.podName || ids.pod_name === c.vm || launcherOf(c.podName, ids.pod_name));
  if (!samePod) return { mine: false, why: `OVS port ${c.host} belongs to pod ${ids.pod_namespace}/${ids.pod_name}` };
  const rowNetns = ids.pod_netns ?? '';
  if (c.netns !== '' && rowNetns !== '' && rowNetns !== c.netns && await (d.netnsExists ?? fsExists)(rowNetns)) {
    return { mine: false, why: `OVS port ${c.host} is wired to the live netns ${rowNetns}, not ${c.netns}` };
  }
  return { mine: true };
}
