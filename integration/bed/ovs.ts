// Open vSwitch for one simulated node: ovsdb-server + ovs-vswitchd with private run/db/log/etc dirs in a
// temp dir, vswitchd inside the node's netns (its taps and the devices it opens by name live there), and
// the userspace datapath (this kernel has no OVS module). Recipe: ../shared/notes/testbed.md §2 and §10.
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { onCleanup } from './cleanup.ts';
import { isAlive, killPidSync, readPid, stopPid } from './daemon.ts';
import { run, waitFor, type RunOptions, type RunResult } from './exec.ts';
import { createNetns, type Netns } from './netns.ts';

export interface OvsNode {
  readonly nodeNs: Netns;
  /** The temp dir holding run/, db/, log/, etc/. */
  readonly dir: string;
  readonly rundir: string;
  readonly logdir: string;
  /** ovsdb-server's unix socket (what an OVSDB client connects to). */
  readonly dbSock: string;
  /** OVS_RUNDIR, OVS_DBDIR, OVS_LOGDIR, OVS_SYSCONFDIR for ovs-vsctl / ovs-appctl / ovs-ofctl. */
  readonly env: NodeJS.ProcessEnv;
  /** ovs-vsctl with --timeout=10 (it would block forever if vswitchd died); returns trimmed stdout. */
  vsctl(args: readonly string[], opts?: RunOptions): Promise<string>;
  appctl(args: readonly string[], opts?: RunOptions): Promise<string>;
  ofctl(args: readonly string[], opts?: RunOptions): Promise<string>;
  /** Adds a netdev (userspace) bridge; `standalone` makes it a plain NORMAL-switching bridge. */
  addBridge(name: string, opts?: { standalone?: boolean }): Promise<void>;
  /** PIDs of ovsdb-server and ovs-vswitchd. */
  pids(): number[];
  /**
   * A crash and restart of OVS: SIGKILL to ovs-vswitchd and ovsdb-server (their pidfile PIDs), then both started
   * again on the same database (bridges, ports and external_ids survive; kernel devices vswitchd owned do not).
   */
  restart(): Promise<void>;
  /** Kills our two daemons (by pidfile PID), removes the temp dir; idempotent. Leaves the netns to its owner. */
  stop(): Promise<void>;
}

export interface StartOvsOptions {
  /** Run inside this namespace; otherwise a new one named `${prefix}${name}` is created (and deleted by stop). */
  nodeNs?: Netns;
  prefix: string;
  name?: string;
}

export async function startOvs(opts: StartOvsOptions): Promise<OvsNode> {
  const name = opts.name ?? 'node1';
  const ownNs = !opts.nodeNs;
  const nodeNs = opts.nodeNs ?? (await createNetns(`${opts.prefix}${name}`));
  const dir = mkdtempSync(`/tmp/${opts.prefix}ovs-${name}-`);
  const rundir = join(dir, 'run');
  const dbdir = join(dir, 'db');
  const logdir = join(dir, 'log');
  const etcdir = join(dir, 'etc');
  for (const d of [rundir, dbdir, logdir, etcdir]) mkdirSync(d);
  const env = { ...process.env, OVS_RUNDIR: rundir, OVS_DBDIR: dbdir, OVS_LOGDIR: logdir, OVS_SYSCONFDIR: etcdir };
  const dbSock = join(rundir, 'db.sock');
  const pidfiles = [join(rundir, 'ovs-vswitchd.pid'), join(rundir, 'ovsdb-server.pid')];
  const pids = new Set<number>();

  let stopped = false;
  const stopNow = async () => {
    if (stopped) return;
    stopped = true;
    for (const f of pidfiles) {
      const pid = readPid(f);
      if (pid) pids.add(pid);
    }
    for (const pid of pids) await stopPid(pid);
    rmSync(dir, { recursive: true, force: true });
    if (ownNs) await nodeNs.delete();
  };
  const unregister = onCleanup({
    label: `ovs ${dir}`,
    run: stopNow,
    runSync: () => {
      for (const f of pidfiles) {
        const pid = readPid(f);
        if (pid) pids.add(pid);
      }
      for (const pid of pids) killPidSync(pid);
      rmSync(dir, { recursive: true, force: true });
    },
  });

  const vsctl = async (args: readonly string[], o: RunOptions = {}) =>
    (await run(['ovs-vsctl', '--timeout=10', ...args], { ...o, env: { ...env, ...o.env } })).stdout.trim();
  const startDaemons = async (first: boolean) => {
    const common = ['--pidfile', '--log-file', '--no-chdir', '--detach', '-vconsole:off'];
    await nodeNs.exec(
      ['ovsdb-server', join(dbdir, 'conf.db'), `--remote=punix:${dbSock}`, '--remote=db:Open_vSwitch,Open_vSwitch,manager_options', ...common],
      { env },
    );
    pids.add(readPid(pidfiles[1]!)!);
    if (first) await vsctl(['--no-wait', 'init']);
    await nodeNs.exec(['ovs-vswitchd', `unix:${dbSock}`, ...common], { env });
    pids.add(readPid(pidfiles[0]!)!);
    // A write without --no-wait returns only once vswitchd has caught up (next_cfg == cur_cfg): proof it is serving.
    await vsctl(['set', 'Open_vSwitch', '.', 'external_ids:koa-bed=true']);
  };
  try {
    // A failure halfway (bad binary, port clash) must still leave nothing behind.
    await run(['ovsdb-tool', 'create', join(dbdir, 'conf.db'), '/usr/share/openvswitch/vswitch.ovsschema'], { env });
    await startDaemons(true);
  } catch (e) {
    await unregister();
    throw e;
  }

  const node: OvsNode = {
    nodeNs,
    dir,
    rundir,
    logdir,
    dbSock,
    env,
    vsctl,
    appctl: async (args, o = {}) => (await run(['ovs-appctl', '--timeout=10', ...args], { ...o, env })).stdout.trim(),
    ofctl: async (args, o = {}) => (await run(['ovs-ofctl', ...args], { ...o, env })).stdout.trim(),
    addBridge: async (br, o = {}) => {
      await vsctl(['--may-exist', 'add-br', br, '--', 'set', 'bridge', br, 'datapath_type=netdev', ...(o.standalone ? ['fail-mode=standalone'] : [])]);
    },
    pids: () => [...pids],
    restart: async () => {
      for (const f of pidfiles) {
        const pid = readPid(f);
        if (!pid) continue;
        killPidSync(pid);
        await waitFor(`pid ${pid} gone`, () => !isAlive(pid), 10_000, 10);
        pids.delete(pid);
      }
      await startDaemons(false);
    },
    stop: unregister,
  };
  return node;
}

export type { RunResult };
