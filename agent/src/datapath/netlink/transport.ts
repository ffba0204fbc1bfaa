// NETLINK_ROUTE transport over the native addon: one socket opened inside a namespace, sequence numbers, ACK
// checking, single gets and multi-part dumps (restarted on NLM_F_DUMP_INTR). rtnetlink runs a request inside
// sendto() under the RTNL lock and queues the answer before sendto returns, so an exchange is inline on the event
// loop (send, then non-blocking receives) while RTNL is free, and on the libuv pool (`exchange` in the addon) while
// it is contended: `kernelCalls` decides (kernel-calls.ts says why). A link delete always goes to the pool: it waits
// for an RCU grace period inside sendto (15-30 ms) whoever else holds RTNL. Requests on one socket are serialised (one
// answer stream per socket).
import { isNativeError, native, AF_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK, NETLINK_ROUTE,
  SOCK_RAW, SOL_NETLINK } from '../../native.ts';
import { parseError, parseMessages, type NlMessage } from './codec.ts';
import { NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_DUMP_INTR, RTM_DELLINK } from './constants.ts';
import { kernelError, NetlinkError } from './errors.ts';
import { kernelCalls } from '../kernel-calls.ts';
import type { Netns } from './port.ts';

let nextSeq = (Date.now() & 0xffff) << 8;
const seq = (): number => (nextSeq = (nextSeq + 1) >>> 0 || 1);

export const DEFAULT_TIMEOUT_MS = 2000;
export const DUMP_RETRIES = 5;

/** What the wire waits for: an ACK (NLMSG_ERROR), one answer, or a dump's NLMSG_DONE. */
export const MODE_ACK = 0;
export const MODE_GET = 1;
export const MODE_DUMP = 2;
export type ExchangeMode = typeof MODE_ACK | typeof MODE_GET | typeof MODE_DUMP;

/** Whether `datagram` ends the answer to `seq`: an ACK or error (ack), any message (get), NLMSG_DONE, an overrun or
 *  a non-zero error (dump). The addon's pool job applies the same rule. A malformed datagram ends it too (the
 *  parser then reports it). */
export function answerComplete(datagram: Buffer, s: number, mode: ExchangeMode): boolean {
  let off = 0;
  while (off + 16 <= datagram.length) {
    const len = datagram.readUInt32LE(off);
    if (len < 16 || off + len > datagram.length) return true;
    const type = datagram.readUInt16LE(off + 4);
    if (datagram.readUInt32LE(off + 8) === s) {
      if (mode === MODE_GET) return true;
      if (mode === MODE_ACK && type === NLMSG_ERROR) return true;
      if (mode === MODE_DUMP) {
        if (type === NLMSG_DONE || type === NLMSG_OVERRUN) return true;
        if (type === NLMSG_ERROR && len >= 20 && datagram.readInt32LE(off + 16) !== 0) return true;
      }
    }
    off += (len + 3) & ~3;
  }
  return false;
}

/** A native error (ENOENT opening a namespace, ...) as a NetlinkError naming what we tried. */
export function wrapNative(e: unknown, op: string): unknown {
  if (isNativeError(e)) return new NetlinkError(e.code, op, e.message, undefined, { cause: e });
  return e;
}

/** What carries the bytes: the native socket, or a scripted stand-in in unit tests. */
export interface NlWire {
  /** Sends `msg` and resolves with the datagrams received until the answer for `seq` is complete (per `mode`) or
   *  `timeoutMs` passed; may include stale answers to earlier requests. */
  exchange(msg: Buffer, seq: number, mode: ExchangeMode, timeoutMs: number): Promise<Buffer[]>;
  close(): void;
}

/** A NETLINK_ROUTE socket opened inside `netns` (null = the caller's own namespace). */
export function nativeWire(netns: Netns): NlWire {
  const n = native();
  let fd: number;
  try {
    fd = n.socketInNetns(netns, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
  } catch (e) {
    throw wrapNative(e, `open netlink socket in ${netns ?? 'own netns'}`);
  }
  try {
    n.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1); // error strings from the kernel
    n.setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1); // ACKs without the echoed request
    n.setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1); // dumps honour header filters
  } catch (e) {
    n.close(fd);
    throw wrapNative(e, 'configure netlink socket');
  }
  // Inline: send, then read what is queued. The rest of a dump the kernel has not produced yet, or an answer that
  // is not there yet, is awaited on the pool (an empty request sends nothing).
  const inline = (msg: Buffer, s: number, mode: ExchangeMode, t: number): Buffer[] | Promise<Buffer[]> => {
    n.sendto(fd, msg, null);
    const got: Buffer[] = [];
    const rx = (sharedRx ??= Buffer.allocUnsafe(RECV_SIZE)); // inline calls never overlap: one buffer serves all
    for (;;) {
      // each receive makes the kernel produce a dump's next part: a big table (100k routes) goes on on the pool
      const len = got.length < INLINE_DATAGRAMS ? n.recv(fd, rx, 0, null) : -1;
      if (len < 0) return n.exchange(fd, EMPTY, s, mode, t).then((rest) => got.concat(rest));
      if (len > rx.length) throw new NetlinkError('EMSGSIZE', 'recv', 'netlink datagram truncated');
      const d = Buffer.from(rx.subarray(0, len));
      got.push(d);
      if (answerComplete(d, s, mode)) return got;
    }
  };
  return {
    exchange: (msg, s, mode, t) => msg.length >= 6 && msg.readUInt16LE(4) === RTM_DELLINK
      ? kernelCalls.onPool(() => n.exchange(fd, msg, s, mode, t))
      : kernelCalls.run(() => inline(msg, s, mode, t), () => n.exchange(fd, msg, s, mode, t)),
    close: () => n.close(fd),
  };
}

const RECV_SIZE = 64 * 1024;
/** datagrams read inline before the rest of an answer is read on the pool */
const INLINE_DATAGRAMS = 8;
let sharedRx: Buffer | undefined;
const EMPTY = Buffer.alloc(0);

export class NlSocket {
  readonly netns: Netns;
  private readonly wire: NlWire;
  private closed = false;
  /** the last request queued on this socket: the next one starts after it */
  private tail: Promise<unknown> = Promise.resolve();
  timeoutMs = DEFAULT_TIMEOUT_MS;

  constructor(netns: Netns, wire?: NlWire) {
    this.netns = netns;
    this.wire = wire ?? nativeWire(netns);
  }

  /** Requests queued or running on this socket. */
  pending = 0;

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // a request still running on the pool owns the fd until it returns
    if (this.pending === 0) this.wire.close();
    else void this.tail.finally(() => this.wire.close());
  }

  /** Sends one request; resolves with the answer's messages (those carrying its sequence number). */
  private request(build: (seq: number) => Buffer, mode: ExchangeMode, op: string): Promise<NlMessage[]> {
    if (this.closed) return Promise.reject(new NetlinkError('EBADF', op, 'netlink socket is closed'));
    const s = seq();
    let msg: Buffer;
    try {
      msg = build(s);
    } catch (e) {
      return Promise.reject(e);
    }
    this.pending++;
    const run = async (): Promise<NlMessage[]> => {
      let datagrams: Buffer[];
      try {
        datagrams = await this.wire.exchange(msg, s, mode, this.timeoutMs);
      } catch (e) {
        throw wrapNative(e, op);
      }
      const out: NlMessage[] = [];
      for (const d of datagrams) for (const m of parseMessages(d)) if (m.seq === s) out.push(m);
      return out;
    };
    const p = this.tail.then(run, run);
    this.tail = p.catch(() => undefined).finally(() => { this.pending--; });
    return p;
  }

  private timeout(op: string): NetlinkError {
    return new NetlinkError('ETIMEDOUT', op, `no answer from the kernel within ${this.timeoutMs} ms`);
  }

  /** Sends a request built with NLM_F_ACK and waits for its ACK; throws the kernel's error. */
  async ack(build: (seq: number) => Buffer, op: string): Promise<void> {
    for (const m of await this.request(build, MODE_ACK, op)) {
      if (m.type === NLMSG_ERROR) {
        const e = parseError(m);
        if (e.error !== 0) throw kernelError(e.error, op, e.extack);
        return;
      }
    }
    throw this.timeout(op);
  }

  /** Sends a get request (no dump) and decodes the single answer; throws the kernel's error. */
  async get<T>(build: (seq: number) => Buffer, decode: (m: NlMessage) => T, op: string): Promise<T> {
    for (const m of await this.request(build, MODE_GET, op)) {
      if (m.type === NLMSG_ERROR) {
        const e = parseError(m);
        throw e.error !== 0 ? kernelError(e.error, op, e.extack) : new NetlinkError('EPROTO', op, 'ACK without an answer');
      }
      return decode(m);
    }
    throw this.timeout(op);
  }

  /** Multi-part dump; decodes every element (null results are dropped). Restarts when the kernel flags
   *  NLM_F_DUMP_INTR (the table changed during the dump), up to DUMP_RETRIES times. */
  async dump<T>(build: (seq: number) => Buffer, decode: (m: NlMessage) => T | null, op: string): Promise<T[]> {
    for (let attempt = 0; ; attempt++) {
      const out: T[] = [];
      let interrupted = false;
      let done = false;
      for (const m of await this.request(build, MODE_DUMP, op)) {
        if (m.flags & NLM_F_DUMP_INTR) interrupted = true;
        if (m.type === NLMSG_DONE) {
          const err = m.payload.length >= 4 ? m.payload.readInt32LE(0) : 0;
          if (err < 0) throw kernelError(err, op);
          done = true;
          break;
        }
        if (m.type === NLMSG_ERROR) {
          const e = parseError(m);
          if (e.error !== 0) throw kernelError(e.error, op, e.extack);
          continue;
        }
        if (m.type === NLMSG_NOOP) continue;
        if (m.type === NLMSG_OVERRUN) throw new NetlinkError('ENOBUFS', op, 'netlink overrun');
        const v = decode(m);
        if (v !== null) out.push(v);
      }
      if (!done) throw this.timeout(op);
      if (!interrupted) return out;
      if (attempt >= DUMP_RETRIES) throw new NetlinkError('EINTR', op, `dump interrupted ${attempt + 1} times by concurrent changes`);
    }
  }
}
