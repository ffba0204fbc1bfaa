// The ADD / DEL planners: pure functions from (CNI request, decoded annotations, node and subnet facts) to the
// desired NIC state and an ordered list of steps, each with its undo, that an executor applies through the datapath
// ports (and unwinds in reverse on failure). Upstream semantics: spec §3.3-§3.8, §3.12, §2.5 (IPAM-only), §4 (DEL).

import { agentError, ERRORS } from '../errors.ts';
import type { CniDns, CniResult, CniRoute, UpstreamRoute } from '../cni/types.ts';
import { isOvnProvider, type NicAddress, type NicQos, type PodNicAnnotations } from './annotations.ts';
import { defaultDst, formatIp, networkOf, parseCidr, parseIp, type Family } from '../net/ip.ts';
import { kernelRouteOrder } from '../net/route-order.ts';
import { ifaceId as makeIfaceId, ipCrName, vethNames } from './names.ts';

export const INTEGRATION_BRIDGE = 'br-int';

/** What the planner needs from the CNI request (a subset of cni/types.ts CniRequest, flattened). */
export interface NicRequest {
  readonly containerId: string;
  /** netns path; '' only for DEL */
  readonly netns: string;
  /** CNI_IFNAME; '' means eth0 */
  readonly ifName: string;
  readonly podName: string;
  readonly podNamespace: string;
  /** CNI_ARGS K8S_POD_UID, when the runtime passes it */
  readonly podUid?: string;
  /** resolved provider (netconf `provider`, or `ipam.provider` in IPAM-only mode); '' means ovn */
  readonly provider: string;
  /** netconf `type` */
  readonly cniType: string;
  /** netconf `routes` (or `ipam.routes`) */
  readonly routes: readonly UpstreamRoute[] | null;
  readonly dns?: CniDns;
  readonly deviceId?: string;
  readonly vhostUserSocketVolumeName?: string;
}

/** Node-wide facts, fixed at start-up or read from this Node. */
export interface NodeFacts {
  /** pod MTU from --mtu or the tunnel NIC (config/mtu.ts nodePodMtu) */
  readonly mtu: number;
  /** br-int datapath_type: 'netdev' is the userspace datapath (TX checksum offload must be off in the pod) */
  readonly datapathType: 'system' | 'netdev';
  readonly enableArpDetectIpConflict: boolean;
  readonly ovnInstalledTimeoutMs: number;
  readonly gatewayCheckTimeoutMs: number;
  /** this Node's labels (provider-network MTU labels) */
  readonly nodeLabels?: Readonly<Record<string, string>>;
  /** this Node's `ovn.kubernetes.io/node_networks` map: network -> encap IP */
  readonly nodeNetworks?: Readonly<Record<string, string>>;
}

/** What the planner needs from the NIC's Subnet (k8s/subnets.ts subnetFacts extracts it from the CR). */
export interface SubnetFacts {
  readonly name: string;
  readonly mtu?: number;
  readonly vlan?: string;
  readonly logicalGateway?: boolean;
  readonly u2oInterconnection?: boolean;
  /** status.u2oInterconnectionIP: when set it is the pod's gateway */
  readonly u2oInterconnectionIp?: string;
  readonly disableGatewayCheck?: boolean;
  readonly nodeNetwork?: string;
}

export interface PlannedAddress {
  readonly family: Family;
  /** `ip/prefixLen` */
  readonly address: string;
  readonly ip: string;
  readonly prefixLen: number;
}

export interface PlannedRoute {
  readonly family: Family;
  /** canonical network, `0.0.0.0/0` / `::/0` for a default route */
  readonly dst: string;
  /** '' = on-link */
  readonly gw: string;
}

export type GatewayCheckMode = 'ping' | 'arping' | 'ping-not-concerned' | 'arping-not-concerned' | 'disabled';

export interface GatewayCheck {
  readonly mode: GatewayCheckMode;
  /** false for *-not-concerned: try once, ignore the result */
  readonly concerned: boolean;
  /** pairs to check: the pod address of a family and the gateway of that family (u2o gateway first when set) */
  readonly targets: readonly { readonly ip: string; readonly gateway: string; readonly family: Family }[];
  readonly timeoutMs: number;
}

/** The upstream daemon's /api/v1/add response (spec §2.3.3), for the upstream protocol mapping. */
export interface UpstreamCniResponse {
  readonly ips: readonly { protocol: 'IPv4' | 'IPv6'; ip: string; cidr: string; gateway?: string }[];
  readonly mac_address: string;
  readonly routes: readonly UpstreamRoute[] | null;
  readonly mtu: number;
  readonly nicname: string;
}

export interface QosSpec extends NicQos {
  readonly ifaceId: string;
  /** `<ns>/<pod>`: external-ids:pod of QoS / Queue rows */
  readonly podKey: string;
}

/**
 * One executor operation. `undo` lists what reverts it (plain DEL steps, run in the listed order); on failure the
 * executor runs the undo lists of the applied steps in reverse order of application (see undoSteps).
 */
export type AddStep =
  /** upstream's binary step (§2.3.1): IPv6 on and RA off in the pod netns (all/default), before the link exists */
  | { op: 'podSysctls'; netns: string }
  /** veth pair with the peer created directly inside the pod netns (never moved); undo deletes the host end (and so the peer) */
  /** podName/podNamespace: the owner the OVS row of a same-named leftover must show before it is removed (ownership.ts) */
  | { op: 'createVeth'; host: string; container: string; netns: string; mtu: number; podName: string; podNamespace: string;
      undo: readonly DelStep[] }
  /** inside the pod netns: rename the peer to CNI_IFNAME, alias = its original name (§3.8.1-2) */
  | { op: 'renameInNetns'; netns: string; link: string; newName: string; alias: string }
  /** one transaction: strips iface-id from any other interface claiming it (§3.6.4), then adds the port (§3.6.5) */
  | { op: 'ovsAddPort'; bridge: string; port: string; externalIds: Readonly<Record<string, string>>; undo: readonly DelStep[] }
  | { op: 'hostLinkUp'; link: string; txQueueLen: number }
  | { op: 'setQos'; port: string; qos: QosSpec }
  | { op: 'txChecksumOff'; netns: string; link: string }
  | { op: 'waitOvnInstalled'; iface: string; timeoutMs: number }
  /** underlay subnets: the localnet patch port ovn-controller adds to the provider bridge exists and is open
   * (an OVSDB monitor event; §3.6 step 12), so L2 to the physical network is there before DAD and the gateway check */
  | { op: 'waitLocalnet'; iface: string; timeoutMs: number }
  /** MAC, MTU, up, addresses (with the IPv4 conflict probe / IPv6 DAD when asked): nothing that must reach the network
   * unless a probe or DAD is asked for, which is why it may run before the waits (see podSideEarly) */
  | { op: 'configureContainerNic'; netns: string; link: string; mac: string; mtu: number;
      addresses: readonly PlannedAddress[]; ipv4ConflictProbe: boolean; ipv6Dad: boolean }
  /** gratuitous ARP / unsolicited NA for the pod's addresses: after the waits, so they leave through a bound port
   * (secondGarp: upstream's second GARP of the probe path, in the background 1 s later) */
  | { op: 'announce'; netns: string; link: string; addresses: readonly PlannedAddress[]; secondGarp: boolean }
  | { op: 'addRoutes'; netns: string; link: string; routes: readonly PlannedRoute[] }
  | { op: 'gatewayCheck'; netns: string; link: string; check: GatewayCheck }
  | { op: 'removeDefaultRoutes'; netns: string; families: readonly Family[] };

/** Removal operations: each one succeeds when there is nothing to remove. */
export type DelStep =
  /** delete the link if it exists (and, with onlyIfVeth, only when it is a veth); the peer goes with it */
  | { op: 'deleteLink'; link: string; onlyIfVeth: boolean }
  /** `--if-exists --with-iface del-port` */
  | { op: 'ovsDelPort'; bridge: string; port: string }
  /** destroy QoS and Queue rows with external_ids pod=podKey (and iface-id=ifaceId when given) that no Port references */
  | { op: 'destroyQos'; podKey: string; ifaceId?: string };

export interface IpCrUpdate {
  /** IP CR name (cluster-scoped kubeovn.io/v1 IP) */
  readonly name: string;
  readonly subnet: string;
}

interface PlanCommon {
  readonly provider: string;
  readonly ifName: string;
  readonly addresses: readonly PlannedAddress[];
  /** IP CR to update (absent for MAC-only / no-IPAM NICs, §3.3) */
  readonly ipCr: IpCrUpdate | undefined;
  readonly response: UpstreamCniResponse;
  /** the CNI result in the internal 1.1.0 form */
  readonly result: CniResult;
  readonly steps: readonly AddStep[];
  /** ignored inputs (invalid custom routes are only logged upstream) */
  readonly warnings: readonly string[];
}

export interface OvnNicPlan extends PlanCommon {
  readonly kind: 'ovn';
  readonly hostNic: string;
  readonly containerNic: string;
  readonly netns: string;
  readonly bridge: string;
  readonly ifaceId: string;
  readonly externalIds: Readonly<Record<string, string>>;
  readonly mac: string;
  /** 0 = leave the kernel default */
  readonly mtu: number;
  readonly routes: readonly PlannedRoute[];
  readonly txChecksumOff: boolean;
  readonly ipv4ConflictProbe: boolean;
  readonly ipv6Dad: boolean;
  readonly qos: QosSpec | undefined;
  readonly gatewayCheck: GatewayCheck;
  readonly mirror: boolean;
}

export interface IpamPlan extends PlanCommon {
  readonly kind: 'ipam';
  /** families whose default routes are deleted in the pod netns before the main plugin adds its own (§2.5) */
  readonly removeDefaultRoutes: readonly Family[];
}

export type AddPlan = OvnNicPlan | IpamPlan;

const fail = <C extends 'KOA_BAD_ENV' | 'KOA_UNSUPPORTED_FIELD' | 'KOA_BAD_ANNOTATION' | 'KOA_K8S' | 'KOA_DATAPATH' | 'KOA_TRY_AGAIN'>(code: C, ...args: Parameters<(typeof ERRORS)[C]['msg']>): never => {
  throw agentError(code, ...args);
};

/** netconf routes ++ annotation routes, canonicalised; an empty dst is the default route of the gateway's family. */
export function mergeRoutes(netconf: readonly UpstreamRoute[] | null, annotated: readonly UpstreamRoute[]):
  { routes: PlannedRoute[]; warnings: string[] } {
  const routes: PlannedRoute[] = [];
  const warnings: string[] = [];
  for (const r of [...(netconf ?? []), ...annotated]) {
    const dstText = (r.dst ?? '').trim();
    const gwText = (r.gw ?? '').trim();
    const gw = gwText === '' ? undefined : parseIp(gwText);
    if (gwText !== '' && !gw) { warnings.push(`route ${JSON.stringify(r)}: gateway is not an IP address`); continue; }
    if (dstText === '') {
      if (!gw) { warnings.push(`route ${JSON.stringify(r)}: neither dst nor gw`); continue; }
      routes.push({ family: gw.family, dst: defaultDst(gw.family), gw: formatIp(gw) });
      continue;
    }
    const dst = parseCidr(dstText);
    if (!dst) { warnings.push(`route ${JSON.stringify(r)}: dst is not a CIDR`); continue; }
    if (gw && gw.family !== dst.family) { warnings.push(`route ${JSON.stringify(r)}: dst and gw families differ`); continue; }
    routes.push({ family: dst.family, dst: networkOf(dst.ip, dst.prefixLen), gw: gw ? formatIp(gw) : '' });
  }
  return { routes, warnings };
}

/** Later routes to the same destination replace earlier ones (the kernel's RouteReplace). */
function dedupeRoutes(routes: readonly PlannedRoute[]): PlannedRoute[] {
  const byDst = new Map<string, PlannedRoute>();
  for (const r of routes) { byDst.delete(r.dst); byDst.set(r.dst, r); }
  return [...byDst.values()];
}

const isDefault = (r: PlannedRoute): boolean => r.dst === '0.0.0.0/0' || r.dst === '::/0';

function plannedAddresses(addrs: readonly NicAddress[]): PlannedAddress[] {
  return addrs.map((a) => ({ family: a.family, ip: a.ip, prefixLen: a.prefixLen, address: `${a.ip}/${a.prefixLen}` }));
}

function responseIps(nic: PodNicAnnotations, withGateway: boolean): UpstreamCniResponse['ips'] {
  return nic.addresses.map((a) => {
    const gw = withGateway ? nic.gateways.find((g) => parseIp(g)?.family === a.family) : undefined;
    return { protocol: a.family === 4 ? 'IPv4' as const : 'IPv6' as const, ip: a.ip, cidr: a.cidr, ...(gw ? { gateway: gw } : {}) };
  });
}

/** Upstream CNI binary (§2.3.4): response routes -> CNI routes; none at all -> a default route via each gateway. */
function resultRoutes(routes: readonly PlannedRoute[], ips: UpstreamCniResponse['ips']): CniRoute[] {
  if (routes.length > 0) return routes.map((r) => (r.gw ? { dst: r.dst, gw: r.gw } : { dst: r.dst }));
  return ips.filter((i) => i.gateway).map((i) => ({ dst: defaultDst(i.protocol === 'IPv4' ? 4 : 6), gw: i.gateway! }));
}

/** Route list in the upstream response form: default dst as ''. */
const upstreamRoutes = (routes: readonly PlannedRoute[]): UpstreamRoute[] =>
  routes.map((r) => ({ dst: isDefault(r) ? '' : r.dst, gw: r.gw }));

function nicMtu(nic: PodNicAnnotations, node: NodeFacts, subnet: SubnetFacts | undefined): number {
  if (subnet?.mtu !== undefined && subnet.mtu > 0) return subnet.mtu;
  if (nic.providerNetwork && !subnet?.logicalGateway && !subnet?.u2oInterconnection) {
    const label = `${nic.providerNetwork}.provider-network.kubernetes.io/mtu`;
    const v = node.nodeLabels?.[label];
    if (v === undefined) return 0;
    const n = /^\d+$/.test(v) ? Number(v) : 0;
    if (n <= 0) fail('KOA_K8S', `node label ${label}=${JSON.stringify(v)} is not a positive MTU`);
    return n;
  }
  return node.mtu;
}

/** The patch port ovn-controller creates on the provider bridge for the localnet port `localnet.<subnet>`. */
export const localnetPatchPort = (subnet: string): string => `patch-localnet.${subnet}-to-br-int`;

function gatewayCheckMode(nic: PodNicAnnotations, subnet: SubnetFacts | undefined, timeoutMs: number): GatewayCheckMode {
  if (nic.migrationTarget || nic.activationStrategy || timeoutMs <= 0 || nic.macOnly) return 'disabled';
  const underlay = !!subnet?.vlan && !subnet.logicalGateway;
  const base = underlay ? 'arping' : 'ping';
  return subnet?.disableGatewayCheck ? `${base}-not-concerned` : base;
}

/** Plans an ADD. Throws AgentError for requests this agent cannot serve (clear CNI code, nothing changed). */
export function planAdd(req: NicRequest, nic: PodNicAnnotations, node: NodeFacts, subnet: SubnetFacts | undefined): AddPlan {
  return isOvnProvider(req.provider) ? planOvnNic(req, nic, node, subnet) : planIpamOnly(req, nic, subnet);
}

function ipCrFor(req: NicRequest, nic: PodNicAnnotations, subnet: SubnetFacts | undefined): IpCrUpdate | undefined {
  if (nic.ipAddress === '') return undefined;
  const name = ipCrName(nic.virtualMachine ?? req.podName, req.podNamespace, nic.provider, nic.ifName, nic.appendIfName);
  const sub = nic.logicalSwitch ?? subnet?.name;
  return sub ? { name, subnet: sub } : undefined;
}

/** IPAM-only (provider not ending in `ovn`, §2.5): addresses back to the calling plugin, no link work. */
export function planIpamOnly(req: NicRequest, nic: PodNicAnnotations, subnet: SubnetFacts | undefined): IpamPlan {
  const ifName = req.ifName === '' ? 'eth0' : req.ifName;
  const merged = mergeRoutes(req.routes, nic.routes);
  const routes = dedupeRoutes(merged.routes);
  const ips = responseIps(nic, nic.defaultRoute);
  const removeDefaultRoutes = ([4, 6] as Family[]).filter((f) => routes.some((r) => r.family === f && isDefault(r)));
  const steps: AddStep[] = removeDefaultRoutes.length > 0 && req.netns !== ''
    ? [{ op: 'removeDefaultRoutes', netns: req.netns, families: removeDefaultRoutes }] : [];
  const result: CniResult = {
    ips: ips.map((i) => ({ address: `${i.ip}/${parseCidr(i.cidr)!.prefixLen}`, ...(i.gateway ? { gateway: i.gateway } : {}) })),
    routes: resultRoutes(routes, ips),
    dns: req.dns ?? {},
  };
  return {
    kind: 'ipam',
    provider: nic.provider,
    ifName,
    addresses: plannedAddresses(nic.addresses),
    ipCr: ipCrFor(req, nic, subnet),
    response: { ips, mac_address: '', routes: upstreamRoutes(routes), mtu: 0, nicname: '' },
    result,
    steps,
    warnings: merged.warnings,
    removeDefaultRoutes,
  };
}

/** Kube-OVN NIC (provider `ovn` or `<nad>.<ns>.ovn`): veth pair, OVS port, addresses, routes (§3.5-§3.8). */
export function planOvnNic(req: NicRequest, nic: PodNicAnnotations, node: NodeFacts, subnet: SubnetFacts | undefined): OvnNicPlan {
  if (req.deviceId) fail('KOA_UNSUPPORTED_FIELD', `deviceID ${req.deviceId} (SR-IOV offload NICs are not supported by this agent)`);
  if (req.vhostUserSocketVolumeName) fail('KOA_UNSUPPORTED_FIELD', 'vhost_user_socket_volume_name (OVS-DPDK vhost-user NICs are not supported by this agent)');
  if (nic.podNicType !== '' && nic.podNicType !== 'veth-pair') {
    fail('KOA_UNSUPPORTED_FIELD', `pod_nic_type ${nic.podNicType} (only veth-pair is supported by this agent)`);
  }
  if (req.netns === '') fail('KOA_BAD_ENV', 'CNI_NETNS', 'empty for ADD');
  const ifName = req.ifName === '' ? 'eth0' : req.ifName;
  const names = vethNames(req.containerId, ifName);
  if (typeof names === 'string') return fail('KOA_BAD_ENV', 'CNI_IFNAME', names);
  if (nic.mac === undefined) return fail('KOA_BAD_ANNOTATION', `${req.podNamespace}/${req.podName}`, `${nic.provider}.kubernetes.io/mac_address`, 'missing');

  const podOrVm = nic.virtualMachine ?? req.podName;
  const ifaceId = makeIfaceId(podOrVm, req.podNamespace, nic.provider, ifName, nic.appendIfName);
  const mtu = nicMtu(nic, node, subnet);
  const addresses = plannedAddresses(nic.addresses);
  const warnings: string[] = [];
  if (mtu > 0 && mtu < 1280 && addresses.some((a) => a.family === 6)) warnings.push(`MTU ${mtu} is below 1280 on an IPv6 NIC`);

  const externalIds: Record<string, string> = {
    'iface-id': ifaceId,
    vendor: 'kube-ovn',
    pod_name: podOrVm,
    pod_namespace: req.podNamespace,
    pod_netns: req.netns,
  };
  if (addresses.length > 0) externalIds.ip = addresses.map((a) => a.ip).join(',');
  if (subnet?.nodeNetwork) {
    const encap = node.nodeNetworks?.[subnet.nodeNetwork];
    if (!encap) fail('KOA_K8S', `node has no encap IP for network ${subnet.nodeNetwork} (annotation ovn.kubernetes.io/node_networks)`);
    externalIds['encap-ip'] = encap!;
  }

  // gateways: the u2o interconnection IP replaces the subnet gateway (§3.8.6), only while u2oInterconnection is on (as
  // upstream: a status the controller has not cleared yet after the flag went off must not take the default route)
  const u2o = (subnet?.u2oInterconnection ? subnet.u2oInterconnectionIp ?? '' : '').split(',').map((s) => s.trim()).filter((s) => parseIp(s) !== undefined)
    .map((s) => formatIp(parseIp(s)!));
  // a u2o subnet whose IP kube-ovn-controller has not allocated yet (or whose status this agent has not seen yet): fail,
  // as upstream (§3.5), so that the runtime's retry gets the u2o gateway; going on would wire the pod for good with the
  // physical gateway as its default route
  if (subnet?.u2oInterconnection && u2o.length === 0) {
    fail('KOA_TRY_AGAIN', `subnet ${subnet.name} has u2oInterconnection but no status.u2oInterconnectionIP yet (kube-ovn-controller allocates it)`);
  }
  const defaultGws = u2o.length > 0 ? u2o : [...nic.gateways];

  // routes: default via each gateway on the default-route NIC, then custom routes (netconf ++ annotation)
  let routes: PlannedRoute[] = [];
  if (!nic.macOnly) {
    const gwRoutes: PlannedRoute[] = nic.defaultRoute
      ? defaultGws.map((g) => { const f = parseIp(g)!.family; return { family: f, dst: defaultDst(f), gw: g }; }) : [];
    const custom = mergeRoutes(req.routes, nic.routes);
    warnings.push(...custom.warnings);
    routes = dedupeRoutes([...gwRoutes, ...custom.routes]);
  }

  const mode = gatewayCheckMode(nic, subnet, node.gatewayCheckTimeoutMs);
  const checkGws = [...u2o, ...nic.gateways.filter((g) => !u2o.includes(g))];
  const targets = mode === 'disabled' ? [] : checkGws.flatMap((gw) => {
    const f = parseIp(gw)!.family;
    const a = addresses.find((x) => x.family === f);
    return a ? [{ ip: a.ip, gateway: gw, family: f }] : [];
  });
  const gatewayCheck: GatewayCheck = {
    mode: targets.length === 0 ? 'disabled' : mode,
    concerned: mode === 'ping' || mode === 'arping',
    targets,
    timeoutMs: node.gatewayCheckTimeoutMs,
  };

  const qosFields = Object.keys(nic.qos).length > 0;
  const podKey = `${req.podNamespace}/${podOrVm}`;
  const qos: QosSpec | undefined = qosFields ? { ...nic.qos, ifaceId, podKey } : undefined;
  const ipv6Dad = !nic.migrationTarget;
  const ipv4ConflictProbe = !nic.migrationTarget && node.enableArpDetectIpConflict;
  const txChecksumOff = node.datapathType === 'netdev';

  const steps: AddStep[] = [
    { op: 'podSysctls', netns: req.netns },
    { op: 'createVeth', host: names.host, container: names.container, netns: req.netns, mtu, podName: podOrVm, podNamespace: req.podNamespace,
      undo: [{ op: 'deleteLink', link: names.host, onlyIfVeth: true }] },
    { op: 'renameInNetns', netns: req.netns, link: names.container, newName: ifName, alias: names.container },
    // up BEFORE the port is added: ovs-vswitchd sets IFF_PROMISC on a new port from the flags it cached when it opened
    // the device, so a link brought up right after the OVSDB commit (we do not wait for vswitchd) could be set down
    // again by that write (seen in 1 of ~20-30 ADDs on the e2e bed: host veth DOWN, gateway check timing out)
    { op: 'hostLinkUp', link: names.host, txQueueLen: 1000 },
    { op: 'ovsAddPort', bridge: INTEGRATION_BRIDGE, port: names.host, externalIds,
      undo: [{ op: 'ovsDelPort', bridge: INTEGRATION_BRIDGE, port: names.host }, { op: 'destroyQos', podKey, ifaceId }] },
  ];
  if (qos) steps.push({ op: 'setQos', port: names.host, qos });
  if (txChecksumOff) steps.push({ op: 'txChecksumOff', netns: req.netns, link: ifName });
  const podSide: AddStep[] = [{ op: 'configureContainerNic', netns: req.netns, link: ifName, mac: nic.mac, mtu, addresses, ipv4ConflictProbe, ipv6Dad }];
  if (routes.length > 0) podSide.push({ op: 'addRoutes', netns: req.netns, link: ifName, routes });
  const early = podSideEarly(addresses, ipv4ConflictProbe, ipv6Dad);
  if (early) steps.push(...podSide);
  steps.push({ op: 'waitOvnInstalled', iface: names.host, timeoutMs: node.ovnInstalledTimeoutMs });
  const localnetSwitch = nic.logicalSwitch ?? subnet?.name;
  if (subnet?.vlan && !subnet.logicalGateway && localnetSwitch) {
    steps.push({ op: 'waitLocalnet', iface: localnetPatchPort(localnetSwitch), timeoutMs: node.ovnInstalledTimeoutMs });
  }
  if (!early) steps.push(...podSide);
  if (addresses.length > 0) steps.push({ op: 'announce', netns: req.netns, link: ifName, addresses, secondGarp: ipv4ConflictProbe });
  if (gatewayCheck.mode !== 'disabled') steps.push({ op: 'gatewayCheck', netns: req.netns, link: ifName, check: gatewayCheck });

  // the routes the link will hold: the kernel's connected routes and ours, in the order the kernel lists them
  // (upstream reads them back after adding them, §3.8.8, and answers in that order)
  const connected: PlannedRoute[] = addresses.map((a) => ({ family: a.family, dst: networkOf(parseIp(a.ip)!, a.prefixLen), gw: '' }));
  const linkRoutes = nic.macOnly ? [] : kernelRouteOrder(dedupeRoutes([...connected, ...routes]));
  const ips = responseIps(nic, nic.defaultRoute);
  const result: CniResult = {
    interfaces: [{ name: ifName, mac: nic.mac, ...(mtu > 0 ? { mtu } : {}), sandbox: req.netns }],
    ips: ips.map((i, n) => ({ address: addresses[n]!.address, ...(i.gateway ? { gateway: i.gateway } : {}), interface: 0 })),
    routes: resultRoutes(linkRoutes, ips),
    dns: req.dns ?? {},
  };
  return {
    kind: 'ovn',
    provider: nic.provider,
    ifName,
    addresses,
    ipCr: ipCrFor(req, nic, subnet),
    response: { ips, mac_address: nic.mac, routes: upstreamRoutes(linkRoutes), mtu, nicname: ifName },
    result,
    steps,
    warnings,
    hostNic: names.host,
    containerNic: names.container,
    netns: req.netns,
    bridge: INTEGRATION_BRIDGE,
    ifaceId,
    externalIds,
    mac: nic.mac,
    mtu,
    routes,
    txChecksumOff,
    ipv4ConflictProbe,
    ipv6Dad,
    qos,
    gatewayCheck,
    mirror: nic.mirror,
  };
}

/**
 * Whether the pod side (addresses, routes) is set up before the waits for ovn-controller, so that it runs while
 * ovn-controller binds the port instead of after it. Upstream always waits first (§3.6 step 12, §3.8). That order
 * matters only for what must reach the network through a bound port: the IPv4 conflict probe and IPv6 DAD (a probe
 * through an unbound port hears no answer, so it would miss a conflict). The announcements and the gateway check go
 * after the waits either way. Early, only the kernel's IPv6 link-local DAD and MLD reports leave as the link comes up,
 * into the unbound port: that address comes from the MAC OVN allocated, and the kernel repeats its reports.
 */
export function podSideEarly(addresses: readonly PlannedAddress[], ipv4ConflictProbe: boolean, ipv6Dad: boolean): boolean {
  const v4 = addresses.some((a) => a.family === 4);
  const v6 = addresses.some((a) => a.family === 6);
  return !(v4 && ipv4ConflictProbe) && !(v6 && ipv6Dad);
}

/** What DEL needs; the pod (and so its annotations) may be gone. */
export interface DelRequest {
  readonly containerId: string;
  readonly netns: string;
  readonly ifName: string;
  readonly podName: string;
  readonly podNamespace: string;
  readonly provider: string;
  readonly cniType: string;
}

export interface DelPlan {
  /** why nothing is done, when `steps` is empty */
  readonly skip?: string;
  readonly hostNic?: string;
  readonly steps: readonly DelStep[];
}

/**
 * Plans a DEL (§4): remove the OVS port, QoS rows no port references, and the host veth (its peer goes with it).
 * Idempotent by construction: every step is "if exists". Needs no annotations; `virtualMachine` (from the pod, when
 * it still exists) only changes the QoS rows' pod key. An empty netns (kubelet's later DELs, the sandbox gone) plans
 * the same removal: the host side is keyed by container ID, and if the first DEL was lost nothing else removes it.
 * The backend checks the OVS row's owner before running it (ownership.ts).
 */
export function planDel(req: DelRequest, virtualMachine?: string): DelPlan {
  if (!isOvnProvider(req.provider) && req.cniType !== 'kube-ovn') return { skip: 'IPAM-only provider: no link or port to remove', steps: [] };
  const names = vethNames(req.containerId, req.ifName === '' ? 'eth0' : req.ifName);
  if (typeof names === 'string') return { skip: `no veth could have been created: ${names}`, steps: [] };
  return {
    hostNic: names.host,
    steps: [
      { op: 'ovsDelPort', bridge: INTEGRATION_BRIDGE, port: names.host },
      { op: 'destroyQos', podKey: `${req.podNamespace}/${virtualMachine ?? req.podName}` },
      { op: 'deleteLink', link: names.host, onlyIfVeth: true },
    ],
  };
}

/** The undo stack of the steps applied so far, in the order to run it (reverse of application). */
export function undoSteps(applied: readonly AddStep[]): DelStep[] {
  const out: DelStep[] = [];
  for (let i = applied.length - 1; i >= 0; i--) {
    const s = applied[i]!;
    if ('undo' in s) out.push(...s.undo);
  }
  return out;
}
