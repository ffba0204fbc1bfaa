// IP CR update on ADD (spec §3.3): the kubeovn.io/v1 IP `<pod>.<ns>[.<provider>][.<ifName>]` is created by the
// controller; the agent only GETs it and, when spec.nodeName is not this node, sets spec.nodeName, clears the
// deprecated attach* lists and sets the labels `<subnet>: ""` and `ovn.kubernetes.io/node-name: <node>`, then
// UPDATEs. Never fatal for the ADD (upstream logs and goes on); bounded retries on missing CR, conflicts, errors.

import type { IpCr } from './types.ts';

export const NODE_NAME_LABEL = 'ovn.kubernetes.io/node-name';

export interface IpCrApi {
  /** undefined when the CR does not exist */
  get(name: string): Promise<IpCr | undefined>;
  /** full replace (PUT) with the object's resourceVersion; rejects with a { statusCode: 409 } error on conflict */
  replace(ip: IpCr): Promise<void>;
}

export type IpCrOutcome =
  | { result: 'updated' | 'unchanged'; attempts: number }
  | { result: 'missing' | 'failed'; attempts: number; error: string };

export interface IpCrUpdateOptions {
  /** upstream: 20 */
  readonly attempts?: number;
  /** upstream: 1000 */
  readonly delayMs?: number;
  readonly signal?: AbortSignal;
}

/** The desired CR, or undefined when it already says this node (pure). */
export function ipCrPatched(ip: IpCr, subnet: string, nodeName: string): IpCr | undefined {
  if (ip.spec?.nodeName === nodeName) return undefined;
  return {
    ...ip,
    metadata: { ...ip.metadata, labels: { ...ip.metadata?.labels, [subnet]: '', [NODE_NAME_LABEL]: nodeName } },
    spec: { ...ip.spec, nodeName, attachIps: [], attachMacs: [], attachSubnets: [] },
  };
}

export async function updateIpCr(api: IpCrApi, name: string, subnet: string, nodeName: string,
  options: IpCrUpdateOptions = {}): Promise<IpCrOutcome> {
  const attempts = options.attempts ?? 20;
  const delayMs = options.delayMs ?? 1000;
  let lastError = '';
  let missing = false;
  for (let i = 1; i <= attempts; i++) {
    if (options.signal?.aborted) break;
    try {
      const ip = await api.get(name);
      if (!ip) {
        missing = true;
        lastError = `IP ${name} not found`;
      } else {
        missing = false;
        const next = ipCrPatched(ip, subnet, nodeName);
        if (!next) return { result: 'unchanged', attempts: i };
        await api.replace(next);
        return { result: 'updated', attempts: i };
      }
    } catch (e) {
      missing = false;
      lastError = e instanceof Error ? e.message : String(e);
    }
    if (i < attempts) await sleep(delayMs, options.signal);
  }
  return { result: missing ? 'missing' : 'failed', attempts, error: lastError || 'aborted' };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void { clearTimeout(t); signal?.removeEventListener('abort', done); resolve(); }
    signal?.addEventListener('abort', done, { once: true });
  });
}
