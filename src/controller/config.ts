// The controller's configuration: environment variables (set by the Helm
// chart), parsed once with zod; every error is reported at once, naming the
// variable, and the process exits non-zero before it touches anything.
import { hostname } from 'node:os';
import { z } from 'zod';
import {
  NATS_ENV,
  REDIS_ENV,
  LOG_LEVELS,
  checkNatsEnv,
  envVar,
  natsSettingsFromEnv,
  redisSettingsFromEnv,
  type LogLevel,
  type NatsSettings,
  type RedisSettings,
} from '../common/index.ts';
import { DEFAULT_KEY_PREFIX, queueNames, type QueueNames } from '../protocol/index.ts';

const ControllerEnvSchema = z
  .object({
    ...NATS_ENV,
    ...REDIS_ENV,
    TQ_STREAM_NAME: envVar.string().regex(/^[A-Za-z0-9_-]+$/, { message: 'must be a JetStream stream name (letters, digits, _ and -)' }).optional(),
    TQ_SUBJECT_PREFIX: envVar.string().optional(),
    TQ_STREAM_REPLICAS: envVar.int({ min: 1, max: 5 }).default(1),
    TQ_KEY_PREFIX: z.string().default(DEFAULT_KEY_PREFIX),
    TQ_WATCH_NAMESPACE: envVar.string().optional(),
    TQ_LEADER_ELECTION: envVar.bool().default(true),
    TQ_LEADER_ELECTION_NAMESPACE: envVar.string().optional(),
    TQ_LEADER_ELECTION_ID: envVar.string().default('task-queue-controller'),
    TQ_LEASE_DURATION_SECONDS: envVar.int({ min: 2, max: 300 }).default(15),
    TQ_RENEW_DEADLINE_SECONDS: envVar.int({ min: 1, max: 300 }).default(10),
    TQ_RETRY_PERIOD_SECONDS: envVar.int({ min: 1, max: 60 }).default(2),
    POD_NAME: envVar.string().optional(),
    POD_NAMESPACE: envVar.string().optional(),
    TQ_METRICS_PORT: envVar.port().default(8080),
    TQ_HEALTH_PORT: envVar.port().default(8081),
    TQ_KUBE_QPS: envVar.int({ min: 1, max: 10_000 }).default(20),
    TQ_KUBE_BURST: envVar.int({ min: 1, max: 10_000 }).default(40),
    TQ_STATUS_PROGRESS_INTERVAL_MS: envVar.int({ min: 0, max: 600_000 }).default(1000),
    TQ_RECONCILE_CONCURRENCY: envVar.int({ min: 1, max: 256 }).default(4),
    TQ_HEARTBEAT_TIMEOUT_SECONDS: envVar.int({ min: 5, max: 3600 }).default(30),
    TQ_ACK_WAIT_SECONDS: envVar.int({ min: 5, max: 3600 }).default(60),
    TQ_RESYNC_SECONDS: envVar.int({ min: 0, max: 86_400 }).default(600),
    TQ_LOG_LEVEL: envVar.enum(LOG_LEVELS).default('info'),
  })
  .superRefine((env, ctx) => {
    checkNatsEnv(env, ctx);
    if (env.TQ_RENEW_DEADLINE_SECONDS >= env.TQ_LEASE_DURATION_SECONDS) {
      ctx.addIssue({ code: 'custom', path: ['TQ_RENEW_DEADLINE_SECONDS'], message: 'must be shorter than TQ_LEASE_DURATION_SECONDS' });
    }
    if (env.TQ_LEADER_ELECTION && !env.TQ_LEADER_ELECTION_NAMESPACE && !env.POD_NAMESPACE) {
      ctx.addIssue({ code: 'custom', path: ['TQ_LEADER_ELECTION_NAMESPACE'], message: 'is required with leader election when POD_NAMESPACE is not set' });
    }
    if (env.TQ_SUBJECT_PREFIX !== undefined) {
      try {
        queueNames({ subjectPrefix: env.TQ_SUBJECT_PREFIX });
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: ['TQ_SUBJECT_PREFIX'], message: (err as Error).message });
      }
    }
  });

export type ControllerEnv = z.output<typeof ControllerEnvSchema>;

export interface ControllerConfig {
  nats: NatsSettings;
  redis: RedisSettings;
  queue: QueueNames;
  streamReplicas: number;
  keyPrefix: string;
  watchNamespace: string | undefined;
  identity: string;
  leaderElection:
    | { enabled: false }
    | { enabled: true; namespace: string; name: string; leaseDurationSeconds: number; renewDeadlineSeconds: number; retryPeriodSeconds: number };
  metricsPort: number;
  healthPort: number;
  kubeQps: number;
  kubeBurst: number;
  progressIntervalMs: number;
  concurrency: number;
  heartbeatTimeoutMs: number;
  ackWaitMs: number;
  resyncMs: number;
  logLevel: LogLevel;
}

export { ControllerEnvSchema };

export function controllerConfigFromEnv(env: ControllerEnv): ControllerConfig {
  const identity = env.POD_NAME ?? hostname();
  return {
    nats: natsSettingsFromEnv(env as Parameters<typeof natsSettingsFromEnv>[0], `task-queue-controller ${identity}`),
    redis: redisSettingsFromEnv(env, `task-queue-controller-${identity}`),
    queue: queueNames({ stream: env.TQ_STREAM_NAME, subjectPrefix: env.TQ_SUBJECT_PREFIX }),
    streamReplicas: env.TQ_STREAM_REPLICAS,
    keyPrefix: env.TQ_KEY_PREFIX,
    watchNamespace: env.TQ_WATCH_NAMESPACE,
    identity,
    leaderElection: env.TQ_LEADER_ELECTION
      ? {
          enabled: true,
          namespace: env.TQ_LEADER_ELECTION_NAMESPACE ?? (env.POD_NAMESPACE as string),
          name: env.TQ_LEADER_ELECTION_ID,
          leaseDurationSeconds: env.TQ_LEASE_DURATION_SECONDS,
          renewDeadlineSeconds: env.TQ_RENEW_DEADLINE_SECONDS,
          retryPeriodSeconds: env.TQ_RETRY_PERIOD_SECONDS,
        }
      : { enabled: false },
    metricsPort: env.TQ_METRICS_PORT,
    healthPort: env.TQ_HEALTH_PORT,
    kubeQps: env.TQ_KUBE_QPS,
    kubeBurst: env.TQ_KUBE_BURST,
    progressIntervalMs: env.TQ_STATUS_PROGRESS_INTERVAL_MS,
    concurrency: env.TQ_RECONCILE_CONCURRENCY,
    heartbeatTimeoutMs: env.TQ_HEARTBEAT_TIMEOUT_SECONDS * 1000,
    ackWaitMs: env.TQ_ACK_WAIT_SECONDS * 1000,
    resyncMs: env.TQ_RESYNC_SECONDS * 1000,
    logLevel: env.TQ_LOG_LEVEL,
  };
}
