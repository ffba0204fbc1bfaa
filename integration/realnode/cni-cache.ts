// What libcni (inside containerd) keeps of each ADD: one JSON file per attachment under the node's CNI cache dir,
// `/var/lib/cni/results/<network>-<containerID>-<ifname>`, holding the chain's final result and what the call was made
// with (the network config list, CNI_ARGS). On the real node /var is an overlay (holder.sh), so the files are in its
// upper dir and readable from the host. libcni removes a file after a successful DEL of that attachment.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** One cached attachment (libcni's `cniCacheV1`). */
export interface CachedAttachment {
  file: string;
  containerId: string;
  ifName: string;
  networkName: string;
  /** CNI_ARGS as containerd passed them, in order */
  cniArgs: [string, string][];
  /** the network config list the call was made with (the conflist's bytes) */
  config: { cniVersion: string; name: string; plugins: Record<string, unknown>[] };
  /** the chain's final result (what containerd got back) */
  result: Record<string, unknown>;
}

/** The node's cache dir: libcni's default /var/lib/cni, which containerd's CRI plugin keeps. */
export const cacheDir = (varUpper: string): string => join(varUpper, 'lib', 'cni', 'results');

/** Every cached attachment on the node. */
export function cachedAttachments(varUpper: string): CachedAttachment[] {
  const dir = cacheDir(varUpper);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).map((f) => {
    const raw = JSON.parse(readFileSync(join(dir, f), 'utf8')) as {
      containerId: string; ifName: string; networkName: string; cniArgs?: [string, string][]; config: string; result: Record<string, unknown>;
    };
    return {
      file: join(dir, f), containerId: raw.containerId, ifName: raw.ifName, networkName: raw.networkName,
      cniArgs: raw.cniArgs ?? [],
      // a Go []byte: base64 in JSON
      config: JSON.parse(Buffer.from(raw.config, 'base64').toString('utf8')),
      result: raw.result,
    };
  });
}

/**
 * The cached attachment of pod `name` (by the K8S_POD_NAME containerd passed) to `network`, or undefined. containerd
 * also caches each sandbox's `cni-loopback` attachment (its own lo set-up), so the network name matters.
 */
export function cachedFor(varUpper: string, name: string, network = 'kube-ovn', namespace = 'default'): CachedAttachment | undefined {
  const arg = (a: CachedAttachment, k: string) => a.cniArgs.find(([x]) => x === k)?.[1];
  return cachedAttachments(varUpper).find((a) => a.networkName === network && arg(a, 'K8S_POD_NAME') === name && arg(a, 'K8S_POD_NAMESPACE') === namespace);
}

/** Sorts object keys recursively (Go's encoding/json marshals a map with its keys sorted). */
function sortedKeys(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(sortedKeys);
  if (x && typeof x === 'object') return Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => [k, sortedKeys(v)]));
  return x;
}

/**
 * The stdin libcni gives the chain's first plugin for a DEL of this attachment: the plugin's own config with the
 * list's `name` and `cniVersion` injected, re-marshalled from a map (so keys sorted). A 0.3.1 list gets no
 * `prevResult` on DEL (libcni adds it from 0.4.0 on), and a plugin without `capabilities` no `runtimeConfig`.
 */
export function delStdin(a: CachedAttachment): string {
  const plugin = a.config.plugins[0]!;
  if (plugin.capabilities) throw new Error('the first plugin has capabilities: its stdin would carry runtimeConfig');
  return JSON.stringify(sortedKeys({ ...plugin, name: a.config.name, cniVersion: a.config.cniVersion }));
}

/** CNI_ARGS as libcni joins them. */
export const cniArgsEnv = (a: CachedAttachment): string => a.cniArgs.map(([k, v]) => `${k}=${v}`).join(';');
