// Pure parts of the pod-side helpers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RFC5227, sysctlFile } from '../../agent/src/datapath/podnet/podside.ts';
import { isNetlinkError } from '../../agent/src/datapath/netlink/errors.ts';

const keys: Array<[string, string]> = [
  ['net.ipv4.ip_forward', '/proc/sys/net/ipv4/ip_forward'],
  ['net/ipv4/conf/eth0.100/rp_filter', '/proc/sys/net/ipv4/conf/eth0.100/rp_filter'],
  ['/proc/sys/net/ipv6/conf/all/disable_ipv6', '/proc/sys/net/ipv6/conf/all/disable_ipv6'],
];
for (const [k, f] of keys) test(`sysctl key ${k}`, () => assert.equal(sysctlFile(k), f));

for (const bad of ['', 'net/../../etc/passwd', 'net//x', 'net.ipv4..x']) {
  test(`sysctl key ${JSON.stringify(bad)} is refused`, () => assert.throws(() => sysctlFile(bad), (e) => isNetlinkError(e, 'EINVAL')));
}

test('RFC 5227 default timing', () => {
  assert.deepEqual(RFC5227, { probeWaitMs: 1000, probeNum: 3, probeMinMs: 1000, probeMaxMs: 2000, announceWaitMs: 2000 });
});
