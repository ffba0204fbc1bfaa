// Result codec over every spec version, in the style of containernetworking's per-version loops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { atLeast, compareVersions, decodeResult, encodeError, encodeResult, parseCidr, VERSION_INFO_JSON } from '../../agent/src/cni/codec.ts';
import { SUPPORTED_VERSIONS, type CniResult } from '../../agent/src/cni/types.ts';
import { AgentError, agentError } from '../../agent/src/errors.ts';

const full: CniResult = {
  interfaces: [{ name: 'eth0', mac: '00:00:00:aa:bb:cc', mtu: 1400, sandbox: '/var/run/netns/koac-x', socketPath: '/s', pciID: '0000:00:01.0' }],
  ips: [
    { address: '10.16.0.5/16', gateway: '10.16.0.1', interface: 0 },
    { address: 'fd00:10:16::5/64', gateway: 'fd00:10:16::1', interface: 0 },
  ],
  routes: [
    { dst: '0.0.0.0/0', gw: '10.16.0.1', mtu: 1300, advmss: 1200, priority: 10, table: 100, scope: 0 },
    { dst: '::/0', gw: 'fd00:10:16::1' },
    { dst: '192.168.0.0/24' },
  ],
  dns: { nameservers: ['10.96.0.10'], domain: 'cluster.local', search: ['svc.cluster.local'], options: ['ndots:5'] },
};

/** What survives a trip through version v (fields the version cannot carry are dropped). */
function expectedAfter(v: (typeof SUPPORTED_VERSIONS)[number]): CniResult {
  if (!atLeast(v, '0.3.0')) {
    return {
      ips: full.ips!.map(({ address, gateway }) => ({ address, gateway: gateway! })),
      routes: [{ dst: '0.0.0.0/0', gw: '10.16.0.1' }, { dst: '192.168.0.0/24' }, { dst: '::/0', gw: 'fd00:10:16::1' }],
      dns: full.dns!,
    };
  }
  if (atLeast(v, '1.0.0')) return full; // libcni prints the 1.1 interface/route fields under 1.0.0 too
  return {
    interfaces: [{ name: 'eth0', mac: '00:00:00:aa:bb:cc', sandbox: '/var/run/netns/koac-x' }],
    ips: full.ips!,
    routes: [{ dst: '0.0.0.0/0', gw: '10.16.0.1' }, { dst: '::/0', gw: 'fd00:10:16::1' }, { dst: '192.168.0.0/24' }],
    dns: full.dns!,
  };
}

for (const v of SUPPORTED_VERSIONS) {
  test(`[${v}] encode carries cniVersion and the version's fields`, () => {
    const o = encodeResult(full, v);
    assert.equal(o.cniVersion, v);
    if (!atLeast(v, '0.3.0')) {
      assert.deepEqual(Object.keys(o).sort(), ['cniVersion', 'dns', 'ip4', 'ip6']);
      assert.deepEqual(o.ip4, { ip: '10.16.0.5/16', gateway: '10.16.0.1', routes: [{ dst: '0.0.0.0/0', gw: '10.16.0.1' }, { dst: '192.168.0.0/24' }] });
      assert.deepEqual(o.ip6, { ip: 'fd00:10:16::5/64', gateway: 'fd00:10:16::1', routes: [{ dst: '::/0', gw: 'fd00:10:16::1' }] });
      return;
    }
    const ips = o.ips as Record<string, unknown>[];
    const ifs = o.interfaces as Record<string, unknown>[];
    if (atLeast(v, '1.0.0')) assert.ok(ips.every((i) => !('version' in i)), 'no version field from 1.0.0 on');
    else assert.deepEqual(ips.map((i) => i.version), ['4', '6']);
    assert.deepEqual(ips.map((i) => i.interface), [0, 0]);
    if (atLeast(v, '1.0.0')) { // the 1.1 fields too, as libcni prints them (codec.ts)
      assert.equal(ifs[0]!.mtu, 1400);
      assert.equal(ifs[0]!.pciID, '0000:00:01.0');
      assert.equal((o.routes as Record<string, unknown>[])[0]!.table, 100);
    } else {
      assert.deepEqual(Object.keys(ifs[0]!).sort(), ['mac', 'name', 'sandbox']);
      assert.deepEqual(Object.keys((o.routes as object[])[0]!).sort(), ['dst', 'gw']);
    }
  });

  test(`[${v}] decode(encode(r)) keeps what the version can carry`, () => {
    const back = decodeResult(JSON.parse(JSON.stringify(encodeResult(full, v))), v);
    assert.deepEqual(back, expectedAfter(v));
  });

  test(`[${v}] an empty result encodes and decodes`, () => {
    const o = encodeResult({}, v);
    assert.equal(o.cniVersion, v);
    const back = decodeResult(o, v);
    assert.deepEqual(back.ips ?? [], []);
  });

  test(`[${v}] converting up to 1.1.0 and back down is stable`, () => {
    const down = encodeResult(full, v);
    const internal = decodeResult(down, v);
    const up = encodeResult(internal, '1.1.0');
    assert.deepEqual(encodeResult(decodeResult(up, '1.1.0'), v), down);
  });

  test(`[${v}] malformed prevResults are code 7 with the path named`, () => {
    const cases: [unknown, RegExp][] = atLeast(v, '0.3.0')
      ? [
          [[], /prevResult must be an object/],
          [{ ips: [{ address: '10.0.0.1' }] }, /prevResult\.ips\[0\]\.address "10\.0\.0\.1" is not a CIDR/],
          [{ ips: [{ address: '10.0.0.1/24', gateway: 'nope' }] }, /gateway/],
          [{ ips: [{ address: '10.0.0.1/24', interface: 3 }] }, /interface 3 is out of range/],
          [{ interfaces: [{ mac: 'x' }] }, /interfaces\[0\]\.name is required/],
          [{ routes: [{ dst: '300.0.0.0/8' }] }, /routes\[0\]\.dst/],
          [{ routes: 'x' }, /routes must be an array/],
          [{ dns: { nameservers: [1] } }, /dns\.nameservers/],
        ]
      : [
          [{ ip4: { ip: 'fd00::1/64' } }, /ip4\.ip "fd00::1\/64" is not an IPv4 CIDR/],
          [{ ip4: 'x' }, /ip4 must be an object/],
        ];
    for (const [x, re] of cases) {
      assert.throws(() => decodeResult(x, v), (e: unknown) => e instanceof AgentError && e.cniCode === 7 && re.test(e.message), JSON.stringify(x));
    }
  });
}

test('0.3.x/0.4.0 ips.version must match the address family', () => {
  assert.throws(() => decodeResult({ ips: [{ version: '6', address: '10.0.0.1/24' }] }, '0.4.0'), /does not match/);
  assert.doesNotThrow(() => decodeResult({ ips: [{ version: '4', address: '10.0.0.1/24' }] }, '0.3.0'));
});

test('versions are ordered', () => {
  assert.ok(compareVersions('0.3.1', '0.4.0') < 0);
  assert.ok(compareVersions('1.1.0', '1.0.0') > 0);
  assert.ok(atLeast('0.4.0', '0.4.0'));
  assert.ok(!atLeast('0.3.1', '0.4.0'));
});

test('VERSION answer lists every supported version and matches the C shim', async () => {
  assert.deepEqual(JSON.parse(VERSION_INFO_JSON), { cniVersion: '1.1.0', supportedVersions: [...SUPPORTED_VERSIONS] });
  const { readFile } = await import('node:fs/promises');
  const c = await readFile(new URL('../../cni-shim/kube-ovn.c', import.meta.url), 'utf8');
  const versions = /#define VERSIONS "(.*)"/.exec(c)![1]!.replace(/\\"/g, '"');
  assert.deepEqual(JSON.parse(versions), [...SUPPORTED_VERSIONS]);
});

test('parseCidr is strict', () => {
  const ok = ['10.0.0.1/0', '10.0.0.1/32', '::/0', 'fd00::1/128', '::ffff:1.2.3.4/96'];
  const bad = ['10.0.0.1', '10.0.0.1/33', 'fd00::1/129', '10.0.0.1/-1', '10.0.0.1/1/2', '/24', 'x/24', '10.0.0.1/ 24', 5, null, '10.0.0.256/24'];
  for (const s of ok) assert.ok(parseCidr(s), s);
  for (const s of bad) assert.equal(parseCidr(s), null, String(s));
});

test('error JSON carries version, code, msg and details', () => {
  assert.deepEqual(encodeError(agentError('KOA_BAD_NETCONF', 'x'), '0.3.1'), { cniVersion: '0.3.1', code: 7, msg: 'invalid network configuration: x' });
  const e = new AgentError('KOA_TRY_AGAIN', 'busy', 'more');
  assert.deepEqual(encodeError(e), { cniVersion: '1.1.0', code: 11, msg: 'busy', details: 'more' });
});
