// The first frame a test expects on a wire, as `tcpdump -e` (with the link-level header: MACs, 802.1Q tag) shows it
// inside one of the bed's namespaces. Used where the proof is what crossed the wire: a VLAN tag, a reply's MACs.
import { spawn } from 'node:child_process';
import { waitFor } from './exec.ts';
import { onCleanup, type Netns } from './netns.ts';

/** Captures on `iface` in `ns` until one frame matches `filter`; `send` runs (again) until one is seen. */
export async function firstFrame(ns: Netns, iface: string, filter: string, send: () => Promise<unknown>): Promise<string> {
  const cap = spawn('ip', ['netns', 'exec', ns.name, 'tcpdump', '-l', '-e', '-n', '-i', iface, '-c', '1', filter], { stdio: ['ignore', 'pipe', 'pipe'] });
  onCleanup({ label: 'tcpdump', run: async () => { cap.kill(); }, runSync: () => { cap.kill(); } });
  let out = '';
  let err = '';
  cap.stdout.on('data', (b: Buffer) => { out += b.toString(); });
  cap.stderr.on('data', (b: Buffer) => { err += b.toString(); });
  const exited = new Promise<void>((resolve) => cap.on('close', () => resolve()));
  try {
    await waitFor('tcpdump listening', async () => err.includes('listening on'), 30_000);
    await waitFor(`a frame on ${iface} matching ${filter}`, async () => { await send(); return out.includes('\n'); }, 60_000);
    await exited;
  } finally {
    cap.kill();
  }
  return out.trim();
}
