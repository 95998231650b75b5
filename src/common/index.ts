// Helpers shared by the controller and the workers: logging, config,
// connections, and the probe/metrics endpoint.

export { createLogger, LOG_LEVELS } from './logger.ts';
export type { Logger, LoggerOptions, LogLevel } from './logger.ts';

export { parseEnv, loadEnvOrExit, envVar, ConfigError } from './env-config.ts';
export type { ConfigIssue } from './env-config.ts';

export { NATS_ENV, checkNatsEnv, natsSettingsFromEnv, natsConnectionOptions, connectNats } from './nats.ts';
export type { NatsSettings } from './nats.ts';

export { REDIS_ENV, redisSettingsFromEnv, redisOptions, connectRedis } from './redis.ts';
export type { RedisSettings } from './redis.ts';

export { startOpsServer } from './http-server.ts';
export type { OpsServer, OpsServerOptions } from './http-server.ts';
