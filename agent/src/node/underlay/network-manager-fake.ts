// An in-memory NetworkManager behind NetworkManagerPort (tests only; the contract test runs it beside the real one).
// Devices are added by name with their managed flag and type; `absent` plays a node without NM.
import { handBackRisk, keepManagedReason, profilesFor, type NetworkManagerPort, type NmOutcome, type NmProfile } from './network-manager.ts';

export interface FakeNmDevice { managed: boolean; deviceType: number; dnsServers?: number; profiles?: NmProfile[] }

export class FakeNetworkManager implements NetworkManagerPort {
  readonly devices = new Map<string, FakeNmDevice>();
  /** every call, in order: "unmanage eth1", "manage eth1" */
  readonly calls: string[] = [];
  version = '1.42.4';
  absent = false;
  /** the next call throws this (a bus that answers but fails) */
  failNext: Error | undefined;
  /** runs at each unmanage call, before anything changes (tests check what the node looked like then) */
  onUnmanage: ((nic: string) => void | Promise<void>) | undefined;

  async unmanage(nic: string, vlanChildren: readonly string[]): Promise<NmOutcome> {
    this.calls.push(`unmanage ${nic}`);
    await this.onUnmanage?.(nic);
    const pre = this.#pre();
    if (pre) return pre;
    const d = this.devices.get(nic);
    if (!d) return { result: 'unknown-device' };
    if (!d.managed) return { result: 'already' };
    const child = vlanChildren.find((v) => this.devices.get(v)?.managed);
    const reason = keepManagedReason({ version: this.version, managed: true, deviceType: d.deviceType, managedVlanChild: child, dnsServers: d.dnsServers ?? 0 });
    if (reason) return { result: 'kept', reason };
    d.managed = false;
    return { result: 'changed' };
  }

  async manage(nic: string): Promise<NmOutcome> {
    this.calls.push(`manage ${nic}`);
    const pre = this.#pre();
    if (pre) return pre;
    const d = this.devices.get(nic);
    if (!d) return { result: 'unknown-device' };
    if (d.managed) return { result: 'already' };
    const risk = handBackRisk(profilesFor(nic, undefined, d.profiles ?? []));
    if (risk) return { result: 'kept', reason: risk };
    d.managed = true;
    return { result: 'changed' };
  }

  #pre(): NmOutcome | undefined {
    const e = this.failNext;
    if (e) { this.failNext = undefined; throw e; }
    return this.absent ? { result: 'absent', why: 'NetworkManager is not running' } : undefined;
  }
}
