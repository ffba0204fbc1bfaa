// Daemons the bed starts detach themselves (OVS/OVN --detach), so they are not our children: we track them
// by the PIDs in their pidfiles and stop exactly those PIDs, never by name.
import { readFileSync } from 'node:fs';
import { sleep } from './exec.ts';

export function readPid(pidfile: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidfile, 'utf8').trim());
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** True while the process exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // field 3 (after the parenthesised comm) is the state; Z = zombie, X = dead
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL and wait again. Resolves once the PID is gone. */
export async function stopPid(pid: number, graceMs = 5000): Promise<void> {
  if (!isAlive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(20);
  if (!isAlive(pid)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  const hard = Date.now() + 3000;
  while (isAlive(pid) && Date.now() < hard) await sleep(20);
  if (isAlive(pid)) throw new Error(`pid ${pid} survived SIGKILL`);
}

/** Exit-time variant: no waiting possible, so SIGKILL right away. */
export function killPidSync(pid: number): void {
  try {
    if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
