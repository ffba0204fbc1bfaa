// kubelet probes and hostPort on the real node with the real kube-ovn-controller (the bring-up of controller.test.ts).
// - Readiness: a busybox `httpd` pod with an httpGet readinessProbe turns Ready. The kubelet probes from the node's
//   network namespace, so the probe only reaches the pod through the agent's ovn0 and its host routes to the pod
//   subnet; the pod's httpd log shows the probe requests and their source, an address of the node. A pod whose probe
//   port has no listener stays not Ready, with the kubelet reporting "connection refused" (the probe reached the pod).
// - hostPort: the conflist our install-cni.sh path wrote chains `portmap` after `kube-ovn`; portmap installs the DNAT
//   for the pod's hostPort in the node's nat table; a connect to <node IP>:<hostPort> from the node itself (OUTPUT)
//   and from a client namespace routed through the node (PREROUTING) gets the pod's answer. Deleting the pod
//   removes the DNAT (portmap's DEL in the chain) and every DEL is answered ok.
// Generous bounds: a loaded 2-core machine.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bed, BedNode } from '../bed/bed.ts';
import { waitFor } from '../bed/exec.ts';
import { addAddress, addRoute, addVeth, createNetns, newPrefix, type Netns } from '../bed/netns.ts';
import { downRealNode, upRealCluster, type RealCluster } from './cluster.ts';
import { upstreamMissing } from './controller.ts';
import { countOf, type DaemonSetAgent } from './daemonset.ts';
import { waitDels, waitLspsRemoved, waitNoPodPorts } from './deletion.ts';
import type { RealNode } from './node.ts';
import { createBusyboxPod, deleteAndWait, podLog, podStatus, waitRunning, type PodStatus } from './pods.ts';

let bed: Bed;
let node: BedNode;
let rn: RealNode;
let agent: DaemonSetAgent;
let cluster: RealCluster | undefined;
let prefix: string;
let client: Netns | undefined;
// built by `npm run setup` unless KOA_BUILD_UPSTREAM=0: without it every test here is reported as skipped, with this reason
const skip = upstreamMissing();

const HTTP_PORT = 8080;
const HOST_PORT = 38080;
// the client namespace's link to the node (a routed neighbour of the node, like a host on another segment)
const CLIENT_NODE_SIDE = '172.31.253.1';
const CLIENT_IP = '172.31.253.2';
const probe = { httpGet: { path: '/probe.txt', port: HTTP_PORT }, periodSeconds: 2, timeoutSeconds: 5, failureThreshold: 3, successThreshold: 1 };
// httpd -vv logs `<client ip>:<port>: url:<path>` for each request to stderr (the container log)
const httpd = (name: string) => ['sh', '-c', [
  'mkdir -p /www',
  `echo "served by ${name}" > /www/index.html`,
  'echo ok > /www/probe.txt',
  `exec httpd -f -vv -p ${HTTP_PORT} -h /www`,
].join(' && ')];

before(async () => {
  if (skip) return;
  prefix = newPrefix('koaph');
  cluster = await upRealCluster(prefix);
  ({ bed, node, agent, rn } = cluster);
}, { timeout: 900_000 });

after(async () => {
  try {
    await client?.delete();
  } finally {
    await downRealNode(prefix, cluster);
  }
  // the kubelet's cgroupRoot (/<prefix>kubelet) is gone from every hierarchy, the cgroup2 one included
  if (prefix) {
    const left = readdirSync('/sys/fs/cgroup').flatMap((h) => {
      try {
        return readdirSync(join('/sys/fs/cgroup', h)).filter((d) => d.startsWith(prefix)).map((d) => `${h}/${d}`);
      } catch {
        return [];
      }
    });
    assert.deepEqual(left, [], 'no cgroup of the node is left');
  }
}, { timeout: 300_000 });

const ready = (s: PodStatus) => s.conditions?.find((c) => c.type === 'Ready')?.status;

/** `<ip>` of every `<ip>:<port>: url:<path>` line in the pod's httpd log. */
function requestSources(name: string, path: string): string[] {
  const re = new RegExp(`^(\\S+):\\d+: url:${path.replace(/[.]/g, '\\.')}$`, 'gm');
  return [...podLog(rn.podLogsDir, name).matchAll(re)].map((m) => m[1]!.replace(/^\[?(?:::ffff:)?|\]$/g, ''));
}

/** The node's nat table as iptables-save prints it, from both back ends (portmap and the agent may pick either). */
async function natRules(): Promise<string> {
  let out = '';
  for (const save of ['iptables-legacy-save', 'iptables-nft-save']) {
    out += (await node.ns.exec([save, '-t', 'nat'], { allowFail: true, timeoutMs: 30_000 })).stdout;
  }
  return out;
}

async function curl(ns: { exec: Netns['exec'] }, url: string): Promise<{ ok: boolean; body: string; err: string }> {
  const r = await ns.exec(['curl', '-sS', '-m', '10', '-o', '-', '-w', '\n%{http_code}', url], { allowFail: true, timeoutMs: 20_000 });
  const cut = r.stdout.lastIndexOf('\n');
  return { ok: r.code === 0 && r.stdout.slice(cut + 1) === '200', body: r.stdout.slice(0, Math.max(0, cut)), err: r.stderr.trim() };
}

test('the installed conflist chains portmap after kube-ovn', { skip }, () => {
  const conf = JSON.parse(readFileSync(join(rn.cniConfDir, '01-kube-ovn.conflist'), 'utf8'));
  assert.deepEqual(conf.plugins.map((p: { type: string }) => p.type), ['kube-ovn', 'portmap']);
  assert.deepEqual(conf.plugins[1].capabilities, { portMappings: true });
  assert.ok(existsSync(join(rn.cniBinDir, 'portmap')), 'portmap installed in the node\'s CNI bin dir');
});

test('kubelet readiness probes reach the pods from the node: httpd turns Ready, a pod without a listener does not', { timeout: 900_000, skip }, async () => {
  const api = bed.kube!.api;
  await createBusyboxPod(api, { name: 'web', nodeName: node.name, command: httpd('web'), readinessProbe: probe,
    ports: [{ containerPort: HTTP_PORT, hostPort: HOST_PORT }] });
  await createBusyboxPod(api, { name: 'deaf', nodeName: node.name, readinessProbe: probe });
  const web = await waitRunning(api, 'web');
  const deaf = await waitRunning(api, 'deaf');
  for (const [name, s] of [['web', web], ['deaf', deaf]] as const) {
    const pod = await api.get(`/api/v1/namespaces/default/pods/${name}`);
    assert.equal(s.podIP, pod.metadata.annotations?.['ovn.kubernetes.io/ip_address'], `${name}: the pod IP is the controller's allocation`);
  }

  // the node reaches the pod subnet through the agent's ovn0 route, with the node's InternalIP as the source
  const via = (await node.ns.ip(['-o', 'route', 'get', web.podIP!])).stdout;
  assert.match(via, new RegExp(`dev ovn0 .*src ${rn.nodeIp.replace(/\./g, '\\.')}\\b`), `route from the node to web: ${via}`);

  await waitFor('pod web Ready', async () => ready(await podStatus(api, 'web')) === 'True', 300_000, 500)
    .catch((e: Error) => { throw new Error(`${e.message}\nweb's log:\n${podLog(rn.podLogsDir, 'web')}`); });
  // the probe requests in httpd's log come from an address of the node's network namespace (kubelet's netns)
  const nodeAddrs = (await node.ns.ip(['-o', '-4', 'addr', 'show'])).stdout.split('\n')
    .map((l) => /inet (\S+)\//.exec(l)?.[1]).filter((a): a is string => !!a);
  // (containerd writes the container log a moment after httpd prints a line)
  const sources = new Set(await waitFor('httpd to log a probe', () => {
    const s = requestSources('web', '/probe.txt');
    return s.length ? s : undefined;
  }, 30_000, 250).catch(() => [] as string[]));
  assert.ok(sources.size > 0, `httpd logged the probes:\n${podLog(rn.podLogsDir, 'web')}`);
  for (const s of sources) assert.ok(nodeAddrs.includes(s), `probe source ${s} is an address of the node (${nodeAddrs.join(', ')})`);
  console.log(`# probe sources: ${[...sources].join(', ')} (node addresses ${nodeAddrs.join(', ')})`);

  // the other pod: the kubelet's probe gets "connection refused" from its netns (it reached the pod), never Ready
  const refused = await waitFor('an Unhealthy event of deaf with connection refused', async () => {
    const ev = await api.get(`/api/v1/namespaces/default/events?fieldSelector=${encodeURIComponent('involvedObject.name=deaf')}`);
    return (ev.items as { reason?: string; message?: string }[]).find((e) => e.reason === 'Unhealthy' && /connection refused/.test(e.message ?? ''));
  }, 180_000, 1000);
  console.log(`# deaf: ${refused.message}`);
  const d = await podStatus(api, 'deaf');
  assert.equal(ready(d), 'False', `deaf is not Ready: ${JSON.stringify(d.conditions)}`);
  assert.equal(ready(await podStatus(api, 'web')), 'True', 'web stays Ready');
});

test('hostPort through the chained portmap: <node IP>:<hostPort> reaches the pod from the node and from a routed client', { timeout: 900_000, skip }, async () => {
  const api = bed.kube!.api;
  assert.equal(ready(await podStatus(api, 'web')), 'True', 'the probe test ran');
  const nat = await natRules();
  assert.match(nat, new RegExp(`--dport ${HOST_PORT}\\b`), `portmap's DNAT for the hostPort in the node's nat table:\n${nat}`);
  assert.match(nat, /CNI-HOSTPORT-DNAT/);

  const url = `http://${rn.nodeIp}:${HOST_PORT}/index.html`;
  // from the node's own namespace (locally generated: the OUTPUT chain's DNAT)
  const fromNode = await waitFor(`${url} from the node`, async () => {
    const r = await curl(node.ns, url);
    if (!r.ok) throw new Error(r.err || r.body);
    return r;
  }, 120_000, 1000);
  assert.equal(fromNode.body.trim(), 'served by web');

  // from another namespace routed through the node (arriving traffic: the PREROUTING chain's DNAT)
  client = await createNetns(`${prefix}hpc`);
  await addVeth(node.ns, 'ph-node', client, 'ph-cli');
  await addAddress(node.ns, 'ph-node', `${CLIENT_NODE_SIDE}/24`);
  await addAddress(client, 'ph-cli', `${CLIENT_IP}/24`);
  await addRoute(client, '0.0.0.0/0', CLIENT_NODE_SIDE);
  const fromClient = await waitFor(`${url} from ${CLIENT_IP}`, async () => {
    const r = await curl(client!, url);
    if (!r.ok) throw new Error(r.err || r.body);
    return r;
  }, 120_000, 1000);
  assert.equal(fromClient.body.trim(), 'served by web');
  // the pod saw the client's own address: DNAT to the pod, no masquerade on the way (the container log is written
  // by containerd a moment after httpd prints the line: wait for it)
  const sources = await waitFor(`web's httpd to log a request from ${CLIENT_IP}`, () => {
    const s = requestSources('web', '/index.html');
    return s.includes(CLIENT_IP) ? s : undefined;
  }, 30_000, 250).catch(() => requestSources('web', '/index.html'));
  assert.ok(sources.includes(CLIENT_IP), `web's httpd logged a request from ${CLIENT_IP}: ${sources.join(', ')}\n${podLog(rn.podLogsDir, 'web')}`);
  console.log(`# hostPort request sources: ${[...new Set(sources)].join(', ')}`);
});

test('deleting the pods: portmap\'s DNAT goes with them, every DEL succeeds, no port is left', { timeout: 900_000, skip }, async () => {
  const api = bed.kube!.api;
  const pods = ['web', 'deaf'];
  for (const name of pods) await deleteAndWait(api, name);
  await waitFor('the hostPort DNAT removed', async () => !new RegExp(`--dport ${HOST_PORT}\\b`).test(await natRules()), 120_000, 1000);
  await waitLspsRemoved(bed.central, pods);
  const c = await waitDels(agent, pods.length);
  assert.equal(countOf(c, 'DEL', false), 0, `every DEL answered ok: ${JSON.stringify([...c])}`);
  assert.equal(countOf(c, 'ADD', false), 0, `no failed ADD: ${JSON.stringify([...c])}`);
  await waitNoPodPorts(node.ovs);
});
