// The product's kube-ovn-cni DaemonSet (deploy/kube-ovn-cni-ds.yaml, deploy/rbac.yaml) run from the built image
// by the real kubelet on a real node (node.ts). The manifest is applied as it is, apart from:
//   - the image reference (the archive `npm run image` saved, imported into the node's containerd);
//   - hostPaths that on a real node are node paths, but here would be the host's own (/etc/cni/net.d, /opt/cni/bin,
//     /usr/local/bin, /etc/origin/openvswitch) or are elsewhere on this node (the kubelet's --root-dir): they point at
//     the bed node's private dirs. The rest (/run/..., /var/...) is private already inside the holder.
// What a cluster has and this bed does not, stood in for here and nowhere else:
//   - kube-controller-manager's DaemonSet controller: standInDaemonSetController creates the DaemonSet's pod on the
//     node from the template (owner reference, template labels, nodeName since no scheduler runs) whenever the node
//     has none that is not terminating, as the real controller does after a pod is deleted;
//   - its ServiceAccount and root-CA publishers: the `default` ServiceAccount and kube-root-ca.crt (clusterPrereqs);
//   - kube-proxy: the `kubernetes` Service's ClusterIP, which kubelet hands the pods as KUBERNETES_SERVICE_HOST, is
//     DNATed inside the node namespace to the apiserver's relay on 127.0.0.1 (serviceProxyStandIn).
import { readFileSync } from 'node:fs';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { BedNode } from '../bed/bed.ts';
import { sleep, waitFor } from '../bed/exec.ts';
import type { Kube } from '../bed/kube.ts';
import type { KubeApi } from '../bed/kubeapi.ts';
import { ROOT } from '../e2e/agent-harness.ts';
import type { RealNode } from './node.ts';

// the YAML parser @kubernetes/client-node uses; the raw documents are what kubectl would send
const jsYaml = createRequire(import.meta.url)('js-yaml') as { loadAll(s: string): unknown[] };

export type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [k: string]: unknown }; [k: string]: any };

export const manifest = (file: string): Obj[] => jsYaml.loadAll(readFileSync(join(ROOT, 'deploy', file), 'utf8')) as Obj[];

/** Container paths the bed re-points: host path in the manifest -> the bed node's dir. */
export function nodePaths(rn: RealNode): Record<string, string> {
  const own = (name: string) => {
    const p = join(rn.dir, 'host', name);
    mkdirSync(p, { recursive: true });
    return p;
  };
  return {
    '/etc/cni/net.d': rn.cniConfDir,
    '/opt/cni/bin': rn.cniBinDir,
    '/var/lib/kubelet/pods': join(rn.kubeletDir, 'pods'),
    // containerd creates a missing hostPath source: it would make this on the host's /etc
    '/etc/origin/openvswitch': own('etc-origin-openvswitch'),
    // install-cni.sh copies kubectl-ko there when the image ships it (this one does not)
    '/usr/local/bin': own('usr-local-bin'),
  };
}

/**
 * The manifest's objects with `image` in every container and the hostPaths in `paths` re-pointed; `changes` lists
 * each change (`<field>: <old> -> <new>`), so a test can show that nothing else differs.
 */
export function adaptDaemonSet(docs: Obj[], image: string, paths: Record<string, string>): { objects: Obj[]; changes: string[] } {
  const changes: string[] = [];
  const objects = structuredClone(docs);
  for (const o of objects) {
    if (o.kind !== 'DaemonSet') continue;
    const spec = o.spec.template.spec;
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
      changes.push(`${c.name}.image: ${c.image} -> ${image}`);
      c.image = image;
    }
    for (const v of spec.volumes ?? []) {
      const to = v.hostPath ? paths[v.hostPath.path] : undefined;
      if (to === undefined) continue;
      changes.push(`volume ${v.name}.hostPath.path: ${v.hostPath.path} -> ${to}`);
      v.hostPath.path = to;
    }
  }
  return { objects, changes };
}

const PLURAL: Record<string, string> = {
  ServiceAccount: 'serviceaccounts', ClusterRole: 'clusterroles', ClusterRoleBinding: 'clusterrolebindings', Role: 'roles',
  RoleBinding: 'rolebindings', DaemonSet: 'daemonsets', Service: 'services', ConfigMap: 'configmaps',
};

/** Creates each object (what `kubectl create -f` does), with strict field validation. */
export async function applyObjects(api: KubeApi, objects: Obj[]): Promise<void> {
  for (const o of objects) {
    const base = o.apiVersion === 'v1' ? '/api/v1' : `/apis/${o.apiVersion}`;
    const ns = o.metadata.namespace ? `/namespaces/${o.metadata.namespace}` : '';
    const plural = PLURAL[o.kind];
    if (!plural) throw new Error(`applyObjects: no resource known for kind ${o.kind}`);
    await api.post(`${base}${ns}/${plural}?fieldValidation=Strict`, o);
  }
}

/** What kube-controller-manager publishes: the `default` ServiceAccount of `default`, and kube-root-ca.crt. */
export async function clusterPrereqs(kube: Kube, namespaces = ['default', 'kube-system']): Promise<void> {
  const ca = readFileSync(kube.caFile, 'utf8');
  await kube.api.post('/api/v1/namespaces/default/serviceaccounts', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } });
  for (const ns of namespaces) {
    await kube.api.post(`/api/v1/namespaces/${ns}/configmaps`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kube-root-ca.crt' }, data: { 'ca.crt': ca } });
  }
}

/**
 * kube-proxy's part for the one Service the agent uses: the `kubernetes` Service's ClusterIP:443 sent to the
 * apiserver's relay at 127.0.0.1:<port> in the node namespace. The ClusterIP sits on `lo` (as kube-proxy's IPVS mode
 * puts ClusterIPs on kube-ipvs0), so a route exists before the agent adds the service CIDR's.
 */
export async function serviceProxyStandIn(kube: Kube, node: BedNode): Promise<string> {
  const svc = await waitFor('Service default/kubernetes', () => kube.api.get('/api/v1/namespaces/default/services/kubernetes').catch(() => undefined), 60_000, 250);
  const ip = svc.spec.clusterIP as string;
  const port = (svc.spec.ports as { port: number }[])[0]!.port;
  await node.ns.ip(['addr', 'add', `${ip}/32`, 'dev', 'lo']);
  await node.ns.exec(['iptables', '-w', '-t', 'nat', '-A', 'OUTPUT', '-d', `${ip}/32`, '-p', 'tcp', '--dport', String(port),
    '-j', 'DNAT', '--to-destination', `127.0.0.1:${new URL(kube.server).port}`]);
  return `${ip}:${port}`;
}

export interface DaemonSetPod {
  name: string;
  uid: string;
  deleting: boolean;
  /** the `pod-template-generation` label: the DaemonSet generation whose template made the pod */
  templateGeneration?: string;
  phase?: string;
  ready: boolean;
}

/** The DaemonSet's pods on the node (owned by it), oldest first. */
export async function daemonSetPods(api: KubeApi, namespace: string, name: string): Promise<DaemonSetPod[]> {
  const ds = await api.get(`/apis/apps/v1/namespaces/${namespace}/daemonsets/${name}`);
  const sel = Object.entries(ds.spec.selector.matchLabels as Record<string, string>).map(([k, v]) => `${k}=${v}`).join(',');
  const list = await api.get(`/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent(sel)}`);
  return (list.items as any[])
    .filter((p) => p.metadata.ownerReferences?.some((r: { uid: string }) => r.uid === ds.metadata.uid))
    .sort((a, b) => Date.parse(a.metadata.creationTimestamp) - Date.parse(b.metadata.creationTimestamp))
    .map((p) => ({
      name: p.metadata.name, uid: p.metadata.uid, deleting: !!p.metadata.deletionTimestamp, phase: p.status?.phase,
      templateGeneration: p.metadata.labels?.['pod-template-generation'],
      ready: !!p.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True'),
    }));
}

export interface StandInDaemonSetController {
  /** Names of the pods it created, in order. */
  readonly created: string[];
  stop(): Promise<void>;
}

/**
 * The DaemonSet controller's job for one node: when the node has no pod of the DaemonSet that is not terminating (none
 * yet, or the last one deleted), create one from the template. Like the real controller it does not wait for a
 * terminating pod to be gone, it deletes a Failed pod and creates the next one after a back-off (1 s, doubling up
 * to 60 s here), and with updateStrategy RollingUpdate it deletes a pod made from an older template (e.g. after
 * `kubectl rollout restart`, which stamps an annotation into the template). Polls every 500 ms.
 */
export function standInDaemonSetController(api: KubeApi, namespace: string, name: string, nodeName: string): StandInDaemonSetController {
  const created: string[] = [];
  let stopped = false;
  let failures = 0;
  let backoffMs = 1000;
  let notBefore = 0;
  const loop = (async () => {
    while (!stopped) {
      try {
        const pods = await daemonSetPods(api, namespace, name);
        for (const p of pods.filter((p) => p.phase === 'Failed' && !p.deleting)) {
          await api.delete(`/api/v1/namespaces/${namespace}/pods/${p.name}`).catch(() => undefined);
          notBefore = Date.now() + backoffMs;
          backoffMs = Math.min(backoffMs * 2, 60_000);
        }
        const ds = await api.get(`/apis/apps/v1/namespaces/${namespace}/daemonsets/${name}`);
        // RollingUpdate (maxUnavailable 1, maxSurge 0, one node): a pod of an older template goes, the next one comes
        if (ds.spec.updateStrategy?.type === 'RollingUpdate') {
          for (const p of pods.filter((p) => !p.deleting && p.templateGeneration !== String(ds.metadata.generation))) {
            await api.delete(`/api/v1/namespaces/${namespace}/pods/${p.name}`).catch(() => undefined);
            p.deleting = true;
          }
        }
        if (Date.now() >= notBefore && !pods.some((p) => !p.deleting && p.phase !== 'Failed' && p.phase !== 'Succeeded')) {
          const tpl = ds.spec.template;
          const pod = await api.post(`/api/v1/namespaces/${namespace}/pods`, {
            apiVersion: 'v1', kind: 'Pod',
            metadata: {
              generateName: `${name}-`, namespace,
              labels: { ...tpl.metadata.labels, 'pod-template-generation': String(ds.metadata.generation) },
              ...(tpl.metadata.annotations ? { annotations: tpl.metadata.annotations } : {}),
              ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name, uid: ds.metadata.uid, controller: true, blockOwnerDeletion: true }],
            },
            // no scheduler runs: bound here (the real controller sets a node affinity for the scheduler instead)
            spec: { ...tpl.spec, nodeName },
          });
          created.push(pod.metadata.name as string);
        }
        failures = 0;
      } catch (e) {
        if (++failures >= 20) throw e;
      }
      await sleep(500);
    }
  })();
  loop.catch(() => undefined);
  return {
    created,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}
