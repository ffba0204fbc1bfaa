// The upstream kube-ovn protocol on the same socket (spec §1.6, §2.3, §2.4): POST /api/v1/add and /api/v1/del with
// the upstream CniRequest JSON, answered with the upstream CniResponse JSON (add: 200; del: 204 empty; errors:
// 400 for undecodable or invalid requests, 500 for everything else, body a CniResponse with only `error` set). It
// lets the upstream `kube-ovn` CNI binary and existing NetworkAttachmentDefinitions talk to this agent unchanged.
import { agentError, toAgentError, type AgentError } from '../errors.ts';
import { decodeDns, parseCidr } from './codec.ts';
import { cidrNetwork } from '../net/ip.ts';
import type { Dispatcher } from './dispatcher.ts';
import { containerIdProblem, ifNameProblem } from './env.ts';
import { DEFAULT_PROVIDER, KUBE_OVN_TYPE, parseRoutes } from './netconf.ts';
import { LATEST_VERSION, type CniDns, type CniRequest, type CniResult, type NetConf, type UpstreamRoute } from './types.ts';

/** The upstream request body (field names are the wire format). */
export interface UpstreamCniRequest {
  cni_type: string;
  pod_name: string;
  pod_namespace: string;
  container_id: string;
  net_ns: string;
  if_name: string;
  provider: string;
  routes: UpstreamRoute[] | null;
  dns: CniDns;
  vf_driver: string;
  deviceID: string;
  vhost_user_socket_volume_name: string;
  vhost_user_socket_name: string;
  vhost_user_socket_consumption: string;
}

export interface UpstreamIp { protocol: 'IPv4' | 'IPv6'; ip: string; cidr: string; gateway?: string }

/** The upstream response body. */
export interface UpstreamCniResponse {
  ips: UpstreamIp[] | null;
  mac_address: string;
  routes: UpstreamRoute[] | null;
  mtu: number;
  nicname: string;
  dns: CniDns;
  error: string;
}

export interface UpstreamReply { status: number; body: UpstreamCniResponse | null }

const STRING_FIELDS = ['cni_type', 'pod_name', 'pod_namespace', 'container_id', 'net_ns', 'if_name', 'provider', 'vf_driver',
  'deviceID', 'vhost_user_socket_volume_name', 'vhost_user_socket_name', 'vhost_user_socket_consumption'] as const;

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Decodes and validates an upstream CniRequest into the internal request (throws coded errors). */
export function parseUpstreamRequest(body: unknown, command: 'ADD' | 'DEL'): CniRequest {
  if (!isObj(body)) throw agentError('KOA_BAD_JSON', 'CniRequest', 'expected a JSON object');
  const s: Record<string, string> = {};
  for (const k of STRING_FIELDS) {
    const v = body[k];
    if (v !== undefined && v !== null && typeof v !== 'string') throw agentError('KOA_BAD_JSON', 'CniRequest', `${k} must be a string`);
    s[k] = (v as string | undefined) ?? '';
  }
  const missing = [!s.pod_name && 'pod_name', !s.pod_namespace && 'pod_namespace'].filter(Boolean);
  if (missing.length) throw agentError('KOA_POD_ARGS', missing.join(' and '));
  const cidErr = containerIdProblem(s.container_id!);
  if (cidErr) throw agentError('KOA_BAD_ENV', 'container_id', cidErr);
  const ifErr = ifNameProblem(s.if_name!);
  if (ifErr) throw agentError('KOA_BAD_ENV', 'if_name', ifErr);
  if (command === 'ADD' && s.net_ns === '') throw agentError('KOA_BAD_ENV', 'net_ns', 'it is required for ADD');
  if (s.net_ns !== '' && !s.net_ns!.startsWith('/')) throw agentError('KOA_BAD_ENV', 'net_ns', `"${s.net_ns}" must be an absolute path`);

  const type = s.cni_type || KUBE_OVN_TYPE;
  const netconf: NetConf = {
    cniVersion: LATEST_VERSION,
    name: type,
    type,
    ipamMode: type !== KUBE_OVN_TYPE,
    serverSocket: '(upstream protocol)',
    provider: s.provider || DEFAULT_PROVIDER,
    routes: command === 'ADD' ? parseRoutes(body.routes, 'routes') : null,
    raw: body,
  };
  const dns = command === 'ADD' ? decodeDns(body.dns, 'dns') : undefined;
  if (dns && Object.keys(dns).length) netconf.dns = dns;
  if (s.deviceID) netconf.deviceID = s.deviceID;
  if (s.vf_driver) netconf.vfDriver = s.vf_driver;
  if (s.vhost_user_socket_volume_name) netconf.vhostUserSocketVolumeName = s.vhost_user_socket_volume_name;
  if (s.vhost_user_socket_name) netconf.vhostUserSocketName = s.vhost_user_socket_name;
  if (s.vhost_user_socket_consumption) netconf.vhostUserSocketConsumption = s.vhost_user_socket_consumption;
  return {
    command,
    containerId: s.container_id!,
    netns: s.net_ns!,
    ifName: s.if_name!,
    podName: s.pod_name!,
    podNamespace: s.pod_namespace!,
    args: { ignoreUnknown: true, podName: s.pod_name!, podNamespace: s.pod_namespace!, all: { K8S_POD_NAME: s.pod_name!, K8S_POD_NAMESPACE: s.pod_namespace! } },
    cniPath: [],
    netconf,
    via: 'upstream',
  };
}

/** The network address of a CIDR ("10.16.0.5/16" -> "10.16.0.0/16"). */
export function networkOf(cidr: string): string {
  const n = cidrNetwork(cidr);
  if (n === undefined) throw agentError('KOA_INTERNAL', `not a CIDR: ${cidr}`);
  return n;
}

/** Internal result -> upstream CniResponse. */
export function toUpstreamResponse(r: CniResult): UpstreamCniResponse {
  const nic = r.interfaces?.[0];
  return {
    ips: (r.ips ?? []).map((i) => {
      const c = parseCidr(i.address)!;
      const o: UpstreamIp = { protocol: c.family === 4 ? 'IPv4' : 'IPv6', ip: c.ip, cidr: networkOf(i.address) };
      if (i.gateway) o.gateway = i.gateway;
      return o;
    }),
    mac_address: nic?.mac ?? '',
    routes: r.routes?.length ? r.routes.map((rt) => ({ dst: rt.dst, ...(rt.gw ? { gw: rt.gw } : {}) })) : null,
    mtu: nic?.mtu ?? 0,
    nicname: nic?.name ?? '',
    dns: r.dns ?? {},
    error: '',
  };
}

function errorReply(e: AgentError): UpstreamReply {
  // upstream answers 400 for a bad request and 500 for everything else (its binary retries nothing itself)
  return {
    status: e.httpStatus === 400 || e.httpStatus === 413 ? 400 : 500,
    body: { ips: null, mac_address: '', routes: null, mtu: 0, nicname: '', dns: {}, error: e.message },
  };
}

/** Handles POST /api/v1/add or /api/v1/del. Never throws. */
export async function handleUpstream(d: Dispatcher, command: 'ADD' | 'DEL', body: unknown): Promise<UpstreamReply> {
  try {
    const req = parseUpstreamRequest(body, command);
    if (command === 'ADD') return { status: 200, body: toUpstreamResponse(await d.add(req)) };
    if (req.netns === '') return { status: 204, body: null }; // upstream: nothing to do without a netns
    await d.del(req);
    return { status: 204, body: null };
  } catch (e) {
    return errorReply(toAgentError(e));
  }
}
