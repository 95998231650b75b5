// A plain HTTPS client for the apiserver: node:https with one keep-alive
// agent, the kubeconfig's client certificate, JSON in and out. The
// yardsticks and the load generators use it, so they measure the apiserver
// and not a client library: @kubernetes/client-node 2.0 builds a new undici
// Agent, and so a new TLS connection, for every request.
import { Agent, request } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

export class RawApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export class RawClient {
  private readonly agent: Agent;
  private readonly server: URL;

  constructor(kc: KubeConfig, maxSockets = 64) {
    const cluster = kc.getCurrentCluster();
    const user = kc.getCurrentUser();
    if (!cluster || !user) throw new Error('the kubeconfig has no current cluster or user');
    const data = (b64: string | undefined) => (b64 ? Buffer.from(b64, 'base64') : undefined);
    this.server = new URL(cluster.server);
    this.agent = new Agent({
      keepAlive: true,
      maxSockets,
      ca: data(cluster.caData),
      cert: data(user.certData),
      key: data(user.keyData),
    });
  }

  /** One request; resolves with the parsed JSON body, rejects with RawApiError on a non-2xx answer. */
  call<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const req = request(
        {
          agent: this.agent,
          host: this.server.hostname,
          port: this.server.port,
          method,
          path,
          headers: {
            accept: 'application/json',
            ...(payload ? { 'content-type': contentType, 'content-length': payload.length } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status < 200 || status >= 300) {
              reject(new RawApiError(status, `${method} ${path}: ${status} ${text.slice(0, 300)}`));
              return;
            }
            try {
              resolve((text ? JSON.parse(text) : undefined) as T);
            } catch (err) {
              reject(err);
            }
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** The collection path of a namespaced custom resource. */
export function collectionPath(ref: { group: string; version: string; plural: string }, namespace: string): string {
  return `/apis/${ref.group}/${ref.version}/namespaces/${encodeURIComponent(namespace)}/${ref.plural}`;
}
