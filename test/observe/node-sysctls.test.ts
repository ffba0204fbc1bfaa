import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Registry } from 'prom-client';
import {
  NO_ADDITIONAL_SEARCH_DOMAIN, parseIntValue, parseInts, parseSearchDomains, parseUdpInCsumErrors, registerNodeSysctlGauges,
} from '../../agent/src/observe/node-sysctls.ts';
import { find, parseExposition, value } from './prom-text.ts';

const SNMP = `Ip: Forwarding DefaultTTL
Ip: 1 64
Icmp: InMsgs InErrors InCsumErrors
Icmp: 5 0 9
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 1000 2 3 900 0 0 17 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 0 0 0 0 0 0 4 0 0
`;

test('parsers: integers, tuples, UDP InCsumErrors, search domains', () => {
  assert.equal(parseIntValue('1\n'), 1);
  assert.equal(parseIntValue('abc'), null);
  assert.equal(parseIntValue(''), null);
  assert.deepEqual(parseInts('32768\t60999\n', 2), [32768, 60999]);
  assert.equal(parseInts('1 2 3', 2), null);
  assert.deepEqual(parseInts('1 2 3', 3), [1, 2, 3]);
  assert.equal(parseUdpInCsumErrors(SNMP), 17, 'the Udp line, not Icmp or UdpLite');
  assert.equal(parseUdpInCsumErrors('Udp: InDatagrams\nUdp: 4\n'), 0);
  assert.equal(parseUdpInCsumErrors(''), 0);
  assert.equal(parseSearchDomains('nameserver 10.96.0.10\nsearch a.svc.cluster.local svc.cluster.local # comment\noptions ndots:5\n'),
    'a.svc.cluster.local svc.cluster.local');
  assert.equal(parseSearchDomains('search old\nsearch new1 new2\n'), 'new1 new2');
  assert.equal(parseSearchDomains('nameserver 1.1.1.1\n'), NO_ADDITIONAL_SEARCH_DOMAIN);
});

test('sysctl gauges read a /proc tree at scrape time and skip missing files', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'koa-observe-proc-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const put = (rel: string, text: string): void => {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), text);
  };
  put('sys/net/ipv4/ip_local_port_range', '32768\t60999\n');
  put('sys/net/ipv4/tcp_mtu_probing', '1\n');
  put('sys/net/netfilter/nf_conntrack_tcp_be_liberal', '0\n');
  put('sys/net/bridge/bridge-nf-call-iptables', '1\n');
  put('sys/net/ipv4/tcp_mem', '90000\t120000\t180000\n');
  put('sys/net/ipv6/route/max_size', '16384\n');
  put('net/snmp', SNMP);
  put('resolv.conf', 'search svc.cluster.local\n');
  // tcp_tw_recycle is absent, as on kernels >= 4.12

  const reg = new Registry();
  registerNodeSysctlGauges(reg, { hostname: 'node-a', procRoot: root, resolvConf: join(root, 'resolv.conf') });
  let e = parseExposition(await reg.metrics());
  const h = { hostname: 'node-a' };
  assert.equal(value(e, 'ip_local_port_range', { ...h, start: '32768', end: '60999' }), 1);
  assert.equal(value(e, 'tcp_mtu_probing', h), 1);
  assert.equal(value(e, 'nf_conntrack_tcp_be_liberal', h), 0);
  assert.equal(value(e, 'bridge_nf_call_iptables', h), 1);
  assert.equal(value(e, 'tcp_mem', { ...h, minimum: '90000', pressure: '120000', maximum: '180000' }), 1);
  assert.equal(value(e, 'max_size', h), 16384);
  assert.equal(value(e, 'checksum_err_count', h), 17);
  assert.equal(value(e, 'dns_search_domain', { ...h, additional: 'svc.cluster.local' }), 1);
  assert.equal(e.types.get('tcp_tw_recycle'), 'gauge');
  assert.equal(find(e, 'tcp_tw_recycle').length, 0, 'missing file: no sample');

  // values change between scrapes; old label sets do not linger (reset, as upstream's Reset())
  put('sys/net/ipv4/ip_local_port_range', '1024\t65000\n');
  put('sys/net/ipv4/tcp_tw_recycle', '0\n');
  rmSync(join(root, 'sys/net/ipv6/route/max_size'));
  e = parseExposition(await reg.metrics());
  assert.equal(find(e, 'ip_local_port_range').length, 1);
  assert.equal(value(e, 'ip_local_port_range', { ...h, start: '1024', end: '65000' }), 1);
  assert.equal(value(e, 'tcp_tw_recycle', h), 0);
  assert.equal(find(e, 'max_size').length, 0);
});
