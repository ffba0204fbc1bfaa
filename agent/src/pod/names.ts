// Names the agent derives, exactly as upstream (spec §3.3, §3.6, §3.15): veth pair names, OVN iface-id, IP CR name.

const IFNAMSIZ = 15;

export interface VethNames {
  /** host end, plugged into br-int: `<cid[0:12]>_h` or `<cid[0:12-len(if)]>_<if>_h` */
  readonly host: string;
  /** container end before it is moved and renamed to the CNI ifName */
  readonly container: string;
}

/**
 * Upstream's generateNicName: `eth0` -> `<cid[0:12]>_h`/`_c`; a KubeVirt ifname `pod` + 11 characters is shortened to
 * its characters 3..10 first; any other ifname -> `<cid[0:12-len]>_<ifname>_h`/`_c`. Ifnames longer than 12 characters
 * cannot be named (upstream panics): a string error is returned instead.
 */
export function vethNames(containerId: string, ifName: string): VethNames | string {
  if (containerId === '') return 'container ID is empty';
  if (/[^A-Za-z0-9_.-]/.test(containerId)) return `container ID ${JSON.stringify(containerId)} has characters not allowed in a link name`;
  let ifn = ifName === '' ? 'eth0' : ifName;
  if (ifn === 'eth0') return { host: `${containerId.slice(0, 12)}_h`, container: `${containerId.slice(0, 12)}_c` };
  if (ifn.length === 14 && ifn.startsWith('pod')) ifn = ifn.slice(3, 10);
  if (ifn.length > 12) return `interface name ${JSON.stringify(ifName)} is longer than 12 characters (no room for the veth name)`;
  const stem = `${containerId.slice(0, 12 - ifn.length)}_${ifn}`;
  const names = { host: `${stem}_h`, container: `${stem}_c` };
  return names.host.length > IFNAMSIZ ? `veth name ${names.host} is too long` : names;
}

/** OVN logical port name: `<pod>.<ns>` for provider ovn, else `<pod>.<ns>.<provider>`; `.<ifName>` appended when appendIfName. */
export function ifaceId(podOrVm: string, namespace: string, provider: string, ifName: string, appendIfName: boolean): string {
  const base = provider === '' || provider === 'ovn' ? `${podOrVm}.${namespace}` : `${podOrVm}.${namespace}.${provider}`;
  return appendIfName ? `${base}.${ifName}` : base;
}

/** The IP CR (kubeovn.io/v1 IP, cluster-scoped) has the same name as the logical port. */
export const ipCrName = ifaceId;

/** The container-ID prefix a pod port name carries: `<cid[0:12]>_h` or `<cid[0:12-len(if)]>_<if>_h`. */
export function portContainerPrefix(port: string): string | undefined {
  if (!port.endsWith('_h')) return undefined;
  const prefix = port.slice(0, -2).split('_')[0] ?? '';
  return prefix.length >= 1 ? prefix : undefined;
}
