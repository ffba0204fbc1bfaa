// Reading and decoding a request body for the CNI server (node:http, no framework).
//
// The answers keep the wording clients and tests have seen since the server was on fastify: an empty or invalid
// JSON body is "Body cannot be empty ..." / "Body is not valid JSON ...", an oversized one KOA_TOO_LARGE.
// application/json is parsed, text/plain is kept as text (the handlers then refuse it as "expected a JSON
// object"), any other media type is refused before the body is read.
import type { IncomingMessage } from 'node:http';
import { agentError, type AgentError } from '../errors.ts';

/** A refused body; `closeConnection`: the client may still be sending, so the connection is not kept. */
export class BodyError extends Error {
  readonly error: AgentError;
  readonly closeConnection: boolean;
  constructor(error: AgentError, closeConnection: boolean) {
    super(error.message);
    this.error = error;
    this.closeConnection = closeConnection;
  }
}

/** The client went away before its body was complete: nobody is left to answer. */
export class ClientGone extends Error {}

export type BodyKind = 'none' | 'json' | 'text';

const badBody = (why: string): BodyError => new BodyError(agentError('KOA_BAD_JSON', 'request body', why), true);

/** What to do with a request's body, from its headers alone; throws BodyError for a refused media type or size. */
export function bodyKind(req: IncomingMessage, limit: number): BodyKind {
  const h = req.headers;
  const ct = h['content-type'];
  if (ct === undefined && h['transfer-encoding'] === undefined && (h['content-length'] === undefined || h['content-length'] === '0')) return 'none';
  const media = (ct ?? '').split(';', 1)[0]!.trim().toLowerCase();
  if (media !== 'application/json' && media !== 'text/plain') {
    throw new BodyError(agentError('KOA_BAD_JSON', 'request', 'content-type must be application/json'), false);
  }
  const declared = Number(h['content-length']);
  if (declared > limit) throw new BodyError(agentError('KOA_TOO_LARGE', declared, limit), true);
  return media === 'application/json' ? 'json' : 'text';
}

/** Bytes to take from the body budget before reading: the declared length, or the limit when it is not declared. */
export function bodyReservation(req: IncomingMessage, limit: number): number {
  const declared = req.headers['content-length'];
  return Math.max(declared === undefined ? limit : Number(declared), 1024);
}

/**
 * Reads the body (at most `limit` bytes). Rejects with BodyError when it grows past the limit, with ClientGone when
 * the client goes away first.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (): void => {
      req.off('data', onData); req.off('end', onEnd); req.off('error', onGone); req.off('close', onGone);
    };
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > limit) { stop(); reject(new BodyError(agentError('KOA_TOO_LARGE', size, limit), true)); return; }
      chunks.push(c);
    };
    const onEnd = (): void => { stop(); resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)); };
    const onGone = (): void => { stop(); reject(new ClientGone('the client went away before its request body was complete')); };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onGone);
    req.once('close', onGone);
  });
}

// A key that JSON.parse keeps as an own property but that would reach a prototype if the object were ever merged
// with Object.assign (also written with \u escapes): such bodies are refused, as before.
const PROTO_RE = /(?:_|\\u005[Ff])(?:_|\\u005[Ff])(?:p|\\u0070)(?:r|\\u0072)(?:o|\\u006[Ff])(?:t|\\u0074)(?:o|\\u006[Ff])(?:_|\\u005[Ff])(?:_|\\u005[Ff])/;
const CTOR_RE = /(?:c|\\u0063)(?:o|\\u006[Ff])(?:n|\\u006[Ee])(?:s|\\u0073)(?:t|\\u0074)(?:r|\\u0072)(?:u|\\u0075)(?:c|\\u0063)(?:t|\\u0074)(?:o|\\u006[Ff])(?:r|\\u0072)/;
const has = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

function poisoned(x: unknown): boolean {
  const stack: unknown[] = [x];
  while (stack.length) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null) continue;
    if (has(v, '__proto__')) return true;
    const c = (v as { constructor?: unknown }).constructor;
    if (has(v, 'constructor') && typeof c === 'object' && c !== null && has(c, 'prototype')) return true;
    for (const k of Object.keys(v)) stack.push((v as Record<string, unknown>)[k]);
  }
  return false;
}

/** Decodes a body read by readBody; throws BodyError for an empty or invalid JSON body. */
export function decodeBody(kind: Exclude<BodyKind, 'none'>, raw: Buffer): unknown {
  let text = raw.toString('utf8');
  if (kind === 'text') return text;
  if (text.length === 0) throw badBody("Body cannot be empty when content-type is set to 'application/json'");
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const invalid = "Body is not valid JSON but content-type is set to 'application/json'";
  let v: unknown;
  try { v = JSON.parse(text); } catch { throw badBody(invalid); }
  if ((PROTO_RE.test(text) || CTOR_RE.test(text)) && poisoned(v)) throw badBody(invalid);
  return v;
}
