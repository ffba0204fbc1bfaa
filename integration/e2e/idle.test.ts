// An idle agent sleeps: no timer of its own wakes it between reconciler resyncs (issue: "an idle agent makes no
// periodic syscalls faster than its resync period"). strace counts the event loop's epoll waits over 10 s of idle.
// Before: prom-client's event-loop monitor (every 10 ms), Node's HTTP connection sweep (every 1 s), undici's timer
// tick for open watches (every 0.5 s) and client-node re-watching quiet watches (every 30 s): ~1,900 waits in 10 s.
// The count is of wake-ups, not of time, so a busy machine does not change it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { up, type Bed } from '../bed/bed.ts';
import { cleanupAll, newPrefix } from '../bed/netns.ts';
import { buildShim, startNodeAgent, type NodeAgent } from './agent-harness.ts';

let bed: Bed;
let agent: NodeAgent;
const dir = mkdtempSync('/tmp/koaidle-');

before(async () => {
  buildShim();
  bed = await up({ prefix: newPrefix('koaid') });
  agent = await startNodeAgent(bed, bed.nodes[0]!, { logLevel: 'info' });
});
after(async () => {
  await agent?.stop();
  await bed?.down();
  await cleanupAll();
  rmSync(dir, { recursive: true, force: true });
});

/** strace -c -f of the agent for `seconds`: calls per syscall. */
async function straceCounts(pid: number, seconds: number): Promise<{ counts: Map<string, number>; table: string }> {
  const out = join(dir, `strace-${pid}.txt`);
  const p = spawn('strace', ['-c', '-f', '-p', String(pid), '-o', out], { stdio: 'ignore' });
  const exited = new Promise((r) => p.once('exit', r));
  await new Promise((r) => setTimeout(r, seconds * 1000));
  p.kill('SIGINT'); // strace writes its summary when interrupted
  await exited;
  const table = readFileSync(out, 'utf8');
  const counts = new Map<string, number>();
  for (const line of table.split('\n')) {
    const f = line.trim().split(/\s+/);
    // % time, seconds, usecs/call, calls, [errors], syscall
    if (f.length >= 5 && /^\d+$/.test(f[3]!)) counts.set(f[f.length - 1]!, Number(f[3]));
  }
  return { counts, table };
}

describe('an idle agent', () => {
  it('wakes only for its resyncs: under 100 event-loop waits in 10 s', async () => {
    // settle: the first passes of every reconciler, the watches listed and open
    await agent.waitForLog(/node network initialised|node initialised|ready/i, 120_000).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 5000));
    const { counts, table } = await straceCounts(agent.pid, 10);
    console.log(`# strace -c -f over 10 s of idle:\n${table.split('\n').map((l) => `#   ${l}`).join('\n')}`);
    const waits = counts.get('epoll_pwait') ?? counts.get('epoll_wait') ?? 0;
    assert.ok(waits < 100, `event-loop waits in 10 s of idle: ${waits} (a 10 ms timer alone makes 1,000)`);
    assert.equal(agent.alive(), true);
  });
});
