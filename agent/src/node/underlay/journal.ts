// The intent log of NIC moves (issue 13 "never cut the node off"). Before each step of a move, the step and
// everything needed to redo the whole move (the source's addresses and routes as they were when it began) are
// written to one file per provider network, atomically (temp file, fsync, rename, fsync of the directory). A
// process killed at any instant leaves either no file (nothing started, or everything finished) or a file that
// names a move in flight; at the next start the move is run again from its recorded snapshot. Every step is
// idempotent (add-or-replace, delete-if-present), so re-running from the first step finishes the move, whatever
// step the crash interrupted. A transfer or rename that fails with an error (not a crash) is rolled back and its
// record cleared (transfer.ts); a restore that fails stays journaled and is retried. The file lives on /run (tmpfs
// by default): after a reboot the kernel state it describes is gone, and so must the file be.
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** An address as it was on the source link (non-link-local only). */
export interface SnapAddress {
  readonly cidr: string;
  readonly family: 4 | 6;
  /** IPv4: the broadcast it had, null for none (absent in records written before it was kept: computed) */
  readonly broadcast?: string | null;
  /** IFA_F_NOPREFIXROUTE: its prefix route is not the kernel's (NetworkManager adds its own, with a metric) */
  readonly noprefixroute?: true;
  /** IFA_RT_PRIORITY: the metric of the prefix route the kernel makes for it */
  readonly metric?: number;
}

/** A route as it was on the source link (the device is the move's business, not the record's). */
export interface SnapRoute {
  readonly family: 4 | 6;
  /** null = default route */
  readonly dst: string | null;
  readonly gateway?: string;
  readonly table: number;
  readonly protocol: number;
  readonly scope: number;
  readonly type: number;
  readonly metric?: number;
  readonly src?: string;
  readonly onlink: boolean;
}

export interface LinkSnapshot {
  readonly mac: string;
  readonly mtu: number;
  readonly up: boolean;
  readonly addresses: readonly SnapAddress[];
  readonly routes: readonly SnapRoute[];
}

export interface MoveRecord {
  readonly pn: string;
  /** 'transfer' = NIC -> bridge; 'restore' = bridge -> NIC; 'rename' = the link `nic` gets the name `to`, keeping
   *  its addresses and routes (exchangeLinkName: the NIC frees its name for the bridge, and takes it back);
   *  'vlan-transfer' = the VLAN link `nic` -> the internal port `to` (vlan-ports.ts); 'vlan-restore' = back */
  readonly op: 'transfer' | 'restore' | 'rename' | 'vlan-transfer' | 'vlan-restore';
  readonly nic: string;
  readonly bridge: string;
  /** op 'rename': the new name; 'vlan-*': the internal port */
  readonly to?: string;
  /** op 'vlan-restore': the link to create the VLAN link on when it is gone */
  readonly parent?: string;
  /** the source link's state when the move began */
  readonly snapshot: LinkSnapshot;
  /** the NIC port's trunks; 'vlan-*': [the VLAN id] */
  readonly trunks: readonly number[];
  /** the step about to run (for the logs and the crash tests; recovery restarts from the first step) */
  readonly step: string;
}

export interface Journal {
  read(pn: string): Promise<MoveRecord | undefined>;
  write(rec: MoveRecord): Promise<void>;
  clear(pn: string): Promise<void>;
  /** every move in flight (start-up recovery) */
  list(): Promise<MoveRecord[]>;
}

const SUFFIX = '.move.json';

/** The journal as files `<dir>/<pn>.move.json`. */
export class FileJournal implements Journal {
  readonly #dir: string;
  #made = false;

  constructor(dir: string) { this.#dir = dir; }

  #path(pn: string): string {
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(pn)) throw new Error(`invalid provider network name ${JSON.stringify(pn)}`);
    return join(this.#dir, `${pn}${SUFFIX}`);
  }

  async read(pn: string): Promise<MoveRecord | undefined> {
    let text: string;
    try {
      text = await readFile(this.#path(pn), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    return parseRecord(text, pn);
  }

  async write(rec: MoveRecord): Promise<void> {
    if (!this.#made) { await mkdir(this.#dir, { recursive: true, mode: 0o700 }); this.#made = true; }
    const path = this.#path(rec.pn);
    const tmp = `${path}.tmp`;
    const f = await open(tmp, 'w', 0o600);
    try {
      await f.writeFile(JSON.stringify(rec));
      await f.sync();
    } finally {
      await f.close();
    }
    await rename(tmp, path);
    await this.#syncDir();
  }

  async clear(pn: string): Promise<void> {
    await rm(this.#path(pn), { force: true });
    await this.#syncDir().catch(() => undefined);
  }

  async list(): Promise<MoveRecord[]> {
    let names: string[];
    try {
      names = await readdir(this.#dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: MoveRecord[] = [];
    for (const n of names.filter((x) => x.endsWith(SUFFIX)).sort()) {
      const r = await this.read(n.slice(0, -SUFFIX.length));
      if (r) out.push(r);
    }
    return out;
  }

  async #syncDir(): Promise<void> {
    const d = await open(this.#dir, 'r');
    try { await d.sync(); } finally { await d.close(); }
  }
}

/** Validates a record read back (a torn or foreign file is an error that names the file, never a guess). */
export function parseRecord(text: string, pn: string): MoveRecord {
  const r = JSON.parse(text) as MoveRecord;
  const ok = r && r.pn === pn && (r.op === 'transfer' || r.op === 'restore'
    || ((r.op === 'rename' || r.op === 'vlan-transfer' || r.op === 'vlan-restore') && typeof r.to === 'string')) && typeof r.nic === 'string' && typeof r.bridge === 'string'
    && r.snapshot && Array.isArray(r.snapshot.addresses) && Array.isArray(r.snapshot.routes) && Array.isArray(r.trunks);
  if (!ok) throw new Error(`underlay journal of ${pn}: not a move record`);
  return r;
}
