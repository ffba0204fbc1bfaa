// A stand-in for kube-ovn-controller, for tests only. The agent never allocates addresses: upstream's controller
// does, then writes pod/node annotations that the agent waits for. This helper plays that role just enough:
// Subnet CRs + OVN logical switches/router ports (ovn-nbctl), sequential IP/MAC allocation, the LSP per pod NIC,
// the IP CR, and the annotations in upstream's keys and formats (../shared/spec/upstream-agent-behaviour.md §3,
// §5.4; user guide §8.13), and the router's default route and gateway policies (routing.ts) that take pod traffic
// leaving the cluster to a node's ovn0. It does not watch anything: tests call it explicitly.
import { createHash } from 'node:crypto';
import type { KubeApi } from './kubeapi.ts';
import type { OvnCentral } from './ovn.ts';
import { trace } from './exec.ts';
import { contains, nth, parseCidr, type Cidr } from './ipam.ts';
import { RouterPolicies } from './routing.ts';

export const ROUTER = 'ovn-cluster';
export const JOIN = 'join';

export interface SubnetOptions {
  name: string;
  /** "10.16.0.0/16" or dual-stack "10.16.0.0/16,fd00:10:16::/64" (IPv4 first, like upstream). */
  cidrBlock: string;
  /** Defaults to the first address of each CIDR. */
  gateway?: string;
  /** `ovn` (default), `<nad>.<ns>.ovn` (OVN attachment) or `<nad>.<ns>` (IPAM only: no OVN objects). */
  provider?: string;
  default?: boolean;
  excludeIps?: string[];
  extraSpec?: Record<string, unknown>;
}

interface SubnetState {
  name: string;
  cidrs: Cidr[];
  gateways: string[];
  provider: string;
  ovn: boolean;
  next: number; // next host offset to try
  used: Set<string>;
  exclude: Set<string>;
  index: number; // for MACs
  gatewayType: string;
}

export interface Allocation {
  subnet: string;
  provider: string;
  /** LSP name = OVS iface-id: `<pod>.<ns>` or `<pod>.<ns>.<provider>`. */
  lsp: string;
  ips: string[];
  mac: string;
  /** The annotation values as written: comma-joined for dual stack. */
  ipAddress: string;
  cidr: string;
  gateway: string;
  annotations: Record<string, string>;
}

/** `gatewayNode: "n1:10.0.0.1,n2"` of a centralized subnet spec: the gateway node names, in order. */
function centralizedGateways(spec: Record<string, unknown> | undefined): string[] {
  if (spec?.gatewayType !== 'centralized' || typeof spec.gatewayNode !== 'string') return [];
  return spec.gatewayNode.split(',').map((e) => e.trim().split(':')[0]!).filter(Boolean);
}

const isOvnProvider = (p: string) => p === 'ovn' || p.endsWith('.ovn');
const keyPrefix = (provider: string) => `${provider}.kubernetes.io/`;

export class StandInController {
  readonly api: KubeApi;
  readonly central: OvnCentral;
  private readonly subnets = new Map<string, SubnetState>();
  /** node name -> its join (ovn0) IPs, for the gateway policies */
  private readonly nodeJoin = new Map<string, string[]>();
  private readonly policies: RouterPolicies;
  private macCounter = 0;

  constructor(api: KubeApi, central: OvnCentral) {
    this.api = api;
    this.central = central;
    this.policies = new RouterPolicies(central, ROUTER);
  }

  /** Router `ovn-cluster`, the default Vpc CR, join subnet 100.64.0.0/16 and the default subnet `ovn-default`. */
  async ensureCluster(opts: { joinCidr?: string; defaultCidr?: string } = {}): Promise<void> {
    await this.central.nbctl(['--may-exist', 'lr-add', ROUTER, '--', 'set', 'logical_router', ROUTER, 'external_ids:vendor=kube-ovn']);
    await this.upsert('/apis/kubeovn.io/v1/vpcs', { apiVersion: 'kubeovn.io/v1', kind: 'Vpc', metadata: { name: ROUTER }, spec: {} });
    trace('controller: vpc');
    await this.api.mergePatch(`/apis/kubeovn.io/v1/vpcs/${ROUTER}/status`, { status: { default: true, standby: true, router: ROUTER, defaultLogicalSwitch: 'ovn-default' } });
    trace('controller: vpc status');
    await this.createSubnet({ name: JOIN, cidrBlock: opts.joinCidr ?? '100.64.0.0/16' });
    await this.policies.defaultRoutes(this.subnets.get(JOIN)!.gateways);
    await this.createSubnet({ name: 'ovn-default', cidrBlock: opts.defaultCidr ?? '10.16.0.0/16', default: true });
  }

  async createSubnet(o: SubnetOptions): Promise<void> {
    const provider = o.provider ?? 'ovn';
    const cidrs = o.cidrBlock.split(',').map(parseCidr);
    const gateways = o.gateway ? o.gateway.split(',') : cidrs.map((c) => nth(c, 1));
    const protocol = cidrs.length === 2 ? 'Dual' : cidrs[0]!.family === 4 ? 'IPv4' : 'IPv6';
    const state: SubnetState = {
      name: o.name, cidrs, gateways, provider, ovn: isOvnProvider(provider), next: 1, used: new Set(gateways),
      exclude: new Set(o.excludeIps ?? []), index: this.subnets.size + 1, gatewayType: String(o.extraSpec?.gatewayType ?? 'distributed'),
    };
    this.subnets.set(o.name, state);
    await this.upsert('/apis/kubeovn.io/v1/subnets', {
      apiVersion: 'kubeovn.io/v1', kind: 'Subnet', metadata: { name: o.name },
      spec: {
        cidrBlock: o.cidrBlock, gateway: gateways.join(','), protocol, provider, vpc: ROUTER, default: !!o.default,
        excludeIps: o.excludeIps ?? gateways, gatewayType: 'distributed', natOutgoing: false, private: false, ...o.extraSpec,
      },
    });
    // as the real controller does once it has created the logical switch: the agent routes only Validated subnets
    const now = new Date().toISOString();
    const cond = (type: string) => ({ type, status: 'True', reason: type === 'Ready' ? 'ResourceCreated' : 'ValidatedSpec', lastUpdateTime: now, lastTransitionTime: now });
    await this.api.mergePatch(`/apis/kubeovn.io/v1/subnets/${o.name}/status`, { status: { conditions: [cond('Validated'), cond('Ready')] } });
    if (!state.ovn) return; // IPAM-only providers (macvlan & co.) have no logical switch
    const nb = this.central.nbctl.bind(this.central);
    const v4 = cidrs.find((c) => c.family === 4);
    const v6 = cidrs.find((c) => c.family === 6);
    await nb(['--may-exist', 'ls-add', o.name, '--', 'set', 'logical_switch', o.name, 'external_ids:vendor=kube-ovn',
      ...(v4 ? [`other_config:subnet=${v4.text}`] : []), ...(v6 ? [`other_config:ipv6_prefix=${v6.text.split('/')[0]}`] : [])]);
    const lrp = `${ROUTER}-${o.name}`;
    const lsp = `${o.name}-${ROUTER}`;
    const networks = cidrs.map((c, i) => `${gateways[i]}/${c.prefix}`);
    await nb(['--may-exist', 'lrp-add', ROUTER, lrp, this.nextMac(state), ...networks]);
    await nb(['--may-exist', 'lsp-add', o.name, lsp, '--', 'lsp-set-type', lsp, 'router', '--', 'lsp-set-addresses', lsp, 'router',
      '--', 'lsp-set-options', lsp, `router-port=${lrp}`]);
    await this.policies.allowSubnet(cidrs.map((c) => c.text));
    const gw = centralizedGateways(o.extraSpec);
    if (gw.length) {
      // the real controller picks the active gateway node and reports it in status.activateGateway
      await this.policies.subnetGateway(cidrs.map((c) => c.text), this.nodeJoin.get(gw[0]!) ?? []);
      await this.api.mergePatch(`/apis/kubeovn.io/v1/subnets/${o.name}/status`, { status: { activateGateway: gw[0] } });
    }
  }

  /** Merge-patches a subnet's spec (and, when given, its status); a new centralized gateway moves the OVN policy. */
  async updateSubnet(name: string, spec: Record<string, unknown>, status?: Record<string, unknown>): Promise<void> {
    const s = this.subnets.get(name);
    if (!s) throw new Error(`unknown subnet ${name}`);
    const merged = (await this.api.mergePatch(`/apis/kubeovn.io/v1/subnets/${name}`, { spec })).spec as Record<string, unknown>;
    s.gatewayType = String(merged.gatewayType ?? 'distributed');
    const gw = centralizedGateways(merged);
    if (gw.length) await this.policies.subnetGateway(s.cidrs.map((c) => c.text), this.nodeJoin.get(gw[0]!) ?? []);
    const st = { ...status, ...(gw.length ? { activateGateway: gw[0] } : {}) };
    if (Object.keys(st).length) await this.api.mergePatch(`/apis/kubeovn.io/v1/subnets/${name}/status`, { status: st });
  }

  /**
   * NAT-outgoing policy rules (user guide §7.24): the spec as a user writes it, and the status the real controller
   * derives from it (each rule with a ruleID, a short hash, which names the agent's ipsets).
   */
  async setNatOutgoingPolicyRules(name: string, rules: { action: 'nat' | 'forward'; match: { srcIPs?: string; dstIPs?: string } }[]): Promise<void> {
    const withId = rules.map((r) => ({ ...r, ruleID: createHash('sha256').update(`${name}/${JSON.stringify(r)}`).digest('hex').slice(0, 12) }));
    await this.updateSubnet(name, { natOutgoingPolicyRules: rules }, { natOutgoingPolicyRules: withId });
  }

  /** Deletes the Subnet CR and its OVN switch, router port and policies (what the controller does on delete). */
  async deleteSubnet(name: string): Promise<void> {
    const s = this.subnets.get(name);
    if (!s) throw new Error(`unknown subnet ${name}`);
    await this.api.delete(`/apis/kubeovn.io/v1/subnets/${name}`);
    this.subnets.delete(name);
    if (!s.ovn) return;
    await this.policies.removeSubnet(s.cidrs.map((c) => c.text));
    await this.central.nbctl(['--if-exists', 'lrp-del', `${ROUTER}-${name}`]);
    await this.central.nbctl(['--if-exists', 'ls-del', name]);
  }

  /** Node object (if missing) plus its join address and `node-<node>` LSP, annotated like upstream (§5.4). */
  async addNode(node: string, internalIp = '127.0.0.1'): Promise<Allocation> {
    const existing = await this.api.get(`/api/v1/nodes/${node}`).catch(() => undefined);
    if (!existing) {
      await this.api.post('/api/v1/nodes', {
        apiVersion: 'v1', kind: 'Node', metadata: { name: node, labels: { 'kubernetes.io/hostname': node, 'kubernetes.io/os': 'linux' } },
        status: { addresses: [{ type: 'InternalIP', address: internalIp }, { type: 'Hostname', address: node }] },
      });
    }
    const a = await this.allocate(JOIN, `node-${node}`, 'ovn', { 'ovn.kubernetes.io/port_name': `node-${node}` }, { vendor: 'kube-ovn', node });
    await this.api.mergePatch(`/api/v1/nodes/${node}`, { metadata: { annotations: a.annotations } });
    this.nodeJoin.set(node, a.ips);
    await this.policies.node([internalIp], a.ips);
    return a;
  }

  /** Replaces the Node's InternalIP (what kubelet reports) and routes traffic to it into the node's ovn0. */
  async setNodeInternalIp(node: string, ip: string): Promise<void> {
    await this.api.mergePatch(`/api/v1/nodes/${node}/status`, { status: { addresses: [{ type: 'InternalIP', address: ip }, { type: 'Hostname', address: node }] } });
    await this.policies.node([ip], this.nodeJoin.get(node) ?? []);
  }

  /**
   * Allocates a pod NIC the way upstream's controller does: LSP `<pod>.<ns>[.<provider>]`, IP CR, annotations.
   * `routed` (default true for OVN providers) is written together with the rest; pass false to leave it out, so a
   * test can watch the agent wait for it, then call markRouted().
   */
  async allocatePod(namespace: string, pod: string, opts: { subnet?: string; provider?: string; routed?: boolean; nodeName?: string } = {}): Promise<Allocation> {
    const podObj = await this.api.get(`/api/v1/namespaces/${namespace}/pods/${pod}`);
    const provider = opts.provider ?? 'ovn';
    const subnet = opts.subnet ?? (provider === 'ovn' ? 'ovn-default' : [...this.subnets.values()].find((s) => s.provider === provider)?.name);
    if (!subnet) throw new Error(`no subnet for provider ${provider}`);
    const lsp = provider === 'ovn' ? `${pod}.${namespace}` : `${pod}.${namespace}.${provider}`;
    const p = keyPrefix(provider);
    const extra: Record<string, string> = { [`${p}pod_nic_type`]: 'veth-pair' };
    if (isOvnProvider(provider)) extra[`${p}logical_router`] = ROUTER;
    if (isOvnProvider(provider) && opts.routed !== false) extra[`${p}routed`] = 'true';
    const a = await this.allocate(subnet, lsp, provider, extra, { pod: `${namespace}/${pod}`, vendor: 'kube-ovn', ls: subnet });
    const nodeName = opts.nodeName ?? podObj.spec?.nodeName ?? '';
    await this.upsert('/apis/kubeovn.io/v1/ips', {
      apiVersion: 'kubeovn.io/v1', kind: 'IP',
      metadata: { name: lsp, labels: { 'ovn.kubernetes.io/subnet': subnet, [subnet]: '', 'ovn.kubernetes.io/node-name': nodeName } },
      spec: {
        podName: pod, namespace, subnet, nodeName, ipAddress: a.ipAddress, macAddress: a.mac, containerID: '', podType: '',
        v4IpAddress: a.ips.find((i) => !i.includes(':')) ?? '', v6IpAddress: a.ips.find((i) => i.includes(':')) ?? '',
        attachIps: [], attachMacs: [], attachSubnets: [],
      },
    });
    const st = this.subnets.get(subnet)!;
    if (st.ovn && st.gatewayType !== 'centralized' && this.nodeJoin.has(nodeName)) await this.policies.podGateway(a.ips, this.nodeJoin.get(nodeName)!);
    await this.api.mergePatch(`/api/v1/namespaces/${namespace}/pods/${pod}`, { metadata: { annotations: a.annotations } });
    return a;
  }

  async markRouted(namespace: string, pod: string, provider = 'ovn'): Promise<void> {
    await this.api.mergePatch(`/api/v1/namespaces/${namespace}/pods/${pod}`, { metadata: { annotations: { [`${keyPrefix(provider)}routed`]: 'true' } } });
  }

  /** Removes the LSP and IP CR of a pod NIC (what upstream does when the pod is deleted). */
  async releasePod(namespace: string, pod: string, provider = 'ovn'): Promise<void> {
    const lsp = provider === 'ovn' ? `${pod}.${namespace}` : `${pod}.${namespace}.${provider}`;
    const ip = await this.api.get(`/apis/kubeovn.io/v1/ips/${lsp}`).catch(() => undefined);
    await this.central.nbctl(['--if-exists', 'lsp-del', lsp]);
    if (ip?.spec?.ipAddress) await this.policies.removePodGateway(String(ip.spec.ipAddress).split(','));
    await this.api.delete(`/apis/kubeovn.io/v1/ips/${lsp}`).catch(() => undefined);
  }

  private async allocate(subnetName: string, lsp: string, provider: string, extra: Record<string, string>, externalIds: Record<string, string>): Promise<Allocation> {
    const s = this.subnets.get(subnetName);
    if (!s) throw new Error(`unknown subnet ${subnetName}`);
    const ips = s.cidrs.map((c) => this.nextFree(s, c));
    // all families advance together, so a dual-stack pod gets .N and ::N
    s.next++;
    for (const ip of ips) s.used.add(ip);
    const mac = this.nextMac(s);
    const p = keyPrefix(provider);
    const a: Allocation = {
      subnet: subnetName, provider, lsp, ips, mac, ipAddress: ips.join(','), cidr: s.cidrs.map((c) => c.text).join(','), gateway: s.gateways.join(','),
      annotations: {},
    };
    a.annotations = {
      [`${p}allocated`]: 'true', [`${p}ip_address`]: a.ipAddress, [`${p}mac_address`]: mac, [`${p}cidr`]: a.cidr,
      [`${p}gateway`]: a.gateway, [`${p}logical_switch`]: subnetName, ...extra,
    };
    if (s.ovn) {
      await this.central.nbctl(['--may-exist', 'lsp-add', subnetName, lsp, '--', 'lsp-set-addresses', lsp, `${mac} ${ips.join(' ')}`,
        '--', 'set', 'logical_switch_port', lsp, ...Object.entries(externalIds).map(([k, v]) => `external_ids:${k}="${v}"`)]);
    }
    return a;
  }

  private nextFree(s: SubnetState, c: Cidr): string {
    for (let n = s.next; ; n++) {
      const ip = nth(c, n);
      if (!contains(c, ip)) throw new Error(`subnet ${s.name} exhausted`);
      if (!s.used.has(ip) && !s.exclude.has(ip)) {
        s.next = Math.max(s.next, n);
        return ip;
      }
    }
  }

  /** Upstream uses 00:00:00 + three bytes, printed upper-case; ours are sequential so tests are repeatable. */
  private nextMac(s: SubnetState): string {
    const n = ++this.macCounter;
    const bytes = [s.index & 0xff, (n >> 8) & 0xff, n & 0xff];
    return ['00', '00', '00', ...bytes.map((b) => b.toString(16).padStart(2, '0').toUpperCase())].join(':');
  }

  private async upsert(collection: string, obj: { metadata: { name: string; [k: string]: unknown }; [k: string]: unknown }): Promise<void> {
    const existing = await this.api.get(`${collection}/${obj.metadata.name}`).catch(() => undefined);
    if (existing) await this.api.put(`${collection}/${obj.metadata.name}`, { ...obj, metadata: { ...existing.metadata, ...obj.metadata } });
    else await this.api.post(collection, obj);
  }
}
