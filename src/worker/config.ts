// The worker's configuration, read once from the environment at start-up.
// Every problem is reported at once, naming its variable (see
// src/common/env-config.ts). The pipeline's own variables are part of the
// same schema so one bad value anywhere stops the worker with one message.
import { hostname } from 'node:os';
import { z } from 'zod';
import { KIND_SUBJECT_TOKEN, TASK_KINDS, isTaskKind } from '../api/index.ts';
import type { TaskKind } from '../api/index.ts';
import { LOG_LEVELS, NATS_ENV, REDIS_ENV, checkNatsEnv, envVar, natsSettingsFromEnv, parseEnv, redisSettingsFromEnv } from '../common/index.ts';
import type { LogLevel, NatsSettings, RedisSettings } from '../common/index.ts';
import {
  DEFAULT_ACK_WAIT_MS,
  DEFAULT_KEY_PREFIX,
  DEFAULT_STREAM_NAME,
  DEFAULT_SUBJECT_PREFIX,
  HEARTBEAT_INTERVAL_SECONDS,
  queueNames,
} from '../protocol/index.ts';
import type { QueueNames } from '../protocol/index.ts';
import { ENGINE_NAMES, PIPELINE_ENV_SCHEMA, resolvePipelineSettings } from './pipeline/settings.ts';
import type { PipelineSettings } from './pipeline/settings.ts';

/** `standard` runs the real pipeline; `stub` sleeps instead (demos and process-level tests). */
export const PIPELINE_NAMES = ['standard', 'stub'] as const;
export type PipelineName = (typeof PIPELINE_NAMES)[number];

export interface WorkerConfig extends PipelineSettings {
  nats: NatsSettings;
  redis: RedisSettings;
  /** Stream name, subject prefix and cancel subject of the installation. */
  queue: QueueNames;
  keyPrefix: string;
  taskKind: TaskKind;
  workerName: string;
  /** Tasks run at once by this process. */
  concurrency: number;
  shutdownGraceSeconds: number;
  /** The consumers' ack wait; working() is sent well inside it. */
  ackWaitSeconds: number;
  heartbeatSeconds: number;
  healthPort: number;
  metricsPort: number;
  logLevel: LogLevel;
  pipeline: PipelineName;
  /** The stub pipeline's run: this many chunks of stubChunkMs each. */
  stubChunks: number;
  stubChunkMs: number;
  /** An idle worker looks at its consumers at least this often (redeliveries publish nothing). */
  idlePollMs: number;
}

const taskKind = z
  .string()
  .transform((value) => value.trim())
  .transform((value, ctx) => {
    if (isTaskKind(value)) return value;
    const byToken = TASK_KINDS.find((kind) => KIND_SUBJECT_TOKEN[kind] === value.toLowerCase());
    if (byToken) return byToken;
    ctx.addIssue({ code: 'custom', message: `must be one of ${TASK_KINDS.join(', ')}` });
    return z.NEVER;
  });

const WORKER_ENV_SCHEMA = z
  .object({
    ...PIPELINE_ENV_SCHEMA.shape,
    ...NATS_ENV,
    ...REDIS_ENV,
    TQ_STREAM_NAME: envVar.string().regex(/^[^.*>\s]+$/, { message: 'must be a JetStream stream name (no dots, wildcards or spaces)' }).default(DEFAULT_STREAM_NAME),
    TQ_SUBJECT_PREFIX: envVar
      .string()
      .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, { message: 'must be dot-separated tokens of letters, digits, _ and -' })
      .default(DEFAULT_SUBJECT_PREFIX),
    TQ_KEY_PREFIX: z.string().regex(/^[^{}\s]*$/, { message: 'must not contain braces or spaces' }).default(DEFAULT_KEY_PREFIX),
    TQ_TASK_KIND: taskKind,
    TQ_WORKER_NAME: envVar.string().max(253).optional(),
    POD_NAME: envVar.string().max(253).optional(),
    TQ_CONCURRENCY: envVar.int({ min: 1, max: 64 }).default(1),
    // A worker must say which engine it runs: defaulting to the fake one
    // would turn a missing value into made-up transcripts.
    TQ_ENGINE: envVar.enum(ENGINE_NAMES),
    TQ_SHUTDOWN_GRACE_SECONDS: envVar.int({ min: 0, max: 86_400 }).default(30),
    TQ_ACK_WAIT_SECONDS: envVar.int({ min: 1, max: 3600 }).default(DEFAULT_ACK_WAIT_MS / 1000),
    TQ_HEARTBEAT_SECONDS: envVar.int({ min: 1, max: 300 }).default(HEARTBEAT_INTERVAL_SECONDS),
    TQ_HEALTH_PORT: envVar.port().default(8081),
    TQ_METRICS_PORT: envVar.port().default(9090),
    TQ_LOG_LEVEL: envVar.enum(LOG_LEVELS).default('info'),
    TQ_PIPELINE: envVar.enum(PIPELINE_NAMES).default('standard'),
    TQ_STUB_CHUNKS: envVar.int({ min: 1, max: 10_000 }).default(10),
    TQ_STUB_CHUNK_MS: envVar.int({ min: 0, max: 3_600_000 }).default(200),
    TQ_IDLE_POLL_MS: envVar.int({ min: 50, max: 60_000 }).default(1000),
  })
  .superRefine((env, ctx) => {
    checkNatsEnv(env, ctx);
    if (env.TQ_PIPELINE === 'standard' && env.TQ_ENGINE === 'openai' && env.TQ_ENGINE_OPENAI_URL === undefined) {
      ctx.addIssue({ code: 'custom', path: ['TQ_ENGINE_OPENAI_URL'], message: 'is required when TQ_ENGINE is openai' });
    }
    if (env.TQ_PIPELINE === 'standard' && env.TQ_ENGINE === 'exec' && env.TQ_ENGINE_EXEC_COMMAND === undefined) {
      ctx.addIssue({ code: 'custom', path: ['TQ_ENGINE_EXEC_COMMAND'], message: 'is required when TQ_ENGINE is exec' });
    }
  });

/** Reads the worker's configuration; throws ConfigError listing every problem. */
export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const parsed = parseEnv(WORKER_ENV_SCHEMA, env);
  const workerName = parsed.TQ_WORKER_NAME ?? parsed.POD_NAME ?? hostname();
  // The environment already passed the pipeline's schema above, so this only fills defaults.
  const pipeline = resolvePipelineSettings({}, env);
  return {
    ...pipeline,
    engine: parsed.TQ_ENGINE,
    nats: natsSettingsFromEnv(parsed, `tq-worker/${workerName}`),
    redis: redisSettingsFromEnv(parsed, `tq-worker/${workerName}`),
    queue: queueNames({ stream: parsed.TQ_STREAM_NAME, subjectPrefix: parsed.TQ_SUBJECT_PREFIX }),
    keyPrefix: parsed.TQ_KEY_PREFIX,
    taskKind: parsed.TQ_TASK_KIND,
    workerName,
    concurrency: parsed.TQ_CONCURRENCY,
    shutdownGraceSeconds: parsed.TQ_SHUTDOWN_GRACE_SECONDS,
    ackWaitSeconds: parsed.TQ_ACK_WAIT_SECONDS,
    heartbeatSeconds: parsed.TQ_HEARTBEAT_SECONDS,
    healthPort: parsed.TQ_HEALTH_PORT,
    metricsPort: parsed.TQ_METRICS_PORT,
    logLevel: parsed.TQ_LOG_LEVEL,
    pipeline: parsed.TQ_PIPELINE,
    stubChunks: parsed.TQ_STUB_CHUNKS,
    stubChunkMs: parsed.TQ_STUB_CHUNK_MS,
    idlePollMs: parsed.TQ_IDLE_POLL_MS,
  };
}
