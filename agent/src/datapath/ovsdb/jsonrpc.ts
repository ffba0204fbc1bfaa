// JSON-RPC 1.0 as OVSDB speaks it (RFC 7047 §4): messages are JSON objects written back to back on the stream
// with no delimiter. Pure code: a streaming splitter that finds value boundaries in raw bytes, plus the message
// shapes and their encoders. The socket that carries the bytes lives in client.ts.

/** Request: `id` is any non-null JSON value. Notification: `id` is null. Response: `result`/`error` + the request's id. */
export interface RpcRequest { method: string; params: unknown[]; id: string | number }
export interface RpcNotification { method: string; params: unknown[]; id: null }
export interface RpcResponse { result: unknown; error: unknown; id: string | number | null }
export type RpcMessage =
  | { kind: 'request'; msg: RpcRequest }
  | { kind: 'notification'; msg: RpcNotification }
  | { kind: 'response'; msg: RpcResponse };

const OPEN_BRACE = 0x7b, CLOSE_BRACE = 0x7d, OPEN_BRACKET = 0x5b, CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22, BACKSLASH = 0x5c;

export class JsonStreamError extends Error {
  constructor(message: string) { super(message); this.name = 'JsonStreamError'; }
}

/**
 * Splits a byte stream into top-level JSON objects/arrays. It scans bytes, not characters: every structural byte
 * (braces, brackets, quote, backslash) is ASCII and UTF-8 continuation bytes are always >= 0x80, so a multibyte
 * character split across chunks is never misread; bytes of one value are concatenated before decoding.
 * State (depth, inside-string, escape) survives chunk boundaries, so no byte is scanned twice.
 */
export class JsonStreamParser {
  private parts: Buffer[] = [];
  private partsLen = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;
  private readonly maxBytes: number;

  constructor(maxBytes = 256 * 1024 * 1024) { this.maxBytes = maxBytes; }

  /** True when a value has started but not finished (bytes are buffered). */
  get pending(): boolean { return this.depth > 0; }

  /** Feeds a chunk; returns the complete values it finished (parsed). Throws JsonStreamError on garbage. */
  push(chunk: Uint8Array): unknown[] {
    const out: unknown[] = [];
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let start = this.depth > 0 ? 0 : -1;
    for (let i = 0; i < buf.length; i++) {
      const b = buf[i]!;
      if (this.depth === 0) {
        if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) continue;
        if (b !== OPEN_BRACE && b !== OPEN_BRACKET) {
          throw new JsonStreamError(`unexpected byte 0x${b.toString(16)} between JSON-RPC messages`);
        }
        start = i;
        this.depth = 1;
        continue;
      }
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (b === BACKSLASH) this.escaped = true;
        else if (b === QUOTE) this.inString = false;
        continue;
      }
      if (b === QUOTE) this.inString = true;
      else if (b === OPEN_BRACE || b === OPEN_BRACKET) this.depth++;
      else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
        if (--this.depth === 0) {
          const tail = buf.subarray(start, i + 1);
          const bytes = this.parts.length ? Buffer.concat([...this.parts, tail], this.partsLen + tail.length) : tail;
          this.parts = [];
          this.partsLen = 0;
          start = -1;
          let value: unknown;
          try {
            value = JSON.parse(bytes.toString('utf8'));
          } catch (e) {
            throw new JsonStreamError(`invalid JSON in stream: ${(e as Error).message}`);
          }
          out.push(value);
        }
      }
    }
    if (this.depth > 0 && start >= 0) {
      // Copy: the caller may reuse its chunk buffer.
      const rest = Buffer.from(buf.subarray(start));
      this.parts.push(rest);
      this.partsLen += rest.length;
      if (this.partsLen > this.maxBytes) throw new JsonStreamError(`JSON-RPC message exceeds ${this.maxBytes} bytes`);
    }
    return out;
  }

  reset(): void {
    this.parts = [];
    this.partsLen = 0;
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Classifies a parsed value as a JSON-RPC message; throws on anything else. */
export function classify(v: unknown): RpcMessage {
  if (!isObj(v)) throw new JsonStreamError('JSON-RPC message is not an object');
  if (typeof v.method === 'string') {
    const params = Array.isArray(v.params) ? v.params : [];
    if (v.id === null || v.id === undefined) return { kind: 'notification', msg: { method: v.method, params, id: null } };
    if (typeof v.id !== 'string' && typeof v.id !== 'number') throw new JsonStreamError('JSON-RPC request id must be a string or number');
    return { kind: 'request', msg: { method: v.method, params, id: v.id } };
  }
  if ('result' in v || 'error' in v) {
    const id = v.id;
    if (id !== null && typeof id !== 'string' && typeof id !== 'number') throw new JsonStreamError('JSON-RPC response id must be a string, number or null');
    return { kind: 'response', msg: { result: v.result ?? null, error: v.error ?? null, id } };
  }
  throw new JsonStreamError('JSON-RPC message has neither method nor result/error');
}

export const encodeRequest = (method: string, params: unknown[], id: string | number): string =>
  JSON.stringify({ method, params, id });
export const encodeNotification = (method: string, params: unknown[]): string =>
  JSON.stringify({ method, params, id: null });
export const encodeResponse = (id: string | number | null, result: unknown, error: unknown = null): string =>
  JSON.stringify({ result, error, id });
