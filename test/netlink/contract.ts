// The Netlink contract, run against FakeNetlink (test/netlink/contract.test.ts) and against the real kernel in fresh
// namespaces of our own (integration/netlink/contract.test.ts). Both must answer the same, so the fake the pod and
// node tests stand on cannot drift from the kernel. Each case gets two empty namespaces `a` and `b` (only `lo`).
//
// Where the kernel does more than the fake models (IPv6 link-local addresses on up links, local-table routes,
// several RTM_NEWLINK per change), the cases look only at the objects they made.
import assert from 'node:assert/strict';
import { isNetlinkError } from '../../agent/src/datapath/netlink/errors.ts';
import type { Netlink, NetlinkEvent, Subscription } from '../../agent/src/datapath/netlink/port.ts';

export interface ContractEnv {
  nl: Netlink; a: string; b: string;
  /** gives a link an alternative name from outside the port (the product only removes them): `ip link property add` */
  addAltname(netns: string, link: string, altname: string): Promise<void>;
}
/** `needs`: a kernel feature the case needs; the kernel run skips it, with the reason, where the kernel lacks it. */
export type ContractCase = [name: string, run: (env: ContractEnv) => Promise<void>, needs?: { kernel: 'vlan' }];

const code = (errno: string) => (e: unknown): boolean => {
  assert.ok(isNetlinkError(e, errno), `expected ${errno}, got ${String(e)}`);
  return true;
};

/** A pair `h` (in a) / `p` (in b), both up, `p` with 10.1.0.2/24 and fd01::2/64 (no DAD). */
async function pair(nl: Netlink, a: string, b: string): Promise<void> {
  await nl.createVeth({ netns: a, name: 'h', peer: { name: 'p', netns: b } });
  await nl.setLink(a, 'h', { up: true });
  await nl.setLink(b, 'p', { up: true });
  await nl.addAddress(b, 'p', { cidr: '10.1.0.2/24' });
  await nl.addAddress(b, 'p', { cidr: 'fd01::2/64', nodad: true });
}

/** Collects a subscription's events; `next(pred)` waits (bounded) for the first match from `from` on. */
function recorder(nl: Netlink, netns: string, groups: Parameters<Netlink['subscribe']>[0]['groups'], listExisting = false) {
  const seen: NetlinkEvent[] = [];
  let wake: (() => void) | undefined;
  const sub: Subscription = nl.subscribe({ netns, groups, listExisting }, (e) => { seen.push(e); wake?.(); });
  return {
    seen, sub,
    async next(pred: (e: NetlinkEvent) => boolean, what: string, ms = 3000): Promise<NetlinkEvent> {
      const deadline = Date.now() + ms;
      for (;;) {
        const i = seen.findIndex(pred);
        if (i >= 0) return seen.splice(0, i + 1).at(-1)!;
        if (Date.now() > deadline) throw new Error(`no event: ${what}; saw ${JSON.stringify(seen.map((e) => e.kind + ' ' + ('action' in e ? e.action : '')))}`);
        await new Promise<void>((r) => { wake = r; setTimeout(r, 50); });
      }
    },
  };
}

export const contract: ContractCase[] = [
  ['noprefixroute: the address gets no prefix route and keeps the flag; without it the kernel adds one', async ({ nl, a, b }) => {
    await pair(nl, a, b);
    await nl.addAddress(b, 'p', { cidr: '10.5.0.2/24', noprefixroute: true });
    const flags = (await nl.listAddresses(b, { dev: 'p' })).find((x) => x.address === '10.5.0.2')?.flags ?? 0;
    assert.equal(flags & 0x200, 0x200, 'IFA_F_NOPREFIXROUTE');
    const main = (await nl.listRoutes(b)).map((r) => r.dst);
    assert.ok(!main.includes('10.5.0.0/24'), `no prefix route: ${main.join(', ')}`);
    assert.ok(main.includes('10.1.0.0/24'), 'the kernel\'s own prefix route for an address without the flag');
    // an address with a metric (IFA_RT_PRIORITY): the kernel's prefix route has that metric, and the dump says it
    await nl.addAddress(b, 'p', { cidr: '10.6.0.2/24', metric: 100 });
    assert.equal((await nl.listAddresses(b, { dev: 'p' })).find((x) => x.address === '10.6.0.2')?.metric, 100);
    const r = (await nl.listRoutes(b)).find((x) => x.dst === '10.6.0.0/24');
    assert.equal(r?.metric, 100);
    assert.equal(r?.protocol, 2, 'proto kernel');
  }],
  ['IPv4 broadcast: computed by default, none when false, as given; a replace keeps the one the address has', async ({ nl, a, b }) => {
    await pair(nl, a, b);
    await nl.addAddress(b, 'p', { cidr: '10.2.0.2/24', broadcast: false });
    await nl.addAddress(b, 'p', { cidr: '10.3.0.2/24', broadcast: '10.3.0.7' });
    await nl.addAddress(b, 'p', { cidr: '10.4.0.2/31' });
    const by = async (ip: string) => (await nl.listAddresses(b, { dev: 'p' })).find((x) => x.address === ip);
    assert.equal((await by('10.1.0.2'))?.broadcast, '10.1.0.255');
    assert.equal((await by('10.2.0.2'))?.broadcast, undefined);
    assert.equal((await by('10.3.0.2'))?.broadcast, '10.3.0.7');
    assert.equal((await by('10.4.0.2'))?.broadcast, undefined, 'no broadcast on a /31');
    assert.equal((await by('fd01::2'))?.broadcast, undefined);
    await nl.addAddress(b, 'p', { cidr: '10.2.0.2/24' }, { replace: true });
    assert.equal((await by('10.2.0.2'))?.broadcast, undefined);
  }],
  ['vlan link on a parent: kind, id, parent index, the parent\'s MTU and MAC, down; EEXIST, ENODEV, EINVAL', async ({ nl, a, b }) => {
    await nl.createVeth({ netns: a, name: 'h', mtu: 1400, mac: '02:00:00:00:00:0a', peer: { name: 'p', netns: b } });
    await nl.createVlan({ netns: a, name: 'h.100', parent: 'h', id: 100 });
    const h = await nl.getLink(a, 'h');
    const v = await nl.getLink(a, 'h.100');
    assert.equal(v?.kind, 'vlan');
    assert.equal(v?.vlanId, 100);
    assert.equal(v?.link, h?.index, 'IFLA_LINK names the parent');
    assert.equal(v?.mtu, 1400);
    assert.equal(v?.mac, '02:00:00:00:00:0a');
    assert.equal(v?.up, false);
    assert.equal(h?.vlanId, undefined);
    await nl.setLink(a, 'h.100', { alias: 'kube-ovn:pn1', up: true });
    assert.equal((await nl.getLink(a, 'h.100'))?.alias, 'kube-ovn:pn1');
    await assert.rejects(nl.createVlan({ netns: a, name: 'h.100', parent: 'h', id: 100 }), code('EEXIST'));
    await assert.rejects(nl.createVlan({ netns: a, name: 'x.5', parent: 'x', id: 5 }), code('ENODEV'));
    await assert.rejects(nl.createVlan({ netns: a, name: 'h.0', parent: 'h', id: 0 }), code('EINVAL'));
    assert.equal(await nl.getLink(a, 'h.0'), null, 'a refused request changes nothing');
    assert.equal(await nl.deleteLink(a, 'h.100'), true);
    assert.equal(await nl.getLink(a, 'h.100'), null);
    assert.ok(await nl.getLink(a, 'h'), 'the parent stays');
  }, { kernel: 'vlan' }],
  ['veth pair across namespaces: both ends, their kind and peer, EEXIST, and deleting one end removes both', async ({ nl, a, b }) => {
    await nl.createVeth({ netns: a, name: 'h', mtu: 1400, mac: '02:00:00:00:00:0a', peer: { name: 'p', netns: b, mac: '02:00:00:00:00:0b' } });
    const h = await nl.getLink(a, 'h');
    const p = await nl.getLink(b, 'p');
    assert.equal(h?.kind, 'veth');
    assert.equal(p?.kind, 'veth');
    assert.equal(h?.mtu, 1400);
    assert.equal(p?.mtu, 1400, 'the peer takes the MTU too');
    assert.equal(h?.mac, '02:00:00:00:00:0a');
    assert.equal(p?.mac, '02:00:00:00:00:0b');
    assert.equal(h?.link, p?.index, 'IFLA_LINK names the peer');
    assert.equal(h?.up, false);
    assert.equal((await nl.getLinkByIndex(b, p!.index))?.name, 'p');
    assert.deepEqual((await nl.listLinks(a, { kind: 'veth' })).map((l) => l.name), ['h'], 'a dump of one kind');
    await assert.rejects(nl.createVeth({ netns: a, name: 'h', peer: { name: 'q', netns: b } }), code('EEXIST'));
    assert.deepEqual((await nl.listLinks(b)).map((l) => l.name).sort(), ['lo', 'p']);
    assert.equal(await nl.deleteLink(a, 'h'), true);
    assert.equal(await nl.getLink(b, 'p'), null);
    assert.equal(await nl.deleteLink(a, 'h', { ignoreMissing: true }), false);
    await assert.rejects(nl.deleteLink(a, 'h'), code('ENODEV'));
  }],

  ['setLink: MTU, MAC and up in one call; rename (also of an up link, as kernels since 6.9 allow)', async ({ nl, a, b }) => {
    await nl.createVeth({ netns: a, name: 'h', peer: { name: 'p', netns: b } });
    await nl.setLink(b, 'p', { mtu: 1300, mac: '02:00:00:00:01:01', up: true });
    const p = await nl.getLink(b, 'p');
    assert.equal(p?.mtu, 1300);
    assert.equal(p?.mac, '02:00:00:00:01:01');
    assert.equal(p?.up, true);
    await nl.renameLink(b, 'p', 'eth0');
    assert.equal(await nl.getLink(b, 'p'), null);
    assert.equal((await nl.getLink(b, 'eth0'))?.index, p?.index);
    await assert.rejects(nl.setLink(b, 'nope', { up: true }), code('ENODEV'));
  }],

  ['alternative names: listed, a lookup by one finds its link, no other link may take it, deleteAltname removes it', async ({ nl, a, addAltname }) => {
    await nl.createVeth({ netns: a, name: 'h', peer: { name: 'p' } });
    await addAltname(a, 'h', 'eth1');
    assert.deepEqual((await nl.getLink(a, 'h'))?.altnames, ['eth1']);
    const viaAlt = await nl.getLink(a, 'eth1');
    assert.equal(viaAlt?.name, 'h');
    await assert.rejects(nl.renameLink(a, 'p', 'eth1'), code('EEXIST'));
    await assert.rejects(nl.renameLink(a, 'h', 'eth1'), code('EEXIST')); // its own altname too
    assert.equal(await nl.deleteAltname(a, 'p', 'eth1'), false); // not p's
    assert.equal(await nl.deleteAltname(a, 'eth1', 'eth1'), false); // by the link's own name only
    assert.equal(await nl.deleteAltname(a, 'h', 'eth1'), true);
    assert.equal((await nl.getLink(a, 'h'))?.altnames, undefined);
    assert.equal(await nl.getLink(a, 'eth1'), null);
    assert.equal(await nl.deleteAltname(a, 'h', 'eth1'), false);
    await nl.renameLink(a, 'h', 'eth1');
    assert.equal((await nl.getLink(a, 'eth1'))?.name, 'eth1');
  }],
  ['addresses: add, EEXIST unless replace, list by link and family, delete, EADDRNOTAVAIL', async ({ nl, a, b }) => {
    await pair(nl, a, b);
    const mine = async (family?: 4 | 6) => (await nl.listAddresses(b, { dev: 'p', ...(family ? { family } : {}) }))
      .filter((x) => !x.address.startsWith('fe80')).map((x) => `${x.address}/${x.prefixLen}`).sort();
    assert.deepEqual(await mine(), ['10.1.0.2/24', 'fd01::2/64']);
    assert.deepEqual(await mine(4), ['10.1.0.2/24']);
    await assert.rejects(nl.addAddress(b, 'p', { cidr: '10.1.0.2/24' }), code('EEXIST'));
    await nl.addAddress(b, 'p', { cidr: '10.1.0.2/24' }, { replace: true });
    const v6 = (await nl.listAddresses(b, { dev: 'p', family: 6 })).find((x) => x.address === 'fd01::2');
    assert.equal(v6?.tentative, false, 'nodad: never tentative');
    assert.equal(await nl.deleteAddress(b, 'p', '10.1.0.2/24'), true);
    assert.deepEqual(await mine(4), []);
    await assert.rejects(nl.deleteAddress(b, 'p', '10.1.0.2/24'), code('EADDRNOTAVAIL'));
    assert.equal(await nl.deleteAddress(b, 'p', '10.1.0.2/24', { ignoreMissing: true }), false);
  }],

  ['routes: the connected route (with prefsrc), via a gateway, EEXIST, ENETUNREACH, ENETDOWN, delete, ESRCH', async ({ nl, a, b }) => {
    await pair(nl, a, b);
    const connected = (await nl.listRoutes(b, { family: 4, dev: 'p' })).find((r) => r.dst === '10.1.0.0/24');
    assert.equal(connected?.prefSrc, '10.1.0.2');
    assert.equal(connected?.protocol, 2, 'proto kernel');
    await nl.addRoute(b, { dst: '10.2.0.0/16', gateway: '10.1.0.1', dev: 'p' });
    await nl.addRoute(b, { gateway: '10.1.0.1', dev: 'p' });
    await nl.addRoute(b, { dst: '10.5.0.0/16', gateway: '10.1.0.1', dev: 'p', src: '10.1.0.2' });
    assert.equal((await nl.listRoutes(b, { family: 4 })).find((r) => r.dst === '10.5.0.0/16')?.prefSrc, '10.1.0.2', 'src comes back as prefsrc');
    await nl.addRoute(b, { gateway: 'fd01::1', dev: 'p' });
    const v4 = await nl.listRoutes(b, { family: 4 });
    assert.equal(v4.find((r) => r.dst === '10.2.0.0/16')?.gateway, '10.1.0.1');
    assert.equal(v4.find((r) => r.dst === null)?.gateway, '10.1.0.1');
    assert.equal((await nl.listRoutes(b, { family: 6 })).find((r) => r.dst === null)?.gateway, 'fd01::1');
    await assert.rejects(nl.addRoute(b, { dst: '10.2.0.0/16', gateway: '10.1.0.1', dev: 'p' }), code('EEXIST'));
    await nl.addRoute(b, { dst: '10.2.0.0/16', gateway: '10.1.0.3', dev: 'p' }, { replace: true });
    assert.equal((await nl.listRoutes(b, { family: 4 })).find((r) => r.dst === '10.2.0.0/16')?.gateway, '10.1.0.3');
    await assert.rejects(nl.addRoute(b, { dst: '10.3.0.0/16', gateway: '10.9.0.1', dev: 'p' }), code('ENETUNREACH'));
    await nl.addRoute(b, { dst: '10.3.0.0/16', gateway: '10.9.0.1', dev: 'p', onlink: true });
    await nl.setLink(a, 'h', { up: false });
    await nl.createVeth({ netns: a, name: 'h2', peer: { name: 'p2', netns: b } });
    await assert.rejects(nl.addRoute(b, { dst: '10.4.0.0/16', dev: 'p2' }), code('ENETDOWN'));
    assert.equal(await nl.deleteRoute(b, { dst: '10.2.0.0/16' }), true);
    await assert.rejects(nl.deleteRoute(b, { dst: '10.2.0.0/16' }), code('ESRCH'));
    assert.equal(await nl.deleteRoute(b, { dst: '10.2.0.0/16' }, { ignoreMissing: true }), false);
  }],

  ['neighbours: set (replace), list by link, delete, ENOENT', async ({ nl, a, b }) => {
    await pair(nl, a, b);
    await nl.setNeighbor(b, { dev: 'p', ip: '10.1.0.9', mac: '02:00:00:00:09:09' });
    await nl.setNeighbor(b, { dev: 'p', ip: '10.1.0.9', mac: '02:00:00:00:09:0a' });
    const n = (await nl.listNeighbors(b, { dev: 'p', family: 4 })).filter((x) => x.ip === '10.1.0.9');
    assert.deepEqual(n.map((x) => [x.mac, x.state]), [['02:00:00:00:09:0a', 0x80]]);
    assert.equal(await nl.deleteNeighbor(b, 'p', '10.1.0.9'), true);
    await assert.rejects(nl.deleteNeighbor(b, 'p', '10.1.0.9'), code('ENOENT'));
  }],

  ['rules: protocol tag stored and listed; same rule with another protocol is no duplicate; delete by protocol; rule events', async ({ nl, b }) => {
    const r = recorder(nl, b, ['rule'], true);
    await r.sub.ready;
    const plain = { family: 4 as const, src: '10.16.0.0/16', table: 1000, priority: 1500 };
    await nl.addRule(b, plain);
    await r.next((e) => e.kind === 'rule' && e.action === 'new' && e.rule.table === 1000 && e.rule.protocol === 0, 'plain rule added');
    await nl.addRule(b, { ...plain, protocol: 107 });
    const tagged = await r.next((e) => e.kind === 'rule' && e.action === 'new' && e.rule.protocol === 107, 'tagged rule added');
    assert.equal(tagged.kind === 'rule' && tagged.rule.src, '10.16.0.0/16');
    await assert.rejects(nl.addRule(b, { ...plain, protocol: 107 }), code('EEXIST'));
    const mine = (await nl.listRules(b, 4)).filter((x) => x.table === 1000);
    assert.deepEqual(mine.map((x) => [x.src, x.priority, x.protocol, x.other]), [['10.16.0.0/16', 1500, 0, undefined], ['10.16.0.0/16', 1500, 107, undefined]],
      'both, in insertion order');
    assert.equal(await nl.deleteRule(b, { ...plain, protocol: 107 }), true);
    await r.next((e) => e.kind === 'rule' && e.action === 'del' && e.rule.protocol === 107, 'tagged rule deleted');
    assert.deepEqual((await nl.listRules(b, 4)).filter((x) => x.table === 1000).map((x) => x.protocol), [0], 'the delete with a protocol left the plain one');
    await assert.rejects(nl.deleteRule(b, { ...plain, protocol: 107 }), code('ENOENT'));
    assert.equal(await nl.deleteRule(b, plain), true);
    await nl.addRule(b, { family: 6, src: 'fd00:10:16::5/128', table: 1000, priority: 1500, protocol: 107 });
    await r.next((e) => e.kind === 'rule' && e.action === 'new' && e.rule.family === 6 && e.rule.src === 'fd00:10:16::5/128', 'IPv6 rule added');
    assert.deepEqual((await nl.listRules(b, 6)).filter((x) => x.table === 1000).map((x) => [x.src, x.protocol]), [['fd00:10:16::5/128', 107]]);
    assert.equal((await nl.listRules(b, 4)).some((x) => x.table === 1000), false);
    r.sub.close();
  }],

  ['a namespace that does not exist: ENOENT for calls and for subscribe', async ({ nl }) => {
    await assert.rejects(nl.listLinks('/run/netns/koanl-absent'), code('ENOENT'));
    assert.throws(() => nl.subscribe({ netns: '/run/netns/koanl-absent', groups: ['link'] }, () => {}), code('ENOENT'));
  }],

  ['subscribe: link events for create, change and delete, in order, only of the watched namespace', async ({ nl, a, b }) => {
    const rb = recorder(nl, b, ['link']);
    const ra = recorder(nl, a, ['link']);
    await rb.sub.ready;
    await ra.sub.ready;
    await nl.createVeth({ netns: a, name: 'h', peer: { name: 'p', netns: b } });
    await rb.next((e) => e.kind === 'link' && e.action === 'new' && e.link.name === 'p', 'p created');
    await nl.setLink(b, 'p', { mtu: 1280 });
    const m = await rb.next((e) => e.kind === 'link' && e.link.name === 'p' && e.link.mtu === 1280, 'p mtu 1280');
    assert.equal(m.kind === 'link' && m.action, 'new');
    await nl.deleteLink(b, 'p');
    await rb.next((e) => e.kind === 'link' && e.action === 'del' && e.link.name === 'p', 'p deleted');
    await ra.next((e) => e.kind === 'link' && e.action === 'del' && e.link.name === 'h', 'h deleted with its peer');
    assert.equal(rb.seen.concat(ra.seen).some((e) => e.kind !== 'link'), false, 'only the subscribed group');
    rb.sub.close();
    ra.sub.close();
  }],

  ['subscribe: address and route events (new and del); listExisting first delivers what is there', async ({ nl, a, b }) => {
    await pair(nl, a, b);
    const r = recorder(nl, b, ['address', 'route'], true);
    await r.sub.ready;
    await r.next((e) => e.kind === 'address' && e.action === 'new' && e.address.address === '10.1.0.2', 'existing 10.1.0.2');
    await r.next((e) => e.kind === 'route' && e.action === 'new' && e.route.dst === '10.1.0.0/24', 'existing connected route');
    await nl.addRoute(b, { dst: '10.7.0.0/16', gateway: '10.1.0.1', dev: 'p' });
    const added = await r.next((e) => e.kind === 'route' && e.action === 'new' && e.route.dst === '10.7.0.0/16', 'route added');
    assert.equal(added.kind === 'route' && added.route.gateway, '10.1.0.1');
    await nl.deleteRoute(b, { dst: '10.7.0.0/16' });
    await r.next((e) => e.kind === 'route' && e.action === 'del' && e.route.dst === '10.7.0.0/16', 'route deleted');
    await nl.addAddress(b, 'p', { cidr: '10.1.0.5/24' });
    await r.next((e) => e.kind === 'address' && e.action === 'new' && e.address.address === '10.1.0.5' && e.address.prefixLen === 24, 'address added');
    await nl.deleteAddress(b, 'p', '10.1.0.5/24');
    await r.next((e) => e.kind === 'address' && e.action === 'del' && e.address.address === '10.1.0.5', 'address deleted');
    r.sub.close();
    await nl.addAddress(b, 'p', { cidr: '10.1.0.6/24' });
    await new Promise((res) => setTimeout(res, 50));
    assert.equal(r.seen.some((e) => e.kind === 'address' && e.address.address === '10.1.0.6'), false, 'nothing after close');
  }],

  ['subscribe: neighbour events', async ({ nl, a, b }) => {
    await pair(nl, a, b);
    const r = recorder(nl, b, ['neighbour']);
    await r.sub.ready;
    await nl.setNeighbor(b, { dev: 'p', ip: '10.1.0.9', mac: '02:00:00:00:09:09' });
    const n = await r.next((e) => e.kind === 'neighbour' && e.action === 'new' && e.neighbour.ip === '10.1.0.9', 'neighbour set');
    assert.equal(n.kind === 'neighbour' && n.neighbour.mac, '02:00:00:00:09:09');
    await nl.deleteNeighbor(b, 'p', '10.1.0.9');
    await r.next((e) => e.kind === 'neighbour' && e.action === 'del' && e.neighbour.ip === '10.1.0.9', 'neighbour deleted');
    r.sub.close();
  }],
];
