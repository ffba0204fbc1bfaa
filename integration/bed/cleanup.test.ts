// The cleanup registry also works when a test process is interrupted (SIGINT) or exits abruptly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { leaks } from './bed.ts';
import { isAlive } from './daemon.ts';
import { newPrefix } from './netns.ts';
import { sleep } from './exec.ts';

const child = new URL('./cleanup-child.ts', import.meta.url).pathname;

for (const mode of ['SIGINT', 'exit'] as const) {
  test(`cleanup registry: ${mode} leaves no namespace, daemon or temp dir`, async () => {
    const prefix = newPrefix('koab');
    const p = spawn(process.execPath, [child, prefix, ...(mode === 'exit' ? ['exit'] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [line] = (await once(p.stdout!, 'data')) as [Buffer];
    const info = JSON.parse(line.toString()) as { pids: number[]; dir: string };
    assert.equal(info.pids.length, 2);
    if (mode === 'SIGINT') {
      // (in `exit` mode the child is already cleaning up by the time we read its line)
      assert.ok(info.pids.every(isAlive), 'daemons running before the interruption');
      assert.equal(leaks(prefix).netns.length, 2);
      p.kill('SIGINT');
    }
    const [code, signal] = (await once(p, 'exit')) as [number | null, string | null];
    assert.equal(code, mode === 'SIGINT' ? 130 : 3, `exit code (signal ${signal})`);
    // SIGKILLed daemons may take a moment to be reaped
    for (let i = 0; i < 50 && info.pids.some(isAlive); i++) await sleep(20);
    assert.ok(info.pids.every((pid) => !isAlive(pid)), 'daemons gone');
    assert.deepEqual(leaks(prefix), { netns: [], tmpDirs: [], processes: [] });
  });
}
