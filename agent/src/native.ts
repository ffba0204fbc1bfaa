// Typed access to the koa_native addon (native/src/addon.cc, built by `npm run build:native`).
//
// Thread and namespace rules (see README "Native addon and netlink"):
//  - Every call leaves the calling thread in the namespace it started in; the addon aborts the process if it cannot
//    switch back (a thread stuck in a pod namespace would misplace every later socket). The synchronous calls are
//    cheap while the kernel's RTNL lock is free (socket, bind, setsockopt, non-blocking recv, sendto, and sysctl /
//    ethtool); whatever may wait on RTNL has a pool twin (`exchange`, `*Async`) that returns a promise, and
//    datapath/kernel-calls.ts picks one of the two per call. `Poller` turns readability into an event.
//  - Threads inherit the namespace of the thread that creates them. Call `warmUp()` once at start-up, before the
//    first call that names a namespace, and create every worker thread / pino transport before that too.
//  - The returned fds are plain integers owned by the caller: close them with `close()`.
import { createRequire } from 'node:module';
import { promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeAddon {
  socketInNetns(netns: string | null, domain: number, type: number, protocol: number): number;
  openNetns(path: string): number;
  close(fd: number): void;
  sendto(fd: number, data: Uint8Array, sockaddr: Uint8Array | null): number;
  /** Bytes received (real datagram length), or -1 when nothing arrived within timeoutMs (0..10000). */
  recv(fd: number, buf: Uint8Array, timeoutMs: number, sockaddrOut: Uint8Array | null): number;
  bind(fd: number, sockaddr: Uint8Array): void;
  setsockopt(fd: number, level: number, name: number, value: number | Uint8Array): void;
  socketNetnsInode(fd: number): number;
  sysctlWrite(netns: string | null, file: string, value: string): void;
  sysctlRead(netns: string | null, file: string): string;
  ethtoolValue(netns: string | null, ifname: string, cmd: number, data: number): number;
  /** One netlink request and its answer datagrams, on the pool. mode 0 = ack, 1 = get, 2 = dump. Resolves with the
   *  datagrams read until the answer for `seq` was complete or timeoutMs passed (then incomplete). */
  exchange(fd: number, request: Uint8Array, seq: number, mode: 0 | 1 | 2, timeoutMs: number): Promise<Buffer[]>;
  sysctlWriteAsync(netns: string | null, file: string, value: string): Promise<void>;
  sysctlReadAsync(netns: string | null, file: string): Promise<string>;
  ethtoolValueAsync(netns: string | null, ifname: string, cmd: number, data: number): Promise<number>;
  /** Readability of `fd` as an event on the loop (uv_poll, level-triggered): drain with recv(fd, buf, 0, ...). */
  Poller: new (fd: number, onReadable: (error: string | null) => void) => NativePoller;
}

export interface NativePoller {
  start(): void;
  stop(): void;
  /** Releases the watcher; call before closing the fd. */
  close(): void;
}

/** Error thrown by the addon: `code` is the errno name (ENOENT, EEXIST, ...). */
export interface NativeError extends Error { code: string; errno: number; syscall: string }

export function isNativeError(e: unknown): e is NativeError {
  return e instanceof Error && typeof (e as Partial<NativeError>).errno === 'number' && typeof (e as Partial<NativeError>).code === 'string';
}

const here = dirname(fileURLToPath(import.meta.url));
/** build/Release/koa_native.node from the repository root (agent/src -> ../..), or next to a bundle (dist/). */
const candidates = [join(here, '..', '..', 'build', 'Release', 'koa_native.node'), join(here, '..', 'build', 'Release', 'koa_native.node')];

let loaded: NativeAddon | undefined;

/** Loads the addon once; throws a clear error when it was not built. */
export function native(): NativeAddon {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  let lastErr: unknown;
  for (const c of candidates) {
    try {
      loaded = require(c) as NativeAddon;
      return loaded;
    } catch (e) {
      lastErr = e;
    }
  }
  throw new Error(`koa_native addon not found (run \`npm run build:native\`): ${String(lastErr)}`);
}

let warmed = false;

/**
 * Creates the libuv threadpool threads now, while the main thread is still in the agent's own namespace.
 * The pool is created lazily on the first async fs/dns/crypto/zlib call; if that first call happened while a
 * namespace switch were in progress, all pool threads would live in the pod namespace for good. Our switches never
 * yield, but call this once at start-up anyway (before the first namespace-scoped call) so the pool is certain to
 * exist: one stat per pool thread (UV_THREADPOOL_SIZE, default 4) in parallel.
 */
export async function warmUp(): Promise<void> {
  if (warmed) return;
  const size = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  await Promise.all(Array.from({ length: size }, () => fsp.stat('/')));
  native();
  warmed = true;
}

/** Socket constants the agent uses (Linux x86_64/arm64 values). */
export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_NETLINK = 16;
export const AF_PACKET = 17;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const NETLINK_ROUTE = 0;
export const SOL_SOCKET = 1;
export const SO_RCVBUF = 8;
export const SO_SNDBUF = 7;
export const SOL_NETLINK = 270;
export const NETLINK_ADD_MEMBERSHIP = 1;
export const SO_RCVBUFFORCE = 33;
export const NETLINK_CAP_ACK = 10;
export const NETLINK_EXT_ACK = 11;
export const NETLINK_GET_STRICT_CHK = 12;
export const IPPROTO_ICMP = 1;
export const IPPROTO_ICMPV6 = 58;
export const SOL_IPV6 = 41;
export const IPV6_UNICAST_HOPS = 16;
export const IPV6_MULTICAST_HOPS = 18;
export const IPV6_MULTICAST_IF = 17;
export const SOL_PACKET = 263;
export const ETH_P_ARP = 0x0806;
export const ETH_P_IP = 0x0800;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_P_ALL = 0x0003;
export const ETHTOOL_GTXCSUM = 0x16;
export const ETHTOOL_STXCSUM = 0x17;
