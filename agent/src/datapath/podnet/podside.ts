// `PodNet` on the real kernel: the packet work of an ADD done from inside the pod namespace with native sockets
// (AF_PACKET for ARP and neighbour advertisements, raw ICMP/ICMPv6 for echo), ethtool and sysctl through the addon.
//
// Nothing here blocks the event loop: a receive waits for the socket's readable event (the addon's Poller) and then
// drains it without blocking; ethtool (an ioctl under the RTNL lock) and sysctl run on the libuv pool; the IPv6 DAD
// wait follows address events (../netlink/wait.ts).
import { close as fsClose } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomInt } from 'node:crypto';
import { native, AF_INET, AF_INET6, AF_PACKET, ETHTOOL_GTXCSUM, ETHTOOL_STXCSUM, IPPROTO_ICMP, IPPROTO_ICMPV6,
  SOCK_RAW, type NativePoller } from '../../native.ts';
import { NetlinkError, invalid } from '../netlink/errors.ts';
import { formatIp, parseIp, parseMac } from '../netlink/ip.ts';
import { checkIfName } from '../netlink/link.ts';
import { waitIPv6Dad } from '../netlink/wait.ts';
import {
  ETH_P_ARP, PACKET_OUTGOING, arpAnnounceFrame, arpConflict, arpProbeFrame, arpReplyFrom, arpRequestFrame, icmpEcho, parseArpFrame, parseEchoReply,
  sllPktType, sockaddrIn, sockaddrIn6, sockaddrIp, sockaddrLl, unsolicitedNaFrame, BROADCAST_MAC, ALL_NODES_MAC, ETH_P_IPV6,
} from './packets.ts';
import type { LinkInfo, Netlink, Netns } from '../netlink/port.ts';
import type { PodNet, ProbeResult, ProbeTiming } from './port.ts';
import { wrapNative } from '../netlink/transport.ts';
import { kernelCalls } from '../kernel-calls.ts';
/** RFC 5227 §1.1 constants. */
export const RFC5227: ProbeTiming = { probeWaitMs: 1000, probeNum: 3, probeMinMs: 1000, probeMaxMs: 2000, announceWaitMs: 2000 };

/**
 * Closing an AF_PACKET socket waits for an RCU grace period in the kernel (packet_release -> synchronize_net), about
 * 20 ms here. That must not stall the event loop, so packet sockets are closed on the libuv pool (close(2) does not
 * depend on the thread's namespace). `settled()` waits for the closes still in flight (tests, shutdown).
 */
const closing = new Set<Promise<void>>();
function closeLater(fd: number): void {
  const p = new Promise<void>((resolve) => fsClose(fd, () => resolve())).finally(() => closing.delete(p));
  closing.add(p);
}
/** Packet-socket closes handed to the pool and not finished yet. */
export function closesInFlight(): number {
  return closing.size;
}
export async function settled(): Promise<void> {
  await Promise.all([...closing]);
}

/** One receive buffer: every read is synchronous (non-blocking) and matchers copy what they keep. */
const buf = Buffer.allocUnsafe(65536);
const addrBuf = Buffer.alloc(28);

/**
 * A socket's datagrams as events: `until(ms, match)` waits for the socket's readable event, drains what is queued
 * without blocking, and resolves with the first `match` that is not null, or null when `ms` pass. One watcher per
 * socket for its whole life; `close()` releases it (the fd stays the caller's).
 */
export class Receiver {
  readonly #fd: number;
  readonly #poller: NativePoller;
  #onReadable: ((error: string | null) => void) | undefined;

  constructor(fd: number) {
    this.#fd = fd;
    this.#poller = new (native().Poller)(fd, (e) => this.#onReadable?.(e));
  }

  until<T>(ms: number, match: (pkt: Buffer, from: Buffer) => T | null): Promise<T | null> {
    const n = native();
    return new Promise<T | null>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (v: T | null, err?: unknown): void => {
        if (!this.#onReadable) return;
        this.#onReadable = undefined;
        this.#poller.stop();
        clearTimeout(timer);
        if (err !== undefined) reject(err);
        else resolve(v);
      };
      const drain = (): void => {
        for (;;) {
          let got: number;
          try {
            got = n.recv(this.#fd, buf, 0, addrBuf);
          } catch (e) {
            return finish(null, e);
          }
          if (got < 0) return;
          const r = match(buf.subarray(0, Math.min(got, buf.length)), addrBuf);
          if (r !== null) return finish(r);
        }
      };
      this.#onReadable = (e) => (e ? finish(null, new Error(`poll: ${e}`)) : drain());
      timer = setTimeout(() => finish(null), Math.max(0, ms));
      this.#poller.start();
      drain(); // what was queued before we started watching
    });
  }

  close(): void {
    this.#onReadable = undefined;
    this.#poller.close();
  }
}

export class PodSide implements PodNet {
  private readonly nl: Netlink;
  constructor(nl: Netlink) {
    this.nl = nl;
  }

  private async link(netns: Netns, dev: string, op: string): Promise<LinkInfo & { mac: string }> {
    checkIfName(dev, op);
    const l = await this.nl.getLink(netns, dev);
    if (!l) throw new NetlinkError('ENODEV', op, `no link ${dev} in ${netns ?? 'own netns'}`);
    if (!l.mac) throw new NetlinkError('EINVAL', op, `link ${dev} has no Ethernet address`);
    return l as LinkInfo & { mac: string };
  }

  /**
   * An AF_PACKET socket inside `netns`. It is opened with protocol 0, so no receive hook exists yet: opening it with the
   * ethertype and then binding to the link would unregister a hook, and that waits for an RCU grace period (~15 ms).
   * With `receive`, it is then bound to `ethertype` on the link (the one hook it ever has); send-only sockets name the
   * link and protocol in each sendto's sockaddr_ll.
   */
  private packetSocket(netns: Netns, ifindex: number, ethertype: number, receive: boolean, op: string): number {
    const n = native();
    let fd: number;
    try {
      fd = n.socketInNetns(netns, AF_PACKET, SOCK_RAW, 0);
    } catch (e) {
      throw wrapNative(e, op);
    }
    if (!receive) return fd;
    try {
      n.bind(fd, sockaddrLl(ethertype, ifindex));
    } catch (e) {
      closeLater(fd);
      throw wrapNative(e, op);
    }
    return fd;
  }

  async probeIPv4(netns: Netns, dev: string, ip: string, timing: Partial<ProbeTiming> = {}): Promise<ProbeResult> {
    const op = `ARP probe ${ip} on ${dev}`;
    const t = { ...RFC5227, ...timing };
    const addr = parseIp(ip);
    if (addr.family !== 4) throw invalid(op, `${ip} is not IPv4`);
    const l = await this.link(netns, dev, op);
    const mac = parseMac(l.mac);
    const fd = this.packetSocket(netns, l.index, ETH_P_ARP, true, op);
    const n = native();
    const rx = new Receiver(fd);
    const check = (pkt: Buffer, from: Buffer): string | null => {
      if (sllPktType(from) === PACKET_OUTGOING) return null;
      const arp = parseArpFrame(pkt);
      return arp ? arpConflict(arp, addr.bytes, mac) : null;
    };
    try {
      const to = sockaddrLl(ETH_P_ARP, l.index, BROADCAST_MAC);
      const frame = arpProbeFrame(mac, addr.bytes);
      const first = t.probeWaitMs > 0 ? await rx.until(randomInt(0, t.probeWaitMs + 1), check) : null;
      if (first) return { conflict: true, mac: first };
      for (let i = 0; i < t.probeNum; i++) {
        n.sendto(fd, frame, to);
        const last = i === t.probeNum - 1;
        const wait = last ? t.announceWaitMs : t.probeMinMs + randomInt(0, Math.max(0, t.probeMaxMs - t.probeMinMs) + 1);
        const hit = await rx.until(wait, check);
        if (hit) return { conflict: true, mac: hit };
      }
      return { conflict: false };
    } catch (e) {
      throw wrapNative(e, op);
    } finally {
      rx.close();
      closeLater(fd);
    }
  }

  async announceIPv4(netns: Netns, dev: string, ip: string, opts: { count?: number; intervalMs?: number } = {}): Promise<void> {
    const op = `gratuitous ARP ${ip} on ${dev}`;
    const addr = parseIp(ip);
    if (addr.family !== 4) throw invalid(op, `${ip} is not IPv4`);
    const l = await this.link(netns, dev, op);
    const fd = this.packetSocket(netns, l.index, ETH_P_ARP, false, op);
    const n = native();
    try {
      const frame = arpAnnounceFrame(parseMac(l.mac), addr.bytes);
      const to = sockaddrLl(ETH_P_ARP, l.index, BROADCAST_MAC);
      const count = opts.count ?? 2;
      for (let i = 0; i < count; i++) {
        if (i > 0) await sleep(opts.intervalMs ?? 2000);
        n.sendto(fd, frame, to);
      }
    } catch (e) {
      throw wrapNative(e, op);
    } finally {
      closeLater(fd);
    }
  }

  async announceIPv6(netns: Netns, dev: string, ip: string): Promise<void> {
    const op = `neighbour advertisement ${ip} on ${dev}`;
    const addr = parseIp(ip);
    if (addr.family !== 6) throw invalid(op, `${ip} is not IPv6`);
    const l = await this.link(netns, dev, op);
    const fd = this.packetSocket(netns, l.index, ETH_P_IPV6, false, op);
    const n = native();
    try {
      n.sendto(fd, unsolicitedNaFrame(parseMac(l.mac), addr.bytes), sockaddrLl(ETH_P_IPV6, l.index, ALL_NODES_MAC));
    } catch (e) {
      throw wrapNative(e, op);
    } finally {
      closeLater(fd);
    }
  }

  async waitIPv6Dad(netns: Netns, dev: string, opts: { timeoutMs?: number } = {}): Promise<{ ok: boolean; tentative: string[]; dadFailed: string[] }> {
    return waitIPv6Dad(this.nl, netns, dev, opts);
  }

  async arping(netns: Netns, dev: string, ip: string, opts: { src: string; timeoutMs?: number; tries?: number }): Promise<{ mac: string; rttMs: number; tries: number } | null> {
    const op = `arping ${ip} from ${opts.src} on ${dev}`;
    const target = parseIp(ip);
    const src = parseIp(opts.src);
    if (target.family !== 4 || src.family !== 4) throw invalid(op, 'arping is IPv4 only');
    const l = await this.link(netns, dev, op);
    const mac = parseMac(l.mac);
    const fd = this.packetSocket(netns, l.index, ETH_P_ARP, true, op);
    const rx = new Receiver(fd);
    const n = native();
    try {
      const frame = arpRequestFrame(mac, src.bytes, target.bytes);
      const to = sockaddrLl(ETH_P_ARP, l.index, BROADCAST_MAC);
      const tries = opts.tries ?? 1;
      for (let i = 0; i < tries; i++) {
        const t0 = performance.now();
        n.sendto(fd, frame, to);
        const got = await rx.until(opts.timeoutMs ?? 1000, (pkt, from) => {
          if (sllPktType(from) === PACKET_OUTGOING) return null;
          const arp = parseArpFrame(pkt);
          return arp ? arpReplyFrom(arp, target.bytes, mac, src.bytes) : null;
        });
        if (got !== null) return { mac: got, rttMs: performance.now() - t0, tries: i + 1 };
      }
      return null;
    } catch (e) {
      throw wrapNative(e, op);
    } finally {
      rx.close();
      closeLater(fd);
    }
  }

  async ping(netns: Netns, ip: string, opts: { timeoutMs?: number; tries?: number; intervalMs?: number; dev?: string } = {}): Promise<{ rttMs: number; tries: number } | null> {
    const op = `ping ${ip}`;
    const addr = parseIp(ip);
    const v6 = addr.family === 6;
    const scope = v6 && opts.dev !== undefined ? (await this.link(netns, opts.dev, op)).index : 0;
    const n = native();
    let fd: number;
    try {
      fd = n.socketInNetns(netns, v6 ? AF_INET6 : AF_INET, SOCK_RAW, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP);
    } catch (e) {
      throw wrapNative(e, op);
    }
    const rx = new Receiver(fd);
    const id = randomInt(1, 0xffff);
    const to = v6 ? sockaddrIn6(addr.bytes, scope) : sockaddrIn(addr.bytes);
    const want = formatIp(addr.bytes);
    try {
      const tries = opts.tries ?? 3;
      for (let i = 0; i < tries; i++) {
        const seq = i + 1;
        const t0 = performance.now();
        try {
          n.sendto(fd, icmpEcho(v6, id, seq, Buffer.from('koa-ping')), to);
        } catch (e) {
          // ENETUNREACH and friends: this try failed; the next may succeed once routes/neighbours settle.
          if (i === tries - 1) return null;
          await sleep(opts.intervalMs ?? 200);
          continue;
        }
        const got = await rx.until(opts.timeoutMs ?? 1000, (pkt, from) => {
          const r = parseEchoReply(v6, pkt);
          if (!r || r.id !== id || r.seq !== seq) return null;
          const src = v6 ? sockaddrIp(from) : r.src;
          if (src !== want) return null;
          return performance.now() - t0;
        });
        if (got !== null) return { rttMs: got, tries: i + 1 };
        if (i < tries - 1 && opts.intervalMs) await sleep(opts.intervalMs);
      }
      return null;
    } finally {
      rx.close();
      n.close(fd);
    }
  }

  async setTxChecksum(netns: Netns, dev: string, on: boolean): Promise<void> {
    checkIfName(dev, 'ethtool');
    try {
      const n = native();
      const v = on ? 1 : 0;
      await kernelCalls.run(() => n.ethtoolValue(netns, dev, ETHTOOL_STXCSUM, v), () => n.ethtoolValueAsync(netns, dev, ETHTOOL_STXCSUM, v));
    } catch (e) {
      throw wrapNative(e, `ethtool -K ${dev} tx ${on ? 'on' : 'off'}`);
    }
  }

  async getTxChecksum(netns: Netns, dev: string): Promise<boolean> {
    checkIfName(dev, 'ethtool');
    try {
      const n = native();
      return (await kernelCalls.run(() => n.ethtoolValue(netns, dev, ETHTOOL_GTXCSUM, 0), () => n.ethtoolValueAsync(netns, dev, ETHTOOL_GTXCSUM, 0))) !== 0;
    } catch (e) {
      throw wrapNative(e, `ethtool -k ${dev}`);
    }
  }

  async setSysctl(netns: Netns, key: string, value: string): Promise<void> {
    try {
      const n = native();
      const file = sysctlFile(key);
      await kernelCalls.run(() => n.sysctlWrite(netns, file, value), () => n.sysctlWriteAsync(netns, file, value));
    } catch (e) {
      throw wrapNative(e, `sysctl -w ${key}=${value}`);
    }
  }

  async getSysctl(netns: Netns, key: string): Promise<string> {
    try {
      const n = native();
      const file = sysctlFile(key);
      return await kernelCalls.run(() => n.sysctlRead(netns, file), () => n.sysctlReadAsync(netns, file));
    } catch (e) {
      throw wrapNative(e, `sysctl ${key}`);
    }
  }
}

/** "net.ipv4.ip_forward" or "net/ipv4/conf/eth0.100/rp_filter" -> /proc/sys/... (slashes win: names may hold dots). */
export function sysctlFile(key: string): string {
  const rel = key.includes('/') ? key.replace(/^\/?(proc\/sys\/)?/, '') : key.replace(/\./g, '/');
  if (rel === '' || rel.split('/').some((p) => p === '' || p === '.' || p === '..')) throw invalid('sysctl', `invalid sysctl key "${key}"`);
  return `/proc/sys/${rel}`;
}
