// Small HTTP-over-Unix-socket helpers for the CNI server tests (no client library: node:http and node:net).
import { request } from 'node:http';
import { connect } from 'node:net';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';

export interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: string }

export function post(socketPath: string, path: string, body: string | Buffer, contentType = 'application/json'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'POST', agent: false, headers: { 'content-type': contentType, 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Writes raw bytes, then collects everything the server sends until it closes (or `ms` passes). */
export function raw(socketPath: string, bytes: string | Buffer, ms = 2000): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ path: socketPath });
    const chunks: Buffer[] = [];
    const done = () => { clearTimeout(t); s.destroy(); resolve(Buffer.concat(chunks).toString('latin1')); };
    const t = setTimeout(done, ms);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('close', done);
    s.on('error', done);
    s.write(bytes);
  });
}

export const tempDir = (prefix = 'koac-') => mkdtemp(join(tmpdir(), prefix));
export const quietLog = () => pino({ level: 'silent' });

export const SOCK_NC = (sock: string, v = '1.0.0', extra: Record<string, unknown> = {}) =>
  JSON.stringify({ cniVersion: v, name: 'kube-ovn', type: 'kube-ovn', server_socket: sock, ...extra });

export const cniEnv = (cmd: string, o: Record<string, string> = {}) => ({
  CNI_COMMAND: cmd, CNI_CONTAINERID: 'koac-c1', CNI_NETNS: '/var/run/netns/koac1', CNI_IFNAME: 'eth0',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod1', CNI_PATH: '/opt/cni/bin', ...o,
});
