// Names the agent derives, exactly as upstream (spec §3.3, §3.6, §3.15): veth pair names, OVN iface-id, IP CR name.

/** the kernel's IFNAMSIZ less the NUL: a link name is at most 15 BYTES (a non-ASCII character takes 2-4) */
const IFNAMSIZ = 15;

const bytes = (s: string): number => Buffer.byteLength(s);

/**
 * Why the kernel would refuse `name` as a link name (net/core/dev.c dev_valid_name), or null. Sizes are in bytes;
 * the kernel's isspace() also matches the byte 0xa0 (Latin-1 no-break space), which occurs inside UTF-8 sequences
 * such as `à` (c3 a0): such a name can never exist, so it is refused here rather than by a netlink EINVAL.
 */
export function linkNameProblem(name: string): string | null {
  const b = Buffer.from(name);
  if (b.length === 0) return 'it is empty';
  if (b.length > IFNAMSIZ) return `"${name}" is ${b.length} bytes, longer than ${IFNAMSIZ}`;
  if (name === '.' || name === '..') return `"${name}" is not a valid link name`;
  for (const c of b) {
    if (c === 0x2f || c === 0x3a || c === 0 || (c >= 0x09 && c <= 0x0d) || c === 0x20 || c === 0xa0) {
      return `"${name}" contains a byte the kernel refuses in a link name (0x${c.toString(16).padStart(2, '0')})`;
    }
  }
  return null;
}

export interface VethNames {
  /** host end, plugged into br-int: `<cid[0:12]>_h` or `<cid[0:12-len(if)]>_<if>_h` */
  readonly host: string;
  /** container end before it is moved and renamed to the CNI ifName */
  readonly container: string;
}

/**
 * Upstream's generateNicName: `eth0` -> `<cid[0:12]>_h`/`_c`; a KubeVirt ifname `pod` + 11 bytes is shortened to
 * its bytes 3..10 first; any other ifname -> `<cid[0:12-len]>_<ifname>_h`/`_c`. Lengths are in bytes, as upstream's
 * Go len() (and the kernel) count them: `ñet0` is 5 bytes and leaves 7 characters of the container ID. Ifnames
 * longer than 12 bytes cannot be named (upstream panics), nor can names the kernel refuses: a string error is
 * returned instead, and DEL of such an input has nothing to remove.
 */
export function vethNames(containerId: string, ifName: string): VethNames | string {
  if (containerId === '') return 'container ID is empty';
  if (/[^A-Za-z0-9_.-]/.test(containerId)) return `container ID ${JSON.stringify(containerId)} has characters not allowed in a link name`;
  let ifn = ifName === '' ? 'eth0' : ifName;
  if (ifn === 'eth0') return { host: `${containerId.slice(0, 12)}_h`, container: `${containerId.slice(0, 12)}_c` };
  if (bytes(ifn) === 14 && ifn.startsWith('pod')) {
    // byte slice, as upstream; a cut through a multi-byte character is not a name anyone can use
    const cut = Buffer.from(ifn).subarray(3, 10);
    ifn = cut.toString('utf8');
    if (!Buffer.from(ifn).equals(cut)) return `interface name ${JSON.stringify(ifName)} cannot be shortened to 7 bytes on a character boundary`;
  }
  if (bytes(ifn) > 12) return `interface name ${JSON.stringify(ifName)} is longer than 12 bytes (no room for the veth name)`;
  // the container ID is ASCII (checked above): its characters are bytes
  const stem = `${containerId.slice(0, 12 - bytes(ifn))}_${ifn}`;
  const names = { host: `${stem}_h`, container: `${stem}_c` };
  const problem = linkNameProblem(names.host) ?? linkNameProblem(ifName === '' ? 'eth0' : ifName);
  return problem ? `veth name ${names.host} cannot be used: ${problem}` : names;
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
