// Shared set-up for the controller's integration tests: a ControllerManager
// in-process against the real apiserver, nats-server and redis-server, with
// a stream, subject prefix, key prefix and namespace of its own, and a
// minimal worker that speaks the real protocol (JetStream pull + ReportWriter).
import { KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { API_VERSION, GROUP, PLURALS, VERSION, type TaskKind, type TaskStatus } from '../../../src/api/index.ts';
import { ControllerManager } from '../../../src/controller/manager.ts';
import type { ControllerConfig } from '../../../src/controller/config.ts';
import { KubeClient } from '../../../src/controller/runtime/index.ts';
import { consumerName, decodeTaskMessage, queueNames, ReportWriter, type QueueNames, type TaskMessage } from '../../../src/protocol/index.ts';
import { createTestNamespace, testEnv, uniqueKeyPrefix, uniqueName, waitFor } from '../../harness/index.ts';

export interface ControllerTestEnv {
  namespace: string;
  names: QueueNames;
  keyPrefix: string;
  kc: KubeConfig;
  client: KubeClient;
  nc: NatsConnection;
  redis: Redis;
  natsUrl: string;
  redisUrl: string;
  config(overrides?: Partial<ControllerConfig>): ControllerConfig;
  startManager(overrides?: Partial<ControllerConfig>, kc?: KubeConfig): Promise<ControllerManager>;
  createTask(kind: TaskKind, name: string, spec: Record<string, unknown>): Promise<KubernetesObject & { status?: TaskStatus }>;
  getTask(kind: TaskKind, name: string): Promise<(KubernetesObject & { status?: TaskStatus; spec?: Record<string, unknown> }) | undefined>;
  waitForTask(kind: TaskKind, name: string, what: string, check: (status: TaskStatus) => boolean, timeoutMs?: number): Promise<TaskStatus>;
  streamMessages(): Promise<number>;
  cleanup(): Promise<void>;
}

export const quietLogger = pino({ level: process.env.TQ_TEST_LOG_LEVEL ?? 'silent' });

export async function controllerTestEnv(options: { natsUrl?: string; redisUrl?: string; kc?: KubeConfig } = {}): Promise<ControllerTestEnv> {
  const env = testEnv();
  const kc = options.kc ?? env.kc;
  const natsUrl = options.natsUrl ?? env.natsUrl;
  const redisUrl = options.redisUrl ?? env.redisUrl;
  const namespace = await createTestNamespace(kc, 'ctl');
  const id = uniqueName('t').slice(2);
  const names = queueNames({ stream: `TQ_${id.toUpperCase()}`, subjectPrefix: `tq${id}` });
  const keyPrefix = uniqueKeyPrefix();
  const client = new KubeClient(kc, { qps: 200, burst: 400 });
  const nc = await connect({ servers: natsUrl, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const managers: ControllerManager[] = [];

  const config = (overrides: Partial<ControllerConfig> = {}): ControllerConfig => ({
    nats: { servers: [natsUrl] },
    redis: { url: redisUrl },
    queue: names,
    streamReplicas: 1,
    keyPrefix,
    watchNamespace: namespace,
    identity: uniqueName('controller'),
    leaderElection: { enabled: false },
    metricsPort: 0,
    healthPort: 0,
    kubeQps: 100,
    kubeBurst: 200,
    progressIntervalMs: 1000,
    concurrency: 4,
    heartbeatTimeoutMs: 30_000,
    ackWaitMs: 30_000,
    resyncMs: 0,
    logLevel: 'silent',
    ...overrides,
  });

  const ref = (kind: TaskKind) => ({ group: GROUP, version: VERSION, plural: PLURALS[kind] });

  const self: ControllerTestEnv = {
    namespace,
    names,
    keyPrefix,
    kc,
    client,
    nc,
    redis,
    natsUrl,
    redisUrl,
    config,
    async startManager(overrides = {}, managerKc = kc) {
      const manager = new ControllerManager({ config: config(overrides), logger: quietLogger as never, kubeConfig: managerKc, serveHttp: false });
      managers.push(manager);
      await manager.start();
      await waitFor('the controller to lead and sync', () => manager.isLeader() && manager.ready(), { timeoutMs: 30_000 });
      return manager;
    },
    async createTask(kind, name, spec) {
      return client.create(ref(kind), { apiVersion: API_VERSION, kind, metadata: { name, namespace }, spec } as KubernetesObject);
    },
    async getTask(kind, name) {
      try {
        return await client.get(ref(kind), namespace, name);
      } catch {
        return undefined;
      }
    },
    async waitForTask(kind, name, what, check, timeoutMs = 30_000) {
      let last: TaskStatus | undefined;
      try {
        await waitFor(`${kind} ${name}: ${what}`, async () => {
          last = (await self.getTask(kind, name))?.status;
          return last !== undefined && check(last);
        }, { timeoutMs, intervalMs: 50 });
      } catch (err) {
        throw new Error(`${(err as Error).message}; last status: ${JSON.stringify(last)}`);
      }
      return last as TaskStatus;
    },
    async streamMessages() {
      const jsm = await jetstreamManager(nc);
      return (await jsm.streams.info(names.stream)).state.messages;
    },
    async cleanup() {
      await Promise.allSettled(managers.map((m) => m.stop()));
      const timeBoxed = <T>(p: Promise<T>) => Promise.race([p.catch(() => undefined), new Promise<undefined>((r) => setTimeout(() => r(undefined), 3000).unref())]);
      const jsm = await timeBoxed(jetstreamManager(nc, { timeout: 2000 }));
      await timeBoxed(jsm?.streams.delete(names.stream) ?? Promise.resolve(false));
      const keys = (await timeBoxed(redis.keys(`${keyPrefix}*`))) ?? [];
      if (keys.length) await timeBoxed(redis.del(...keys));
      redis.disconnect();
      await timeBoxed(nc.close());
    },
  };
  return self;
}

/** A worker reduced to the protocol: pull one message, report through ReportWriter, settle the message. */
export class ProtocolWorker {
  readonly name: string;
  readonly reports: ReportWriter;
  private readonly nc: NatsConnection;
  private readonly names: QueueNames;

  constructor(env: ControllerTestEnv, name = uniqueName('worker')) {
    this.name = name;
    this.nc = env.nc;
    this.names = env.names;
    this.reports = new ReportWriter({ redis: env.redis, prefix: env.keyPrefix });
  }

  /** Waits for the next message of a kind and priority. */
  async take(kind: TaskKind, priority = 'Normal', timeoutMs = 15_000): Promise<{ msg: JsMsg; task: TaskMessage; attempt: number }> {
    const js = jetstream(this.nc);
    const consumer = await js.consumers.get(this.names.stream, consumerName(kind, priority as never));
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const msg = await consumer.next({ expires: 1000 });
      if (!msg) continue;
      const task = decodeTaskMessage(msg.data);
      return { msg, task, attempt: task.attempt + msg.info.deliveryCount - 1 };
    }
    throw new Error(`no ${kind} message within ${timeoutMs} ms`);
  }

  target(task: TaskMessage, attempt: number) {
    return { uid: task.uid, namespace: task.namespace, name: task.name, kind: task.kind, attempt, worker: this.name };
  }
}
