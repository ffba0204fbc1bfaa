// Upstream kube-ovn-cni's node "sysctl" gauges (spec §8.1), read at scrape time instead of on a 3 s timer:
// a scrape sees the values of that moment and an idle agent does no work. Missing files skip their gauge
// (as upstream). Parsers are pure and exported for tests; file paths are relative to `procRoot`.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Gauge, type Registry } from 'prom-client';

export interface NodeSysctlOptions {
  hostname: string;
  /** Default `/proc`. */
  procRoot?: string;
  /** Default `/etc/resolv.conf`. */
  resolvConf?: string;
}

/** Single-value sysctls: gauge name -> path under procRoot. */
export const SINGLE_VALUE_SYSCTLS: Readonly<Record<string, string>> = {
  tcp_tw_recycle: 'sys/net/ipv4/tcp_tw_recycle',
  tcp_mtu_probing: 'sys/net/ipv4/tcp_mtu_probing',
  nf_conntrack_tcp_be_liberal: 'sys/net/netfilter/nf_conntrack_tcp_be_liberal',
  bridge_nf_call_iptables: 'sys/net/bridge/bridge-nf-call-iptables',
  max_size: 'sys/net/ipv6/route/max_size',
};

export const NO_ADDITIONAL_SEARCH_DOMAIN = 'no additional search domain';

/** `/proc/sys/...` single integer. */
export function parseIntValue(text: string): number | null {
  const t = text.trim();
  if (!/^-?\d+$/.test(t)) return null;
  return Number(t);
}

/** Whitespace-separated integers (`ip_local_port_range`: 2, `tcp_mem`: 3). */
export function parseInts(text: string, n: number): number[] | null {
  const parts = text.trim().split(/\s+/);
  if (parts.length !== n || !parts.every((p) => /^\d+$/.test(p))) return null;
  return parts.map(Number);
}

/** `InCsumErrors` of the `Udp:` lines of `/proc/net/snmp` (what `netstat -us` prints); 0 when absent. */
export function parseUdpInCsumErrors(snmp: string): number {
  const lines = snmp.split('\n').filter((l) => l.startsWith('Udp: '));
  if (lines.length < 2) return 0;
  const names = lines[0]!.trim().split(/\s+/);
  const values = lines[1]!.trim().split(/\s+/);
  const i = names.indexOf('InCsumErrors');
  if (i < 0) return 0;
  const v = Number(values[i]);
  return Number.isFinite(v) ? v : 0;
}

/** Search domains of resolv.conf (the last `search` line wins, as in the resolver). */
export function parseSearchDomains(resolv: string): string {
  let domains: string[] = [];
  for (const raw of resolv.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    if (/^search\s/.test(line)) domains = line.split(/\s+/).slice(1);
  }
  return domains.length > 0 ? domains.join(' ') : NO_ADDITIONAL_SEARCH_DOMAIN;
}

async function read(path: string): Promise<string | null> {
  try { return await readFile(path, 'utf8'); } catch { return null; }
}

/** Registers the upstream sysctl gauges on `registry`; each reads its file(s) when scraped. */
export function registerNodeSysctlGauges(registry: Registry, opts: NodeSysctlOptions): void {
  const proc = opts.procRoot ?? '/proc';
  const host = opts.hostname;
  const registers = [registry];

  new Gauge({
    name: 'ip_local_port_range', help: 'value of /proc/sys/net/ipv4/ip_local_port_range (in labels; value 1)',
    labelNames: ['hostname', 'start', 'end'], registers,
    async collect() {
      this.reset();
      const v = parseInts((await read(join(proc, 'sys/net/ipv4/ip_local_port_range'))) ?? '', 2);
      if (v) this.set({ hostname: host, start: String(v[0]), end: String(v[1]) }, 1);
    },
  });
  new Gauge({
    name: 'checksum_err_count', help: 'UDP InCsumErrors of /proc/net/snmp (netstat -us)', labelNames: ['hostname'], registers,
    async collect() {
      this.reset();
      const t = await read(join(proc, 'net/snmp'));
      if (t !== null) this.set({ hostname: host }, parseUdpInCsumErrors(t));
    },
  });
  new Gauge({
    name: 'dns_search_domain', help: 'search domains of /etc/resolv.conf (in the additional label; value 1)',
    labelNames: ['hostname', 'additional'], registers,
    async collect() {
      this.reset();
      const t = await read(opts.resolvConf ?? '/etc/resolv.conf');
      if (t !== null) this.set({ hostname: host, additional: parseSearchDomains(t) }, 1);
    },
  });
  for (const [name, rel] of Object.entries(SINGLE_VALUE_SYSCTLS)) {
    new Gauge({
      name, help: `value of /proc/${rel}`, labelNames: ['hostname'], registers,
      async collect() {
        this.reset();
        const v = parseIntValue((await read(join(proc, rel))) ?? '');
        if (v !== null) this.set({ hostname: host }, v);
      },
    });
  }
  new Gauge({
    name: 'tcp_mem', help: 'value of /proc/sys/net/ipv4/tcp_mem (in labels; value 1)',
    labelNames: ['hostname', 'minimum', 'pressure', 'maximum'], registers,
    async collect() {
      this.reset();
      const v = parseInts((await read(join(proc, 'sys/net/ipv4/tcp_mem'))) ?? '', 3);
      if (v) this.set({ hostname: host, minimum: String(v[0]), pressure: String(v[1]), maximum: String(v[2]) }, 1);
    },
  });
}
