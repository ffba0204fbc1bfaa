// The real NetfilterRunner: iptables-save/-restore and ipset run with argv arrays (never a shell), input on stdin,
// one process per batch, started by the process launcher (exec/launcher.ts) so the event loop never forks.
import { execArgv } from '../../exec/launcher.ts';

export { execArgv };
import { NetfilterError, failedLineOf, type NetfilterRunner } from './port.ts';
import type { Backend, Family } from './types.ts';

export interface ExecRunnerOptions {
  /** Which binaries: `iptables-legacy-*`, `iptables-nft-*`, or the plain names (whatever the node's alternatives /
   * the image's iptables-wrapper point to). Default 'system'. */
  backend?: Backend | 'system';
  /** Prepended to every argv, e.g. `['ip', 'netns', 'exec', 'ns1']` in tests. Production: none (own netns). */
  argvPrefix?: readonly string[];
  /** Seconds iptables-restore waits for the xtables lock (`-w`). Default 10. */
  lockWaitSeconds?: number;
  /** Kill a tool that runs longer than this. Default 60 s. */
  timeoutMs?: number;
}

/** The binary names for a family and back end. */
export function binaries(family: Family, backend: Backend | 'system'): { save: string; restore: string } {
  const base = family === 4 ? 'iptables' : 'ip6tables';
  const mid = backend === 'system' ? '' : `-${backend}`;
  return { save: `${base}${mid}-save`, restore: `${base}${mid}-restore` };
}

export class ExecNetfilterRunner implements NetfilterRunner {
  readonly backend: Backend | 'system';
  private readonly prefix: readonly string[];
  private readonly wait: number;
  private readonly timeoutMs: number;

  constructor(opts: ExecRunnerOptions = {}) {
    this.backend = opts.backend ?? 'system';
    this.prefix = opts.argvPrefix ?? [];
    this.wait = opts.lockWaitSeconds ?? 10;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  private async run(argv: string[], input?: string): Promise<string> {
    const full = [...this.prefix, ...argv];
    const r = await execArgv(full, input, this.timeoutMs);
    if (r.code !== 0) throw new NetfilterError(full, r.code, r.stderr, input === undefined ? undefined : failedLineOf(r.stderr, input));
    return r.stdout;
  }

  save(family: Family): Promise<string> {
    // no -t: naming a table would instantiate it in the legacy back end; a plain save lists only existing ones
    return this.run([binaries(family, this.backend).save, '-c']);
  }

  async restore(family: Family, input: string): Promise<void> {
    if (input === '') return;
    await this.run([binaries(family, this.backend).restore, '-w', String(this.wait), '--noflush'], input);
  }

  ipsetSave(): Promise<string> {
    return this.run(['ipset', 'save']);
  }

  async ipsetRestore(input: string): Promise<void> {
    if (input === '') return;
    await this.run(['ipset', '-exist', 'restore'], input);
  }
}
