// OVN for the bed: a central part (NB + SB ovsdb-servers + ovn-northd) and one ovn-controller per simulated
// node, each with private OVN_RUNDIR/log dirs. NB/SB are unix sockets, reachable from every namespace because
// they are paths. Recipes: ../shared/notes/testbed.md §4 (one node), §5 (two nodes, geneve), §10 gotchas 2, 7, 8.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { onCleanup } from './cleanup.ts';
import { isAlive, killPidSync, readPid, stopPid } from './daemon.ts';
import { run, sleep, waitFor, type RunOptions } from './exec.ts';
import { createNetns, type Netns } from './netns.ts';
import type { OvsNode } from './ovs.ts';

export interface OvnCentral {
  readonly ns: Netns;
  readonly dir: string;
  /** `unix:<path>` connection strings (OVN_NB_DB / OVN_SB_DB). */
  readonly nbDb: string;
  readonly sbDb: string;
  readonly env: NodeJS.ProcessEnv;
  nbctl(args: readonly string[], opts?: RunOptions): Promise<string>;
  sbctl(args: readonly string[], opts?: RunOptions): Promise<string>;
  pids(): number[];
  stop(): Promise<void>;
}

export interface OvnController {
  readonly chassis: string;
  readonly ovs: OvsNode;
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;
  pids(): number[];
  /** `ovn-appctl -t ovn-controller exit` (removes its Chassis row), then make sure the PID is gone. */
  stop(): Promise<void>;
}

function collectPids(pidfiles: string[], into: Set<number>): void {
  for (const f of pidfiles) {
    const p = readPid(f);
    if (p) into.add(p);
  }
}

export interface OvnSchemas {
  /** OVN_Northbound / OVN_Southbound schema files (default: Debian's, /usr/share/ovn/ovn-{nb,sb}.ovsschema). */
  nb: string;
  sb: string;
}

export async function startOvnCentral(opts: { prefix: string; ns?: Netns; schemas?: OvnSchemas }): Promise<OvnCentral> {
  const ownNs = !opts.ns;
  const ns = opts.ns ?? (await createNetns(`${opts.prefix}central`));
  const dir = mkdtempSync(`/tmp/${opts.prefix}ovn-central-`);
  const rundir = join(dir, 'run');
  const dbdir = join(dir, 'db');
  const logdir = join(dir, 'log');
  for (const d of [rundir, dbdir, logdir]) mkdirSync(d);
  const nbDb = `unix:${join(rundir, 'ovnnb_db.sock')}`;
  const sbDb = `unix:${join(rundir, 'ovnsb_db.sock')}`;
  const env = { ...process.env, OVN_RUNDIR: rundir, OVN_DBDIR: dbdir, OVN_LOGDIR: logdir, OVN_NB_DB: nbDb, OVN_SB_DB: sbDb };
  const pidfiles = ['ovn-northd.pid', 'ovnsb_db.pid', 'ovnnb_db.pid'].map((f) => join(rundir, f));
  const pids = new Set<number>();
  let stopped = false;
  const unregister = onCleanup({
    label: `ovn central ${dir}`,
    run: async () => {
      if (stopped) return;
      stopped = true;
      collectPids(pidfiles, pids);
      for (const p of pids) await stopPid(p);
      rmSync(dir, { recursive: true, force: true });
      if (ownNs) await ns.delete();
    },
    runSync: () => {
      collectPids(pidfiles, pids);
      for (const p of pids) killPidSync(p);
      rmSync(dir, { recursive: true, force: true });
    },
  });

  const common = ['--no-chdir', '--detach', '-vconsole:off'];
  for (const [db, schema, table] of [
    ['ovnnb_db', opts.schemas?.nb ?? '/usr/share/ovn/ovn-nb.ovsschema', 'OVN_Northbound,NB_Global'],
    ['ovnsb_db', opts.schemas?.sb ?? '/usr/share/ovn/ovn-sb.ovsschema', 'OVN_Southbound,SB_Global'],
  ] as const) {
    await run(['ovsdb-tool', 'create', join(dbdir, `${db}.db`), schema], { env });
    await ns.exec(
      [
        'ovsdb-server', join(dbdir, `${db}.db`), `--remote=punix:${join(rundir, `${db}.sock`)}`, `--remote=db:${table},connections`,
        `--pidfile=${join(rundir, `${db}.pid`)}`, `--unixctl=${join(rundir, `${db}.ctl`)}`, `--log-file=${join(logdir, `${db}.log`)}`, ...common,
      ],
      { env },
    );
    collectPids(pidfiles, pids);
  }
  const nbctl = async (args: readonly string[], o: RunOptions = {}) =>
    (await run(['ovn-nbctl', '--timeout=10', ...args], { ...o, env: { ...env, ...o.env } })).stdout.trim();
  const sbctl = async (args: readonly string[], o: RunOptions = {}) =>
    (await run(['ovn-sbctl', '--timeout=10', ...args], { ...o, env: { ...env, ...o.env } })).stdout.trim();
  await nbctl(['init']);
  await sbctl(['init']);
  await ns.exec(
    ['ovn-northd', `--ovnnb-db=${nbDb}`, `--ovnsb-db=${sbDb}`, `--pidfile=${join(rundir, 'ovn-northd.pid')}`, `--log-file=${join(logdir, 'ovn-northd.log')}`, ...common],
    { env },
  );
  collectPids(pidfiles, pids);
  // northd is working once a NB change is reflected in SB (nb_cfg -> sb_cfg).
  await nbctl(['--wait=sb', 'sync']);
  return { ns, dir, nbDb, sbDb, env, nbctl, sbctl, pids: () => [...pids], stop: unregister };
}

/**
 * The LSP's `up` as ovn-nbctl shows it, once it reads "up" or after `timeoutMs`. ovn-controller writes
 * `ovn-installed` (OVS) and `Port_Binding.up` (SB) in separate transactions and northd copies `up` to NB a loop later,
 * so right after an ADD (which waits for ovn-installed) NB may still say "down".
 */
export async function lspUpState(central: Pick<OvnCentral, 'nbctl'>, lsp: string, timeoutMs = 30_000): Promise<string> {
  let last = '';
  await waitFor(`LSP ${lsp} up in NB`, async () => (last = await central.nbctl(['lsp-get-up', lsp])) === 'up', timeoutMs, 100)
    .catch(() => undefined);
  return last;
}

export interface StartControllerOptions {
  /** Chassis name (external_ids:system-id); kube-ovn uses the node name. */
  systemId: string;
  /** Tunnel endpoint; 127.0.0.1 is fine for a single node. */
  encapIp: string;
  encapType?: 'geneve' | 'vxlan';
}

export async function startOvnController(ovs: OvsNode, central: OvnCentral, opts: StartControllerOptions): Promise<OvnController> {
  const dir = mkdtempSync(join(ovs.dir, 'ovn-'));
  // where ovs-ctl keeps the chassis name ($OVS_SYSCONFDIR/openvswitch/system-id.conf); the agent reads it at start-up
  mkdirSync(join(ovs.env.OVS_SYSCONFDIR!, 'openvswitch'), { recursive: true });
  writeFileSync(join(ovs.env.OVS_SYSCONFDIR!, 'openvswitch', 'system-id.conf'), `${opts.systemId}\n`);
  const env = { ...ovs.env, OVN_RUNDIR: dir, OVN_LOGDIR: dir, OVN_NB_DB: central.nbDb, OVN_SB_DB: central.sbDb };
  const pidfile = join(dir, 'ovn-controller.pid');
  const pids = new Set<number>();
  let stopped = false;
  const unregister = onCleanup({
    label: `ovn-controller ${opts.systemId}`,
    run: async () => {
      if (stopped) return;
      stopped = true;
      collectPids([pidfile], pids);
      // the clean exit deletes our Chassis row from SB (when SB is still up), so a later bed starts clean
      if ([...pids].some(isAlive)) await run(['ovn-appctl', '--timeout=5', '-t', 'ovn-controller', 'exit'], { env, allowFail: true });
      for (const p of pids) {
        const deadline = Date.now() + 3000;
        while (isAlive(p) && Date.now() < deadline) await sleep(20);
        await stopPid(p);
      }
      rmSync(dir, { recursive: true, force: true });
    },
    runSync: () => {
      collectPids([pidfile], pids);
      for (const p of pids) killPidSync(p);
    },
  });
  await ovs.vsctl([
    'set', 'open_vswitch', '.',
    `external_ids:system-id=${opts.systemId}`,
    // the Chassis' hostname; kube-ovn-controller matches it to the Node name (a real node's hostname)
    `external_ids:hostname=${opts.systemId}`,
    `external_ids:ovn-remote=${central.sbDb}`,
    `external_ids:ovn-encap-type=${opts.encapType ?? 'geneve'}`,
    `external_ids:ovn-encap-ip=${opts.encapIp}`,
    'external_ids:ovn-bridge-datapath-type=netdev',
  ]);
  await ovs.nodeNs.exec(
    ['ovn-controller', `unix:${ovs.dbSock}`, `--pidfile=${pidfile}`, `--log-file=${join(dir, 'ovn-controller.log')}`, '--no-chdir', '--detach', '-vconsole:off'],
    { env },
  );
  collectPids([pidfile], pids);
  // ready = br-int exists (ovn-controller creates it, netdev) and our Chassis is registered in SB
  await waitFor('br-int from ovn-controller', async () => (await run(['ovs-vsctl', '--timeout=5', 'br-exists', 'br-int'], { env: ovs.env, allowFail: true })).code === 0);
  await waitFor(`chassis ${opts.systemId} in SB`, async () => (await central.sbctl(['--bare', '--columns=name', 'find', 'chassis', `name=${opts.systemId}`])) === opts.systemId);
  return { chassis: opts.systemId, ovs, dir, env, pids: () => [...pids], stop: unregister };
}

/**
 * Underlay between two nodes for tunnels in the userspace datapath (testbed.md §5): a veth `eth1`<->`eth1`,
 * each end a port of a netdev bridge `br-phy` whose internal port carries the tunnel endpoint IP.
 */
export async function addUnderlay(a: OvsNode, aIp: string, b: OvsNode, bIp: string, prefixLen = 24): Promise<void> {
  await a.nodeNs.ip(['link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'eth1', 'netns', b.nodeNs.name]);
  for (const [node, ip] of [[a, aIp], [b, bIp]] as const) {
    await node.nodeNs.ip(['link', 'set', 'eth1', 'up']);
    await node.vsctl(['--may-exist', 'add-br', 'br-phy', '--', 'set', 'bridge', 'br-phy', 'datapath_type=netdev', '--', '--may-exist', 'add-port', 'br-phy', 'eth1']);
    await node.nodeNs.ip(['addr', 'add', `${ip}/${prefixLen}`, 'dev', 'br-phy']);
    await node.nodeNs.ip(['link', 'set', 'br-phy', 'up']);
  }
}
