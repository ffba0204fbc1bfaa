// Child process for cleanup.test.ts: builds part of a bed, reports ready, then idles until a signal arrives
// (or exits by itself with `exit` as argv[3]), so the test can check the exit/signal cleanup path.
import { createNetns } from './netns.ts';
import { startOvs } from './ovs.ts';

const [prefix, mode] = process.argv.slice(2);
if (!prefix) throw new Error('usage: cleanup-child.ts <prefix> [exit]');
await createNetns(`${prefix}pod`);
const ovs = await startOvs({ prefix, name: 'n' });
process.stdout.write(`${JSON.stringify({ pids: ovs.pids(), dir: ovs.dir })}\n`);
if (mode === 'exit') process.exit(3); // skips every await: only the synchronous exit hook can clean up
setInterval(() => {}, 1000);
