// ovs-vswitchd's control socket (what `ovs-appctl` talks to): JSON-RPC 1.0 on `<rundir>/ovs-vswitchd.<pid>.ctl`, one
// request per connection here. Spoken directly instead of spawning ovs-appctl: the FDB sync (node/underlay/fdb.ts)
// needs a handful of calls per pass. The pid comes from `<rundir>/ovs-vswitchd.pid` at each call, so a restarted
// vswitchd is found again. It shares the JSON stream splitter with the OVSDB client.

import { connect } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { JsonStreamParser, encodeRequest } from './jsonrpc.ts';

export interface Unixctl {
  /** Runs a command; resolves with its text result, rejects with its error text or a transport error. */
  call(method: string, params: readonly string[]): Promise<string>;
}

export class UnixctlError extends Error {
  readonly method: string;
  constructor(method: string, message: string) { super(`ovs-vswitchd ${method}: ${message}`); this.name = 'UnixctlError'; this.method = method; }
}

/** The response of one call: `result` text, or the `error` text as an UnixctlError. Pure. */
export function unixctlResult(method: string, v: unknown): string {
  const r = v as { result?: unknown; error?: unknown } | null;
  if (!r || typeof r !== 'object') throw new UnixctlError(method, `not a JSON-RPC response: ${JSON.stringify(v)}`);
  if (r.error !== undefined && r.error !== null) throw new UnixctlError(method, String(r.error).trim());
  if (typeof r.result !== 'string') throw new UnixctlError(method, `no text result: ${JSON.stringify(v)}`);
  return r.result;
}

export class VswitchdControl implements Unixctl {
  readonly #rundir: string;
  readonly #timeoutMs: number;
  #id = 0;

  constructor(rundir: string, timeoutMs = 5000) {
    this.#rundir = rundir;
    this.#timeoutMs = timeoutMs;
  }

  async socketPath(): Promise<string> {
    const pid = (await readFile(join(this.#rundir, 'ovs-vswitchd.pid'), 'utf8')).trim();
    if (!/^\d+$/.test(pid)) throw new UnixctlError('connect', `bad pid file content ${JSON.stringify(pid)}`);
    return join(this.#rundir, `ovs-vswitchd.${pid}.ctl`);
  }

  async call(method: string, params: readonly string[]): Promise<string> {
    const path = await this.socketPath();
    const id = ++this.#id;
    return new Promise<string>((resolve, reject) => {
      const parser = new JsonStreamParser(16 * 1024 * 1024);
      const s = connect(path);
      const done = (f: () => void): void => { clearTimeout(timer); s.destroy(); f(); };
      const timer = setTimeout(() => done(() => reject(new UnixctlError(method, `no answer within ${this.#timeoutMs} ms`))), this.#timeoutMs);
      s.on('connect', () => s.write(encodeRequest(method, [...params], id)));
      s.on('data', (chunk: Buffer) => {
        try {
          const [v] = parser.push(chunk);
          if (v !== undefined) done(() => resolve(unixctlResult(method, v)));
        } catch (e) {
          done(() => reject(e));
        }
      });
      s.on('error', (e) => done(() => reject(new UnixctlError(method, e.message))));
      s.on('end', () => done(() => reject(new UnixctlError(method, 'connection closed before an answer'))));
    });
  }
}
