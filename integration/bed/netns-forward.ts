// Runs inside a node namespace (`ip netns exec <ns> node netns-forward.ts <port> <unix-path>`): listens on the
// namespace's own 127.0.0.1:<port> and relays each connection to a unix socket. Unix sockets are paths, so they
// cross namespaces; the bed's host side relays on to the real kube-apiserver. Bytes only: TLS stays end to end.
// Every failed hop is appended to `<unix-path>.errors` (one line: time, side, code): when a test sees its agent's
// new connections dropped, the forwarders' report (kube.ts) says whether this relay dropped them.
import { appendFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';

const [portArg, unixPath] = process.argv.slice(2);
if (!portArg || !unixPath) throw new Error('usage: netns-forward.ts <port> <unix-path>');
const record = (side: string, err: NodeJS.ErrnoException): void => {
  try { appendFileSync(`${unixPath}.errors`, `${new Date().toISOString()} ${side} ${err.code ?? err.message}\n`); } catch { /* diagnostics only */ }
};
const server = createServer((client) => {
  const upstream = connect(unixPath);
  client.pipe(upstream).pipe(client);
  client.on('error', (e) => { record('node-side', e); upstream.destroy(); });
  let connected = false;
  upstream.once('connect', () => { connected = true; });
  upstream.on('error', (e) => { record(connected ? 'unix' : 'unix-connect', e); client.destroy(); });
});
server.on('error', (e) => {
  record('listener', e);
  // not listening yet (EADDRINUSE, ...): fail loudly, as an unhandled error did, so the bed's start says why
  if (!server.listening) { process.stderr.write(`netns-forward: ${e.stack ?? String(e)}\n`); process.exit(1); }
});
server.listen(Number(portArg), '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => process.exit(0));
