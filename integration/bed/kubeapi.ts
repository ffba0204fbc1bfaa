// A deliberately tiny Kubernetes REST client for the bed itself (stand-in controller, readiness checks):
// HTTPS with the bed's client certificate, JSON in and out. Tests of the agent use the agent's own client.
import { request } from 'node:https';

export interface KubeCredentials {
  server: string; // https://127.0.0.1:<port>
  ca: string;
  cert: string;
  key: string;
}

export class KubeApiError extends Error {
  readonly status: number;
  readonly body: unknown;
  constructor(method: string, path: string, status: number, body: unknown) {
    const msg = typeof body === 'object' && body && 'message' in body ? String((body as { message: unknown }).message) : String(body);
    super(`${method} ${path}: HTTP ${status}: ${msg}`);
    this.status = status;
    this.body = body;
  }
}

export interface KubeApi {
  request<T = any>(method: string, path: string, body?: unknown, contentType?: string): Promise<T>;
  get<T = any>(path: string): Promise<T>;
  post<T = any>(path: string, body: unknown): Promise<T>;
  put<T = any>(path: string, body: unknown): Promise<T>;
  /** JSON merge patch (RFC 7386): what `kubectl annotate` amounts to. */
  mergePatch<T = any>(path: string, body: unknown): Promise<T>;
  delete<T = any>(path: string, body?: unknown): Promise<T>;
}

export function kubeApi(creds: KubeCredentials): KubeApi {
  const url = new URL(creds.server);
  const req = <T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> =>
    new Promise((resolve, reject) => {
      // a Buffer goes as it is (YAML for server-side apply); anything else as JSON
      const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
      const r = request(
        {
          host: url.hostname,
          port: url.port,
          method,
          path,
          ca: creds.ca,
          cert: creds.cert,
          key: creds.key,
          headers: { accept: 'application/json', ...(payload ? { 'content-type': contentType, 'content-length': payload.length } : {}) },
          timeout: 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              // non-JSON answers (e.g. /readyz "ok") stay text
            }
            if ((res.statusCode ?? 0) >= 300) reject(new KubeApiError(method, path, res.statusCode ?? 0, parsed));
            else resolve(parsed as T);
          });
        },
      );
      r.on('timeout', () => r.destroy(new Error(`${method} ${path}: timeout`)));
      r.on('error', reject);
      r.end(payload);
    });
  return {
    request: req,
    get: (p) => req('GET', p),
    post: (p, b) => req('POST', p, b),
    put: (p, b) => req('PUT', p, b),
    mergePatch: (p, b) => req('PATCH', p, b, 'application/merge-patch+json'),
    delete: (p, b) => req('DELETE', p, b),
  };
}
