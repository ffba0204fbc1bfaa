// The NIC move on a real kernel and a real OVS (userspace datapath) in namespaces of our own (underlay-bed.ts):
// the bridge shows exactly what the NIC showed, a ping stream from the router loses at most one reply during the
// move, removal gives the NIC back byte for byte, and a kill -9 of the moving process at random instants never
// leaves the node without its addresses or its default route; the journal finishes the move at the next start.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { cleanupAll, newPrefix, settledAddr } from '../bed/netns.ts';
import { sleep, waitFor } from '../bed/exec.ts';
import { warmUp } from '../../agent/src/native.ts';
import { RtNetlink } from '../../agent/src/datapath/netlink/rtnl.ts';
import { FileJournal } from '../../agent/src/node/underlay/journal.ts';
import { restoreNic, transferNic, type TransferDeps } from '../../agent/src/node/underlay/transfer.ts';
import { finishMove } from '../../agent/src/node/underlay/moves.ts';
import { GW, NIC, NODE_IP, REMOTE, inet, journalDir, linkJson, routes, underlayBed, type UnderlayBed } from './underlay-bed.ts';

const prefix = newPrefix('koaul');
const BR = 'br-phys';
let bed: UnderlayBed;
let nl: RtNetlink;
let dir: string;
let d: TransferDeps;

before(async () => {
  await warmUp();
  bed = await underlayBed(prefix);
  nl = new RtNetlink();
  dir = journalDir(prefix);
  d = { netlink: nl, vswitch: bed.vs, journal: new FileJournal(dir), netns: bed.node.path };
});
after(async () => {
  bed?.vs.close();
  nl?.close();
  await cleanupAll();
});

/** ping -i 0.01 from the router to the node for `ms`; resolves with transmitted/received. */
function pingStream(ms: number): Promise<{ transmitted: number; received: number; out: string }> {
  const count = Math.round(ms / 10);
  return new Promise((resolve, reject) => {
    const p = spawn('ip', ['netns', 'exec', bed.router.name, 'ping', '-n', '-q', '-i', '0.01', '-c', String(count), '-W', '1', NODE_IP]);
    let out = '';
    p.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    p.stderr.on('data', (b: Buffer) => { out += b.toString(); });
    p.on('error', reject);
    p.on('close', () => {
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      resolve({ transmitted: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0), out });
    });
  });
}

async function nodePing(addr: string): Promise<boolean> {
  const r = await bed.node.exec(['ping', '-n', '-q', '-c', '2', '-i', '0.2', '-W', '2', addr], { allowFail: true });
  return /\b[12] received/.test(r.stdout);
}

test('transfer under a 10 ms ping stream, then restore: the bridge shows what the NIC showed, the NIC comes back byte for byte', async () => {
  // right after the bed came up the NIC's link-local address can still be in DAD (`tentative`): compare settled links
  const before = { detail: await settledAddr(bed.node, NIC), inet: await inet(bed.node, NIC), routes: await routes(bed.node, NIC), link: await linkJson(bed.node, NIC) };
  assert.equal(before.routes.length >= 4, true, before.routes.join('\n'));
  assert.ok(await nodePing(REMOTE));

  await bed.vs.ensureBridge({ name: BR, datapathType: 'netdev' }, { wait: true });
  const stream = pingStream(3000);
  await sleep(1000);
  const t0 = performance.now();
  await transferNic(d, 'phys', NIC, BR, [0, 100]);
  const ms = performance.now() - t0;
  const p = await stream;
  console.log(`transfer took ${ms.toFixed(1)} ms; ping stream: ${p.transmitted} sent, ${p.received} received`);
  assert.ok(p.transmitted >= 100, p.out);
  assert.ok(p.transmitted - p.received <= 1, `lost ${p.transmitted - p.received} replies: ${p.out}`);

  // the bridge has the NIC's addresses, routes (default included), MAC and MTU, exactly
  assert.deepEqual(await inet(bed.node, BR, NIC), before.inet);
  assert.deepEqual(await routes(bed.node, BR, NIC), before.routes);
  const brLink = await linkJson(bed.node, BR);
  assert.equal(brLink?.address, before.link?.address);
  assert.equal(brLink?.mtu, before.link?.mtu);
  assert.deepEqual(await inet(bed.node, NIC), []);
  assert.equal(await bed.ovs.vsctl(['port-to-br', NIC]), BR);
  assert.equal(await bed.ovs.vsctl(['get', 'Port', NIC, 'trunks']), '[0, 100]');
  assert.ok(await nodePing(REMOTE), 'the node reaches the remote host through the bridge');
  assert.ok(await nodePing(GW));

  const restoreStream = pingStream(3000);
  await sleep(1000);
  await restoreNic(d, 'phys', NIC, BR);
  const q = await restoreStream;
  console.log(`restore ping stream: ${q.transmitted} sent, ${q.received} received`);
  assert.ok(q.transmitted - q.received <= 1, `lost ${q.transmitted - q.received} replies during the restore: ${q.out}`);
  assert.equal(await settledAddr(bed.node, NIC), before.detail);
  assert.deepEqual(await routes(bed.node, NIC), before.routes);
  assert.equal(await linkJson(bed.node, BR), undefined);
  assert.doesNotMatch(await bed.ovs.vsctl(['list-br']), new RegExp(BR));
  assert.deepEqual(await d.journal.list(), []);
  assert.ok(await nodePing(REMOTE));
});

/** All addresses and the default route are on the NIC or the bridge; where they are. */
async function whereIsEverything(): Promise<'nic' | 'bridge' | 'both' | string> {
  const want = [`${NODE_IP}/24`, '172.30.60.10/24'];
  const on = async (dev: string) => (await inet(bed.node, dev)).filter((l) => l.startsWith('inet ')).map((l) => l.split(' ')[1]!);
  const nicA = await on(NIC);
  const brA = (await linkJson(bed.node, BR)) ? await on(BR) : [];
  for (const a of want) if (!nicA.includes(a) && !brA.includes(a)) return `address ${a} on neither (nic ${nicA}, bridge ${brA})`;
  const def = (await bed.node.ip(['-4', 'route', 'show', 'default'])).stdout.trim();
  if (!new RegExp(`dev (${NIC}|${BR})\\b`).test(def)) return `no default route (${JSON.stringify(def)})`;
  const onNic = want.every((a) => nicA.includes(a));
  const onBr = want.every((a) => brA.includes(a));
  return onNic && onBr ? 'both' : onNic ? 'nic' : onBr ? 'bridge' : 'split';
}

async function runChild(op: 'transfer' | 'restore', killAfterMs: number): Promise<'killed' | 'done' | number> {
  const child = spawn(process.execPath, [new URL('./underlay-child.ts', import.meta.url).pathname, bed.ovs.dbSock, bed.node.path, dir, op, NIC, BR],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const seen: string[] = [];
  const waitLine = (l: string) => new Promise<void>((resolve, reject) => {
    if (seen.includes(l)) { resolve(); return; }
    lines.on('line', (x) => { seen.push(x); if (x === l) resolve(); });
    child.once('exit', () => (seen.includes(l) ? resolve() : reject(new Error(`child exited before "${l}"`))));
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await waitLine('ready');
  child.stdin!.write('go\n');
  const t0 = performance.now();
  if (killAfterMs === Infinity) { await waitLine('done'); await exited; return performance.now() - t0; }
  await sleep(killAfterMs);
  const done = seen.includes('done');
  child.kill('SIGKILL');
  await exited;
  return done ? 'done' : 'killed';
}

test('kill -9 of the moving process at 20 random instants: never without addresses or default route; the journal finishes the move', async () => {
  // find out how long a move takes in the child here (from "go" to "done"), to aim the kills inside it
  const tTransfer = await runChild('transfer', Infinity) as number;
  const tRestore = await runChild('restore', Infinity) as number;
  assert.equal(await whereIsEverything(), 'nic');
  const span = Math.max(20, (tTransfer + tRestore) / 2);
  console.log(`child move: transfer ${tTransfer.toFixed(1)} ms, restore ${tRestore.toFixed(1)} ms`);
  let killedMidway = 0;
  for (let i = 0; i < 20; i++) {
    const op = i % 2 === 0 ? 'transfer' : 'restore';
    const at = span * (i + Math.random()) / 20; // stratified: the 20 instants cover the whole move
    const outcome = await runChild(op, at);
    const where = await whereIsEverything();
    assert.ok(['nic', 'bridge', 'both', 'split'].includes(where), `after kill ${i} (${op} at ${at.toFixed(1)} ms): ${where}`);
    const pending = await d.journal.list();
    if (pending.length) killedMidway++;
    // "the next start": finish what the journal names
    for (const rec of pending) await finishMove(d, rec);
    const settled = await whereIsEverything();
    if (op === 'transfer') {
      // finished, or never begun (killed before its first journal write): then move it now for the next restore
      if (settled !== 'bridge') { assert.equal(settled, 'nic', `kill ${i}: ${settled}`); await transferNic(d, 'phys', NIC, BR, [0]); }
    } else if (settled !== 'nic') {
      assert.equal(settled, 'bridge', `kill ${i}: ${settled}`);
      await restoreNic(d, 'phys', NIC, BR);
    }
    assert.equal(await whereIsEverything(), op === 'transfer' ? 'bridge' : 'nic');
    console.log(`kill ${i}: ${op} at ${at.toFixed(1)} ms -> ${outcome}, right after: ${where}, journal: ${pending.map((p) => p.step).join(',') || '-'}`);
  }
  console.log(`${killedMidway} of 20 kills landed inside a move`);
  assert.ok(killedMidway >= 3, `only ${killedMidway} kills landed inside a move`);
  assert.ok(await nodePing(REMOTE));
});
