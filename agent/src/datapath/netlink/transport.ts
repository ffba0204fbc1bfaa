// NETLINK_ROUTE transport over the native addon: one socket opened inside a namespace, sequence numbers, ACK
// checking, single gets and multi-part dumps (restarted on NLM_F_DUMP_INTR). Synchronous: rtnetlink requests are
// processed inside sendto(), so the answer is already queued when we poll; the poll is bounded (timeoutMs).
import { isNativeError, native, AF_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK, NETLINK_ROUTE,
  SOCK_RAW, SOL_NETLINK } from '../../native.ts';
import { parseError, parseMessages, type NlMessage } from './codec.ts';
import { NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_DUMP_INTR } from './constants.ts';
import { kernelError, NetlinkError } from './errors.ts';
import type { Netns } from './port.ts';

/** One receive buffer for all sockets: every exchange is synchronous, and decoders copy what they keep. */
const RECV_SIZE = 64 * 1024;
const recvBuf = Buffer.allocUnsafe(RECV_SIZE);
let nextSeq = (Date.now() & 0xffff) << 8;
const seq = (): number => (nextSeq = (nextSeq + 1) >>> 0 || 1);

export const DEFAULT_TIMEOUT_MS = 2000;
export const DUMP_RETRIES = 5;

/** A native error (ENOENT opening a namespace, ...) as a NetlinkError naming what we tried. */
export function wrapNative(e: unknown, op: string): unknown {
  if (isNativeError(e)) return new NetlinkError(e.code, op, e.message, undefined, { cause: e });
  return e;
}

/** What carries the bytes: the native socket, or a scripted stand-in in unit tests. */
export interface NlWire {
  send(msg: Buffer): void;
  /** Bytes received into buf, or -1 on timeout. */
  recv(buf: Buffer, timeoutMs: number): number;
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
  return {
    send: (msg) => void n.sendto(fd, msg, null),
    recv: (b, t) => n.recv(fd, b, t, null),
    close: () => n.close(fd),
  };
}

export class NlSocket {
  readonly netns: Netns;
  private readonly wire: NlWire;
  private closed = false;
  timeoutMs = DEFAULT_TIMEOUT_MS;

  constructor(netns: Netns, wire?: NlWire) {
    this.netns = netns;
    this.wire = wire ?? nativeWire(netns);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.wire.close();
  }

  private send(msg: Buffer, op: string): void {
    if (this.closed) throw new NetlinkError('EBADF', op, 'netlink socket is closed');
    try {
      this.wire.send(msg);
    } catch (e) {
      throw wrapNative(e, op);
    }
  }

  /** Receives one datagram and returns its messages (views into the shared buffer). */
  private receive(op: string): NlMessage[] {
    let n: number;
    try {
      n = this.wire.recv(recvBuf, this.timeoutMs);
    } catch (e) {
      throw wrapNative(e, op);
    }
    if (n < 0) throw new NetlinkError('ETIMEDOUT', op, `no answer from the kernel within ${this.timeoutMs} ms`);
    if (n > RECV_SIZE) throw new NetlinkError('EMSGSIZE', op, `netlink datagram of ${n} bytes truncated`);
    return parseMessages(recvBuf.subarray(0, n));
  }

  /** Sends a request built with NLM_F_ACK and waits for its ACK; throws the kernel's error. */
  ack(build: (seq: number) => Buffer, op: string): void {
    const s = seq();
    this.send(build(s), op);
    for (;;) {
      for (const m of this.receive(op)) {
        if (m.seq !== s) continue; // a late answer to an earlier request that timed out
        if (m.type === NLMSG_ERROR) {
          const e = parseError(m);
          if (e.error !== 0) throw kernelError(e.error, op, e.extack);
          return;
        }
      }
    }
  }

  /** Sends a get request (no dump) and decodes the single answer; throws the kernel's error. */
  get<T>(build: (seq: number) => Buffer, decode: (m: NlMessage) => T, op: string): T {
    const s = seq();
    this.send(build(s), op);
    for (;;) {
      for (const m of this.receive(op)) {
        if (m.seq !== s) continue;
        if (m.type === NLMSG_ERROR) {
          const e = parseError(m);
          throw e.error !== 0 ? kernelError(e.error, op, e.extack) : new NetlinkError('EPROTO', op, 'ACK without an answer');
        }
        return decode(m);
      }
    }
  }

  /** Multi-part dump; decodes every element (null results are dropped). Restarts when the kernel flags
   *  NLM_F_DUMP_INTR (the table changed during the dump), up to DUMP_RETRIES times. */
  dump<T>(build: (seq: number) => Buffer, decode: (m: NlMessage) => T | null, op: string): T[] {
    for (let attempt = 0; ; attempt++) {
      const s = seq();
      this.send(build(s), op);
      const out: T[] = [];
      let interrupted = false;
      let done = false;
      while (!done) {
        for (const m of this.receive(op)) {
          if (m.seq !== s) continue;
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
      }
      if (!interrupted) return out;
      if (attempt >= DUMP_RETRIES) throw new NetlinkError('EINTR', op, `dump interrupted ${attempt + 1} times by concurrent changes`);
    }
  }
}
