// Waiting for kernel state as events, not polls: subscribe first, then look, then look again only when an event
// (or a resync) of the watched namespaces arrives, until the state is there or the bound passes. Written against
// the `Netlink` port, so the kernel path and FakeNetlink wait the same way.
import type { EventGroup, Netlink, NetlinkEvent, Netns } from './port.ts';

export interface Watch {
  netns: Netns;
  groups: readonly EventGroup[];
  /** events that can change the answer (default: all of the groups); a resync always counts */
  relevant?: (e: NetlinkEvent) => boolean;
}

/**
 * Resolves with the first non-null `probe()` result, or null when `timeoutMs` passed first. Probes run one at a
 * time: events during a probe coalesce into one more probe. Probe errors reject.
 */
export async function waitForState<T>(nl: Netlink, watches: readonly Watch[], probe: () => Promise<T | null>, timeoutMs: number): Promise<T | null> {
  let wake: (() => void) | undefined;
  let dirty = false;
  const subs = watches.map((w) => nl.subscribe({ netns: w.netns, groups: w.groups }, (e) => {
    if (e.kind !== 'resync' && w.relevant && !w.relevant(e)) return;
    dirty = true;
    wake?.();
  }));
  let timer: NodeJS.Timeout | undefined;
  let expired = false;
  const timeout = new Promise<void>((r) => { timer = setTimeout(() => { expired = true; r(); }, Math.max(0, timeoutMs)); });
  try {
    await Promise.all(subs.map((s) => s.ready));
    for (;;) {
      dirty = false;
      const r = await probe();
      if (r !== null) return r;
      if (expired) return null;
      if (!dirty) await Promise.race([new Promise<void>((res) => { wake = res; }), timeout]);
      wake = undefined;
      if (expired && !dirty) return null;
    }
  } finally {
    clearTimeout(timer);
    for (const s of subs) s.close();
  }
}

export interface DadState { ok: boolean; tentative: string[]; dadFailed: string[] }

/** The link's IPv6 addresses leave the tentative state (RFC 4862 DAD), or one fails DAD; bounded by timeoutMs. */
export async function waitIPv6Dad(nl: Netlink, netns: Netns, dev: string, opts: { timeoutMs?: number } = {}): Promise<DadState> {
  let last: DadState = { ok: false, tentative: [], dadFailed: [] };
  const r = await waitForState(nl, [{ netns, groups: ['address'], relevant: (e) => e.kind === 'address' && e.address.family === 6 }], async () => {
    const v6 = await nl.listAddresses(netns, { dev, family: 6 });
    const dadFailed = v6.filter((a) => a.dadFailed).map((a) => a.address);
    const tentative = v6.filter((a) => a.tentative && !a.dadFailed).map((a) => a.address);
    last = { ok: dadFailed.length === 0 && tentative.length === 0, tentative, dadFailed };
    return dadFailed.length > 0 || tentative.length === 0 ? last : null;
  }, opts.timeoutMs ?? 5000);
  return r ?? last;
}

/**
 * A veth end and its peer in the agent's namespace both report carrier (IFF_RUNNING), i.e. the kernel's linkwatch
 * has attached their real qdiscs. Returns whether they did within boundMs (the caller goes on either way).
 */
export async function waitCarrier(nl: Netlink, netns: Netns, dev: string, boundMs: number): Promise<{ ok: boolean; podRunning?: boolean; hostRunning?: boolean }> {
  let last: { ok: boolean; podRunning?: boolean; hostRunning?: boolean } = { ok: false };
  const links = (e: NetlinkEvent): boolean => e.kind === 'link';
  const r = await waitForState(nl, [{ netns, groups: ['link'], relevant: links }, { netns: null, groups: ['link'], relevant: links }], async () => {
    const pod = await nl.getLink(netns, dev);
    const host = pod?.link !== undefined ? await nl.getLinkByIndex(null, pod.link) : null;
    const ok = !!pod?.running && (!host || host.kind !== 'veth' || host.running);
    last = { ok, podRunning: pod?.running, hostRunning: host?.running };
    return ok ? last : null;
  }, boundMs);
  return r ?? last;
}
