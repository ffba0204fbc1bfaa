// A tiny traffic tool for the node tests, run inside a namespace with the pinned Node (the machine has no nc/socat):
//   peer.ts listen tcp|udp <port>        prints {"ready":true}, then one JSON line per connection / datagram:
//                                        {"proto","from","to"} (from = the source address the listener saw)
//   peer.ts send udp <ip> <port> [text]  one datagram, exit 0
//   peer.ts connect tcp <ip> <port>      exit 0 once connected (and the listener's greeting read), 1 after 5 s
import { createSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';

const [mode, proto, a, b, c] = process.argv.slice(2);
const out = (o: object): void => { process.stdout.write(JSON.stringify(o) + '\n'); };
const fail = (why: string): never => { process.stderr.write(`${why}\n`); process.exit(1); };
const strip = (ip: string | undefined): string => (ip ?? '').replace(/^::ffff:/, '');

if (mode === 'listen' && proto === 'tcp') {
  const srv = createServer((s) => {
    out({ proto: 'tcp', from: strip(s.remoteAddress), to: strip(s.localAddress) });
    s.end('hello\n');
  });
  srv.listen(Number(a), '::', () => out({ ready: true }));
} else if (mode === 'listen' && proto === 'udp') {
  const sock = createSocket({ type: 'udp6', ipv6Only: false });
  sock.on('message', (msg, rinfo) => out({ proto: 'udp', from: strip(rinfo.address), text: msg.toString() }));
  sock.bind(Number(a), '::', () => out({ ready: true }));
} else if (mode === 'send' && proto === 'udp') {
  const sock = createSocket(a!.includes(':') ? 'udp6' : 'udp4');
  sock.send(c ?? 'ping', Number(b), a!, (e) => { if (e) fail(e.message); sock.close(); });
} else if (mode === 'connect' && proto === 'tcp') {
  const timer = setTimeout(() => fail(`no connection to ${a}:${b} within 5 s`), 5000);
  const s = connect({ host: a!, port: Number(b) }, () => undefined);
  s.once('data', () => { clearTimeout(timer); s.destroy(); process.exit(0); });
  s.on('error', (e) => fail(e.message));
} else {
  fail('usage: peer.ts listen tcp|udp <port> | send udp <ip> <port> [text] | connect tcp <ip> <port>');
}
