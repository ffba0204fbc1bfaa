// Runs inside a node namespace (`ip netns exec <ns> node netns-forward.ts <port> <unix-path>`): listens on the
// namespace's own 127.0.0.1:<port> and relays each connection to a unix socket. Unix sockets are paths, so they
// cross namespaces; the bed's host side relays on to the real kube-apiserver. Bytes only: TLS stays end to end.
import { connect, createServer } from 'node:net';

const [portArg, unixPath] = process.argv.slice(2);
if (!portArg || !unixPath) throw new Error('usage: netns-forward.ts <port> <unix-path>');
const server = createServer((client) => {
  const upstream = connect(unixPath);
  client.pipe(upstream).pipe(client);
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
});
server.listen(Number(portArg), '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => process.exit(0));
