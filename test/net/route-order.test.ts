// kernelRouteOrder against the order this kernel dumped the same routes in (`ip route show dev X` after adding them
// in the order of `added`), IPv4 and IPv6 in one list, as a dual-stack pod's link holds them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { kernelRouteOrder } from '../../agent/src/net/route-order.ts';

const r = (dst: string) => ({ dst });

describe('kernelRouteOrder', () => {
  it('IPv4: by network address, longer prefix first; IPv6: children first, 0-bit side first; IPv4 before IPv6', () => {
    const added = [
      '::/0', '0.0.0.0/0', '10.16.0.0/16', '2001:db8::/32', '10.16.0.0/24', 'fd00:10:16::/48', '10.0.0.0/8', 'fc00::/7', '192.168.0.0/16',
      'fd00:10:16:0:8000::/65', '10.16.5.0/24', 'fd00:10:16::/80', '10.16.0.0/17', 'fd00:10:16::/64', 'fe80::/64',
    ];
    const kernel = [
      '0.0.0.0/0', '10.0.0.0/8', '10.16.0.0/24', '10.16.0.0/17', '10.16.0.0/16', '10.16.5.0/24', '192.168.0.0/16',
      '2001:db8::/32', 'fd00:10:16::/80', 'fd00:10:16:0:8000::/65', 'fd00:10:16::/64', 'fd00:10:16::/48', 'fc00::/7', 'fe80::/64', '::/0',
    ];
    assert.deepEqual(kernelRouteOrder(added.map(r)).map((x) => x.dst), kernel);
  });

  it('a pod NIC: the default route before the connected IPv4 subnet, after the connected IPv6 one', () => {
    const planned = ['10.16.0.0/16', 'fd00:10:16::/64', '0.0.0.0/0', '::/0'].map(r);
    assert.deepEqual(kernelRouteOrder(planned).map((x) => x.dst), ['0.0.0.0/0', '10.16.0.0/16', 'fd00:10:16::/64', '::/0']);
  });

  it('keeps the other fields and does not change its input', () => {
    const input = [{ dst: '10.16.0.0/16', gw: '' }, { dst: '0.0.0.0/0', gw: '10.16.0.1' }];
    const out = kernelRouteOrder(input);
    assert.deepEqual(out, [{ dst: '0.0.0.0/0', gw: '10.16.0.1' }, { dst: '10.16.0.0/16', gw: '' }]);
    assert.equal(input[0]!.dst, '10.16.0.0/16');
  });
});
