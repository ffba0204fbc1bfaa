// A D-Bus client connection on a Unix socket: SASL EXTERNAL authentication (the kernel vouches for our uid), Hello,
// then method calls matched to their replies by serial. Every step is bounded: the caller that only wants to know
// whether a bus is there (NetworkManager detection) gives 200 ms for all of connect, authentication and Hello.
// Signals and calls from the bus are read and dropped: nothing here subscribes.

import { connect, type Socket } from 'node:net';
import { decodeMessage, encodeMessage, messageLength, MessageType, type DBusValue, type Message } from './codec.ts';

export const BUS_NAME = 'org.freedesktop.DBus';
export const BUS_PATH = '/org/freedesktop/DBus';

/** An error reply (`name` e.g. org.freedesktop.DBus.Error.ServiceUnknown), or a transport failure (`name` "transport"). */
export class DBusError extends Error {
  readonly dbusName: string;
  constructor(dbusName: string, message: string) { super(`${dbusName}: ${message}`); this.name = 'DBusError'; this.dbusName = dbusName; }
}

export interface CallSpec {
  readonly destination: string;
  readonly path: string;
  readonly interface: string;
  readonly member: string;
  readonly signature?: string;
  readonly body?: readonly DBusValue[];
}

export interface Reply { readonly signature: string; readonly body: readonly DBusValue[] }

/** `unix:path=/x` (or `unix:abstract=`), the first usable entry of a bus address list; undefined when none. */
export function socketFromAddress(address: string): string | undefined {
  for (const entry of address.split(';')) {
    const m = /^unix:(.*)$/.exec(entry.trim());
    if (!m) continue;
    const kv = new Map(m[1]!.split(',').map((p) => { const i = p.indexOf('='); return [p.slice(0, i), decodeURIComponent(p.slice(i + 1))] as const; }));
    if (kv.get('path')) return kv.get('path');
    if (kv.get('abstract')) return `\0${kv.get('abstract')}`;
  }
  return undefined;
}

export class DBusConnection {
  readonly #s: Socket;
  readonly #pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  #serial = 0;
  #buf: Buffer = Buffer.alloc(0);
  #closed: Error | undefined;

  private constructor(s: Socket) {
    this.#s = s;
    s.on('data', (b: Buffer) => this.#onData(b));
    s.on('error', (e) => this.#fail(new DBusError('transport', e.message)));
    s.on('close', () => this.#fail(new DBusError('transport', 'the bus closed the connection')));
  }

  /** Connects, authenticates and says Hello, all within `timeoutMs`. */
  static async open(socketPath: string, timeoutMs: number): Promise<DBusConnection> {
    const deadline = performance.now() + timeoutMs;
    const s = connect({ path: socketPath });
    try {
      await authenticate(s, timeoutMs);
      const c = new DBusConnection(s);
      await c.call({ destination: BUS_NAME, path: BUS_PATH, interface: BUS_NAME, member: 'Hello' }, Math.max(1, deadline - performance.now()));
      return c;
    } catch (e) {
      s.destroy();
      throw e instanceof DBusError ? e : new DBusError('transport', e instanceof Error ? e.message : String(e));
    }
  }

  call(c: CallSpec, timeoutMs: number): Promise<Reply> {
    if (this.#closed) return Promise.reject(this.#closed);
    const serial = ++this.#serial;
    const msg = encodeMessage({
      type: MessageType.METHOD_CALL, serial, destination: c.destination, path: c.path, interface: c.interface, member: c.member,
      ...(c.signature ? { signature: c.signature, body: c.body ?? [] } : {}),
    });
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(serial);
        reject(new DBusError('timeout', `${c.interface}.${c.member} on ${c.destination}: no answer within ${Math.round(timeoutMs)} ms`));
      }, timeoutMs);
      this.#pending.set(serial, { resolve, reject, timer });
      this.#s.write(msg);
    });
  }

  close(): void {
    this.#fail(new DBusError('transport', 'connection closed'));
    this.#s.destroy();
  }

  #onData(b: Buffer): void {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, b]) : b;
    try {
      for (;;) {
        const n = messageLength(this.#buf);
        if (n === undefined || this.#buf.length < n) return;
        const m = decodeMessage(this.#buf.subarray(0, n));
        this.#buf = this.#buf.subarray(n);
        this.#onMessage(m);
      }
    } catch (e) {
      this.#fail(new DBusError('transport', e instanceof Error ? e.message : String(e)));
      this.#s.destroy();
    }
  }

  #onMessage(m: Message): void {
    if (m.type !== MessageType.METHOD_RETURN && m.type !== MessageType.ERROR) return; // signals, calls to us: not ours
    const p = m.replySerial !== undefined ? this.#pending.get(m.replySerial) : undefined;
    if (!p) return;
    this.#pending.delete(m.replySerial!);
    clearTimeout(p.timer);
    if (m.type === MessageType.ERROR) p.reject(new DBusError(m.errorName ?? 'error', typeof m.body?.[0] === 'string' ? m.body[0] : ''));
    else p.resolve({ signature: m.signature ?? '', body: m.body ?? [] });
  }

  #fail(e: Error): void {
    if (this.#closed) return;
    this.#closed = e;
    for (const [, p] of this.#pending) { clearTimeout(p.timer); p.reject(e); }
    this.#pending.clear();
  }
}

/** The SASL exchange: NUL, AUTH EXTERNAL <uid in hex>, OK, BEGIN. */
function authenticate(s: Socket, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let text = '';
    const done = (e?: Error): void => {
      clearTimeout(timer);
      s.off('data', onData); s.off('error', onError); s.off('close', onClose);
      if (e) reject(e); else resolve();
    };
    const timer = setTimeout(() => done(new DBusError('timeout', `no bus answer within ${timeoutMs} ms`)), timeoutMs);
    const onError = (e: Error): void => done(new DBusError('transport', e.message));
    const onClose = (): void => done(new DBusError('transport', 'the bus closed the connection during authentication'));
    const onData = (b: Buffer): void => {
      text += b.toString('latin1');
      const nl = text.indexOf('\r\n');
      if (nl < 0) { if (text.length > 4096) done(new DBusError('auth', 'answer too long')); return; }
      const line = text.slice(0, nl);
      if (!line.startsWith('OK ')) { done(new DBusError('auth', `the bus refused EXTERNAL authentication: ${line}`)); return; }
      if (text.length > nl + 2) { done(new DBusError('auth', 'the bus sent data before BEGIN')); return; }
      s.write('BEGIN\r\n');
      done();
    };
    s.on('data', onData); s.on('error', onError); s.on('close', onClose);
    const uid = Buffer.from(String(process.getuid?.() ?? 0), 'ascii').toString('hex');
    s.write(Buffer.concat([Buffer.from([0]), Buffer.from(`AUTH EXTERNAL ${uid}\r\n`, 'ascii')]));
  });
}
