// Shared set-up for the worker and protocol integration tests: real
// nats-server and redis-server (the run's shared ones under `npm test`,
// private ones when a file is run on its own), and per-test queue names and
// key prefixes so tests never see each other's messages.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/nats-core';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { Kind, Priority } from '../../../src/api/index.ts';
import type { TaskKind } from '../../../src/api/index.ts';
import {
  encodeTaskMessage,
  ensureConsumers,
  ensureStream,
  fieldsToRecord,
  msgId,
  parseReportEntry,
  parseTaskState,
  queueNames,
  redisKeys,
  reportsStreamKey,
  taskSubject,
} from '../../../src/protocol/index.ts';
import type { QueueNames, Report, TaskMessage, TaskMessageInput, TaskState } from '../../../src/protocol/index.ts';
import type { WorkerConfig } from '../../../src/worker/config.ts';
import { resolvePipelineSettings } from '../../../src/worker/pipeline/settings.ts';
import { Worker as WorkerClass } from '../../../src/worker/worker.ts';
import type { Worker } from '../../../src/worker/worker.ts';
import type { RunTask } from '../../../src/worker/task-context.ts';
import {
  ManagedProcess,
  projectRoot,
  startNats,
  startRedis,
  uniqueKeyPrefix,
  uniqueName,
  uniqueStream,
  waitFor,
} from '../../harness/index.ts';
import type { NatsServer, RedisServer } from '../../harness/index.ts';

export { sleep, waitFor, uniqueName } from '../../harness/index.ts';

let privateServers: Promise<{ nats: NatsServer; redis: RedisServer }> | undefined;

/** URLs of the servers to use: the test run's, or private ones started once per file. */
export async function serverUrls(): Promise<{ natsUrl: string; redisUrl: string }> {
  const natsUrl = process.env.TQ_TEST_NATS_URL;
  const redisUrl = process.env.TQ_TEST_REDIS_URL;
  if (natsUrl && redisUrl) return { natsUrl, redisUrl };
  privateServers ??= Promise.all([startNats(), startRedis()]).then(([nats, redis]) => ({ nats, redis }));
  const { nats, redis } = await privateServers;
  return { natsUrl: nats.url, redisUrl: redis.url };
}

/** Stops servers this file started itself (none under `npm test`). */
export async function stopPrivateServers(): Promise<void> {
  if (!privateServers) return;
  const { nats, redis } = await privateServers;
  await Promise.allSettled([nats.destroy(), redis.destroy()]);
  privateServers = undefined;
}

export interface QueueFixture {
  natsUrl: string;
  redisUrl: string;
  queue: QueueNames;
  keyPrefix: string;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  redis: Redis;
  close(): Promise<void>;
}

/** A fresh stream (with its 8 consumers), subject prefix and key prefix, on the shared servers. */
export async function queueFixture(options: { ackWaitMs?: number } = {}): Promise<QueueFixture> {
  const { natsUrl, redisUrl } = await serverUrls();
  const queue = queueNames({ stream: uniqueStream('TQ'), subjectPrefix: uniqueName('tq').replace('-', '_') });
  const keyPrefix = uniqueKeyPrefix();
  const nc = await connect({ servers: natsUrl });
  const jsm = await jetstreamManager(nc);
  await ensureStream(jsm, { names: queue });
  await ensureConsumers(jsm, { names: queue, ackWaitMs: options.ackWaitMs ?? 30_000 });
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  return {
    natsUrl,
    redisUrl,
    queue,
    keyPrefix,
    nc,
    js: jetstream(nc),
    jsm,
    redis,
    async close() {
      await jsm.streams.delete(queue.stream).catch(() => undefined);
      await nc.close();
      await deleteKeys(redis, keyPrefix);
      redis.disconnect();
    },
  };
}

async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    if (keys.length > 0) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

/** A valid task message; `overrides` may change anything, spec fields included. */
export function taskMessage(
  overrides: Partial<Omit<TaskMessageInput, 'spec'>> & { spec?: Record<string, unknown> } = {},
): TaskMessageInput {
  const kind = (overrides.kind ?? Kind.TranscriptionTask) as TaskKind;
  return {
    namespace: 'default',
    name: uniqueName('task'),
    uid: uniqueName('uid'),
    attempt: 1,
    ...overrides,
    kind,
    spec: {
      audio: { uri: 'https://audio.example/a.wav' },
      retryPolicy: { maxRetries: 2, backoffSeconds: 1 },
      ...overrides.spec,
    },
  } as TaskMessageInput;
}

/** Publishes as the controller does: the priority's subject, Nats-Msg-Id `<uid>:<attempt>`. */
export async function publishTask(fx: QueueFixture, input: TaskMessageInput): Promise<TaskMessage> {
  const data = encodeTaskMessage(input);
  const message = JSON.parse(new TextDecoder().decode(data)) as TaskMessage;
  const h = headers();
  h.set('Nats-Msg-Id', msgId(message.uid, message.attempt));
  await fx.js.publish(taskSubject(message.kind, message.spec.priority, fx.queue), data, { headers: h });
  return message;
}

/** Publishes raw bytes on a task subject (malformed messages). */
export async function publishRaw(fx: QueueFixture, body: string, priority: Priority = Priority.Normal, kind: TaskKind = Kind.TranscriptionTask): Promise<void> {
  await fx.js.publish(taskSubject(kind, priority, fx.queue), new TextEncoder().encode(body));
}

export async function taskState(fx: QueueFixture, uid: string): Promise<TaskState | undefined> {
  return parseTaskState(await fx.redis.hgetall(redisKeys(fx.keyPrefix, uid).state));
}

export async function waitForPhase(fx: QueueFixture, uid: string, phase: string, timeoutMs = 15_000): Promise<TaskState> {
  let state: TaskState | undefined;
  await waitFor(
    `task ${uid} in phase ${phase}`,
    async () => {
      state = await taskState(fx, uid);
      return state?.phase === phase;
    },
    { timeoutMs, intervalMs: 20 },
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}; last state: ${JSON.stringify(state)}`);
  });
  return state as TaskState;
}

/** Every report about `uid` on the reports stream, oldest first. */
export async function reportsFor(fx: QueueFixture, uid: string): Promise<Report[]> {
  const entries = await fx.redis.xrange(reportsStreamKey(fx.keyPrefix), '-', '+');
  return entries
    .map(([, fields]) => fieldsToRecord(fields))
    .filter((fields) => fields.uid === uid)
    .map((fields) => parseReportEntry(fields));
}

/** Messages still in the stream (WorkQueue: acked and termed ones are gone). */
export async function streamMessages(fx: QueueFixture): Promise<number> {
  return (await fx.jsm.streams.info(fx.queue.stream)).state.messages;
}

/** A worker configuration for an in-process worker on the fixture's queue. */
export function workerConfig(fx: QueueFixture, overrides: Partial<WorkerConfig> = {}): WorkerConfig {
  return {
    ...resolvePipelineSettings({}, {}),
    nats: { servers: [fx.natsUrl] },
    redis: { url: fx.redisUrl },
    queue: fx.queue,
    keyPrefix: fx.keyPrefix,
    taskKind: Kind.TranscriptionTask,
    workerName: uniqueName('worker'),
    concurrency: 1,
    shutdownGraceSeconds: 5,
    ackWaitSeconds: 30,
    heartbeatSeconds: 5,
    healthPort: 0,
    metricsPort: 0,
    logLevel: 'silent',
    pipeline: 'stub',
    stubChunks: 1,
    stubChunkMs: 0,
    idlePollMs: 200,
    ...overrides,
  };
}

/** Logs of in-process workers: silent unless TQ_TEST_LOG_LEVEL says otherwise. */
export function testLogger(): Logger {
  return pino({ level: process.env.TQ_TEST_LOG_LEVEL ?? 'silent' });
}

/** Environment for a worker process (`node src/worker/main.ts`) on the fixture's queue. */
export function workerEnv(fx: QueueFixture, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    TQ_NATS_URL: fx.natsUrl,
    TQ_REDIS_URL: fx.redisUrl,
    TQ_STREAM_NAME: fx.queue.stream,
    TQ_SUBJECT_PREFIX: fx.queue.subjectPrefix,
    TQ_KEY_PREFIX: fx.keyPrefix,
    TQ_TASK_KIND: 'TranscriptionTask',
    TQ_ENGINE: 'fake',
    TQ_PIPELINE: 'stub',
    TQ_HEALTH_PORT: '0',
    TQ_METRICS_PORT: '0',
    TQ_LOG_LEVEL: 'info',
    TQ_IDLE_POLL_MS: '200',
    ...extra,
  };
}

/** An in-process worker on the fixture's queue; stop it with `worker.stop()`. */
export function startWorker(
  fx: QueueFixture,
  runTask: RunTask,
  overrides: Partial<WorkerConfig> = {},
): Worker {
  const worker = new WorkerClass({ config: workerConfig(fx, overrides), nc: fx.nc, redis: fx.redis, logger: testLogger(), runTask });
  worker.start();
  return worker;
}

/** Resolves after `ms`, or rejects with the signal's reason, like a pipeline waiting on an engine. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export const ok = { summary: { segments: 1 }, result: { text: 'ok' } };

/** A `node src/worker/main.ts` process on the fixture's queue, logging to a file. */
export class WorkerProcess {
  readonly process: ManagedProcess;
  readonly name: string;

  constructor(fx: QueueFixture, extraEnv: Record<string, string> = {}) {
    this.name = extraEnv.TQ_WORKER_NAME ?? uniqueName('worker');
    const logDir = mkdtempSync(join(tmpdir(), 'tq-worker-'));
    this.process = new ManagedProcess(this.name, process.execPath, [join(projectRoot, 'src', 'worker', 'main.ts')], {
      logFile: join(logDir, 'worker.log'),
      env: workerEnv(fx, { TQ_WORKER_NAME: this.name, ...extraEnv }),
      cwd: projectRoot,
    });
    this.process.start();
  }

  /** The worker's JSON log lines so far. */
  logs(): Record<string, unknown>[] {
    return this.process
      .logTail(100_000)
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  async waitForLog(msg: string, timeoutMs = 15_000): Promise<Record<string, unknown>> {
    let found: Record<string, unknown> | undefined;
    await waitFor(
      `worker log "${msg}"`,
      () => {
        if (!this.process.running && !found) throw new Error(`worker exited:\n${this.process.logTail()}`);
        found = this.logs().find((line) => line.msg === msg);
        return found !== undefined;
      },
      { timeoutMs, intervalMs: 25 },
    );
    return found as Record<string, unknown>;
  }
}
