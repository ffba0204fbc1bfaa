// Memory under many large requests (issue 14 item 5): an agent process (the test entry point with the in-memory
// FakeBackend: the request path is the production one, no datapath; the image's Node flags and environment) gets N simultaneous forwarded ADD calls whose
// stdin is just under the shim's 1 MiB limit, each sent in full at connect, the way N shims would. The rise is the
// agent's VmHWM (peak RSS) after the burst minus its VmRSS at rest before it: an upper bound of what the burst took.
import { request } from 'node:http';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startAgentProcess, stopAgent, tempDir } from '../cni/lib.ts';
import { imageNodeEnv, imageNodeFlags } from '../e2e/agent-harness.ts';
import { MAX_STDIN_BYTES } from '../../agent/src/cni/dispatcher.ts';
import { CALL_PATH, EXIT_HEADER } from '../../agent/src/server/cni-server.ts';

const statusKb = (pid: number, field: 'VmRSS' | 'VmHWM'): number => {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} for pid ${pid}`);
  return Number(m[1]);
};

function call(socketPath: string, body: Buffer): Promise<{ status: number; exit: string | undefined; text: string }> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: CALL_PATH, method: 'POST', agent: false,
      headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => { if (text.length < 300) text += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, exit: res.headers[EXIT_HEADER] as string | undefined, text }));
    });
    req.on('error', (e) => resolve({ status: 0, exit: undefined, text: String(e) }));
    req.end(body);
  });
}

/** One forwarded ADD whose stdin (a valid netconf padded with a string) is `stdinBytes` long. */
function forwardedAdd(socket: string, i: number, stdinBytes: number): Buffer {
  const head = { cniVersion: '1.0.0', name: 'kube-ovn', type: 'kube-ovn', server_socket: socket, pad: '' };
  const pad = Math.max(0, stdinBytes - JSON.stringify(head).length);
  const stdin = JSON.stringify({ ...head, pad: 'x'.repeat(pad) });
  return Buffer.from(JSON.stringify({
    env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: `koamem${i}`, CNI_NETNS: `/var/run/netns/koamem${i}`, CNI_IFNAME: 'eth0',
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=mem${i}`, CNI_PATH: '/opt/cni/bin' },
    stdin,
  }));
}

export interface RssRise { idleMb: number; peakMb: number; riseMb: number; ok: number; n: number; bodyBytes: number; firstFailure?: string }

/** `n` simultaneous forwarded ADDs of `stdinBytes` each against a fresh agent process; every one must answer exit 0. */
export async function rssRiseUnderBodies(n = 100, stdinBytes = MAX_STDIN_BYTES - 1024): Promise<RssRise> {
  const dir = await tempDir('koaft-mem-');
  const sock = join(dir, 'agent.sock');
  const a = startAgentProcess(['--bind-socket', sock, '--cni-del-queue-dir', join(dir, 'q')], 
    // the Node flags and environment the image runs the agent with: V8's heap limits and glibc's arenas decide how
    // much of a burst's garbage stays resident
    { nodeArgs: imageNodeFlags(), env: imageNodeEnv() });
  try {
    await a.waitFor(/CNI server listening/);
    const pid = a.proc.pid!;
    // a few small calls first: lazy initialisation (lazily compiled functions, first-use caches) is not the burst's cost
    for (let i = 0; i < 5; i++) await call(sock, forwardedAdd(sock, 1000 + i, 1024));
    await new Promise((r) => setTimeout(r, 200));
    const idleKb = statusKb(pid, 'VmRSS');
    const bodies = Array.from({ length: n }, (_, i) => forwardedAdd(sock, i, stdinBytes));
    const answers = await Promise.all(bodies.map((b) => call(sock, b)));
    const peakKb = statusKb(pid, 'VmHWM');
    const good = (r: { status: number; exit: string | undefined }): boolean => r.status === 200 && r.exit === '0';
    const bad = answers.find((r) => !good(r));
    return { idleMb: idleKb / 1024, peakMb: peakKb / 1024, riseMb: (peakKb - idleKb) / 1024, ok: answers.filter(good).length, n,
      bodyBytes: bodies[0]!.length,
      ...(bad ? { firstFailure: `HTTP ${bad.status} exit ${bad.exit}: ${bad.text}; agent warnings: ${JSON.stringify(a.lines.filter((l) => Number(l.level) >= 40)).slice(0, 1500)}` } : {}) };
  } finally {
    await stopAgent(a);
    await rm(dir, { recursive: true, force: true });
  }
}
