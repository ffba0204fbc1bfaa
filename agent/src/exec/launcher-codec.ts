// The wire format between the agent and cni-shim/kube-ovn-exec (the process launcher); the C file's header is the
// other half of this contract. Integers are 32-bit little-endian (host order on every node we build for). Pure.

export interface LaunchRequest {
  argv: readonly string[];
  input: string | Buffer;
  timeoutMs: number;
}

export interface LaunchAnswer {
  /** exit status; null when the command was killed (signal) or never started (spawnErrno) */
  code: number | null;
  signal: number;
  /** errno of posix_spawn (ENOENT: no such executable), 0 when it started */
  spawnErrno: number;
  stdout: Buffer;
  stderr: Buffer;
}

export const MAX_REQUEST = 64 << 20;
const MAX_ARGC = 4096;

export function encodeRequest(r: LaunchRequest): Buffer {
  if (r.argv.length === 0 || r.argv.length > MAX_ARGC) throw new RangeError(`argv must have 1..${MAX_ARGC} elements`);
  const args = r.argv.map((a) => {
    if (a.includes('\0')) throw new RangeError('argv elements cannot contain NUL');
    return Buffer.from(a, 'utf8');
  });
  const input = typeof r.input === 'string' ? Buffer.from(r.input, 'utf8') : r.input;
  if (!Number.isFinite(r.timeoutMs) || r.timeoutMs <= 0) throw new RangeError(`timeoutMs must be a positive number, not ${r.timeoutMs}`);
  const timeout = Math.min(0xffffffff, Math.round(r.timeoutMs));
  const frameLen = 4 + 4 + args.reduce((n, a) => n + 4 + a.length, 0) + 4 + input.length;
  if (frameLen > MAX_REQUEST) throw new RangeError(`request of ${frameLen} bytes is over ${MAX_REQUEST}`);
  const b = Buffer.allocUnsafe(4 + frameLen);
  let off = b.writeUInt32LE(frameLen, 0);
  off = b.writeUInt32LE(timeout, off);
  off = b.writeUInt32LE(args.length, off);
  for (const a of args) {
    off = b.writeUInt32LE(a.length, off);
    off += a.copy(b, off);
  }
  off = b.writeUInt32LE(input.length, off);
  input.copy(b, off);
  return b;
}

/** Takes one answer off the front of `buf`: the answer and the bytes after it, or null while it is incomplete. */
export function decodeAnswer(buf: Buffer): { answer: LaunchAnswer; rest: Buffer } | null {
  if (buf.length < 4) return null;
  const frameLen = buf.readUInt32LE(0);
  if (buf.length < 4 + frameLen) return null;
  const f = buf.subarray(4, 4 + frameLen);
  const fail = (): never => { throw new Error(`malformed launcher answer (${frameLen} bytes)`); };
  if (f.length < 16) fail();
  const status = f.readInt32LE(0);
  const signal = f.readInt32LE(4);
  const spawnErrno = f.readInt32LE(8);
  const outLen = f.readUInt32LE(12);
  if (16 + outLen + 4 > f.length) fail();
  const stdout = Buffer.from(f.subarray(16, 16 + outLen));
  const errLen = f.readUInt32LE(16 + outLen);
  if (20 + outLen + errLen !== f.length) fail();
  const stderr = Buffer.from(f.subarray(20 + outLen));
  const code = status >= 0 && signal === 0 && spawnErrno === 0 ? status : null;
  return { answer: { code, signal, spawnErrno, stdout, stderr }, rest: buf.subarray(4 + frameLen) };
}
