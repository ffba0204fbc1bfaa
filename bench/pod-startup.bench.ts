// Pod start-up on a real node (`npm run bench -- node.pod_startup`): kubelet v1.35.4 + containerd 1.6 + runc in the
// bed node's namespaces, the real kube-ovn-controller v1.16.2 and our agent as the DaemonSet runs it (the bundle at
// the default log level; integration/realnode/cluster.ts). Busybox pods (local image, `imagePullPolicy: Never`, bound
// with nodeName), all on the one node. Times are taken in this process: from just before the pod's POST to the first
// event of a pod watch (`?watch=1` on the namespace's pods) that shows the state.
// The baseline is Debian's `bridge` plugin (+ host-local IPAM, + portmap chained as in our conflist) as the node's
// network: `00-koaps-bridge.conflist` written in front of `01-kube-ovn.conflist` (containerd reads only the first
// file, max_conf_num = 1, and reloads it on a rename or removal in the directory), on the same node in the same run, then
// removed again. The phases alternate: kube-ovn sequential, bridge sequential, bridge burst, kube-ovn burst.
//   node.pod_startup              ms, POST -> phase Running with a pod IP; 20 pods one after another (each Running
//                                 before the next is created), after 2 warm-up pods; baseline: the same with bridge.
//   node.pod_startup.annotation   ms, POST -> the controller's `ovn.kubernetes.io/allocated: "true"` and `ip_address`
//                                 on the pod; the same 20 pods; no baseline (bridge needs no controller).
//   node.pod_startup.add          ms, the agent's handling of each of those pods' ADD: the increase of
//                                 kube_ovn_agent_cni_request_duration_seconds_sum{command="ADD"} (request in to
//                                 answer out, any wait for the annotation included) across that pod's start, one pod
//                                 at a time; no baseline (the bridge plugin reports no duration).
//   node.pod_startup_burst30      ms, 30 pods POSTed at once -> the last of them Running (n = 1: p50 = p99 = the
//                                 total); one warm-up pod Running before; baseline: the same with bridge.
//   node.pod_startup_burst30.pod  ms, per pod of that burst, POST -> Running; baseline: the same with bridge.
// Every pod must reach Running with an address of the plugin in use (kube-ovn: the controller's `ip_address` inside
// 10.16.0.0/16; bridge: 10.88.0.0/16), else the bench fails. Pods are deleted after each phase, and the next phase
// waits for containerd's two later DEL rounds of the deleted sandboxes (≈40 s after the delete; for kube-ovn counted
// from the agent's DELs, for bridge a fixed wait), so they do not fall into the next measurement.
// To stderr: p50/p99 of both plugins, how far each p99 is under the Kubernetes SLO (p99 <= 5 s), the load average.
import { copyFileSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { ClientRequest } from 'node:http';
import { request } from 'node:https';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { sleep, waitFor } from '../integration/bed/exec.ts';
import { newPrefix } from '../integration/bed/netns.ts';
import type { Kube } from '../integration/bed/kube.ts';
import { downRealNode, upRealCluster, type RealCluster } from '../integration/realnode/cluster.ts';
import { upstreamMissing } from '../integration/realnode/controller.ts';
import { createBusyboxPod, deleteAndWait } from '../integration/realnode/pods.ts';
import { percentile, report, type BenchContext } from './lib.ts';

export const ids = [
  'node.pod_startup', 'node.pod_startup.annotation', 'node.pod_startup.add', 'node.pod_startup_burst30', 'node.pod_startup_burst30.pod',
] as const;

const SEQ = Math.max(5, Number(process.env.KOA_BENCH_PS_N) || 20);
const BURST = 30;
const WARMUP = 2;
const SLO_MS = 5000;
const PLUGIN_DIR = process.env.CNI_PLUGINS_DIR ?? '/usr/lib/cni';
const BRIDGE_CONF = '00-koaps-bridge.conflist';
const BRIDGE_CIDR = '10.88.0.0/16';
/** containerd's sandbox clean-up DEL rounds with an empty CNI_NETNS come ≈35–45 s after the pod is gone */
const LATE_DEL_WAIT_MS = Number(process.env.KOA_BENCH_PS_SETTLE_MS) || 50_000;
const RUNNING_TIMEOUT_MS = 180_000;

type Plugin = 'kube-ovn' | 'bridge';
interface Seen { annotatedAt?: number; runningAt?: number; podIP?: string; annotatedIP?: string; failed?: string }

export default async function bench(ctx: BenchContext): Promise<void> {
  if (!ids.some((id) => ctx.wants(id))) return;
  const missing = upstreamMissing();
  if (missing) throw new Error(`node.pod_startup needs the real kube-ovn-controller: ${missing}`);
  const prefix = newPrefix('koaps');
  const load0 = loadavg();
  let cluster: RealCluster | undefined;
  let watch: PodWatch | undefined;
  const t0 = performance.now();
  try {
    cluster = await upRealCluster(prefix);
    const { bed, rn } = cluster;
    const api = bed.kube!.api;
    process.stderr.write(`node.pod_startup: real node up in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    for (const p of ['bridge', 'host-local']) copyFileSync(join(PLUGIN_DIR, p), join(rn.cniBinDir, p));
    watch = await PodWatch.start(bed.kube!);
    const w = watch;
    let seq = 0;
    const live = new Set<string>();
    const created = new Map<string, number>();

    const create = async (name: string): Promise<void> => {
      created.set(name, performance.now());
      live.add(name);
      await createBusyboxPod(api, { name, nodeName: cluster!.node.name });
    };
    /** waits for Running and checks the address came from `plugin`; returns ms from the POST */
    const running = async (name: string, plugin: Plugin): Promise<number> => {
      const s = await w.until(name, (x) => x.runningAt !== undefined, RUNNING_TIMEOUT_MS, 'Running with a pod IP').catch(async (e: unknown) => {
        throw new Error(`${String(e)}\n${await diagnose(cluster!, name)}`);
      });
      if (plugin === 'kube-ovn') {
        if (!s.podIP?.startsWith('10.16.') || s.podIP !== s.annotatedIP) {
          throw new Error(`pod ${name}: IP ${s.podIP} is not the controller's ${s.annotatedIP} (kube-ovn expected)`);
        }
      } else if (!s.podIP?.startsWith('10.88.')) {
        throw new Error(`pod ${name}: IP ${s.podIP} is not from the bridge plugin's ${BRIDGE_CIDR}`);
      }
      return s.runningAt! - created.get(name)!;
    };
    const warmUp = async (plugin: Plugin, n: number) => {
      for (let i = 0; i < n; i++) {
        const name = `ps-w${++seq}`;
        await create(name);
        await running(name, plugin);
      }
    };
    /** deletes every pod of the phase; `settle`: then waits out containerd's later DEL rounds (not after the last phase) */
    const deleteAll = async (plugin: Plugin, settle = true) => {
      const names = [...live];
      live.clear();
      const del0 = plugin === 'kube-ovn' ? countDels(await cluster!.agent.metrics()) : 0;
      await Promise.all(names.map((n) => deleteAndWait(api, n)));
      if (plugin === 'kube-ovn') {
        await waitFor('no pod port left on br-int', async () =>
          (await cluster!.node.ovs.vsctl(['list-ports', 'br-int'])).split('\n').filter((p) => p.endsWith('_h')).length === 0, 60_000, 500);
        // 1 DEL with the netns, then 2 rounds with an empty CNI_NETNS per sandbox
        if (settle) await waitFor('containerd\'s later DEL rounds', async () =>
          countDels(await cluster!.agent.metrics()) - del0 >= 3 * names.length, 120_000, 1000).catch((e: unknown) => {
          process.stderr.write(`node.pod_startup: ${String(e)} (going on)\n`);
        });
      } else if (settle) {
        await sleep(LATE_DEL_WAIT_MS);
      }
    };
    const sequential = async (plugin: Plugin) => {
      await warmUp(plugin, WARMUP);
      const out = { startup: [] as number[], annotation: [] as number[], add: [] as number[], addWait: [] as number[], failedAdds: 0 };
      for (let i = 0; i < SEQ; i++) {
        const name = `ps-${plugin === 'bridge' ? 'b' : 'k'}${++seq}`;
        const m0 = plugin === 'kube-ovn' ? addFigures(await cluster!.agent.metrics()) : undefined;
        await create(name);
        out.startup.push(await running(name, plugin));
        if (m0) {
          const s = w.seen.get(name)!;
          out.annotation.push(s.annotatedAt! - created.get(name)!);
          // the histogram is observed once the answer went out (onResponse): long before the kubelet reports Running
          const m1 = await waitFor(`the agent's ADD of ${name} in its metrics`, async () => {
            const m = addFigures(await cluster!.agent.metrics());
            return m.okCount > m0.okCount ? m : undefined;
          }, 10_000, 100);
          const adds = m1.okCount - m0.okCount;
          if (adds > 1) process.stderr.write(`node.pod_startup: pod ${name} had ${adds} ADDs (a sandbox made again); their mean counted\n`);
          out.add.push(((m1.okSum - m0.okSum) / adds) * 1000);
          out.addWait.push(((m1.annotationWaitSum - m0.annotationWaitSum) / adds) * 1000);
          out.failedAdds += m1.failedCount - m0.failedCount;
        }
      }
      await deleteAll(plugin);
      return out;
    };
    const burst = async (plugin: Plugin, last = false) => {
      await warmUp(plugin, 1);
      const names = Array.from({ length: BURST }, () => `ps-${plugin === 'bridge' ? 'bb' : 'kb'}${++seq}`);
      const m0 = plugin === 'kube-ovn' ? addFigures(await cluster!.agent.metrics()) : undefined;
      const start = performance.now();
      await Promise.all(names.map((n) => create(n)));
      const perPod = await Promise.all(names.map((n) => running(n, plugin)));
      const total = Math.max(...names.map((n) => w.seen.get(n)!.runningAt!)) - start;
      let addMean: number | undefined;
      if (m0) {
        const m1 = await waitFor(`the agent's ${BURST} ADDs of the burst in its metrics`, async () => {
          const m = addFigures(await cluster!.agent.metrics());
          return m.okCount - m0.okCount >= BURST ? m : undefined;
        }, 10_000, 100);
        addMean = ((m1.okSum - m0.okSum) / (m1.okCount - m0.okCount)) * 1000;
        if (m1.failedCount > m0.failedCount) process.stderr.write(`node.pod_startup_burst30: ${m1.failedCount - m0.failedCount} failed ADDs (retried by the kubelet)\n`);
      }
      await deleteAll(plugin, !last);
      return { total, perPod, addMean };
    };
    const setBridge = async (on: boolean) => {
      const conf = join(rn.cniConfDir, BRIDGE_CONF);
      if (on) {
        // containerd 1.6 reloads its CNI config on a Write, Rename or Remove event in the dir, not on a Create (which
        // is all a file moved in gives): written under a name it does not load, then renamed inside the dir
        const tmp = join(rn.cniConfDir, `.${BRIDGE_CONF}.tmp`);
        writeFileSync(tmp, JSON.stringify(bridgeConflist(), null, 2));
        renameSync(tmp, conf);
      } else {
        rmSync(conf);
      }
      // the reload follows the event at once (it logs only at debug level); the warm-up pods' addresses then prove
      // which plugin is in use, and a wrong one fails the bench
      await sleep(1000);
    };

    const kSeq = await sequential('kube-ovn');
    await setBridge(true);
    const bSeq = await sequential('bridge');
    const bBurst = await burst('bridge');
    await setBridge(false);
    const kBurst = await burst('kube-ovn', true);

    const base = (name: string, xs: number[]) => ({ name: `bridge + host-local + portmap as the only conflist, same node, same run: ${name}`, p50: percentile(xs, 50) });
    if (ctx.wants('node.pod_startup')) report('node.pod_startup', 'ms', kSeq.startup, base('create -> Running', bSeq.startup));
    if (ctx.wants('node.pod_startup.annotation')) report('node.pod_startup.annotation', 'ms', kSeq.annotation, null);
    if (ctx.wants('node.pod_startup.add')) report('node.pod_startup.add', 'ms', kSeq.add, null);
    if (ctx.wants('node.pod_startup_burst30')) report('node.pod_startup_burst30', 'ms', [kBurst.total], base('30 at once, all Running', [bBurst.total]));
    if (ctx.wants('node.pod_startup_burst30.pod')) report('node.pod_startup_burst30.pod', 'ms', kBurst.perPod, base('create -> Running per pod of the burst', bBurst.perPod));

    const load1 = loadavg();
    const f = (x: number) => x.toFixed(0);
    const slo = (label: string, k: number[], b: number[]) => {
      const kp = percentile(k, 99);
      const bp = percentile(b, 99);
      return `| ${label} | ${f(percentile(k, 50))} | ${f(kp)} | ${f(SLO_MS - kp)} | ${f(percentile(b, 50))} | ${f(bp)} | ${f(SLO_MS - bp)} |`;
    };
    process.stderr.write([
      '',
      `node.pod_startup, ${new Date().toISOString()}, load average ${load0.map((x) => x.toFixed(1)).join(' ')} before bring-up, ${load1.map((x) => x.toFixed(1)).join(' ')} at the end`,
      `Kubernetes SLO: p99 <= ${SLO_MS} ms; "under" = ${SLO_MS} - p99 (negative: over)`,
      '| figure (ms) | kube-ovn p50 | p99 | under SLO | bridge p50 | p99 | under SLO |',
      '|---|---|---|---|---|---|---|',
      slo(`create -> Running, ${SEQ} one after another`, kSeq.startup, bSeq.startup),
      slo(`create -> Running, per pod of ${BURST} at once`, kBurst.perPod, bBurst.perPod),
      slo(`${BURST} at once, all Running`, [kBurst.total], [bBurst.total]),
      `kube-ovn, ${SEQ} one after another: annotation p50 ${f(percentile(kSeq.annotation, 50))} p99 ${f(percentile(kSeq.annotation, 99))} ms after create; `
        + `the agent's ADD p50 ${f(percentile(kSeq.add, 50))} p99 ${f(percentile(kSeq.add, 99))} ms, of which waiting for the annotation p50 `
        + `${f(percentile(kSeq.addWait, 50))} p99 ${f(percentile(kSeq.addWait, 99))} ms; failed ADDs ${kSeq.failedAdds}`,
      `kube-ovn burst: the agent's ADD mean ${kBurst.addMean === undefined ? '-' : f(kBurst.addMean)} ms`,
      '',
    ].join('\n'));
  } finally {
    watch?.close();
    await downRealNode(prefix, cluster);
  }
}

function bridgeConflist(): unknown {
  return {
    cniVersion: '0.3.1', name: 'koaps-bridge',
    plugins: [
      { type: 'bridge', bridge: 'koaps0', isGateway: true, ipMasq: false, hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: BRIDGE_CIDR }]], routes: [{ dst: '0.0.0.0/0' }] } },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
}

/** Sums of the agent's metrics an ADD adds to (seconds). */
function addFigures(text: string): { okSum: number; okCount: number; failedCount: number; annotationWaitSum: number } {
  const out = { okSum: 0, okCount: 0, failedCount: 0, annotationWaitSum: 0 };
  for (const m of text.matchAll(/^kube_ovn_agent_cni_request_duration_seconds_(sum|count)\{([^}]*)\} (\S+)/gm)) {
    const labels = Object.fromEntries([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (labels.command !== 'ADD') continue;
    const v = Number(m[3]);
    if (labels.result === 'ok') { if (m[1] === 'sum') out.okSum += v; else out.okCount += v; }
    else if (m[1] === 'count') out.failedCount += v;
  }
  const wait = /^kube_ovn_agent_cni_wait_duration_seconds_sum\{stage="annotation"\} (\S+)/m.exec(text);
  if (wait) out.annotationWaitSum = Number(wait[1]);
  return out;
}

function countDels(text: string): number {
  let n = 0;
  for (const m of text.matchAll(/^kube_ovn_agent_cni_request_duration_seconds_count\{([^}]*)\} (\S+)/gm)) {
    if (/command="DEL"/.test(m[1]!)) n += Number(m[2]);
  }
  return n;
}

async function diagnose(c: RealCluster, name: string): Promise<string> {
  const tail = (file: string, n: number, grep?: string) => {
    try { return readFileSync(file, 'utf8').split('\n').filter((l) => !grep || l.includes(grep)).slice(-n).join('\n'); } catch (e) { return String(e); }
  };
  const pod = await c.bed.kube!.api.get(`/api/v1/namespaces/default/pods/${name}`).catch((e: unknown) => String(e));
  return [`pod ${name}: ${JSON.stringify((pod as { status?: unknown }).status ?? pod).slice(0, 1500)}`,
    `--- kubelet.log (${name})\n${tail(c.rn.kubeletLog, 15, name)}`,
    `--- containerd.log (errors)\n${tail(c.rn.containerdLog, 15, 'level=error')}`,
    `--- agent\n${tail(c.agent.proc.log, 20)}`].join('\n');
}

/**
 * The namespace's pods through one watch (reconnected from the last resourceVersion if the server ends it): for each
 * pod the first moment (performance.now()) it was seen with the controller's allocation and seen Running with an IP.
 */
class PodWatch {
  readonly seen = new Map<string, Seen>();
  #rv = '';
  #req: ClientRequest | undefined;
  #closed = false;
  #wake = new Set<() => void>();
  readonly #kube: Kube;
  readonly #ca: string;

  private constructor(kube: Kube) {
    this.#kube = kube;
    this.#ca = readFileSync(kube.caFile, 'utf8');
  }

  static async start(kube: Kube): Promise<PodWatch> {
    const w = new PodWatch(kube);
    const list = await kube.api.get('/api/v1/namespaces/default/pods');
    w.#rv = String(list.metadata.resourceVersion);
    for (const p of list.items ?? []) w.#observe(p);
    await w.#connect();
    return w;
  }

  #connect(): Promise<void> {
    const url = new URL(this.#kube.server);
    return new Promise((resolve, reject) => {
      const req = request({
        host: url.hostname, port: url.port, method: 'GET', ca: this.#ca,
        path: `/api/v1/namespaces/default/pods?watch=1&resourceVersion=${encodeURIComponent(this.#rv)}`,
        headers: { authorization: `Bearer ${this.#kube.adminToken}`, accept: 'application/json' },
      }, (res) => {
        if (res.statusCode !== 200) { reject(new Error(`pod watch: HTTP ${res.statusCode}`)); res.resume(); return; }
        resolve();
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (!line.trim()) continue;
            try {
              this.#event(JSON.parse(line) as { type: string; object: any });
            } catch (e) {
              process.stderr.write(`pod watch: bad event (${String(e)}): ${line.slice(0, 200)}\n`);
            }
          }
        });
        res.on('end', () => this.#again(req));
        res.on('error', () => this.#again(req));
      });
      req.on('error', (e) => { this.#again(req); reject(e); });
      req.end();
      this.#req = req;
    });
  }

  /** the watch `req` ended: connect again (once per request) unless closed */
  #again(req: ClientRequest): void {
    if (this.#closed || this.#req !== req) return;
    this.#req = undefined;
    setTimeout(() => { if (!this.#closed) this.#connect().catch(() => undefined); }, 100);
  }

  #event(ev: { type: string; object: any }): void {
    if (ev.type === 'ERROR') {
      // 410 Gone: start again from a fresh list (nothing of ours is that old, but be correct)
      this.#rv = '';
      return;
    }
    if (ev.object?.metadata?.resourceVersion) this.#rv = String(ev.object.metadata.resourceVersion);
    if (ev.type === 'ADDED' || ev.type === 'MODIFIED') this.#observe(ev.object);
  }

  #observe(pod: any): void {
    const now = performance.now();
    const name = String(pod.metadata.name);
    let s = this.seen.get(name);
    if (!s) this.seen.set(name, (s = {}));
    const ann = pod.metadata.annotations ?? {};
    if (s.annotatedAt === undefined && ann['ovn.kubernetes.io/allocated'] === 'true' && ann['ovn.kubernetes.io/ip_address']) {
      s.annotatedAt = now;
      s.annotatedIP = String(ann['ovn.kubernetes.io/ip_address']);
    }
    const st = pod.status ?? {};
    if (s.runningAt === undefined && st.phase === 'Running' && st.podIP) {
      s.runningAt = now;
      s.podIP = String(st.podIP);
    }
    if (st.phase === 'Failed' || st.phase === 'Succeeded') s.failed ??= `phase ${st.phase}: ${JSON.stringify(st).slice(0, 800)}`;
    for (const f of this.#wake) f();
  }

  /** Resolves with the pod's record once `ok` holds; rejects when the pod ended (Failed/Succeeded) or on timeout. */
  until(name: string, ok: (s: Seen) => boolean, timeoutMs: number, what: string): Promise<Seen> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const s = this.seen.get(name);
        if (s && ok(s)) { done(); resolve(s); return; }
        if (s?.failed) { done(); reject(new Error(`pod ${name} never ${what}: ${s.failed}`)); }
      };
      const timer = setTimeout(() => { done(); reject(new Error(`pod ${name} not ${what} after ${timeoutMs} ms`)); }, timeoutMs).unref();
      const done = () => { clearTimeout(timer); this.#wake.delete(check); };
      this.#wake.add(check);
      check();
    });
  }

  close(): void {
    this.#closed = true;
    this.#req?.destroy();
    this.#req = undefined;
  }
}
