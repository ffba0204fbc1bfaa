// The agent's configuration: upstream kube-ovn-daemon flag names and defaults (spec §9), the environment variables
// upstream reads (§9.2), plus a few flags of our own (marked `ours`) for bounds upstream hard-codes.
// loadConfig() is pure: argv, env and the hostname in; a frozen Config out, or one AgentError listing every problem.

import { familyOf, isCidr } from '../net/ip.ts';
import { agentError } from '../errors.ts';
import { formatDuration, parseDuration } from './duration.ts';
import { parseFlags, parseGoBool, parseInteger, type FlagKind } from './flags.ts';

import { NETWORK_TYPES, type ConnectConfig, type IdentityConfig, type InstallConfig, type NetworkType, type NodeConfig, type PodConfig,
  type ServeConfig } from './slices.ts';

export { NETWORK_TYPES, type ConnectConfig, type IdentityConfig, type InstallConfig, type NetworkType, type NodeConfig, type PodConfig, type ServeConfig };

/** All of the agent's settings: every slice of slices.ts. */
export interface Config extends IdentityConfig, InstallConfig, ServeConfig, ConnectConfig, NodeConfig, PodConfig {}

type Origin = 'upstream' | 'ours' | 'klog';
export interface FlagDef {
  readonly name: string;
  readonly kind: FlagKind;
  /** default as text (what the README shows and what is parsed when the flag is absent) */
  readonly def: string;
  readonly env?: readonly string[];
  readonly origin: Origin;
  readonly help: string;
  /** the agent acts on this flag (the others are accepted, logged as not handled yet) */
  readonly acted?: true;
}

// Kubelet's CRI runtime-request-timeout is 2 min: the ADD's own waits must end well before it.
export const FLAGS: readonly FlagDef[] = [
  { name: 'node-name', acted: true, kind: 'string', def: '', env: ['KUBE_NODE_NAME', 'NODE_NAME'], origin: 'upstream', help: 'node identity; falls back to the hostname (lower-cased)' },
  { name: 'install-cni-config', acted: true, kind: 'bool', def: 'false', origin: 'upstream', help: 'one-shot conflist install mode' },
  { name: 'cni-conf-dir', acted: true, kind: 'string', def: '/etc/cni/net.d', origin: 'upstream', help: 'conflist install directory' },
  { name: 'cni-conf-file', acted: true, kind: 'string', def: '/kube-ovn/01-kube-ovn.conflist', origin: 'upstream', help: 'conflist install source' },
  { name: 'cni-conf-name', acted: true, kind: 'string', def: '01-kube-ovn.conflist', origin: 'upstream', help: 'conflist install name' },
  { name: 'iface', acted: true, kind: 'string', def: '', origin: 'upstream', help: 'tunnel NIC name or comma-separated regexes' },
  { name: 'host-tunnel-src', acted: true, kind: 'bool', def: 'false', origin: 'upstream', help: 'allow /32 and /128 addresses as encap IP' },
  { name: 'dpdk-tunnel-iface', kind: 'string', def: 'br-phy', origin: 'upstream', help: 'tunnel NIC on userspace-datapath nodes' },
  { name: 'mtu', acted: true, kind: 'int', def: '0', origin: 'upstream', help: 'pod MTU; 0 = tunnel NIC MTU minus the encap overhead' },
  { name: 'enable-mirror', kind: 'bool', def: 'false', origin: 'upstream', help: 'mirror all pod traffic' },
  { name: 'mirror-iface', kind: 'string', def: 'mirror0', origin: 'upstream', help: 'mirror port name' },
  { name: 'bind-socket', acted: true, kind: 'string', def: '/run/openvswitch/kube-ovn-daemon.sock', origin: 'upstream', help: 'CNI Unix socket' },
  { name: 'ovs-socket', acted: true, kind: 'string', def: '/run/openvswitch/db.sock', origin: 'upstream', help: 'OVSDB socket (upstream parses it and uses none; default there is empty)' },
  { name: 'kubeconfig', acted: true, kind: 'string', def: '', env: ['KUBECONFIG'], origin: 'upstream', help: 'out-of-cluster kubeconfig; empty = in-cluster (env KUBECONFIG is ours)' },
  { name: 'service-cluster-ip-range', acted: true, kind: 'list', def: '10.96.0.0/12', origin: 'upstream', help: 'service CIDRs (comma-separated)' },
  { name: 'cluster-router', acted: true, kind: 'string', def: 'ovn-cluster', origin: 'upstream', help: 'default VPC name' },
  { name: 'node-switch', acted: true, kind: 'string', def: 'join', origin: 'upstream', help: 'join subnet name' },
  { name: 'encap-checksum', acted: true, kind: 'bool', def: 'true', origin: 'upstream', help: 'OVS external_ids:ovn-encap-csum' },
  { name: 'enable-pprof', kind: 'bool', def: 'false', origin: 'upstream', help: 'profiling endpoints' },
  { name: 'pprof-port', acted: true, kind: 'int', def: '10665', origin: 'upstream', help: 'metrics / health port (0 = an ephemeral port, for tests)' },
  { name: 'secure-serving', kind: 'bool', def: 'false', origin: 'upstream', help: 'HTTPS with authn/z on metrics' },
  { name: 'mac-learning-fallback', acted: true, kind: 'bool', def: 'false', origin: 'upstream', help: 'provider bridges other_config:mac-learning-fallback' },
  { name: 'network-type', acted: true, kind: 'string', def: 'geneve', origin: 'upstream', help: 'geneve | vxlan | stt | vlan (encap overhead; vxlan: --set-vxlan-tx-off)' },
  { name: 'default-provider-name', kind: 'string', def: 'provider', origin: 'upstream', help: 'parsed, unused (as upstream)' },
  { name: 'default-interface-name', kind: 'string', def: '', origin: 'upstream', help: 'parsed, unused (as upstream)' },
  { name: 'external-gateway-config-ns', kind: 'string', def: 'kube-system', origin: 'upstream', help: 'namespace of ovn-external-gw-config' },
  { name: 'external-gateway-switch', kind: 'string', def: 'external', origin: 'upstream', help: 'external gateway switch / bridge name' },
  { name: 'enable-metrics', acted: true, kind: 'bool', def: 'true', origin: 'upstream', help: 'serve /metrics' },
  { name: 'enable-arp-detect-ip-conflict', acted: true, kind: 'bool', def: 'true', origin: 'upstream', help: 'RFC 5227 probe before adding pod IPv4 addresses' },
  { name: 'kubelet-dir', kind: 'string', def: '/var/lib/kubelet', origin: 'upstream', help: 'kubelet root (DPDK emptyDir paths)' },
  { name: 'enable-verbose-conn-check', kind: 'bool', def: 'false', origin: 'upstream', help: 'TCP/UDP connectivity-check listeners' },
  { name: 'tcp-conn-check-port', kind: 'int', def: '8100', origin: 'upstream', help: 'TCP check port' },
  { name: 'udp-conn-check-port', kind: 'int', def: '8101', origin: 'upstream', help: 'UDP check port' },
  { name: 'enable-tproxy', kind: 'bool', def: 'false', origin: 'upstream', help: 'TPROXY kubelet probes into custom-VPC pods' },
  { name: 'ovs-vsctl-concurrency', kind: 'int', def: '100', origin: 'upstream', help: 'max concurrent OVS write transactions (0 = unlimited)' },
  { name: 'enable-ovn-ipsec', kind: 'bool', def: 'false', origin: 'upstream', help: 'OVN IPsec' },
  { name: 'cert-manager-ipsec-cert', kind: 'bool', def: 'false', origin: 'upstream', help: 'IPsec certs from cert-manager' },
  { name: 'cert-manager-issuer-name', kind: 'string', def: 'kube-ovn', origin: 'upstream', help: 'cert-manager ClusterIssuer' },
  { name: 'ovn-ipsec-cert-duration', kind: 'int', def: '63072000', origin: 'upstream', help: 'IPsec cert duration (seconds)' },
  { name: 'set-vxlan-tx-off', acted: true, kind: 'bool', def: 'false', origin: 'upstream', help: 'tx off on vxlan_sys_4789' },
  { name: 'log-perm', kind: 'string', def: '640', origin: 'upstream', help: 'log file mode (octal)' },
  { name: 'tls-min-version', kind: 'string', def: '', origin: 'upstream', help: 'TLS10..TLS13' },
  { name: 'tls-max-version', kind: 'string', def: '', origin: 'upstream', help: 'TLS10..TLS13' },
  { name: 'tls-cipher-suites', kind: 'list', def: '', origin: 'upstream', help: 'cipher suite names' },
  { name: 'non-primary-cni-mode', acted: true, kind: 'bool', def: 'false', origin: 'upstream', help: 'kube-ovn is not the primary CNI' },
  // ours: bounds upstream hard-codes (20 x 1 s annotation wait, 30 s ovn-installed, ~200 s gateway check)
  { name: 'annotation-wait-timeout', acted: true, kind: 'duration', def: '60s', env: ['KOA_ANNOTATION_WAIT_TIMEOUT'], origin: 'ours', help: 'ADD waits this long for the controller annotations, then fails with CNI code 11 (must stay below kubelet\'s 2m CRI timeout)' },
  { name: 'ovn-installed-timeout', acted: true, kind: 'duration', def: '30s', env: ['KOA_OVN_INSTALLED_TIMEOUT'], origin: 'ours', help: 'wait for external_ids:ovn-installed on the pod port' },
  { name: 'gateway-check-timeout', acted: true, kind: 'duration', def: '30s', env: ['KOA_GATEWAY_CHECK_TIMEOUT'], origin: 'ours', help: 'bound of the pod gateway check' },
  { name: 'max-parallel-adds', acted: true, kind: 'int', def: '32', env: ['KOA_MAX_PARALLEL_ADDS'], origin: 'ours', help: 'ADDs in the datapath at once; more wait in arrival order' },
  { name: 'watch-idle-timeout', acted: true, kind: 'duration', def: '5m', env: ['KOA_WATCH_IDLE_TIMEOUT'], origin: 'ours', help: 'restart a Kubernetes watch that showed no sign of life for this long' },
  { name: 'ip-conflict-probe-time', acted: true, kind: 'duration', def: '60ms', env: ['KOA_IP_CONFLICT_PROBE_TIME'], origin: 'ours', help: 'bound of the IPv4 conflict probe per ADD (RFC 5227 timing takes 4-9 s; 3 probes + listening fit in this)' },
  { name: 'node-ready-timeout', acted: true, kind: 'duration', def: '30s', env: ['KOA_NODE_READY_TIMEOUT'], origin: 'ours', help: 'an ADD that arrives before the node is initialised waits this long, then fails with CNI code 11' },
  { name: 'node-resync-period', acted: true, kind: 'int', def: '0', env: ['KOA_NODE_RESYNC_PERIOD'], origin: 'ours', help: 'seconds between the periodic resyncs of every node reconciler (ovn0, routes, egress gateway, iptables, ...); 0 = the built-in periods (iptables/ipsets 60 s, ovn0/routes/join gateway/egress gateway 30 s, encap 60 s, chassis 5 min)' },
  { name: 'cni-del-queue-dir', acted: true, kind: 'string', def: '/run/openvswitch/kube-ovn-del-queue', env: ['KOA_DEL_QUEUE_DIR'], origin: 'ours', help: 'DELs that could not finish are kept here and retried at start' },
  { name: 'underlay-journal-dir', acted: true, kind: 'string', def: '/run/openvswitch/kube-ovn-underlay', env: ['KOA_UNDERLAY_JOURNAL_DIR'], origin: 'ours', help: 'intent log of provider-network NIC moves; a move a crash interrupted is finished from it at start (keep it on tmpfs: a reboot must forget it)' },
  { name: 'enable-external-lb-address', acted: true, kind: 'bool', def: 'true', env: ['KOA_ENABLE_EXTERNAL_LB_ADDRESS'], origin: 'ours', help: 'OpenFlow flows on provider bridges for LoadBalancer IPs of Services annotated ovn.kubernetes.io/service_external_ip_from_subnet (spec §5.17; upstream v1.16.2 always runs this and has no flag); false = no Service watch, no flows' },
  { name: 'log-level', acted: true, kind: 'string', def: 'info', env: ['KOA_LOG_LEVEL'], origin: 'ours', help: 'trace | debug | info | warn | error | fatal' },
  // klog flags the DaemonSet passes: accepted; -v sets the verbosity, the rest is ignored (logs go to stdout)
  { name: 'v', acted: true, kind: 'int', def: '0', origin: 'klog', help: 'log verbosity' },
  ...['logtostderr', 'alsologtostderr', 'skip_headers', 'skip_log_headers', 'add_dir_header', 'one_output']
    .map((name): FlagDef => ({ name, kind: 'bool', def: 'false', origin: 'klog', help: 'accepted, ignored' })),
  ...['log_file', 'log_file_max_size', 'log_dir', 'stderrthreshold', 'vmodule', 'log_backtrace_at']
    .map((name): FlagDef => ({ name, kind: 'string', def: '', origin: 'klog', help: 'accepted, ignored' })),
];

const TLS_VERSIONS = new Set(['', 'TLS10', 'TLS11', 'TLS12', 'TLS13', '1.0', '1.1', '1.2', '1.3', 'TLS 1.0', 'TLS 1.1', 'TLS 1.2', 'TLS 1.3']);
const DEFS = new Map(FLAGS.map((f) => [f.name, f]));
const MAX_TIMEOUT_MS = 120_000;
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];


/**
 * Parses argv + env into a frozen Config, or throws AgentError
 * KOA_CONFIG with every invalid flag or variable listed, so one start attempt shows all mistakes.
 */
export function loadConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>, hostname: string): Config {
  const parsed = parseFlags(argv, FLAGS);
  const problems: string[] = [...parsed.problems];
  if (parsed.positionals.length > 0) problems.push(`unexpected arguments: ${parsed.positionals.join(' ')}`);

  /** raw text: flag, else the first set env var, else the default; and where it came from (for messages) */
  const raw = (name: string): { text: string; from: string } => {
    const def = DEFS.get(name)!;
    const v = parsed.values.get(name);
    if (v !== undefined) return { text: v, from: `--${name}` };
    for (const e of def.env ?? []) {
      const ev = env[e];
      if (ev !== undefined && ev !== '') return { text: ev, from: `env ${e}` };
    }
    return { text: def.def, from: `--${name}` };
  };
  const str = (name: string): string => raw(name).text;
  const bool = (name: string): boolean => {
    const { text, from } = raw(name);
    const b = parseGoBool(text);
    if (b === undefined) { problems.push(`${from}=${JSON.stringify(text)}: not a boolean`); return false; }
    return b;
  };
  const int = (name: string, min: number, max: number): number => {
    const { text, from } = raw(name);
    const n = parseInteger(text);
    if (n === undefined || n < min || n > max) {
      problems.push(`${from}=${JSON.stringify(text)}: expected an integer in [${min}, ${max}]`);
      return min;
    }
    return n;
  };
  const duration = (name: string, minMs: number, maxMs: number): number => {
    const { text, from } = raw(name);
    const ms = parseDuration(text);
    if (ms === undefined || ms < minMs || ms > maxMs) {
      problems.push(`${from}=${JSON.stringify(text)}: expected a duration between ${formatDuration(minMs)} and ${formatDuration(maxMs)} (like 60s or 500ms)`);
      return minMs;
    }
    return ms;
  };
  const list = (name: string): string[] => str(name).split(',').map((s) => s.trim()).filter((s) => s !== '');
  const nonEmpty = (name: string): string => {
    const v = str(name);
    if (v.trim() === '') problems.push(`--${name}: must not be empty`);
    return v;
  };
  const absPath = (name: string): string => {
    const v = str(name);
    if (!v.startsWith('/')) problems.push(`--${name}=${JSON.stringify(v)}: expected an absolute path`);
    return v;
  };

  const nodeName = (str('node-name') || hostname).trim().toLowerCase();
  if (nodeName === '') problems.push('node name: set --node-name, KUBE_NODE_NAME or NODE_NAME (the hostname is empty)');
  else if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(nodeName)) problems.push(`node name ${JSON.stringify(nodeName)}: not a valid Kubernetes node name`);

  const podIps = (env.POD_IPS ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const ip of podIps) if (familyOf(ip) === 0) problems.push(`env POD_IPS: ${JSON.stringify(ip)} is not an IP address`);
  const podIp = env.POD_IP ?? '';
  if (podIp !== '' && familyOf(podIp) === 0) problems.push(`env POD_IP=${JSON.stringify(podIp)}: not an IP address`);
  let bindLocal = false;
  if (env.ENABLE_BIND_LOCAL_IP !== undefined && env.ENABLE_BIND_LOCAL_IP !== '') {
    const b = parseGoBool(env.ENABLE_BIND_LOCAL_IP);
    if (b === undefined) problems.push(`env ENABLE_BIND_LOCAL_IP=${JSON.stringify(env.ENABLE_BIND_LOCAL_IP)}: not a boolean`);
    else bindLocal = b;
  }
  if (bindLocal && podIps.length === 0) problems.push('env ENABLE_BIND_LOCAL_IP=true needs POD_IPS (the node addresses to bind)');

  const networkType = str('network-type') as NetworkType;
  if (!NETWORK_TYPES.includes(networkType)) problems.push(`--network-type=${JSON.stringify(networkType)}: expected one of ${NETWORK_TYPES.join(', ')}`);

  const mtu = int('mtu', 0, 65535);
  if (mtu !== 0 && mtu < 68) problems.push(`--mtu=${mtu}: expected 0 (derive) or at least 68`);

  const svc = list('service-cluster-ip-range');
  for (const c of svc) if (!isCidr(c)) problems.push(`--service-cluster-ip-range: ${JSON.stringify(c)} is not a CIDR`);

  const logPermText = str('log-perm');
  const logPerm = /^[0-7]{1,4}$/.test(logPermText) ? parseInt(logPermText, 8) : -1;
  if (logPerm < 0) problems.push(`--log-perm=${JSON.stringify(logPermText)}: expected an octal file mode like 640`);

  const tlsMin = str('tls-min-version');
  const tlsMax = str('tls-max-version');
  if (!TLS_VERSIONS.has(tlsMin)) problems.push(`--tls-min-version=${JSON.stringify(tlsMin)}: expected TLS10, TLS11, TLS12 or TLS13`);
  if (!TLS_VERSIONS.has(tlsMax)) problems.push(`--tls-max-version=${JSON.stringify(tlsMax)}: expected TLS10, TLS11, TLS12 or TLS13`);

  const config: Config = {
    nodeName,
    podName: env.POD_NAME ?? '',
    podNamespace: env.POD_NAMESPACE ?? '',
    podIp,
    podIps,
    listenAddresses: bindLocal ? podIps : ['0.0.0.0'],
    installCniConfig: bool('install-cni-config'),
    cniConfDir: str('cni-conf-dir'),
    cniConfFile: str('cni-conf-file'),
    cniConfName: nonEmpty('cni-conf-name'),
    iface: str('iface'),
    hostTunnelSrc: bool('host-tunnel-src'),
    dpdkTunnelIface: str('dpdk-tunnel-iface'),
    mtu,
    enableMirror: bool('enable-mirror'),
    mirrorIface: nonEmpty('mirror-iface'),
    bindSocket: absPath('bind-socket'),
    ovsSocket: absPath('ovs-socket'),
    kubeconfig: str('kubeconfig'),
    serviceClusterIpRange: svc,
    clusterRouter: nonEmpty('cluster-router'),
    nodeSwitch: nonEmpty('node-switch'),
    encapChecksum: bool('encap-checksum'),
    enablePprof: bool('enable-pprof'),
    pprofPort: int('pprof-port', 0, 65535),
    secureServing: bool('secure-serving'),
    macLearningFallback: bool('mac-learning-fallback'),
    enableExternalLbAddress: bool('enable-external-lb-address'),
    networkType,
    defaultProviderName: str('default-provider-name'),
    defaultInterfaceName: str('default-interface-name'),
    externalGatewayConfigNs: str('external-gateway-config-ns'),
    externalGatewaySwitch: str('external-gateway-switch'),
    enableMetrics: bool('enable-metrics'),
    enableArpDetectIpConflict: bool('enable-arp-detect-ip-conflict'),
    kubeletDir: absPath('kubelet-dir'),
    enableVerboseConnCheck: bool('enable-verbose-conn-check'),
    tcpConnCheckPort: int('tcp-conn-check-port', 1, 65535),
    udpConnCheckPort: int('udp-conn-check-port', 1, 65535),
    enableTproxy: bool('enable-tproxy'),
    ovsVsctlConcurrency: int('ovs-vsctl-concurrency', 0, 100_000),
    enableOvnIpsec: bool('enable-ovn-ipsec'),
    certManagerIpsecCert: bool('cert-manager-ipsec-cert'),
    certManagerIssuerName: str('cert-manager-issuer-name'),
    ovnIpsecCertDuration: int('ovn-ipsec-cert-duration', 1, 2 ** 31 - 1),
    setVxlanTxOff: bool('set-vxlan-tx-off'),
    logPerm: Math.max(logPerm, 0),
    tlsMinVersion: tlsMin,
    tlsMaxVersion: tlsMax,
    tlsCipherSuites: list('tls-cipher-suites'),
    nonPrimaryCniMode: bool('non-primary-cni-mode'),
    logVerbosity: int('v', 0, 10),
    annotationWaitTimeoutMs: duration('annotation-wait-timeout', 100, MAX_TIMEOUT_MS - 1),
    ovnInstalledTimeoutMs: duration('ovn-installed-timeout', 100, MAX_TIMEOUT_MS - 1),
    gatewayCheckTimeoutMs: duration('gateway-check-timeout', 0, MAX_TIMEOUT_MS - 1),
    watchIdleTimeoutMs: duration('watch-idle-timeout', 10_000, 24 * 3_600_000),
    maxParallelAdds: int('max-parallel-adds', 1, 4096),
    ipConflictProbeMs: duration('ip-conflict-probe-time', 10, 10_000),
    nodeReadyTimeoutMs: duration('node-ready-timeout', 100, MAX_TIMEOUT_MS - 1),
    nodeResyncMs: int('node-resync-period', 0, 86_400) * 1000,
    delQueueDir: absPath('cni-del-queue-dir'),
    underlayJournalDir: absPath('underlay-journal-dir'),
    logLevel: str('log-level'),
  };
  if (!LOG_LEVELS.includes(config.logLevel)) problems.push(`--log-level=${JSON.stringify(config.logLevel)}: expected one of ${LOG_LEVELS.join(', ')}`);
  if (config.pprofPort === config.tcpConnCheckPort && config.enableVerboseConnCheck) {
    problems.push(`--pprof-port and --tcp-conn-check-port are both ${config.pprofPort}`);
  }
  if (problems.length > 0) {
    throw agentError('KOA_CONFIG', `${problems.length} invalid setting${problems.length > 1 ? 's' : ''}: ${problems.join('; ')}`);
  }
  return Object.freeze({
    ...config,
    podIps: Object.freeze([...config.podIps]),
    listenAddresses: Object.freeze([...config.listenAddresses]),
    serviceClusterIpRange: Object.freeze([...config.serviceClusterIpRange]),
    tlsCipherSuites: Object.freeze([...config.tlsCipherSuites]),
  });
}
