// Pods on a real node: busybox from the local image (imagePullPolicy: Never), bound with nodeName (no scheduler
// runs), a short grace period so deletes finish in seconds. The kubelet sets their phase, IP and exit codes.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeApi } from '../bed/kubeapi.ts';
import { waitFor } from '../bed/exec.ts';
import { BUSYBOX_IMAGE } from './node.ts';

export interface BusyboxPod {
  name: string;
  namespace?: string;
  nodeName: string;
  /** The container's command (default: sleep for an hour). */
  command?: string[];
  restartPolicy?: 'Always' | 'Never';
  annotations?: Record<string, string>;
  hostPort?: number;
  /** Container ports (instead of `hostPort`), e.g. a hostPort that differs from the containerPort. */
  ports?: { containerPort: number; hostPort?: number; protocol?: 'TCP' | 'UDP' }[];
  /** The container's readinessProbe, as in the Pod spec (e.g. `{ httpGet: { path, port } }`). */
  readinessProbe?: Record<string, unknown>;
}

export async function createBusyboxPod(api: KubeApi, p: BusyboxPod): Promise<{ uid: string }> {
  const ns = p.namespace ?? 'default';
  const pod = await api.post(`/api/v1/namespaces/${ns}/pods`, {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: p.name, namespace: ns, ...(p.annotations ? { annotations: p.annotations } : {}) },
    spec: {
      nodeName: p.nodeName,
      restartPolicy: p.restartPolicy ?? 'Always',
      terminationGracePeriodSeconds: 2,
      // the node keeps its not-ready taint (no node lifecycle controller runs); nodeName skips scheduling anyway
      tolerations: [{ operator: 'Exists' }],
      containers: [{
        name: 'c', image: BUSYBOX_IMAGE, imagePullPolicy: 'Never',
        command: p.command ?? ['sleep', '3600'],
        ...(p.hostPort ? { ports: [{ containerPort: p.hostPort, hostPort: p.hostPort, protocol: 'TCP' }] } : {}),
        ...(p.ports ? { ports: p.ports.map((x) => ({ protocol: 'TCP', ...x })) } : {}),
        ...(p.readinessProbe ? { readinessProbe: p.readinessProbe } : {}),
      }],
    },
  });
  return { uid: pod.metadata.uid as string };
}

export interface PodStatus {
  phase?: string;
  conditions?: { type: string; status: string; reason?: string }[];
  podIP?: string;
  podIPs?: { ip: string }[];
  containerStatuses?: { restartCount?: number; state?: { terminated?: { exitCode: number } } }[];
}

export async function podStatus(api: KubeApi, name: string, namespace = 'default'): Promise<PodStatus> {
  return (await api.get(`/api/v1/namespaces/${namespace}/pods/${name}`)).status ?? {};
}

/** Waits for phase Running with an IP (the kubelet reports it from the CNI result). */
export async function waitRunning(api: KubeApi, name: string, timeoutMs = 300_000, namespace = 'default'): Promise<PodStatus> {
  return waitFor(`pod ${name} Running`, async () => {
    const s = await podStatus(api, name, namespace);
    if (s.phase === 'Failed') throw new Error(`pod ${name} failed: ${JSON.stringify(s)}`);
    return s.phase === 'Running' && s.podIP ? s : undefined;
  }, timeoutMs, 250);
}

/** Waits for a restartPolicy=Never pod to finish; returns its phase and the container's exit code. */
export async function waitFinished(api: KubeApi, name: string, timeoutMs = 300_000, namespace = 'default'): Promise<{ phase: string; exitCode?: number }> {
  return waitFor(`pod ${name} finished`, async () => {
    const s = await podStatus(api, name, namespace);
    if (s.phase !== 'Succeeded' && s.phase !== 'Failed') return undefined;
    return { phase: s.phase, exitCode: s.containerStatuses?.[0]?.state?.terminated?.exitCode };
  }, timeoutMs, 250);
}

/** Deletes a pod (the kubelet stops it within its grace period) and waits until the object is gone. */
export async function deleteAndWait(api: KubeApi, name: string, timeoutMs = 120_000, namespace = 'default'): Promise<void> {
  await api.delete(`/api/v1/namespaces/${namespace}/pods/${name}`).catch(() => undefined);
  await waitFor(`pod ${name} gone`, async () => {
    try {
      await api.get(`/api/v1/namespaces/${namespace}/pods/${name}`);
      return false;
    } catch (e) {
      return (e as { status?: number }).status === 404;
    }
  }, timeoutMs, 250);
}

/**
 * The container's output, read from the kubelet's log files (the apiserver cannot reach this kubelet: the node IP
 * lives inside the node namespace). CRI log lines are `<time> <stream> <F|P> <text>`; the text is returned.
 */
export function podLog(podLogsDir: string, name: string, namespace = 'default', container = 'c'): string {
  const dir = readdirSync(podLogsDir).find((d) => d.startsWith(`${namespace}_${name}_`));
  if (!dir) return `(no log dir for ${namespace}/${name} in ${podLogsDir})`;
  const cdir = join(podLogsDir, dir, container);
  if (!existsSync(cdir)) return '(no container log yet)';
  return readdirSync(cdir).filter((f) => f.endsWith('.log')).sort()
    .map((f) => readFileSync(join(cdir, f), 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ').slice(3).join(' ')).join('\n'))
    .join('\n');
}
