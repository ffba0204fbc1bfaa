// rtnetlink requests (hex derived field by field from the UAPI structs) and decoders (bytes captured from the kernel
// by integration/netlink/capture-fixtures.ts, kernel 6.x).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { hex, parseMessages } from '../../agent/src/datapath/netlink/codec.ts';
import * as link from '../../agent/src/datapath/netlink/link.ts';
import * as addr from '../../agent/src/datapath/netlink/addr.ts';
import * as route from '../../agent/src/datapath/netlink/route.ts';
import { isNetlinkError } from '../../agent/src/datapath/netlink/errors.ts';

const fixtures = JSON.parse(readFileSync(new URL('./fixtures/kernel.json', import.meta.url), 'utf8')) as { captured: Record<string, string[]> };
const messages = (name: string) => fixtures.captured[name]!.flatMap((h) => parseMessages(Buffer.from(h, 'hex')));
const H = (s: string) => hex(s).toString('hex');

const encoders: Array<{ name: string; build: () => Buffer; hex: string }> = [
  {
    name: 'RTM_NEWLINK veth, peer in another netns (VETH_INFO_PEER + IFLA_NET_NS_FD), MTU to both ends, peer MAC',
    build: () => link.newVeth(1, { name: 'h1', mtu: 1400, peerName: 'eth0', peerNetnsFd: 7, peerMac: '0a:00:00:00:00:05' }),
    hex: `80000000 1000 0506 01000000 00000000
          00 00 0000 00000000 00000000 00000000
          0700 0300 683100 00
          0800 0400 78050000
          5000 1200
            0900 0100 7665746800 000000
            4000 0200
              3c00 0100
                00 00 0000 00000000 00000000 00000000
                0900 0300 6574683000 000000
                0800 0400 78050000
                0a00 0100 0a0000000005 0000
                0800 1c00 07000000`,
  },
  {
    name: 'RTM_NEWLINK veth, host MAC + txqueuelen, peer in the same namespace (no fd)',
    build: () => link.newVeth(2, { name: 'a', mac: '02:00:00:00:00:01', txQueueLen: 1000, peerName: 'b' }),
    hex: `6c000000 1000 0506 02000000 00000000
          00 00 0000 00000000 00000000 00000000
          0600 0300 6100 0000
          0a00 0100 020000000001 0000
          0800 0d00 e8030000
          3000 1200
            0900 0100 7665746800 000000
            2000 0200
              1c00 0100
                00 00 0000 00000000 00000000 00000000
                0600 0300 6200 0000`,
  },
  {
    name: 'RTM_NEWLINK vlan: parent in IFLA_LINK, kind vlan, IFLA_VLAN_ID u16 in IFLA_INFO_DATA',
    build: () => link.newVlan(1, { name: 'eth1.100', parentIndex: 7, id: 100 }),
    hex: `54000000 1000 0506 01000000 00000000
          00 00 0000 00000000 00000000 00000000
          0d00 0300 657468312e31303000 000000
          0800 0500 07000000
          1c00 1200
            0900 0100 766c616e00 000000
            0c00 0200
              0600 0100 6400 0000`,
  },
  {
    name: 'RTM_NEWLINK set: rename by index + MAC + MTU + up in one message',
    build: () => link.setLink(3, { index: 5, newName: 'eth0', mac: '0a:58:0a:10:00:05', mtu: 1400, up: true }),
    hex: `40000000 1000 0500 03000000 00000000
          00 00 0000 05000000 01000000 01000000
          0900 0300 6574683000 000000
          0a00 0100 0a580a100005 0000
          0800 0400 78050000`,
  },
  {
    name: 'RTM_NEWLINK set: down by name, alias, move to netns fd 9',
    build: () => link.setLink(4, { name: 'vh1', up: false, alias: 'x', netnsFd: 9 }),
    hex: `38000000 1000 0500 04000000 00000000
          00 00 0000 00000000 00000000 01000000
          0800 0300 76683100
          0600 1400 7800 0000
          0800 1c00 09000000`,
  },
  {
    name: 'RTM_DELLINKPROP: one alternative name of link 7, in IFLA_PROP_LIST flagged NLA_F_NESTED (the kernel requires it)',
    build: () => link.delAltname(7, 7, 'eth1'),
    hex: `30000000 6d00 0500 07000000 00000000
          00 00 0000 07000000 00000000 00000000
          1000 3480
            0900 3500 6574683100 000000`,
  },
  {
    name: 'RTM_DELLINK by name',
    build: () => link.delLink(5, { name: 'vh1' }),
    hex: `28000000 1100 0500 05000000 00000000
          00 00 0000 00000000 00000000 00000000
          0800 0300 76683100`,
  },
  {
    name: 'RTM_GETLINK by name, stats skipped (IFLA_EXT_MASK = RTEXT_FILTER_SKIP_STATS)',
    build: () => link.getLink(6, { name: 'eth0' }),
    hex: `34000000 1200 0100 06000000 00000000
          00 00 0000 00000000 00000000 00000000
          0900 0300 6574683000 000000
          0800 1d00 08000000`,
  },
  {
    name: 'RTM_GETLINK dump (NLM_F_DUMP)',
    build: () => link.getLink(7),
    hex: `28000000 1200 0103 07000000 00000000
          00 00 0000 00000000 00000000 00000000
          0800 1d00 08000000`,
  },
  {
    name: 'RTM_GETLINK dump of one kind (IFLA_LINKINFO / IFLA_INFO_KIND after the ext mask)',
    build: () => link.getLink(7, undefined, 'vlan'),
    hex: `38000000 1200 0103 07000000 00000000
          00 00 0000 00000000 00000000 00000000
          0800 1d00 08000000
          1000 1200
            0900 0100 766c616e00 000000`,
  },
  {
    name: 'RTM_NEWADDR IPv4 /16: IFA_LOCAL, IFA_ADDRESS, computed broadcast, EXCL',
    build: () => addr.newAddr(8, 2, { cidr: '10.16.0.5/16' }),
    hex: `30000000 1400 0506 08000000 00000000
          02 10 00 00 02000000
          0800 0200 0a100005
          0800 0100 0a100005
          0800 0400 0a10ffff`,
  },
  {
    name: 'RTM_NEWADDR IPv4 /32: no broadcast; replace',
    build: () => addr.newAddr(9, 3, { cidr: '192.168.1.1/32' }, true),
    hex: `28000000 1400 0505 09000000 00000000
          02 20 00 00 03000000
          0800 0200 c0a80101
          0800 0100 c0a80101`,
  },
  {
    name: 'RTM_NEWADDR IPv6 nodad: ifa_flags and IFA_FLAGS carry IFA_F_NODAD',
    build: () => addr.newAddr(10, 2, { cidr: 'fd00::5/64', nodad: true }),
    hex: `48000000 1400 0506 0a000000 00000000
          0a 40 02 00 02000000
          1400 0200 fd000000000000000000000000000005
          1400 0100 fd000000000000000000000000000005
          0800 0800 02000000`,
  },
  {
    name: 'RTM_NEWADDR IPv4 noprefixroute: 0x200 is above ifa_flags\' 8 bits, so only IFA_FLAGS carries it; replace',
    build: () => addr.newAddr(12, 2, { cidr: '172.30.50.101/24', noprefixroute: true }, true),
    hex: `38000000 1400 0505 0c000000 00000000
          02 18 00 00 02000000
          0800 0200 ac1e3265
          0800 0100 ac1e3265
          0800 0400 ac1e32ff
          0800 0800 00020000`,
  },
  {
    name: 'RTM_NEWADDR IPv4 with a prefix-route metric: IFA_RT_PRIORITY',
    build: () => addr.newAddr(13, 2, { cidr: '10.6.0.2/32', metric: 100 }),
    hex: `30000000 1400 0506 0d000000 00000000
          02 20 00 00 02000000
          0800 0200 0a060002
          0800 0100 0a060002
          0800 0900 64000000`,
  },
  {
    name: 'RTM_DELADDR IPv4',
    build: () => addr.delAddr(11, 2, '10.16.0.5/16'),
    hex: `28000000 1500 0500 0b000000 00000000
          02 10 00 00 02000000
          0800 0200 0a100005
          0800 0100 0a100005`,
  },
  {
    name: 'RTM_GETADDR dump IPv6 on link 2',
    build: () => addr.getAddrs(12, 6, 2),
    hex: `18000000 1600 0103 0c000000 00000000  0a 00 00 00 02000000`,
  },
  {
    name: 'RTM_NEWROUTE default via 10.16.0.1 dev 2 (main, boot, universe, unicast)',
    build: () => route.newRoute(13, { gateway: '10.16.0.1', dev: 'eth0' }, 2),
    hex: `34000000 1800 0506 0d000000 00000000
          02 00 00 00 fe 03 00 01 00000000
          0800 0f00 fe000000
          0800 0500 0a100001
          0800 0400 02000000`,
  },
  {
    name: 'RTM_NEWROUTE replace, onlink, table 1000 (rtm_table 0 + RTA_TABLE), metric, IPv6 /48',
    build: () => route.newRoute(14, { dst: 'fd00:1::/48', gateway: 'fd00::1', dev: 'eth0', onlink: true, table: 1000, metric: 10 }, 4, true),
    hex: `5c000000 1800 0505 0e000000 00000000
          0a 30 00 00 00 03 00 01 04000000
          0800 0f00 e8030000
          1400 0100 fd000001000000000000000000000000
          1400 0500 fd000000000000000000000000000001
          0800 0400 04000000
          0800 0600 0a000000`,
  },
  {
    name: 'RTM_NEWROUTE device route 10.20.0.0/16 dev 3: scope link',
    build: () => route.newRoute(15, { dst: '10.20.0.0/16', dev: 'x' }, 3),
    hex: `34000000 1800 0506 0f000000 00000000
          02 10 00 00 fe 03 fd 01 00000000
          0800 0f00 fe000000
          0800 0100 0a140000
          0800 0400 03000000`,
  },
  {
    name: 'RTM_DELROUTE default IPv4: scope nowhere, protocol and type unspecified (wildcards)',
    build: () => route.delRoute(16, { family: 4 }, undefined),
    hex: `24000000 1900 0500 10000000 00000000
          02 00 00 00 fe 00 ff 00 00000000
          0800 0f00 fe000000`,
  },
  {
    name: 'RTM_GETROUTE dump IPv4 table 100 (strict-check filter)',
    build: () => route.getRoutes(17, 4, 100),
    hex: `24000000 1a00 0103 11000000 00000000
          02 00 00 00 00 00 00 00 00000000
          0800 0f00 64000000`,
  },
  {
    name: 'RTM_NEWRULE from 10.16.0.5/32 lookup 100 priority 1000',
    build: () => route.newRule(18, { family: 4, src: '10.16.0.5/32', table: 100, priority: 1000 }),
    hex: `34000000 2000 0506 12000000 00000000
          02 00 20 00 64 00 00 01 00000000
          0800 0f00 64000000
          0800 0600 e8030000
          0800 0200 0a100005`,
  },
  {
    name: 'RTM_DELRULE IPv6 fwmark/mask + iif',
    build: () => route.delRule(19, { family: 6, table: 300, fwmark: 0x4000, fwmask: 0xc000, iif: 'ovn0' }),
    hex: `40000000 2100 0500 13000000 00000000
          0a 00 00 00 00 00 00 01 00000000
          0800 0f00 2c010000
          0800 0a00 00400000
          0800 1000 00c00000
          0900 0300 6f766e3000 000000`,
  },
  {
    name: 'RTM_NEWRULE from 10.16.0.0/16 lookup 1000 priority 1500 proto 107 (table > 255: header 0, FRA_TABLE; FRA_PROTOCOL u8)',
    build: () => route.newRule(22, { family: 4, src: '10.16.0.0/16', table: 1000, priority: 1500, protocol: 107 }),
    hex: `3c000000 2000 0506 16000000 00000000
          02 00 10 00 00 00 00 01 00000000
          0800 0f00 e8030000
          0800 0600 dc050000
          0800 0200 0a100000
          0500 1500 6b 000000`,
  },
  {
    name: 'RTM_DELRULE IPv6 /128 with protocol (narrows the kernel\'s match)',
    build: () => route.delRule(23, { family: 6, src: 'fd00:10:16::5/128', table: 1000, priority: 1500, protocol: 107 }),
    hex: `48000000 2100 0500 17000000 00000000
          0a 00 80 00 00 00 00 01 00000000
          0800 0f00 e8030000
          0800 0600 dc050000
          1400 0200 fd000010 00160000 00000000 00000005
          0500 1500 6b 000000`,
  },
  {
    name: 'RTM_NEWNEIGH permanent (CREATE|REPLACE)',
    build: () => route.newNeigh(20, 2, { dev: 'eth0', ip: '10.16.0.1', mac: '0a:58:0a:10:00:01' }),
    hex: `30000000 1c00 0505 14000000 00000000
          02 00 0000 02000000 8000 00 00
          0800 0100 0a100001
          0a00 0200 0a580a100001 0000`,
  },
  {
    name: 'RTM_DELNEIGH IPv6',
    build: () => route.delNeigh(21, 2, 'fe80::1'),
    hex: `30000000 1d00 0500 15000000 00000000
          0a 00 0000 02000000 0000 00 00
          1400 0100 fe800000000000000000000000000001`,
  },
];

for (const e of encoders) {
  test(`encode ${e.name}`, () => {
    assert.equal(e.build().toString('hex'), H(e.hex));
  });
}

const rejects: Array<[string, () => unknown, RegExp]> = [
  ['interface name of 16 bytes', () => link.newVeth(1, { name: 'a234567890123456', peerName: 'b' }), /1\.\.15 bytes/],
  ['peer name of 16 bytes', () => link.newVeth(1, { name: 'a', peerName: '0123456789abcdef' }), /1\.\.15 bytes/],
  ['empty name', () => link.delLink(1, { name: '' }), /1\.\.15 bytes/],
  ['name with slash', () => link.getLink(1, { name: 'a/b' }), /characters/],
  ['kind filter on a get by name', () => link.getLink(1, { name: 'a' }, 'vlan'), /applies to a dump/],
  ['VLAN id 0', () => link.newVlan(1, { name: 'a.0', parentIndex: 2, id: 0 }), /1\.\.4094/],
  ['VLAN id 4095', () => link.newVlan(1, { name: 'a.4095', parentIndex: 2, id: 4095 }), /1\.\.4094/],
  ['VLAN without parent', () => link.newVlan(1, { name: 'a.5', parentIndex: 0, id: 5 }), /parent index/],
  ['MTU 0', () => link.newVeth(1, { name: 'a', peerName: 'b', mtu: 0 }), /MTU/],
  ['MTU 1400.5', () => link.setLink(1, { name: 'a', mtu: 1400.5 }), /MTU/],
  ['bad MAC', () => link.setLink(1, { name: 'a', mac: '0a:58:0a:10:00' }), /invalid MAC/],
  ['altname with a slash', () => link.delAltname(1, 2, 'a/b'), /bad alternative name/],
  ['altname of 128 bytes', () => link.delAltname(1, 2, 'a'.repeat(128)), /bad alternative name/],
  ['rename without index', () => link.setLink(1, { name: 'a', newName: 'b' }), /index/],
  ['address without prefix', () => addr.newAddr(1, 2, { cidr: '10.0.0.1' }), /missing \/prefix/],
  ['prefix 33', () => addr.newAddr(1, 2, { cidr: '10.0.0.1/33' }), /0\.\.32/],
  ['nodad on IPv4', () => addr.newAddr(1, 2, { cidr: '10.0.0.1/24', nodad: true }), /IPv6 only/],
  ['route with host bits', () => route.newRoute(1, { dst: '10.0.0.1/24', gateway: '10.0.0.254' }, undefined), /host bits/],
  ['route family mismatch', () => route.newRoute(1, { dst: '10.0.0.0/24', gateway: 'fd00::1' }, undefined), /family/],
  ['default route without family', () => route.newRoute(1, { dev: 'eth0' }, 2), /gateway or a family/],
  ['unicast route without gw or dev', () => route.newRoute(1, { dst: '10.0.0.0/8' }, undefined), /gateway or a device/],
  ['rule protocol out of range', () => route.newRule(1, { family: 4, src: '10.0.0.1/32', table: 100, protocol: 256 }), /protocol/],
  ['rule family mismatch', () => route.newRule(1, { family: 6, src: '10.0.0.1/32', table: 100 }), /IPv6/],
  ['neighbour bad IP', () => route.newNeigh(1, 2, { dev: 'eth0', ip: '10.0.0.256', mac: '0a:00:00:00:00:01' }), /invalid IP/],
];
for (const [name, fn, re] of rejects) {
  test(`bad input is refused before sending (EINVAL): ${name}`, () => {
    assert.throws(fn, (e: unknown) => isNetlinkError(e, 'EINVAL') && re.test((e as Error).message));
  });
}

test('decode captured RTM_NEWLINK: veth eth0 in the pod netns', () => {
  const [m] = messages('getlink_eth0');
  const l = link.decodeLink(m!);
  assert.equal(l.name, 'eth0');
  assert.equal(l.kind, 'veth');
  assert.equal(l.mtu, 1400);
  assert.equal(l.mac, '0a:58:0a:10:00:05');
  assert.equal(l.up, true);
  assert.equal(l.alias, 'tmp-c');
  assert.equal(l.txQueueLen, 1000);
  assert.equal(typeof l.link, 'number'); // peer index in the host netns
  assert.equal(l.linkNetnsId !== undefined, true);
  assert.equal(l.tunType, undefined);
});

test('decode captured RTM_NEWLINK: tap device (kind tun, IFLA_TUN_TYPE tap), down', () => {
  const l = link.decodeLink(messages('getlink_tap0')[0]!);
  assert.equal(l.name, 'tap0');
  assert.equal(l.kind, 'tun');
  assert.equal(l.tunType, 'tap');
  assert.equal(l.up, false);
});

test('decode captured RTM_GETADDR dump: v4 with label, v6 nodad permanent, link-local', () => {
  const all = messages('getaddr_dump').filter((m) => m.type === 20).map(addr.decodeAddr);
  const v4 = all.find((a) => a?.address === '10.16.0.5');
  assert.deepEqual(v4 && { f: v4.family, p: v4.prefixLen, label: v4.label, perm: v4.permanent, brd: v4.broadcast }, { f: 4, p: 16, label: 'eth0', perm: true, brd: '10.16.255.255' });
  const v6 = all.find((a) => a?.address === 'fd00:10:16::5');
  assert.ok(v6);
  assert.equal(v6.prefixLen, 64);
  assert.equal(v6.flags & 0x02, 0x02, 'IFA_F_NODAD');
  assert.equal(v6.tentative, false);
  assert.ok(all.some((a) => a?.family === 6 && a.address.startsWith('fe80::') && a.scope === 253));
  assert.ok(all.some((a) => a?.address === '127.0.0.1') === false, 'lo is down and has no address in a new netns');
});

test('decode captured RTM_GETROUTE dump (all tables): default via gw, table 100 route, connected and local routes', () => {
  const rs = messages('getroute4_dump').filter((m) => m.type === 24).map(route.decodeRoute).filter((r) => r !== null);
  const def = rs.find((r) => r.dst === null && r.table === 254);
  assert.equal(def?.gateway, '10.16.0.1');
  assert.equal(def?.protocol, 3);
  const t100 = rs.find((r) => r.table === 100);
  assert.deepEqual(t100 && [t100.dst, t100.gateway], ['192.168.0.0/24', '10.16.0.1']);
  const conn = rs.find((r) => r.dst === '10.16.0.0/16' && r.table === 254);
  assert.deepEqual(conn && [conn.scope, conn.protocol, conn.prefSrc], [253, 2, '10.16.0.5']);
  assert.ok(rs.some((r) => r.table === 255 && r.type === 2), 'local table route of the address');
});

test('decode captured RTM_GETRULE dump: defaults plus from 10.16.0.5 lookup 100 prio 1000', () => {
  const rules = messages('getrule4_dump').filter((m) => m.type === 32).map(route.decodeRule).filter((r) => r !== null);
  const mine = rules.find((r) => r.table === 100);
  assert.deepEqual(mine && [mine.src, mine.priority, mine.action], ['10.16.0.5/32', 1000, 1]);
  assert.deepEqual(rules.filter((r) => r.table !== 100).map((r) => r.table).sort((a, b) => a - b), [253, 254, 255]);
  // FRA_PROTOCOL: the kernel's own rules say kernel (2), one added without a protocol says unspec (0)
  assert.equal(mine?.protocol, 0);
  assert.deepEqual(rules.filter((r) => r.table !== 100).map((r) => r.protocol), [2, 2, 2]);
  // (every rule carries FRA_SUPPRESS_PREFIXLEN = -1, i.e. unset: not an extra selector)
  assert.ok(rules.every((r) => r.other === undefined && r.invert === undefined && r.tos === undefined), 'plain rules: nothing unmodelled');
});

test('decode RTM_NEWRULE: protocol, tos, `not`, and attributes not modelled are listed in other', () => {
  // from 10.16.0.0/16 tos 0x10 not lookup 1000 prio 1500 proto 107, plus FRA_IP_PROTO (22) = 6 and FRA_GOTO (4);
  // FRA_SUPPRESS_PREFIXLEN (14) = -1 is "unset" and not listed
  const m = parseMessages(hex(`54000000 2000 0200 01000000 00000000
    02 00 10 10 00 00 00 01 02000000
    0800 0f00 e8030000
    0800 0600 dc050000
    0800 0200 0a100000
    0500 1500 6b 000000
    0500 1600 06 000000
    0800 0400 d0070000
    0800 0e00 ffffffff`))[0]!;
  assert.deepEqual(route.decodeRule(m), { family: 4, table: 1000, action: 1, protocol: 107, tos: 0x10, invert: true, other: [4, 22],
    src: '10.16.0.0/16', priority: 1500 });
});

test('encode then decode a rule: the selector, table > 255 and protocol survive', () => {
  const m = parseMessages(route.newRule(5, { family: 6, src: 'fd00:10:16::/64', table: 70000, priority: 7, protocol: 107 }))[0]!;
  assert.deepEqual(route.decodeRule(m), { family: 6, table: 70000, action: 1, protocol: 107, src: 'fd00:10:16::/64', priority: 7 });
});

test('decode captured RTM_GETNEIGH dump: permanent entry', () => {
  const ns = messages('getneigh4_dump').filter((m) => m.type === 28).map(route.decodeNeigh);
  assert.deepEqual(ns.map((n) => n && [n.ip, n.mac, n.state]), [['10.16.0.1', '0a:58:0a:10:00:01', 0x80]]);
});

test('decoders refuse short fixed headers', () => {
  const short = { type: 16, flags: 0, seq: 1, pid: 0, payload: Buffer.alloc(4) };
  assert.throws(() => link.decodeLink(short), /short ifinfomsg/);
  assert.throws(() => addr.decodeAddr(short), /short ifaddrmsg/);
  assert.throws(() => route.decodeRoute(short), /short rtmsg/);
});

test('encode RTM_GETNEIGH dump filtered by link: header index 0, NDA_IFINDEX attribute (strict checking)', () => {
  assert.equal(route.getNeighs(22, 4, 3).toString('hex'), H(`24000000 1e00 0103 16000000 00000000
    02 00 0000 00000000 0000 00 00
    0800 0800 03000000`));
});
