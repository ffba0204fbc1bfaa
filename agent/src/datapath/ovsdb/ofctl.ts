// OpenFlow on one bridge through `ovs-ofctl`, spoken to the bridge's management socket `<rundir>/<bridge>.mgmt`
// (the rundir is the OVSDB socket's directory, as for the vswitchd control socket in unixctl.ts). Each call is one
// process started by the launcher (exec/launcher.ts: argv only, never a shell, the event loop never forks). Used by
// the node-level external-LB flow reconciler (node/underlay/lb-flows.ts), a few calls per pass, off the CNI path.

import { join } from 'node:path';
import { execArgv, type ExecResult } from '../../exec/launcher.ts';

export interface OpenFlow {
  /** The flows matching `filter` (e.g. `cookie=0x1000/-1`; all when absent), one line each as ovs-ofctl prints
   *  them with --no-stats --no-names. */
  dumpFlows(bridge: string, filter?: string): Promise<string[]>;
  /** Runs flow mods (`add ...`, `delete_strict ...`) as one OpenFlow bundle: all land or none does. */
  bundle(bridge: string, lines: readonly string[]): Promise<void>;
}

export class OfctlError extends Error {
  constructor(message: string) { super(message); this.name = 'OfctlError'; }
}

export type ExecFn = (argv: readonly string[], input: string | undefined, timeoutMs: number) => Promise<ExecResult>;

/** A bridge name as vswitchd names its socket: no path separators, no `..` (the name comes from OVSDB). */
const SAFE_BRIDGE = /^(?!\.\.?$)[^/\0\s]{1,64}$/;

export class OvsOfctl implements OpenFlow {
  readonly #rundir: string;
  readonly #timeoutMs: number;
  readonly #exec: ExecFn;
  readonly binary: string;

  constructor(rundir: string, o: { timeoutMs?: number; exec?: ExecFn; binary?: string } = {}) {
    this.#rundir = rundir;
    this.#timeoutMs = o.timeoutMs ?? 10_000;
    this.#exec = o.exec ?? execArgv;
    this.binary = o.binary ?? 'ovs-ofctl';
  }

  target(bridge: string): string {
    if (!SAFE_BRIDGE.test(bridge)) throw new OfctlError(`refusing bridge name ${JSON.stringify(bridge)}`);
    return `unix:${join(this.#rundir, `${bridge}.mgmt`)}`;
  }

  async dumpFlows(bridge: string, filter?: string): Promise<string[]> {
    const out = await this.#run(['--no-stats', '--no-names', 'dump-flows', this.target(bridge), ...(filter ? [filter] : [])], undefined);
    return out.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('NXST_FLOW') && !l.startsWith('OFPST_FLOW'));
  }

  async bundle(bridge: string, lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return;
    if (lines.some((l) => l.includes('\n'))) throw new OfctlError('a flow line contains a newline');
    await this.#run(['--bundle', 'add-flows', this.target(bridge), '-'], `${lines.join('\n')}\n`);
  }

  async #run(args: readonly string[], input: string | undefined): Promise<string> {
    const r = await this.#exec([this.binary, ...args], input, this.#timeoutMs);
    if (r.code !== 0) throw new OfctlError(`ovs-ofctl ${args.join(' ')}: exit ${r.code ?? 'signal'}: ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`);
    return r.stdout;
  }
}
