import { readFileSync } from 'node:fs';
import { connect } from '@nats-io/transport-node';
import type { NodeConnectionOptions } from '@nats-io/transport-node';
import { credsAuthenticator } from '@nats-io/nats-core';
import type { NatsConnection } from '@nats-io/nats-core';
import { z } from 'zod';
import { envVar } from './env-config.ts';
import type { Logger } from './logger.ts';

export interface NatsSettings {
  servers: string[];
  user?: string;
  password?: string;
  token?: string;
  /** A .creds file (JWT + nkey seed), as issued by nsc. */
  credsFile?: string;
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** Shown by the server's monitoring endpoints. */
  name?: string;
}

/** The NATS variables shared by controller and worker. */
export const NATS_ENV = {
  TQ_NATS_URL: envVar.list().pipe(
    z.array(
      z.string().regex(/^(nats|tls|wss?):\/\/|^[^:/]+(:\d+)?$/, { message: 'must be nats://host:port, tls://host:port or host:port' }),
    ),
  ),
  TQ_NATS_USER: envVar.string().optional(),
  TQ_NATS_PASSWORD: envVar.string().optional(),
  TQ_NATS_TOKEN: envVar.string().optional(),
  TQ_NATS_CREDS_FILE: envVar.string().optional(),
  TQ_NATS_TLS_CA_FILE: envVar.string().optional(),
  TQ_NATS_TLS_CERT_FILE: envVar.string().optional(),
  TQ_NATS_TLS_KEY_FILE: envVar.string().optional(),
};

type NatsEnv = { TQ_NATS_URL: string[] } & {
  [K in Exclude<keyof typeof NATS_ENV, 'TQ_NATS_URL'>]?: string | undefined;
};

/**
 * Cross-field rules for NATS_ENV, for a superRefine on the whole schema: one
 * way to authenticate, and the pieces that only make sense together.
 */
export function checkNatsEnv(env: Partial<NatsEnv>, ctx: z.RefinementCtx): void {
  const methods = [
    env.TQ_NATS_USER !== undefined || env.TQ_NATS_PASSWORD !== undefined ? 'user/password' : undefined,
    env.TQ_NATS_TOKEN !== undefined ? 'token' : undefined,
    env.TQ_NATS_CREDS_FILE !== undefined ? 'creds file' : undefined,
  ].filter((m) => m !== undefined);
  if (methods.length > 1) {
    ctx.addIssue({
      code: 'custom',
      path: ['TQ_NATS_TOKEN'],
      message: `choose one way to authenticate to NATS, not ${methods.join(' and ')}`,
    });
  }
  if ((env.TQ_NATS_USER === undefined) !== (env.TQ_NATS_PASSWORD === undefined)) {
    ctx.addIssue({
      code: 'custom',
      path: [env.TQ_NATS_USER === undefined ? 'TQ_NATS_USER' : 'TQ_NATS_PASSWORD'],
      message: 'TQ_NATS_USER and TQ_NATS_PASSWORD must be set together',
    });
  }
  if ((env.TQ_NATS_TLS_CERT_FILE === undefined) !== (env.TQ_NATS_TLS_KEY_FILE === undefined)) {
    ctx.addIssue({
      code: 'custom',
      path: [env.TQ_NATS_TLS_CERT_FILE === undefined ? 'TQ_NATS_TLS_CERT_FILE' : 'TQ_NATS_TLS_KEY_FILE'],
      message: 'a client certificate needs both TQ_NATS_TLS_CERT_FILE and TQ_NATS_TLS_KEY_FILE',
    });
  }
}

export function natsSettingsFromEnv(env: NatsEnv, name?: string): NatsSettings {
  const tls =
    env.TQ_NATS_TLS_CA_FILE || env.TQ_NATS_TLS_CERT_FILE || env.TQ_NATS_TLS_KEY_FILE
      ? {
          ...(env.TQ_NATS_TLS_CA_FILE ? { caFile: env.TQ_NATS_TLS_CA_FILE } : {}),
          ...(env.TQ_NATS_TLS_CERT_FILE ? { certFile: env.TQ_NATS_TLS_CERT_FILE } : {}),
          ...(env.TQ_NATS_TLS_KEY_FILE ? { keyFile: env.TQ_NATS_TLS_KEY_FILE } : {}),
        }
      : undefined;
  return {
    servers: env.TQ_NATS_URL,
    ...(env.TQ_NATS_USER !== undefined ? { user: env.TQ_NATS_USER } : {}),
    ...(env.TQ_NATS_PASSWORD !== undefined ? { password: env.TQ_NATS_PASSWORD } : {}),
    ...(env.TQ_NATS_TOKEN !== undefined ? { token: env.TQ_NATS_TOKEN } : {}),
    ...(env.TQ_NATS_CREDS_FILE !== undefined ? { credsFile: env.TQ_NATS_CREDS_FILE } : {}),
    ...(tls ? { tls } : {}),
    ...(name !== undefined ? { name } : {}),
  };
}

/**
 * Client options for the settings. Reconnects forever: a worker or the
 * controller outlives a NATS restart or failover rather than crash-looping.
 * Reads the creds file once, here.
 */
export function natsConnectionOptions(settings: NatsSettings): NodeConnectionOptions {
  const options: NodeConnectionOptions = {
    servers: settings.servers,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
    // Wait for the first server too: pods often start before NATS is ready.
    waitOnFirstConnect: true,
    pingInterval: 20_000,
  };
  if (settings.name !== undefined) options.name = settings.name;
  if (settings.user !== undefined) options.user = settings.user;
  if (settings.password !== undefined) options.pass = settings.password;
  if (settings.token !== undefined) options.token = settings.token;
  if (settings.credsFile !== undefined) options.authenticator = credsAuthenticator(readFileSync(settings.credsFile));
  const secureUrl = settings.servers.some((s) => s.startsWith('tls://'));
  if (settings.tls !== undefined || secureUrl) options.tls = { ...settings.tls };
  return options;
}

/** Connects and logs the connection's life (disconnects, reconnects, errors). */
export async function connectNats(settings: NatsSettings, logger: Logger): Promise<NatsConnection> {
  const nc = await connect(natsConnectionOptions(settings));
  logger.info({ server: nc.getServer(), version: nc.info?.version }, 'Connected to NATS');
  void (async () => {
    for await (const status of nc.status()) {
      switch (status.type) {
        case 'disconnect':
          logger.warn({ server: status.server }, 'NATS connection lost');
          break;
        case 'reconnecting':
          logger.debug('Reconnecting to NATS');
          break;
        case 'reconnect':
          logger.info({ server: status.server }, 'Reconnected to NATS');
          break;
        case 'error':
          logger.error({ err: status.error }, 'NATS connection error');
          break;
        default:
          break;
      }
    }
  })().catch(() => undefined);
  return nc;
}
