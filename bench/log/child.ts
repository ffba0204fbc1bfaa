// Child of bench/log.bench.ts: the agent's logger (observe/log.ts) on fd 1, a pipe the parent reads, writing the log
// lines of a burst of CNI calls, one call's lines per turn of the loop; how long each turn held the loop is what a
// concurrent request waits. argv: sync|async calls linesPerCall. The result is one JSON line on stderr (stdout is
// the log): every turn's milliseconds, their p50, p99 and max, and the burst's wall time.
import pino from 'pino';
import { createLogger } from '../../agent/src/observe/log.ts';

const [mode, callsArg, perCallArg] = process.argv.slice(2);
const calls = Number(callsArg);
const perCall = Number(perCallArg);
// async: pino's SonicBoom without sync, flushed on exit (flushSync), what "async with flush on exit" would be
const dest = mode === 'async' ? pino.destination({ dest: 1, sync: false, minLength: 0 }) : undefined;
const log = createLogger(dest ? { destination: dest } : { destination: { fd: 1 } }).logger.child({ module: 'cni' });
const turns: number[] = [];
const t0 = performance.now();
let done = 0;
await new Promise<void>((resolve) => {
  // each call: its lines spread over the turns of the loop, as a request's steps are
  for (let c = 0; c < calls; c++) {
    setImmediate(() => {
      const s = performance.now();
      const fields = { cmd: 'ADD', pod: `default/web-${c}`, containerID: `${c.toString(16).padStart(64, '0')}`, ifName: 'eth0', netns: `/var/run/netns/cni-${c}` };
      for (let l = 0; l < perCall; l++) log.info({ ...fields, step: l, ip: `10.16.${c >> 8}.${c & 255}`, mac: '0a:58:0a:10:00:05' }, 'cni call step done');
      turns.push(performance.now() - s);
      if (++done === calls) resolve();
    });
  }
});
const loopMs = performance.now() - t0;
dest?.flushSync();
turns.sort((a, b) => a - b);
const at = (q: number): number => turns[Math.min(turns.length - 1, Math.ceil(q * turns.length) - 1)]!;
process.stderr.write(JSON.stringify({ loopMs, p50: at(0.5), p99: at(0.99), max: turns.at(-1)!, turns }) + '\n');
