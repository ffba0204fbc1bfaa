// NetworkManager and the NICs the underlay moves (spec §6.5). A NIC that NetworkManager manages is set unmanaged
// before its addresses move to the provider bridge; otherwise NM would take the addresses back or tear the bridge's
// routes down on its next DHCP renewal. Unlike upstream, which leaves the device unmanaged for good, the agent notes
// what it changed (a marker beside the move journal) and hands the NIC back to NM when the NIC is restored, unless
// NM would then drop the NIC's addresses (handBackRisk).
//
// NM is found on the system bus (DBUS_SYSTEM_BUS_ADDRESS, else the host's socket mounted into the pod, else the
// standard path). No bus, or no NM on it, is found out within 200 ms and every NM step is skipped: most nodes have
// no NM. Each use opens a short connection and closes it; moves are rare, and a long-lived connection would need
// its own reconnection when the host's D-Bus restarts.
//
// Addresses NM (or DHCP, or an operator) puts back on a moved NIC are not followed through NM's D-Bus signals: the
// reconciler sees them on the NIC itself (observed nicAddresses > 0) and moves them, whoever added them.

import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BUS_NAME, BUS_PATH, DBusConnection, DBusError, socketFromAddress } from '../../datapath/dbus/connection.ts';
import type { DBusValue, Variant } from '../../datapath/dbus/codec.ts';

export const NM_NAME = 'org.freedesktop.NetworkManager';
const NM_PATH = '/org/freedesktop/NetworkManager';
const NM_DEVICE = 'org.freedesktop.NetworkManager.Device';
const PROPS = 'org.freedesktop.DBus.Properties';
/** NM_DEVICE_TYPE_TEAM */
export const NM_DEVICE_TYPE_TEAM = 15;
/** detection of the bus and of NM on it (spec §6.5) */
export const PROBE_MS = 200;
const CALL_MS = 5000;

/** What the decision needs to know about NM and the device. */
export interface NmDeviceFacts {
  readonly version: string;
  readonly managed: boolean;
  readonly deviceType: number;
  /** a kernel VLAN link on the device that NM manages (NM takes it down when its parent becomes unmanaged) */
  readonly managedVlanChild: string | undefined;
  /** DNS servers NM holds for the device (only asked for on NM 1.18.x) */
  readonly dnsServers: number;
}

/** "1.42.4" >= "1.6.0" and the like; non-numeric parts count as 0. */
export function versionAtLeast(v: string, min: string): boolean {
  const a = v.split('.').map((x) => Number.parseInt(x, 10) || 0);
  const b = min.split('.').map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

/** Pure: why the device must stay managed (upstream's exceptions, spec §6.5), or undefined to set it unmanaged. */
export function keepManagedReason(f: NmDeviceFacts): string | undefined {
  if (!versionAtLeast(f.version, '1.6.0')) return `NetworkManager ${f.version} is older than 1.6.0`;
  if (f.managedVlanChild !== undefined) return `its VLAN interface ${f.managedVlanChild} is managed by NetworkManager, which would take it down`;
  if (/^1\.18(\.|$)/.test(f.version) && f.dnsServers > 0) return `NetworkManager 1.18 drops the device's DNS servers from resolv.conf when it becomes unmanaged`;
  if (f.deviceType === NM_DEVICE_TYPE_TEAM) return 'it is a team device';
  return undefined;
}

/** A connection profile NetworkManager has (Settings.ListConnections), as far as the hand-back needs it. */
export interface NmProfile {
  readonly id: string;
  readonly autoconnect: boolean;
  /** connection.type: "802-3-ethernet", "bond", ... */
  readonly type: string;
  /** connection.interface-name, when the profile is bound to a name */
  readonly interfaceName?: string;
  /** 802-3-ethernet.mac-address ("aa:bb:..", lower case), when bound to a MAC */
  readonly mac?: string;
}

/**
 * Pure: the profiles NM could activate on the NIC: bound to its name, else bound to its MAC, else (bound to neither)
 * any ethernet profile. The device's own AvailableConnections cannot say: NM lists none while the device is
 * unmanaged, which it is at hand-back time.
 */
export function profilesFor(nic: string, mac: string | undefined, all: readonly NmProfile[]): NmProfile[] {
  return all.filter((p) => (p.interfaceName !== undefined ? p.interfaceName === nic
    : p.mac !== undefined ? p.mac === mac?.toLowerCase() : p.type === '802-3-ethernet'));
}

/**
 * Pure: why handing the device back to NM could cut the node off, or undefined. Managed again, a device that no
 * profile fits gets its present addresses assumed (NM generates an external connection), and one with a profile that
 * connects by itself gets that profile (a DHCP profile leases again). But with profiles none of which connects by
 * itself, NM leaves the device disconnected and removes its addresses (NM 1.42 in
 * integration/node/underlay-nm.test.ts): then the NIC stays unmanaged, with the addresses the removal gave back.
 */
export function handBackRisk(profiles: readonly NmProfile[]): string | undefined {
  if (profiles.length === 0 || profiles.some((p) => p.autoconnect)) return undefined;
  return `NetworkManager has profiles for it (${profiles.map((p) => p.id).join(', ')}), none of which connects by itself: managed again, the NIC would lose its addresses`;
}

export type NmOutcome =
  | { readonly result: 'absent'; readonly why: string }
  | { readonly result: 'unknown-device' }
  | { readonly result: 'already' }
  | { readonly result: 'kept'; readonly reason: string }
  | { readonly result: 'changed' };

/** The port the underlay uses (a fake in tests). */
export interface NetworkManagerPort {
  /** Sets `nic` unmanaged unless an exception holds; `vlanChildren` are the kernel VLAN links on it. */
  unmanage(nic: string, vlanChildren: readonly string[]): Promise<NmOutcome>;
  /** Sets `nic` managed again, unless handBackRisk says that would cut the node off ('kept'). */
  manage(nic: string): Promise<NmOutcome>;
}

/** The system bus's socket: DBUS_SYSTEM_BUS_ADDRESS, else the host's mounted at /host/var/run/dbus, else the standard. */
export function systemBusSocket(env: NodeJS.ProcessEnv = process.env, exists: (p: string) => boolean = existsSync): string {
  const fromEnv = env.DBUS_SYSTEM_BUS_ADDRESS ? socketFromAddress(env.DBUS_SYSTEM_BUS_ADDRESS) : undefined;
  if (fromEnv) return fromEnv;
  for (const p of ['/host/var/run/dbus/system_bus_socket', '/run/dbus/system_bus_socket']) if (exists(p)) return p;
  return '/var/run/dbus/system_bus_socket';
}

const unwrap = (v: DBusValue | undefined): DBusValue | undefined => (v !== undefined && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Map) ? (v as Variant).value : v);

/** NetworkManager over D-Bus. */
export class DBusNetworkManager implements NetworkManagerPort {
  readonly #socket: string;
  readonly #probeMs: number;
  constructor(socket: string = systemBusSocket(), probeMs = PROBE_MS) { this.#socket = socket; this.#probeMs = probeMs; }

  /** A connection to the bus with NM on it, or why not (within the probe bound). */
  async #open(): Promise<DBusConnection | { why: string }> {
    const t0 = performance.now();
    let c: DBusConnection;
    try {
      c = await DBusConnection.open(this.#socket, this.#probeMs);
    } catch (e) {
      return { why: `no system bus at ${this.#socket}: ${e instanceof Error ? e.message : String(e)}` };
    }
    try {
      const left = Math.max(1, this.#probeMs - (performance.now() - t0));
      const r = await c.call({ destination: BUS_NAME, path: BUS_PATH, interface: BUS_NAME, member: 'NameHasOwner', signature: 's', body: [NM_NAME] }, left);
      if (r.body[0] !== true) { c.close(); return { why: 'NetworkManager is not running' }; }
      return c;
    } catch (e) {
      c.close();
      return { why: `system bus: ${e instanceof Error ? e.message : String(e)}` };
    }
  }

  async #get(c: DBusConnection, path: string, iface: string, prop: string): Promise<DBusValue | undefined> {
    const r = await c.call({ destination: NM_NAME, path, interface: PROPS, member: 'Get', signature: 'ss', body: [iface, prop] }, CALL_MS);
    return unwrap(r.body[0]);
  }

  async #device(c: DBusConnection, nic: string): Promise<string | undefined> {
    try {
      const r = await c.call({ destination: NM_NAME, path: NM_PATH, interface: NM_NAME, member: 'GetDeviceByIpIface', signature: 's', body: [nic] }, CALL_MS);
      return r.body[0] as string;
    } catch (e) {
      if (e instanceof DBusError && /UnknownDevice/.test(e.dbusName)) return undefined;
      throw e;
    }
  }

  async #setManaged(c: DBusConnection, dev: string, managed: boolean): Promise<void> {
    await c.call({ destination: NM_NAME, path: dev, interface: PROPS, member: 'Set', signature: 'ssv', body: [NM_DEVICE, 'Managed', { sig: 'b', value: managed }] }, CALL_MS);
  }

  async unmanage(nic: string, vlanChildren: readonly string[]): Promise<NmOutcome> {
    const c = await this.#open();
    if (!(c instanceof DBusConnection)) return { result: 'absent', why: c.why };
    try {
      const dev = await this.#device(c, nic);
      if (!dev) return { result: 'unknown-device' };
      const version = String(await this.#get(c, NM_PATH, NM_NAME, 'Version') ?? '');
      const managed = (await this.#get(c, dev, NM_DEVICE, 'Managed')) === true;
      if (!managed) return { result: 'already' };
      let managedVlanChild: string | undefined;
      for (const v of vlanChildren) {
        const vd = await this.#device(c, v);
        if (vd && (await this.#get(c, vd, NM_DEVICE, 'Managed')) === true) { managedVlanChild = v; break; }
      }
      const facts: NmDeviceFacts = {
        version, managed, managedVlanChild,
        deviceType: Number(await this.#get(c, dev, NM_DEVICE, 'DeviceType') ?? 0),
        dnsServers: /^1\.18(\.|$)/.test(version) ? await this.#dnsServers(c, dev) : 0,
      };
      const reason = keepManagedReason(facts);
      if (reason) return { result: 'kept', reason };
      await this.#setManaged(c, dev, false);
      return { result: 'changed' };
    } finally {
      c.close();
    }
  }

  async manage(nic: string): Promise<NmOutcome> {
    const c = await this.#open();
    if (!(c instanceof DBusConnection)) return { result: 'absent', why: c.why };
    try {
      const dev = await this.#device(c, nic);
      if (!dev) return { result: 'unknown-device' };
      if ((await this.#get(c, dev, NM_DEVICE, 'Managed')) === true) return { result: 'already' };
      // Device.HwAddress exists from NM 1.24 on; without it a profile bound to a MAC is not matched
      const mac = await this.#get(c, dev, NM_DEVICE, 'HwAddress').catch(() => undefined);
      const risk = handBackRisk(profilesFor(nic, typeof mac === 'string' ? mac : undefined, await this.#profiles(c)));
      if (risk) return { result: 'kept', reason: risk };
      await this.#setManaged(c, dev, true);
      return { result: 'changed' };
    } finally {
      c.close();
    }
  }

  async #profiles(c: DBusConnection): Promise<NmProfile[]> {
    const settingsPath = `${NM_PATH}/Settings`;
    const list = await c.call({ destination: NM_NAME, path: settingsPath, interface: `${NM_NAME}.Settings`, member: 'ListConnections' }, CALL_MS);
    const out: NmProfile[] = [];
    for (const p of Array.isArray(list.body[0]) ? list.body[0] : []) {
      const r = await c.call({ destination: NM_NAME, path: String(p), interface: `${NM_NAME}.Settings.Connection`, member: 'GetSettings' }, CALL_MS);
      const settings = r.body[0] instanceof Map ? r.body[0] : new Map<DBusValue, DBusValue>();
      const get = (section: string, k: string): DBusValue | undefined => {
        const s = settings.get(section);
        return s instanceof Map ? unwrap(s.get(k)) : undefined;
      };
      const iface = get('connection', 'interface-name');
      const mac = get('802-3-ethernet', 'mac-address');
      out.push({
        id: String(get('connection', 'id') ?? p),
        // autoconnect defaults to true when the profile does not say
        autoconnect: get('connection', 'autoconnect') !== false,
        type: String(get('connection', 'type') ?? ''),
        ...(typeof iface === 'string' && iface !== '' ? { interfaceName: iface } : {}),
        ...(Array.isArray(mac) && mac.length === 6 ? { mac: mac.map((b) => Number(b).toString(16).padStart(2, '0')).join(':') } : {}),
      });
    }
    return out;
  }

  async #dnsServers(c: DBusConnection, dev: string): Promise<number> {
    let n = 0;
    for (const [prop, iface] of [['Ip4Config', 'IP4Config'], ['Ip6Config', 'IP6Config']] as const) {
      const p = await this.#get(c, dev, NM_DEVICE, prop);
      if (typeof p !== 'string' || p === '/') continue;
      const ns = await this.#get(c, p, `org.freedesktop.NetworkManager.${iface}`, 'Nameservers').catch(() => undefined);
      if (Array.isArray(ns)) n += ns.length;
    }
    return n;
  }
}

/**
 * Which NICs the agent set unmanaged for a provider network (a network's NIC can change): a file beside the move
 * journal, one name a line (on /run, like NM's own runtime state, so a reboot forgets both). A name is written before
 * the change, so a crash between the two leaves a mark for a NIC that is still managed; handing it back then finds
 * it `already` managed.
 */
export class NmMarks {
  readonly #dir: string;
  constructor(dir: string) { this.#dir = dir; }
  #file(pn: string): string { return join(this.#dir, `${encodeURIComponent(pn)}.nm-unmanaged`); }
  async list(pn: string): Promise<string[]> {
    return readFile(this.#file(pn), 'utf8').then((s) => s.split('\n').map((x) => x.trim()).filter(Boolean), () => []);
  }
  async add(pn: string, nic: string): Promise<void> {
    const have = await this.list(pn);
    if (have.includes(nic)) return;
    // the journal's directory is made on its first write, which comes after this one
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    await this.#write(pn, [...have, nic]);
  }
  async remove(pn: string, nic: string): Promise<void> {
    const rest = (await this.list(pn)).filter((n) => n !== nic);
    if (rest.length) await this.#write(pn, rest);
    else await rm(this.#file(pn), { force: true });
  }
  async #write(pn: string, nics: readonly string[]): Promise<void> {
    const tmp = `${this.#file(pn)}.tmp`;
    await writeFile(tmp, nics.join('\n') + '\n');
    await rename(tmp, this.#file(pn));
  }
}
