// CPU time and resident memory of a daemon's whole process tree, from /proc: our agent keeps launcher processes,
// upstream's daemon runs ovs-vsctl & co., so "self + children" is the only fair measure for both.
import { readdirSync, readFileSync } from 'node:fs';
import { vmRssMb } from '../e2e/agent-harness.ts';

export const TICKS_PER_S = 100; // USER_HZ on Linux

export interface Stat {
  pid: number;
  /** the name between the parentheses (it may hold spaces and parentheses itself) */
  comm: string;
  ppid: number;
  /** utime + stime + cutime + cstime: its own time and that of the children it reaped */
  cpuTicks: number;
  /** utime + stime: its own time only */
  selfTicks: number;
}

/** The fields of /proc/<pid>/stat this file and the load tests read. */
export function parseStat(pid: number, text: string): Stat {
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): field n is rest[n - 3]
  const f = (n: number) => Number(rest[n - 3]);
  return { pid, comm: text.slice(text.indexOf('(') + 1, text.lastIndexOf(')')), ppid: f(4), cpuTicks: f(14) + f(15) + f(16) + f(17), selfTicks: f(14) + f(15) };
}

function readStat(pid: number): Stat | undefined {
  try {
    return parseStat(pid, readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined; // exited between the listing and the read
  }
}

/** `root` and every live descendant. */
export function processTree(root: number): number[] {
  const all = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number).map(readStat).filter((s): s is Stat => !!s);
  const kids = new Map<number, number[]>();
  for (const s of all) kids.set(s.ppid, [...(kids.get(s.ppid) ?? []), s.pid]);
  const out: number[] = [];
  const walk = (p: number) => { out.push(p); for (const k of kids.get(p) ?? []) walk(k); };
  walk(root);
  return out;
}

/**
 * CPU seconds used so far by the tree under `root`: each live process's own time and that of the children it
 * reaped. A child that exits between two samples moves from "live" to its parent's reaped time, so deltas hold.
 */
export function treeCpuSeconds(root: number): number {
  return processTree(root).reduce((a, p) => a + (readStat(p)?.cpuTicks ?? 0), 0) / TICKS_PER_S;
}

/** Sum of VmRSS over the tree under `root`, MB. */
export function treeRssMb(root: number): number {
  return processTree(root).reduce((a, p) => {
    try {
      return a + vmRssMb(p);
    } catch {
      return a; // exited since the listing
    }
  }, 0);
}
