// The composed test bed: 1 or 2 simulated nodes (netns + OVS + ovn-controller), central OVN (NB/SB/northd),
// kube-apiserver + etcd with our CRDs, and the stand-in controller with router `ovn-cluster`, subnets `join`
// and `ovn-default`, and annotated Node objects. down() is idempotent and removes every namespace, process
// and temp dir it made; leaks() lets a test verify that.
import { readdirSync, readFileSync } from 'node:fs';
import { StandInController, type Allocation } from './controller.ts';
import { isAlive } from './daemon.ts';
import { trace, waitFor } from './exec.ts';
import { startKube, type Kube } from './kube.ts';
import { addAddress, addRoute, createNetns, listNetns, newPrefix, setMac, type Netns } from './netns.ts';
import { addUnderlay, startOvnCentral, startOvnController, type OvnCentral, type OvnController, type OvnSchemas } from './ovn.ts';
import { startOvs, type OvsNode } from './ovs.ts';

export interface BedNode {
  /** Kubernetes node name = OVN chassis name (system-id). */
  readonly name: string;
  readonly ns: Netns;
  readonly ovs: OvsNode;
  readonly ovn: OvnController;
  readonly encapIp: string;
  /** The controller's join allocation for this node (ovn0 address, `node-<name>` LSP). */
  join?: Allocation;
}

export interface BedOptions {
  /** Namespace / temp-dir / node-name prefix; default `koa<random>-`. */
  prefix?: string;
  nodes?: 1 | 2;
  /** Start kube-apiserver + etcd and the stand-in controller (default true). */
  kube?: boolean;
  encapType?: 'geneve' | 'vxlan';
  /**
   * 'none': no stand-in controller (no router, subnets or Node objects): for the real kube-ovn-controller
   * (integration/realnode), which also wants its own OVN schemas and CRDs.
   */
  controller?: 'stand-in' | 'none';
  ovnSchemas?: OvnSchemas;
  /** CRDs to apply instead of deploy/crds/kube-ovn-crds.yaml. */
  crdFile?: string;
  /** kube-apiserver with the ServiceAccount admission plugin on (startKube's `serviceAccounts`). */
  serviceAccounts?: boolean;
}

export interface WiredPod {
  readonly ns: Netns;
  readonly hostIf: string;
  readonly ifaceId: string;
}

export interface WireOptions {
  /** Interface name in the pod (default eth0). */
  ifname?: string;
  /** Reuse an existing pod namespace (second NIC of the same pod). */
  ns?: Netns;
  /** Install default route(s) via the gateway(s); default: only for eth0, like the agent. */
  defaultRoute?: boolean;
}

export interface Bed {
  readonly prefix: string;
  readonly central: OvnCentral;
  readonly nodes: BedNode[];
  readonly kube?: Kube;
  readonly controller?: StandInController;
  /** Pod MTU that fits the overlay (1400: geneve over a 1500 underlay). */
  readonly mtu: number;
  /** Wires a pod namespace by hand the way the agent would: veth, OVS port with iface-id, MAC/IP/routes, tx off. */
  wirePod(node: BedNode, name: string, a: Allocation, opts?: WireOptions): Promise<WiredPod>;
  /** Wires the node's ovn0 by hand from its join allocation (for the self-test; the agent does this itself). */
  wireOvn0(node: BedNode): Promise<void>;
  down(): Promise<void>;
}

export async function up(opts: BedOptions = {}): Promise<Bed> {
  const prefix = opts.prefix ?? newPrefix();
  const nodeCount = opts.nodes ?? 1;
  const stops: Array<() => Promise<void>> = [];
  const down = async () => {
    const errors: unknown[] = [];
    while (stops.length > 0) {
      try {
        await stops.pop()!();
      } catch (e) {
        errors.push(e);
      }
    }
    if (errors.length) throw new AggregateError(errors, 'bed down had errors');
  };
  let kubeP: Promise<Kube> | undefined;
  try {
    // kube-apiserver is the slow part (seconds): start it alongside OVS/OVN.
    kubeP = opts.kube === false ? undefined : startKube({ prefix, ...(opts.crdFile ? { crdFile: opts.crdFile } : {}), serviceAccounts: opts.serviceAccounts === true });
    kubeP?.catch(() => {}); // awaited below; avoid an unhandled rejection while OVS starts
    const ovsNodes: OvsNode[] = [];
    for (let i = 1; i <= nodeCount; i++) {
      const ovs = await startOvs({ prefix, name: `node${i}` });
      stops.push(ovs.stop);
      ovsNodes.push(ovs);
    }
    trace('ovs up');
    const central = await startOvnCentral({ prefix, ...(nodeCount === 1 ? { ns: ovsNodes[0]!.nodeNs } : {}), ...(opts.ovnSchemas ? { schemas: opts.ovnSchemas } : {}) });
    stops.push(central.stop);
    const encapIps = nodeCount === 1 ? ['127.0.0.1'] : ['172.30.0.1', '172.30.0.2'];
    if (nodeCount === 2) await addUnderlay(ovsNodes[0]!, encapIps[0]!, ovsNodes[1]!, encapIps[1]!);
    const nodes: BedNode[] = [];
    for (const [i, ovs] of ovsNodes.entries()) {
      const name = `${prefix}node${i + 1}`;
      const ovn = await startOvnController(ovs, central, { systemId: name, encapIp: encapIps[i]!, encapType: opts.encapType ?? 'geneve' });
      stops.push(ovn.stop);
      nodes.push({ name, ns: ovs.nodeNs, ovs, ovn, encapIp: encapIps[i]! });
    }
    trace('ovn up');
    let kube: Kube | undefined;
    let controller: StandInController | undefined;
    if (kubeP) {
      kube = await kubeP;
      trace('kube up');
      stops.splice(0, 0, kube.stop); // stopped last
      if (opts.controller !== 'none') {
        controller = new StandInController(kube.api, central);
        await controller.ensureCluster();
        trace('controller: router, join, ovn-default');
      }
      for (const n of nodes) {
        if (controller) n.join = await controller.addNode(n.name, n.encapIp);
        trace(`controller: node ${n.name}`);
        await kube.exposeIn(n.ns); // an agent in the node namespace uses the same kubeconfig
      }
    }
    trace('controller: cluster and nodes ready');
    const mtu = 1400;

    const bed: Bed = {
      prefix, central, nodes, kube, controller, mtu,
      wirePod: async (node, name, a, o = {}) => {
        const ifname = o.ifname ?? 'eth0';
        let ns = o.ns;
        if (!ns) {
          ns = await createNetns(`${prefix}${name}`);
          stops.push(ns.delete);
        }
        const hostIf = `${name}${ifname === 'eth0' ? '' : `_${ifname}`}_h`.slice(-15);
        await node.ns.ip(['link', 'add', hostIf, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', ifname, 'mtu', String(mtu), 'netns', ns.name]);
        await node.ns.ip(['link', 'set', hostIf, 'up']);
        await setMac(ns, ifname, a.mac);
        const prefixes = a.cidr.split(',').map((c) => c.split('/')[1]);
        for (const [i, ip] of a.ips.entries()) await addAddress(ns, ifname, `${ip}/${prefixes[i]}`);
        await ns.ip(['link', 'set', ifname, 'up']);
        if (o.defaultRoute ?? ifname === 'eth0') {
          for (const gw of a.gateway.split(',')) await addRoute(ns, gw.includes(':') ? '::/0' : '0.0.0.0/0', gw, ifname);
        }
        // userspace datapath + veth: partial checksums from the pod would leave OVS unfixed (testbed.md §2)
        await ns.exec(['ethtool', '-K', ifname, 'tx', 'off']);
        await node.ovs.vsctl(['add-port', 'br-int', hostIf, '--', 'set', 'interface', hostIf, `external_ids:iface-id=${a.lsp}`]);
        await waitFor(`ovn-installed on ${hostIf}`, async () =>
          (await node.ovs.vsctl(['--if-exists', 'get', 'interface', hostIf, 'external_ids:ovn-installed'])).replaceAll('"', '') === 'true');
        return { ns, hostIf, ifaceId: a.lsp };
      },
      wireOvn0: async (node) => {
        const j = node.join;
        if (!j) throw new Error('wireOvn0 needs the stand-in controller (kube: true)');
        await node.ovs.vsctl(['--may-exist', 'add-port', 'br-int', 'ovn0', '--', 'set', 'interface', 'ovn0', 'type=internal',
          `mac="${j.mac}"`, `mtu_request=${mtu}`, `external_ids:iface-id=${j.lsp}`]);
        const len = j.cidr.split('/')[1];
        await addAddress(node.ns, 'ovn0', `${j.ips[0]}/${len}`);
        await node.ns.ip(['link', 'set', 'ovn0', 'up']);
        await waitFor('ovn-installed on ovn0', async () =>
          (await node.ovs.vsctl(['--if-exists', 'get', 'interface', 'ovn0', 'external_ids:ovn-installed'])).replaceAll('"', '') === 'true');
      },
      down,
    };
    return bed;
  } catch (e) {
    await down().catch(() => {});
    // a kube-apiserver that came up after something else failed is not in `stops` yet
    await (await kubeP?.catch(() => undefined))?.stop();
    throw e;
  }
}

export interface Leaks {
  netns: string[];
  tmpDirs: string[];
  /** PIDs whose command line mentions the prefix (our daemons all carry their temp dir path in argv). */
  processes: { pid: number; cmd: string }[];
}

export function leaks(prefix: string): Leaks {
  const processes: Leaks['processes'] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmd.includes(`/tmp/${prefix}`) && isAlive(Number(d))) processes.push({ pid: Number(d), cmd: cmd.slice(0, 200) });
    } catch {
      // process ended while we looked
    }
  }
  return { netns: listNetns(prefix), tmpDirs: readdirSync('/tmp').filter((f) => f.startsWith(prefix)), processes };
}
