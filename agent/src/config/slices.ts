// The configuration by area: each component receives the slice it needs (a parameter typed as, say, NodeConfig
// shows at a glance which flags it acts on). `Config` (config.ts) is all of them together.

export type NetworkType = 'geneve' | 'vxlan' | 'stt' | 'vlan';
export const NETWORK_TYPES: readonly NetworkType[] = ['geneve', 'vxlan', 'stt', 'vlan'];

/** Who this agent is. */
export interface IdentityConfig {
  /** --node-name, else env KUBE_NODE_NAME, else NODE_NAME, else the hostname; lower-cased */
  readonly nodeName: string;
  /** env POD_NAME / POD_NAMESPACE: the agent's own pod (events and error annotations about it) */
  readonly podName: string;
  readonly podNamespace: string;
  /** env POD_IP / POD_IPS: the hostNetwork pod's addresses = node addresses */
  readonly podIp: string;
  readonly podIps: readonly string[];
}

/** The install-cni init container's one-shot mode. */
export interface InstallConfig {
  readonly installCniConfig: boolean;
  readonly cniConfDir: string;
  readonly cniConfFile: string;
  readonly cniConfName: string;
}

/** What the agent serves: the CNI socket, metrics/health, logs. */
export interface ServeConfig {
  readonly bindSocket: string;
  /** where DELs that could not finish are queued for the next start */
  readonly delQueueDir: string;
  /** 0.0.0.0, or the POD_IPS when ENABLE_BIND_LOCAL_IP=true */
  readonly listenAddresses: readonly string[];
  readonly pprofPort: number;
  readonly enablePprof: boolean;
  readonly enableMetrics: boolean;
  readonly secureServing: boolean;
  readonly tlsMinVersion: string;
  readonly tlsMaxVersion: string;
  readonly tlsCipherSuites: readonly string[];
  /** pino level */
  readonly logLevel: string;
  /** klog -v */
  readonly logVerbosity: number;
  readonly logPerm: number;
}

/** Where the agent's peers are. */
export interface ConnectConfig {
  readonly ovsSocket: string;
  /** '' = in-cluster */
  readonly kubeconfig: string;
  readonly watchIdleTimeoutMs: number;
}

/** The node's own network (node/): tunnel, ovn0, routes, netfilter, gateways, mode. */
export interface NodeConfig {
  readonly iface: string;
  readonly hostTunnelSrc: boolean;
  readonly dpdkTunnelIface: string;
  /** 0 = derive from the tunnel NIC (see mtu.ts) */
  readonly mtu: number;
  readonly networkType: NetworkType;
  readonly encapChecksum: boolean;
  readonly clusterRouter: string;
  readonly nodeSwitch: string;
  readonly serviceClusterIpRange: readonly string[];
  readonly nonPrimaryCniMode: boolean;
  readonly setVxlanTxOff: boolean;
  readonly macLearningFallback: boolean;
  /** external-LB OpenFlow flows on provider bridges (node/underlay/lb-flows.ts) */
  readonly enableExternalLbAddress: boolean;
  /** intent log of provider-network NIC moves (node/underlay/journal.ts) */
  readonly underlayJournalDir: string;
  readonly enableMirror: boolean;
  readonly mirrorIface: string;
  readonly externalGatewayConfigNs: string;
  readonly externalGatewaySwitch: string;
  readonly enableTproxy: boolean;
  readonly enableOvnIpsec: boolean;
  readonly certManagerIpsecCert: boolean;
  readonly certManagerIssuerName: string;
  readonly ovnIpsecCertDuration: number;
  readonly enableVerboseConnCheck: boolean;
  readonly tcpConnCheckPort: number;
  readonly udpConnCheckPort: number;
  readonly defaultProviderName: string;
  readonly defaultInterfaceName: string;
  /** --node-resync-period in ms: one resync period for every node reconciler; 0 = each one's built-in period */
  readonly nodeResyncMs: number;
}

/** Pod wiring (pod/): bounds and checks of one ADD. */
export interface PodConfig {
  readonly enableArpDetectIpConflict: boolean;
  readonly annotationWaitTimeoutMs: number;
  readonly ovnInstalledTimeoutMs: number;
  readonly gatewayCheckTimeoutMs: number;
  /** ADDs in the datapath at once (the rest queue in arrival order) */
  readonly maxParallelAdds: number;
  /** total time of one IPv4 conflict probe (pod/executor.ts probeTiming) */
  readonly ipConflictProbeMs: number;
  /** how long an early ADD waits for the node to be initialised */
  readonly nodeReadyTimeoutMs: number;
  readonly kubeletDir: string;
  readonly ovsVsctlConcurrency: number;
}
