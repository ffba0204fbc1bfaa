// The pod-side packet work of an ADD (`PodNet`): ARP probe and announcements, IPv6 neighbour advertisement and DAD
// wait, ICMP echo, ethtool and sysctl inside a namespace. Implementations: podside.ts (real kernel), and
// FakeNetlink (datapath/netlink/fake.ts) for unit tests. Namespaces by path as in the `Netlink` port (null = own).
import type { Netns } from '../netlink/port.ts';

/** Result of an IPv4 duplicate-address probe (RFC 5227). */
export type ProbeResult = { conflict: false } | { conflict: true; mac: string };

export interface ProbeTiming {
  /** Random wait before the first probe, upper bound (RFC 5227 PROBE_WAIT 1000 ms). */
  probeWaitMs: number;
  probeNum: number;
  /** Gap between probes: uniform in [min, max] (RFC: 1000..2000 ms). */
  probeMinMs: number;
  probeMaxMs: number;
  /** Listen after the last probe (ANNOUNCE_WAIT 2000 ms). */
  announceWaitMs: number;
}

export interface PodNet {
  /** RFC 5227 probe for `ip` on `dev`: ARP requests from 0.0.0.0; conflict = a reply/probe for `ip` from another MAC. */
  probeIPv4(netns: Netns, dev: string, ip: string, timing?: Partial<ProbeTiming>): Promise<ProbeResult>;
  /** Gratuitous ARP announcements (`count`, `intervalMs` apart; RFC 5227: 2, 2000 ms). */
  announceIPv4(netns: Netns, dev: string, ip: string, opts?: { count?: number; intervalMs?: number }): Promise<void>;
  /** Unsolicited neighbour advertisement (override flag, target LLA = link MAC) to ff02::1. */
  announceIPv6(netns: Netns, dev: string, ip: string): Promise<void>;
  /** Waits (on address events) until none of the link's IPv6 addresses is tentative; reports DAD failures.
   *  Bounded by timeoutMs. */
  waitIPv6Dad(netns: Netns, dev: string, opts?: { timeoutMs?: number }): Promise<{ ok: boolean; tentative: string[]; dadFailed: string[] }>;
  /** ARP request for `ip` from `src` on `dev` (arping), `tries` times, `timeoutMs` each; resolves with the MAC that
   *  answered, or null. The underlay gateway check: a physical gateway that drops ICMP still answers ARP. */
  arping(netns: Netns, dev: string, ip: string, opts: { src: string; timeoutMs?: number; tries?: number }): Promise<{ mac: string; rttMs: number; tries: number } | null>;
  /** ICMP/ICMPv6 echo from inside `netns`; resolves with the round-trip time or null after `timeoutMs` per try. */
  ping(netns: Netns, ip: string, opts?: { timeoutMs?: number; tries?: number; intervalMs?: number }): Promise<{ rttMs: number; tries: number } | null>;
  /** TX checksum offload on/off (ETHTOOL_STXCSUM); needed off on pod veths with the userspace OVS datapath. */
  setTxChecksum(netns: Netns, dev: string, on: boolean): Promise<void>;
  getTxChecksum(netns: Netns, dev: string): Promise<boolean>;
  /** Writes /proc/sys/<key with dots or slashes> inside `netns`. */
  setSysctl(netns: Netns, key: string, value: string): Promise<void>;
  getSysctl(netns: Netns, key: string): Promise<string>;
}
