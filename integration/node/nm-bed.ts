// A real NetworkManager (Debian's 1.42, unpacked into the fixture cache by scripts/build-fixtures.sh) on a private
// system bus, managing the interfaces of one test namespace. Bed configuration, not product code:
// - dbus-daemon runs with a config of our own (its socket in a temp dir; root may do anything) and includes NM's
//   bus policy from the unpacked package;
// - NetworkManager runs inside the namespace and a private mount namespace: tmpfs on /run and /var/lib (its state),
//   /sys read-only, which makes NM treat devices as initialised without udev (as it does in containers), the
//   keyfile plugin only, no automatic connections, polkit off;
// - both are stopped by PID at clean-up.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURE_BIN } from '../bed/kube.ts';
import { onCleanup, type Netns } from '../bed/netns.ts';
import { waitFor } from '../bed/exec.ts';
import { DBusConnection, BUS_NAME, BUS_PATH } from '../../agent/src/datapath/dbus/connection.ts';
import { NM_NAME } from '../../agent/src/node/underlay/network-manager.ts';

export const NM_ROOT = join(FIXTURE_BIN, '..', 'network-manager', 'root');
const NM_BIN = join(NM_ROOT, 'usr', 'sbin', 'NetworkManager');

/** Why NM cannot run here, or undefined. */
export function nmMissing(): string | undefined {
  if (!existsSync(NM_BIN)) return `NetworkManager fixture missing (${NM_BIN}): run \`npm run setup\``;
  if (!existsSync('/usr/bin/dbus-daemon')) return 'dbus-daemon missing: run `npm run setup`';
  return undefined;
}

export interface NmBed {
  /** the private system bus's socket */
  readonly socket: string;
  readonly dir: string;
  /** NM's log (stderr with --debug) */
  log(): string;
  /** stops NM (the bus stays): "a bus without NM" */
  stopNm(): Promise<void>;
  /** Device property over D-Bus (the test's own view of NM) */
  deviceProp(ifname: string, prop: string): Promise<unknown>;
  setManaged(ifname: string, managed: boolean): Promise<void>;
  /** Activates an IPv4 DHCP profile on the device (keyfile written, connections reloaded, ActivateConnection) */
  connectDhcp(ifname: string, autoconnect: boolean): Promise<void>;
}

/** `argv` in the background (exec-chains keep its PID: ip netns exec, unshare without --fork and the script all
 * exec the next program), stopped by that PID at clean-up. */
export function startProcess(label: string, argv: string[]): { pid: number; exited: Promise<void> } {
  const p = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  const pid = p.pid!;
  onCleanup({
    label: `${label} pid ${pid}`,
    run: async () => { try { process.kill(pid, 'SIGTERM'); } catch { return; } await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]); try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } },
    runSync: () => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } },
  });
  return { pid, exited };
}

async function nmCall(socket: string, path: string, iface: string, member: string, signature?: string, body?: unknown[]): Promise<unknown[]> {
  const c = await DBusConnection.open(socket, 5000);
  try {
    const r = await c.call({ destination: NM_NAME, path, interface: iface, member, ...(signature ? { signature, body: body as never } : {}) }, 10_000);
    return [...r.body];
  } finally { c.close(); }
}

/** Starts the bus and NM in `ns`; resolves once NM owns its name and knows `waitForDevice`. */
export async function startNm(prefix: string, ns: Netns, waitForDevice: string): Promise<NmBed> {
  const dir = mkdtempSync(`/tmp/${prefix}nm-`);
  onCleanup({ label: `nm dir ${dir}`, run: async () => rmSync(dir, { recursive: true, force: true }), runSync: () => rmSync(dir, { recursive: true, force: true }) });
  const socket = join(dir, 'system_bus_socket');
  writeFileSync(join(dir, 'bus.conf'), `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="root"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
  <includedir>${join(NM_ROOT, 'usr', 'share', 'dbus-1', 'system.d')}</includedir>
</busconfig>
`);
  writeFileSync(join(dir, 'nm.conf'), `[main]\nauth-polkit=false\nplugins=keyfile\nno-auto-default=*\ndhcp=internal\n[keyfile]\npath=${join(dir, 'connections')}\n`);
  const logFile = join(dir, 'nm.log');
  const script = join(dir, 'nm.sh');
  writeFileSync(script, [
    '#!/bin/sh',
    'set -e',
    'mount -o remount,bind,ro /sys',
    'mount -t tmpfs none /run && mkdir -p /run/NetworkManager',
    'mount -t tmpfs none /var/lib && mkdir -p /var/lib/NetworkManager',
    `export DBUS_SYSTEM_BUS_ADDRESS=unix:path=${socket}`,
    `export LD_LIBRARY_PATH=${join(NM_ROOT, 'usr', 'lib', 'x86_64-linux-gnu')}`,
    `exec ${NM_BIN} --debug --config=${join(dir, 'nm.conf')} --log-level=INFO > ${logFile} 2>&1`,
    '',
  ].join('\n'), { mode: 0o755 });
  startProcess('dbus-daemon', ['dbus-daemon', `--config-file=${join(dir, 'bus.conf')}`, '--nofork', '--nopidfile']);
  await waitFor('the private system bus', () => existsSync(socket), 30_000);
  const nm = startProcess('NetworkManager', ['ip', 'netns', 'exec', ns.name, 'unshare', '-m', '--propagation', 'private', script]);
  const log = (): string => { try { return readFileSync(logFile, 'utf8'); } catch { return ''; } };
  await waitFor('NetworkManager on the bus', async () => {
    const c = await DBusConnection.open(socket, 5000).catch(() => undefined);
    if (!c) return false;
    try {
      const r = await c.call({ destination: BUS_NAME, path: BUS_PATH, interface: BUS_NAME, member: 'NameHasOwner', signature: 's', body: [NM_NAME] }, 5000);
      return r.body[0] === true;
    } finally { c.close(); }
  }, 60_000, 200).catch((e: unknown) => { throw new Error(`${String(e)}\n--- NetworkManager log\n${log().slice(-3000)}`); });
  const devicePath = async (ifname: string): Promise<string> =>
    (await nmCall(socket, '/org/freedesktop/NetworkManager', NM_NAME, 'GetDeviceByIpIface', 's', [ifname]))[0] as string;
  await waitFor(`NetworkManager knows ${waitForDevice}`, () => devicePath(waitForDevice).then(() => true, () => false), 30_000, 200);
  const PROPS = 'org.freedesktop.DBus.Properties';
  const DEVICE = 'org.freedesktop.NetworkManager.Device';
  return {
    socket, dir, log,
    async stopNm() {
      process.kill(nm.pid, 'SIGTERM');
      await nm.exited;
    },
    async deviceProp(ifname, prop) {
      const v = (await nmCall(socket, await devicePath(ifname), PROPS, 'Get', 'ss', [DEVICE, prop]))[0] as { value: unknown };
      return v.value;
    },
    async setManaged(ifname, managed) {
      await nmCall(socket, await devicePath(ifname), PROPS, 'Set', 'ssv', [DEVICE, 'Managed', { sig: 'b', value: managed }]);
    },
    async connectDhcp(ifname, autoconnect) {
      const uuid = '6d2a3c1e-0000-4000-8000-00000000d4c9';
      mkdirSync(join(dir, 'connections'), { recursive: true });
      writeFileSync(join(dir, 'connections', `dhcp-${ifname}.nmconnection`), [
        '[connection]', `id=dhcp-${ifname}`, `uuid=${uuid}`, 'type=ethernet', `interface-name=${ifname}`, `autoconnect=${autoconnect}`,
        '[ipv4]', 'method=auto', '[ipv6]', 'method=disabled', '',
      ].join('\n'), { mode: 0o600 });
      const settings = '/org/freedesktop/NetworkManager/Settings';
      await nmCall(socket, settings, 'org.freedesktop.NetworkManager.Settings', 'ReloadConnections');
      const conn = (await nmCall(socket, settings, 'org.freedesktop.NetworkManager.Settings', 'GetConnectionByUuid', 's', [uuid]))[0] as string;
      await nmCall(socket, '/org/freedesktop/NetworkManager', NM_NAME, 'ActivateConnection', 'ooo', [conn, await devicePath(ifname), '/']);
    },
  };
}
