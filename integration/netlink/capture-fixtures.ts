// Captures real kernel answers (hex) for the codec's table tests: `npx node integration/netlink/capture-fixtures.ts`
// (root). Builds a known state in two fresh namespaces (prefix koan), sends our own requests on a native socket and
// writes every datagram the kernel returns to test/netlink/fixtures/kernel.json. The namespaces are always removed.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { native, AF_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_ROUTE, SOCK_RAW, SOL_NETLINK } from '../../agent/src/native.ts';
import * as link from '../../agent/src/datapath/netlink/link.ts';
import * as addr from '../../agent/src/datapath/netlink/addr.ts';
import * as route from '../../agent/src/datapath/netlink/route.ts';
import { RtNetlink } from '../../agent/src/datapath/netlink/rtnl.ts';

const id = randomBytes(3).toString('hex');
const host = `koanfh${id}`, pod = `koanfp${id}`;
const ip = (...a: string[]) => execFileSync('ip', a, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const out: Record<string, string[]> = {};

function exchange(netns: string, name: string, msg: Buffer): void {
  const n = native();
  const fd = n.socketInNetns(`/run/netns/${netns}`, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
  n.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1);
  n.setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
  const buf = Buffer.alloc(65536);
  const got: string[] = [];
  try {
    n.sendto(fd, msg, null);
    for (;;) {
      const len = n.recv(fd, buf, 200, null);
      if (len < 0) break;
      got.push(buf.subarray(0, len).toString('hex'));
      const last = buf.subarray(0, len);
      // stop after NLMSG_DONE or an NLMSG_ERROR / single answer (no NLM_F_MULTI)
      let off = 0, stop = false;
      while (off + 16 <= last.length) {
        const l = last.readUInt32LE(off), t = last.readUInt16LE(off + 4), f = last.readUInt16LE(off + 6);
        if (t === 3 || t === 2 || !(f & 2)) stop = true;
        off += (l + 3) & ~3;
      }
      if (stop) break;
    }
  } finally {
    n.close(fd);
  }
  out[name] = got;
}

ip('netns', 'add', host);
ip('netns', 'add', pod);
try {
  const nl = new RtNetlink();
  await nl.createVeth({ netns: `/run/netns/${host}`, name: 'veth-h', mtu: 1400, mac: '0a:58:0a:10:00:01', peer: { name: 'tmp-c', netns: `/run/netns/${pod}`, mac: '0a:58:0a:10:00:05' } });
  await nl.setLink(`/run/netns/${pod}`, 'tmp-c', { name: 'eth0', up: true, alias: 'tmp-c' });
  await nl.setLink(`/run/netns/${host}`, 'veth-h', { up: true });
  await nl.addAddress(`/run/netns/${pod}`, 'eth0', { cidr: '10.16.0.5/16' });
  await nl.addAddress(`/run/netns/${pod}`, 'eth0', { cidr: 'fd00:10:16::5/64', nodad: true });
  await nl.addRoute(`/run/netns/${pod}`, { gateway: '10.16.0.1', dev: 'eth0' });
  await nl.addRoute(`/run/netns/${pod}`, { dst: '192.168.0.0/24', gateway: '10.16.0.1', dev: 'eth0', table: 100 });
  await nl.addRule(`/run/netns/${pod}`, { family: 4, src: '10.16.0.5/32', table: 100, priority: 1000 });
  await nl.setNeighbor(`/run/netns/${pod}`, { dev: 'eth0', ip: '10.16.0.1', mac: '0a:58:0a:10:00:01' });
  ip('-n', pod, 'tuntap', 'add', 'mode', 'tap', 'name', 'tap0');
  exchange(pod, 'getlink_eth0', link.getLink(101, { name: 'eth0' }));
  exchange(pod, 'getlink_tap0', link.getLink(102, { name: 'tap0' }));
  exchange(pod, 'getlink_missing', link.getLink(103, { name: 'nope0' }));
  exchange(pod, 'getaddr_dump', addr.getAddrs(104));
  exchange(pod, 'getroute4_dump', route.getRoutes(105, 4, 0));
  exchange(pod, 'getrule4_dump', route.getRules(106, 4));
  exchange(pod, 'getneigh4_dump', route.getNeighs(107, 4));
  exchange(pod, 'newaddr_eexist', addr.newAddr(108, 2, { cidr: '10.16.0.5/16' }));
  exchange(pod, 'dellink_ok', link.delLink(109, { name: 'tap0' }));
} finally {
  ip('netns', 'del', pod);
  ip('netns', 'del', host);
}
const file = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'netlink', 'fixtures', 'kernel.json');
writeFileSync(file, JSON.stringify({ kernel: execFileSync('uname', ['-r']).toString().trim(), captured: out }, null, 1) + '\n');
console.log(`wrote ${file}: ${Object.keys(out).join(', ')}`);
