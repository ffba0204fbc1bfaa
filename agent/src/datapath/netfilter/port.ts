// The port the netfilter diff talks through: save/restore text in and out, nothing else. Implementations:
// runner.ts (the real tools, spawned with argv arrays) and, for tests only, fake.ts (an in-memory model).
import type { Family } from './types.ts';

export interface NetfilterRunner {
  /** `iptables-save -c` (ip6tables-save for 6): every table of the family, with counters. */
  save(family: Family): Promise<string>;
  /** `iptables-restore -w --noflush` with `input` on stdin; rejects (NetfilterError) when a line fails. Each
   * table block is committed on its own (both back ends): blocks before a failing one stay applied. */
  restore(family: Family, input: string): Promise<void>;
  /** `ipset save`: every set with its members. */
  ipsetSave(): Promise<string>;
  /** `ipset -exist restore` with `input` on stdin; not atomic: lines before a failing one stay applied. */
  ipsetRestore(input: string): Promise<void>;
}

/** A failed save/restore: the command, its exit status and stderr, and for a restore the input line that failed. */
export class NetfilterError extends Error {
  readonly argv: readonly string[];
  readonly exitCode: number | null;
  readonly stderr: string;
  /** The failing restore input line (1-based number and text), when the tool named it. */
  readonly failedLine?: { no: number; text: string };
  constructor(argv: readonly string[], exitCode: number | null, stderr: string, failedLine?: { no: number; text: string }) {
    const where = failedLine ? ` at input line ${failedLine.no} (${failedLine.text})` : '';
    super(`${argv.join(' ')} failed (exit ${exitCode ?? 'signal'})${where}: ${stderr.trim().split('\n')[0] ?? ''}`);
    this.name = 'NetfilterError';
    this.argv = argv;
    this.exitCode = exitCode;
    this.stderr = stderr;
    if (failedLine) this.failedLine = failedLine;
  }
}

/** Finds the input line a restore tool blamed: iptables-restore says "Error occurred at line: N" (iptables-nft
 * also "line N: CHAIN_DEL failed ..." and, for a bad chain reference, names the COMMIT line; iptables-legacy
 * reports a -D/-X that fails when the table is committed as "line <COMMIT> failed"), ipset says
 * "Error in line N:". */
export function failedLineOf(stderr: string, input: string): { no: number; text: string } | undefined {
  const m = /Error occurred at line: (\d+)|^line (\d+): |Error in line (\d+)|line (\d+) failed/m.exec(stderr);
  if (!m) return undefined;
  const no = Number(m[1] ?? m[2] ?? m[3] ?? m[4]);
  return { no, text: input.split('\n')[no - 1] ?? '' };
}
