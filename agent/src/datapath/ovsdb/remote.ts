// OVS remote strings (ovsdb-server(1) "Active database connection methods"): `unix:FILE`, `tcp:HOST:PORT`
// (IPv6 hosts in brackets). `ssl:` needs key material we do not handle: rejected with a clear error.
// A comma-separated list (as in ovn-remote) is parsed into several remotes, tried in order.

export type Remote = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export function parseRemote(s: string): Remote {
  const str = s.trim();
  if (str.startsWith('unix:')) {
    const path = str.slice(5);
    if (!path) throw new Error(`invalid OVSDB remote "${s}": empty socket path`);
    return { kind: 'unix', path };
  }
  if (str.startsWith('tcp:')) {
    const rest = str.slice(4);
    let host: string, portStr: string;
    if (rest.startsWith('[')) {
      const end = rest.indexOf(']');
      if (end < 0 || rest[end + 1] !== ':') throw new Error(`invalid OVSDB remote "${s}": expected tcp:[IPv6]:PORT`);
      host = rest.slice(1, end);
      portStr = rest.slice(end + 2);
    } else {
      const i = rest.lastIndexOf(':');
      if (i <= 0) throw new Error(`invalid OVSDB remote "${s}": expected tcp:HOST:PORT`);
      host = rest.slice(0, i);
      portStr = rest.slice(i + 1);
      if (host.includes(':')) throw new Error(`invalid OVSDB remote "${s}": IPv6 hosts must be in brackets`);
    }
    const port = Number(portStr);
    if (!/^\d+$/.test(portStr) || port < 1 || port > 65535) throw new Error(`invalid OVSDB remote "${s}": bad port "${portStr}"`);
    return { kind: 'tcp', host, port };
  }
  if (str.startsWith('ssl:')) throw new Error(`unsupported OVSDB remote "${s}": ssl is not supported by this client`);
  throw new Error(`invalid OVSDB remote "${s}": expected unix:PATH or tcp:HOST:PORT`);
}

export function parseRemotes(s: string): Remote[] {
  const parts = s.split(',').map((p) => p.trim()).filter(Boolean);
  if (parts.length === 0) throw new Error('empty OVSDB remote');
  return parts.map(parseRemote);
}

export const formatRemote = (r: Remote): string =>
  r.kind === 'unix' ? `unix:${r.path}` : `tcp:${r.host.includes(':') ? `[${r.host}]` : r.host}:${r.port}`;
