// Smoke test of the whole line on the real bed: the agent process runs inside the node namespace (as the DaemonSet
// would on a host) with the bed's kubeconfig and OVS; the real CNI executable runs ADD for a pod netns; the stand-in
// controller annotates the pod while the ADD already waits; the pod pings its OVN gateway; DEL twice; nothing is
// left in OVS or the kernel (checked with ovs-vsctl and ip).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { up, type Bed, type BedNode } from '../bed/bed.ts';
import { followAgentLog, type AgentProc } from '../cni/lib.ts';
import { cleanupAll, createNetns, newPrefix, ping } from '../bed/netns.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = join(ROOT, 'agent', 'src', 'main.ts');
const SHIM = join(ROOT, 'cni-shim', 'kube-ovn');

const procs = new Set<ChildProcess>();
after(async () => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  await cleanupAll();
});

/** `ip netns exec <node> node agent/src/main.ts ...` (ip execs the command: the child PID is the agent's). */
function startAgentInNode(node: BedNode, args: string[]): AgentProc {
  const proc = spawn('ip', ['netns', 'exec', node.ns.name, process.execPath, MAIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.add(proc);
  return { proc, ...followAgentLog(proc, 60_000) };
}

interface ShimRun { code: number | null; stdout: string; ms: number }

/** The real CNI executable, run inside the node namespace like kubelet's runtime would. */
function shim(node: BedNode, env: Record<string, string>, stdin: string): Promise<ShimRun> {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const p = spawn('ip', ['netns', 'exec', node.ns.name, SHIM], { env, stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    p.on('error', rej);
    p.on('close', (code) => res({ code, stdout: out, ms: performance.now() - t0 }));
    p.stdin.end(stdin);
  });
}

const vsctl = (bed: Bed, args: string[]) => bed.nodes[0]!.ovs.vsctl(args);

test('agent in the node namespace wires a pod through the real shim: ADD waits for the annotations, pod pings its gateway, DEL x2 leaves nothing', async (t) => {
  execFileSync('make', ['-s', '-C', join(ROOT, 'cni-shim')], { stdio: 'inherit' });
  const prefix = newPrefix('koap');
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const bed = await up({ prefix, nodes: 1 });
  const node = bed.nodes[0]!;
  const sock = join(dir, 'agent.sock');
  let agent: AgentProc | undefined;
  try {
    const api = bed.kube!.api;
    await api.post('/api/v1/namespaces/default/pods', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p1', namespace: 'default' },
      spec: { nodeName: node.name, containers: [{ name: 'c', image: 'pause' }] } });
    agent = startAgentInNode(node, ['--kubeconfig', bed.kube!.kubeconfig, '--ovs-socket', node.ovs.dbSock, '--node-name', node.name,
      '--bind-socket', sock, '--cni-del-queue-dir', join(dir, 'q'), '--pprof-port=0', '--mtu=1400', '--annotation-wait-timeout=20s',
      '--ovn-installed-timeout=20s', '--gateway-check-timeout=10s']);
    await agent.waitFor(/CNI server listening/);

    const pod = await createNetns(`${prefix}p1`);
    const cid = randomBytes(32).toString('hex');
    const env = (cmd: string) => ({ CNI_COMMAND: cmd, CNI_CONTAINERID: cid, CNI_NETNS: pod.path, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin',
      CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p1' });
    const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'kube-ovn', type: 'kube-ovn', server_socket: sock });

    // ADD starts before the controller has annotated the pod: the agent waits for the annotation as an event
    const adding = shim(node, env('ADD'), conf);
    await new Promise((r) => setTimeout(r, 300));
    const a = await bed.controller!.allocatePod('default', 'p1');
    const annotatedAt = performance.now();
    const add = await adding;
    const afterAnnotationMs = performance.now() - annotatedAt;
    assert.equal(add.code, 0, add.stdout);
    const result = JSON.parse(add.stdout) as { interfaces: { name: string; mac: string; sandbox: string }[]; ips: { address: string; gateway?: string }[] };
    assert.equal(result.interfaces[0]!.name, 'eth0');
    assert.equal(result.interfaces[0]!.mac.toLowerCase(), a.mac.toLowerCase());
    assert.equal(result.interfaces[0]!.sandbox, pod.path);
    assert.deepEqual(result.ips.map((i) => [i.address, i.gateway]), [[`${a.ips[0]}/16`, '10.16.0.1']]);
    t.diagnostic(`ADD: ${add.ms.toFixed(1)} ms total, ${afterAnnotationMs.toFixed(1)} ms after the annotation landed`);

    // the kernel and OVS agree with the result
    const host = `${cid.slice(0, 12)}_h`;
    assert.equal((await vsctl(bed, ['get', 'interface', host, 'external_ids:iface-id'])).replaceAll('"', ''), 'p1.default');
    assert.equal((await vsctl(bed, ['get', 'interface', host, 'external_ids:vendor'])).replaceAll('"', ''), 'kube-ovn');
    assert.equal((await vsctl(bed, ['get', 'interface', host, 'external_ids:ovn-installed'])).replaceAll('"', ''), 'true');
    const addr = JSON.parse((await pod.ip(['-j', 'addr', 'show', 'eth0'])).stdout) as { address: string; mtu: number; addr_info: { local: string }[] }[];
    assert.equal(addr[0]!.address.toLowerCase(), a.mac.toLowerCase());
    assert.equal(addr[0]!.mtu, 1400);
    assert.ok(addr[0]!.addr_info.some((i) => i.local === a.ips[0]));
    assert.equal((await pod.exec(['ethtool', '-k', 'eth0'])).stdout.match(/tx-checksumming: (\w+)/)?.[1], 'off', 'userspace datapath: tx checksum off');

    const pong = await ping(pod, '10.16.0.1');
    assert.ok(pong.ok, pong.output);

    // CHECK with the ADD's result as prevResult
    const check = await shim(node, env('CHECK'), JSON.stringify({ ...JSON.parse(conf), prevResult: result }));
    assert.equal(check.code, 0, check.stdout);

    // a second ADD with the annotations already present (another container of the same pod name after DEL)
    const del = await shim(node, env('DEL'), conf);
    assert.equal(del.code, 0, del.stdout);
    const del2 = await shim(node, env('DEL'), conf);
    assert.equal(del2.code, 0, del2.stdout);
    assert.ok(!(await vsctl(bed, ['list-ports', 'br-int'])).split('\n').includes(host), 'OVS port removed');
    assert.equal((await node.ns.ip(['link', 'show', host], { allowFail: true })).code !== 0, true, 'host veth removed');
    assert.equal((await pod.ip(['link', 'show', 'eth0'], { allowFail: true })).code !== 0, true, 'pod eth0 removed with its peer');
    assert.equal(await vsctl(bed, ['--columns=_uuid', 'find', 'qos', 'external_ids:pod=default/p1']), '');

    const cid2 = randomBytes(32).toString('hex');
    const env2 = (cmd: string) => ({ ...env(cmd), CNI_CONTAINERID: cid2 });
    const add2 = await shim(node, env2('ADD'), conf);
    assert.equal(add2.code, 0, add2.stdout);
    t.diagnostic(`ADD with annotations present: ${add2.ms.toFixed(1)} ms (shim exec to result)`);
    assert.ok((await ping(pod, '10.16.0.1')).ok);
    // DEL after the pod netns is gone still removes the port and the host veth
    await pod.delete();
    const del3 = await shim(node, env2('DEL'), conf);
    assert.equal(del3.code, 0, del3.stdout);
    assert.ok(!(await vsctl(bed, ['list-ports', 'br-int'])).includes(`${cid2.slice(0, 12)}_h`));
    assert.equal((await node.ns.ip(['link', 'show', `${cid2.slice(0, 12)}_h`], { allowFail: true })).code !== 0, true);

    for (const l of agent.lines.filter((x) => x.msg === 'pod NIC configured')) t.diagnostic(`steps (ms): ${JSON.stringify(l.steps)}`);
    // the metrics were fed by the wait stages, the netlink and OVSDB observers and the watches; readiness is green
    const listening = await agent.waitFor(/metrics server listening/);
    const port = String((listening.addresses as string[])[0]).split(':').pop();
    const scrape = async (path: string) => (await node.ns.exec(['curl', '-s', '-w', '\n%{http_code}', `http://127.0.0.1:${port}${path}`])).stdout;
    const metrics = await scrape('/metrics');
    for (const re of [/kube_ovn_agent_cni_wait_duration_seconds_count\{stage="annotation"\} [1-9]/, /kube_ovn_agent_cni_wait_duration_seconds_count\{stage="ovn_installed"\} [1-9]/,
      /kube_ovn_agent_cni_wait_duration_seconds_count\{stage="gateway_check"\} [1-9]/, /kube_ovn_agent_netlink_request_duration_seconds_count\{op="createVeth",result="ok"\} 2/,
      /kube_ovn_agent_ovsdb_request_duration_seconds_count\{[^}]*\} [1-9]/, /kube_ovn_agent_watch_healthy\{resource="pods"\} 1/]) {
      assert.match(metrics, re);
    }
    const ready = await scrape('/readyz?verbose');
    assert.match(ready, /\[\+\]kubernetes-watches ok/);
    assert.match(ready, /\[\+\]node-initialised ok/);
    assert.match(ready, /\[\+\]ovsdb ok/);
    assert.match(ready, /200$/);
    agent.proc.kill('SIGTERM');
    assert.equal(await agent.exited, 0);
  } finally {
    if (agent && agent.proc.exitCode === null && agent.proc.signalCode === null) { agent.proc.kill('SIGKILL'); await agent.exited; }
    await bed.down();
    await rm(dir, { recursive: true, force: true });
  }
});
