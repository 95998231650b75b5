import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';
import { envVar } from './env-config.ts';
import type { Logger } from './logger.ts';

export interface RedisSettings {
  /** redis://[user:pass@]host:port[/db] or rediss:// for TLS. */
  url: string;
  username?: string;
  password?: string;
  tls?: boolean;
  tlsCaFile?: string;
  connectionName?: string;
}

/** The Redis variables shared by controller and worker. */
export const REDIS_ENV = {
  TQ_REDIS_URL: envVar.url(['redis', 'rediss']),
  TQ_REDIS_USERNAME: envVar.string().optional(),
  TQ_REDIS_PASSWORD: envVar.string().optional(),
  TQ_REDIS_TLS: envVar.bool().optional(),
  TQ_REDIS_TLS_CA_FILE: envVar.string().optional(),
};

export function redisSettingsFromEnv(
  env: {
    TQ_REDIS_URL: string;
    TQ_REDIS_USERNAME?: string | undefined;
    TQ_REDIS_PASSWORD?: string | undefined;
    TQ_REDIS_TLS?: boolean | undefined;
    TQ_REDIS_TLS_CA_FILE?: string | undefined;
  },
  connectionName?: string,
): RedisSettings {
  return {
    url: env.TQ_REDIS_URL,
    ...(env.TQ_REDIS_USERNAME !== undefined ? { username: env.TQ_REDIS_USERNAME } : {}),
    ...(env.TQ_REDIS_PASSWORD !== undefined ? { password: env.TQ_REDIS_PASSWORD } : {}),
    ...(env.TQ_REDIS_TLS !== undefined ? { tls: env.TQ_REDIS_TLS } : {}),
    ...(env.TQ_REDIS_TLS_CA_FILE !== undefined ? { tlsCaFile: env.TQ_REDIS_TLS_CA_FILE } : {}),
    ...(connectionName !== undefined ? { connectionName } : {}),
  };
}

/**
 * Client options that ride out a Redis restart or failover: commands wait in
 * the offline queue for as long as it takes (`maxRetriesPerRequest: null`)
 * instead of failing a task run because Redis blinked, and reconnects back
 * off to 5 s.
 */
export function redisOptions(settings: RedisSettings): RedisOptions {
  const url = new URL(settings.url);
  const useTls = settings.tls === true || url.protocol === 'rediss:' || settings.tlsCaFile !== undefined;
  const options: RedisOptions = {
    maxRetriesPerRequest: null,
    enableOfflineQueue: true,
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 6), 5000),
    // After a failover the old primary answers READONLY: reconnect and resend.
    reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
  };
  if (settings.username !== undefined) options.username = settings.username;
  if (settings.password !== undefined) options.password = settings.password;
  if (settings.connectionName !== undefined) options.connectionName = settings.connectionName;
  if (useTls) {
    options.tls = {
      servername: url.hostname,
      ...(settings.tlsCaFile !== undefined ? { ca: readFileSync(settings.tlsCaFile) } : {}),
    };
  }
  return options;
}

/**
 * A client for the settings, resolved once it is ready. A Redis that is not
 * up yet is waited for (pods often start first), not a reason to exit.
 * Errors are logged (an unhandled 'error' event would crash the process) and
 * the client keeps reconnecting.
 */
export async function connectRedis(settings: RedisSettings, logger: Logger): Promise<Redis> {
  const redis = new Redis(settings.url, redisOptions(settings));
  let lastError = '';
  redis.on('error', (err: Error) => {
    // One line per distinct error, not one per reconnect attempt.
    if (err.message !== lastError) logger.warn({ err }, 'Redis connection error');
    lastError = err.message;
  });
  const ready = new Promise<void>((resolve) => redis.once('ready', () => resolve()));
  redis.on('ready', () => {
    lastError = '';
    logger.info('Connected to Redis');
  });
  await ready;
  return redis;
}
