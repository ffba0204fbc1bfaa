// CNI data types as the agent holds them internally. Results are always kept in the newest spec form (1.1.0) and
// converted to the netconf's version only when printed (see codec.ts). Field names follow the CNI spec's JSON.

/** Spec versions we accept in a netconf, oldest first. */
export const SUPPORTED_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type SpecVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST_VERSION: SpecVersion = '1.1.0';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';
export const COMMANDS: readonly CniCommand[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'];

export interface CniInterface {
  name: string;
  mac?: string;
  /** 1.1.0 only */
  mtu?: number;
  sandbox?: string;
  /** 1.1.0 only */
  socketPath?: string;
  /** 1.1.0 only */
  pciID?: string;
}

export interface CniIpConfig {
  /** CIDR notation: the address with its prefix length, e.g. 10.16.0.5/16 */
  address: string;
  gateway?: string;
  /** index into `interfaces` */
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
  /** 1.1.0 only */
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** A result in the internal (1.1.0) form. */
export interface CniResult {
  interfaces?: CniInterface[];
  ips?: CniIpConfig[];
  routes?: CniRoute[];
  dns?: CniDns;
}

/** Upstream kube-ovn custom route (netconf `routes`, CniRequest `routes`): both strings, either may be empty. */
export interface UpstreamRoute {
  dst?: string;
  gw?: string;
}

/** The parsed network configuration (stdin) with the upstream kube-ovn keys resolved. */
export interface NetConf {
  cniVersion: SpecVersion;
  name: string;
  /** netconf `type` (kube-ovn, or e.g. macvlan in IPAM-only mode) */
  type: string;
  /** true when `type` is not kube-ovn and `ipam.type` is kube-ovn: kube-ovn only allocates addresses */
  ipamMode: boolean;
  /** from the netconf, or from `ipam` in IPAM-only mode; '' when absent (then rejected for ADD/DEL/CHECK) */
  serverSocket: string;
  /** resolved provider: default `ovn` */
  provider: string;
  routes: UpstreamRoute[] | null;
  dns?: CniDns;
  deviceID?: string;
  vfDriver?: string;
  vhostUserSocketVolumeName?: string;
  vhostUserSocketName?: string;
  vhostUserSocketConsumption?: string;
  runtimeConfig?: Record<string, unknown>;
  capabilities?: Record<string, unknown>;
  args?: Record<string, unknown>;
  /** decoded into the internal form, from whatever version the netconf says */
  prevResult?: CniResult;
  /** CNI 1.1 GC: `cni.dev/valid-attachments` */
  validAttachments?: { containerID: string; ifname: string }[];
  /** the raw object, for backends that need a key we do not model */
  raw: Record<string, unknown>;
}

/** CNI_ARGS after parsing: the well-known Kubernetes keys plus everything else. */
export interface CniArgs {
  ignoreUnknown: boolean;
  podName?: string;
  podNamespace?: string;
  podUid?: string;
  infraContainerId?: string;
  all: Record<string, string>;
}

/** One ADD / DEL / CHECK, validated, as the backend sees it. */
export interface CniRequest {
  command: 'ADD' | 'DEL' | 'CHECK';
  containerId: string;
  /** absolute path; may be '' for DEL */
  netns: string;
  ifName: string;
  podName: string;
  podNamespace: string;
  podUid?: string;
  infraContainerId?: string;
  args: CniArgs;
  cniPath: string[];
  netconf: NetConf;
  /** where the call came from: the shim's forwarded call, or the upstream /api/v1 protocol */
  via: 'cni' | 'upstream';
}

export interface GcRequest {
  netconf: NetConf;
  validAttachments: { containerID: string; ifname: string }[];
}

/** The raw forwarded call: the CNI_* environment and stdin, as the shim received them. */
export interface ForwardedCall {
  env: Record<string, string>;
  stdin: string;
}

/** What the shim must print and exit with. */
export interface CallOutcome {
  stdout: string;
  exitCode: number;
}
