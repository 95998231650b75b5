// Shared set-up for the WorkerPool tests: a namespace, a JetStream stream
// and subject prefix of its own, a worker Deployment, a WorkerPool, and the
// WorkerPoolReconciler running through a real Informer and Controller, woken
// the way the manager wakes it (every publish or removal of a task enqueues
// the pools of that kind).
import { AppsV1Api, CoreV1Api, type KubernetesObject, type V1Deployment } from '@kubernetes/client-node';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import { API_VERSION, Kind, applyTaskSpecDefaults, type TaskKind, type WorkerPoolSpecInput, type WorkerPoolStatus } from '../../../src/api/index.ts';
import { ControllerMetricsRegistry } from '../../../src/controller/metrics.ts';
import { TaskQueue } from '../../../src/controller/queue/task-queue.ts';
import { Controller, Informer, KubeClient, objectKey, realClock } from '../../../src/controller/runtime/index.ts';
import {
  WORKER_POOL_RESOURCE,
  WorkerPoolReconciler,
  hpaLookup,
  poolKeysForKind,
  type ScaleRecord,
  type WorkerPoolObject,
  type WorkerPoolReconcilerOptions,
} from '../../../src/controller/workerpool/index.ts';
import { queueNames, type QueueNames } from '../../../src/protocol/index.ts';
import { createTestNamespace, deleteTestNamespace, testEnv, uniqueName, waitFor } from '../../harness/index.ts';

export const KIND: TaskKind = Kind.TranscriptionTask;

export const quietLogger = pino({ level: process.env.TQ_TEST_LOG_LEVEL ?? 'silent' });

export interface PoolFixtureOptions {
  /** Create the Deployment up front (default true). */
  deployment?: boolean;
  pool?: Partial<WorkerPoolSpecInput>;
  reconciler?: Partial<Pick<WorkerPoolReconcilerOptions, 'resyncMs' | 'statusCountsIntervalMs' | 'activationBacklog'>>;
  /** How long the reconciler reuses a namespace's list of HPAs (default: the reconciler's own). */
  hpaTtlMs?: number;
  /** Start the controller at once (default true). */
  start?: boolean;
}

export interface PoolFixture {
  namespace: string;
  deploymentName: string;
  poolName: string;
  names: QueueNames;
  queue: TaskQueue;
  nc: NatsConnection;
  /** The client the reconciler uses: its counters are the reconciler's API calls. */
  client: KubeClient;
  /** A separate client for the test's own reads and writes. */
  observer: KubeClient;
  metrics: ControllerMetricsRegistry;
  reconciler: WorkerPoolReconciler;
  controller: Controller;
  informer: Informer<WorkerPoolObject>;
  scales: ScaleRecord[];
  /** What `running` answers for this pool; tests set it. */
  running: { count: number };
  start(): void;
  createDeployment(replicas?: number): Promise<void>;
  publish(count: number): Promise<number[]>;
  remove(seqs: readonly number[]): Promise<void>;
  /** Enqueues every pool of the kind, as the manager does when a task moves. */
  wake(): void;
  specReplicas(): Promise<number>;
  poolStatus(): Promise<WorkerPoolStatus | undefined>;
  waitForReplicas(what: string, check: (replicas: number) => boolean, timeoutMs?: number): Promise<number>;
  waitForStatus(what: string, check: (status: WorkerPoolStatus) => boolean, timeoutMs?: number): Promise<WorkerPoolStatus>;
  scaleWrites(): number;
  /** Reconcile passes that threw, as the Controller counted them. */
  reconcileErrors(): Promise<number>;
  eventReasons(): Promise<string[]>;
  cleanup(): Promise<void>;
}

export function deploymentManifest(namespace: string, name: string, replicas: number): V1Deployment {
  const labels = { 'app.kubernetes.io/name': name };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace, labels },
    spec: {
      replicas,
      selector: { matchLabels: labels },
      // No scheduler runs in the test cluster: the pods stay Pending, which
      // is all the autoscaler needs to see.
      template: { metadata: { labels }, spec: { containers: [{ name: 'worker', image: 'registry.k8s.io/pause:3.10' }] } },
    },
  };
}

let taskCounter = 0;

export async function poolFixture(options: PoolFixtureOptions = {}): Promise<PoolFixture> {
  const env = testEnv();
  const namespace = await createTestNamespace(env.kc, 'wp');
  const id = uniqueName('w').slice(2);
  const names = queueNames({ stream: `WP_${id.toUpperCase()}`, subjectPrefix: `wp${id}` });
  const nc = await connect({ servers: env.natsUrl });
  const queue = await TaskQueue.open(nc, { names });
  const client = new KubeClient(env.kc, { qps: 200, burst: 400 });
  const observer = new KubeClient(env.kc, { qps: 200, burst: 400 });
  const apps = env.kc.makeApiClient(AppsV1Api);
  const metrics = new ControllerMetricsRegistry({ defaultMetrics: false });
  const deploymentName = 'asr-workers';
  const poolName = 'asr';
  const scales: ScaleRecord[] = [];
  const running = { count: 0 };

  const informer = new Informer<WorkerPoolObject>({ client, resource: WORKER_POOL_RESOURCE, namespace, logger: quietLogger as never });
  const reconciler = new WorkerPoolReconciler({
    client,
    cache: informer,
    backlog: (kind) => queue.backlog(kind),
    running: (ns, kind, deployment) => (ns === namespace && kind === KIND && deployment === deploymentName ? running.count : 0),
    metrics,
    clock: realClock,
    logger: quietLogger as never,
    onScale: (record) => scales.push(record),
    ...(options.hpaTtlMs !== undefined ? { autoscalers: hpaLookup(client, { ttlMs: options.hpaTtlMs }) } : {}),
    ...options.reconciler,
  });
  const controller = new Controller({ name: 'workerpool', reconciler, clock: realClock, logger: quietLogger as never, metrics });
  const enqueue = (obj: WorkerPoolObject) => controller.enqueue(objectKey(obj));
  informer.on('add', enqueue);
  informer.on('update', enqueue);
  informer.on('delete', enqueue);

  const self: PoolFixture = {
    namespace,
    deploymentName,
    poolName,
    names,
    queue,
    nc,
    client,
    observer,
    metrics,
    reconciler,
    controller,
    informer,
    scales,
    running,
    start() {
      controller.start();
    },
    async createDeployment(replicas = 0) {
      await apps.createNamespacedDeployment({ namespace, body: deploymentManifest(namespace, deploymentName, replicas) });
    },
    async publish(count) {
      const seqs: number[] = [];
      for (let i = 0; i < count; i++) {
        const n = ++taskCounter;
        const spec = applyTaskSpecDefaults(KIND, { audio: { uri: `https://audio.example.com/${n}.wav` } });
        const { seq } = await queue.publish({ namespace, name: `task-${n}`, uid: `${id}-${n}`, kind: KIND, spec }, 1);
        seqs.push(seq);
        self.wake();
      }
      return seqs;
    },
    async remove(seqs) {
      for (const seq of seqs) {
        await queue.remove(seq);
        self.wake();
      }
    },
    wake() {
      for (const key of poolKeysForKind(informer.list(), KIND)) controller.enqueue(key);
    },
    async specReplicas() {
      const scale = await observer.getScale(namespace, deploymentName);
      return scale.spec?.replicas ?? 0;
    },
    async poolStatus() {
      const pool = await observer.get<WorkerPoolObject>(WORKER_POOL_RESOURCE, namespace, poolName);
      return pool.status;
    },
    async waitForReplicas(what, check, timeoutMs = 15_000) {
      let last = -1;
      try {
        await waitFor(what, async () => check((last = await self.specReplicas())), { timeoutMs, intervalMs: 25 });
      } catch (err) {
        throw new Error(`${(err as Error).message}; last spec.replicas: ${last}`);
      }
      return last;
    },
    async waitForStatus(what, check, timeoutMs = 15_000) {
      let last: WorkerPoolStatus | undefined;
      try {
        await waitFor(what, async () => {
          last = await self.poolStatus();
          return last !== undefined && check(last);
        }, { timeoutMs, intervalMs: 50 });
      } catch (err) {
        throw new Error(`${(err as Error).message}; last status: ${JSON.stringify(last)}`);
      }
      return last as WorkerPoolStatus;
    },
    scaleWrites() {
      return client.calls.count('patch', 'deployments/scale');
    },
    async reconcileErrors() {
      const metric = await metrics.reconcileErrors.get();
      return metric.values.reduce((sum, v) => sum + v.value, 0);
    },
    async eventReasons() {
      const events = await env.kc.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${poolName}` });
      return events.items.map((e) => e.reason ?? '');
    },
    async cleanup() {
      await controller.stop();
      await informer.stop();
      const jsm = await jetstreamManager(nc).catch(() => undefined);
      await jsm?.streams.delete(names.stream).catch(() => undefined);
      await nc.close().catch(() => undefined);
      await deleteTestNamespace(env.kc, namespace);
    },
  };

  if (options.deployment ?? true) await self.createDeployment(0);
  await client.create(WORKER_POOL_RESOURCE, {
    apiVersion: API_VERSION,
    kind: Kind.WorkerPool,
    metadata: { name: poolName, namespace },
    spec: {
      taskKind: KIND,
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: deploymentName },
      minReplicas: 0,
      maxReplicas: 4,
      tasksPerReplica: 1,
      scaleDownDelaySeconds: 2,
      ...options.pool,
    },
  } as KubernetesObject);
  informer.start();
  await informer.waitForSync();
  if (options.start ?? true) self.start();
  return self;
}
