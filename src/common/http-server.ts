import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from './logger.ts';

export interface OpsServerOptions {
  port: number;
  /** Defaults to all interfaces: kubelet and Prometheus reach the pod IP. */
  host?: string;
  /** Serve /healthz and /readyz. */
  health?: {
    /** False once the process is wedged and should be restarted; defaults to always live. */
    live?: () => boolean;
    /** True when the process can do its job (connected, leader or not). */
    ready: () => boolean | Promise<boolean>;
  };
  /** Serve /metrics from this registry. */
  metrics?: Registry;
  logger?: Logger;
}

export interface OpsServer {
  /** The port bound (useful with port 0 in tests). */
  port: number;
  close(): Promise<void>;
}

function reply(res: ServerResponse, status: number, body: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store' });
  res.end(body);
}

/** A small HTTP server for probes and scrapes; nothing else listens in our pods. */
export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, 'method not allowed\n');
    if (options.health && path === '/healthz') {
      const live = options.health.live?.() ?? true;
      return reply(res, live ? 200 : 503, live ? 'ok\n' : 'not live\n');
    }
    if (options.health && path === '/readyz') {
      const ready = await options.health.ready();
      return reply(res, ready ? 200 : 503, ready ? 'ok\n' : 'not ready\n');
    }
    if (options.metrics && path === '/metrics') {
      return reply(res, 200, await options.metrics.metrics(), options.metrics.contentType);
    }
    return reply(res, 404, 'not found\n');
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      options.logger?.error({ err, path: req.url }, 'Ops endpoint failed');
      if (!res.headersSent) reply(res, 500, 'internal error\n');
      else res.end();
    });
  });
  // Probes must not hold the process open on shutdown.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
