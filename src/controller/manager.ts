// Wires the controller together: informers (on every replica, so a new
// leader starts with a warm cache), leader election, and, on the leader
// only, the task reconcilers, the WorkerPool reconciler, the JetStream queue
// and the reports feed. main.ts runs it; tests run it in-process.
import { KubeConfig } from '@kubernetes/client-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { Redis } from 'ioredis';
import { GROUP, Kind, PLURALS, TASK_KINDS, VERSION, isTerminalPhase, type TaskKind } from '../api/index.ts';
import { connectNats, redisOptions, startOpsServer, type OpsServer } from '../common/index.ts';
import type { Report } from '../protocol/index.ts';
import type { ControllerConfig } from './config.ts';
import { ControllerMetricsRegistry } from './metrics.ts';
import { TaskQueue } from './queue/task-queue.ts';
import { ReportFeed } from './reports/report-feed.ts';
import { TaskStore } from './reports/task-store.ts';
import {
  Controller,
  Informer,
  KubeClient,
  LeaderElector,
  objectKey,
  realClock,
  type Clock,
  type Logger,
} from './runtime/index.ts';
import { TaskReconciler, type TaskObject } from './tasks/task-reconciler.ts';
import { WorkerPoolReconciler, poolKeysForKind, runningOnPool, type WorkerPoolObject } from './workerpool/index.ts';

export interface ManagerOptions {
  config: ControllerConfig;
  logger: Logger;
  kubeConfig?: KubeConfig;
  clock?: Clock;
  /** Serve /metrics, /healthz and /readyz (off in tests that run several managers). */
  serveHttp?: boolean;
  /** Called when leadership is lost; main.ts exits so that a fresh process starts clean. */
  onLostLeadership?: () => void;
}

export class ControllerManager {
  readonly client: KubeClient;
  readonly metrics: ControllerMetricsRegistry;
  readonly identity: string;
  private readonly config: ControllerConfig;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly options: ManagerOptions;
  private readonly taskInformers = new Map<TaskKind, Informer<TaskObject>>();
  private readonly taskReconcilers = new Map<TaskKind, TaskReconciler>();
  private readonly taskControllers = new Map<TaskKind, Controller>();
  private readonly poolInformer: Informer<WorkerPoolObject>;
  private readonly poolController: Controller;
  private readonly elector: LeaderElector | undefined;
  private readonly redis: Redis;
  private readonly feedRedis: Redis;
  private nc: NatsConnection | undefined;
  private queue: TaskQueue | undefined;
  private feed: ReportFeed | undefined;
  private servers: OpsServer[] = [];
  private leading = false;
  private stopping = false;
  private leaderAbort: AbortController | undefined;

  constructor(options: ManagerOptions) {
    this.options = options;
    this.config = options.config;
    this.log = options.logger;
    this.clock = options.clock ?? realClock;
    this.identity = options.config.identity;
    const kc = options.kubeConfig ?? defaultKubeConfig();
    this.client = new KubeClient(kc, {
      qps: this.config.kubeQps,
      burst: this.config.kubeBurst,
      fieldManager: 'task-queue-controller',
      eventComponent: 'task-queue-controller',
    });
    this.metrics = new ControllerMetricsRegistry({ defaultMetrics: options.serveHttp ?? true });

    // Created now, connected only on the leader. Commands fail fast while Redis
    // is away, so a reconcile reports the outage in status instead of hanging.
    this.redis = new Redis(this.config.redis.url, {
      ...redisOptions(this.config.redis),
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      commandTimeout: 5000,
    });
    this.feedRedis = new Redis(this.config.redis.url, redisOptions(this.config.redis));
    for (const r of [this.redis, this.feedRedis]) r.on('error', (err: Error) => this.log.debug({ err: err.message }, 'Redis connection error'));
    const store = new TaskStore(this.redis, this.config.keyPrefix);
    for (const kind of TASK_KINDS) {
      const informer = new Informer<TaskObject>({
        client: this.client,
        resource: { group: GROUP, version: VERSION, plural: PLURALS[kind] },
        ...(this.config.watchNamespace ? { namespace: this.config.watchNamespace } : {}),
        resyncPeriodMs: this.config.resyncMs,
        logger: this.log,
      });
      const reconciler = new TaskReconciler({
        kind,
        client: this.client,
        cache: informer,
        queue: () => this.queue,
        store,
        timing: {
          heartbeatTimeoutMs: this.config.heartbeatTimeoutMs,
          deadlineGraceMs: this.config.heartbeatTimeoutMs,
          redeliveryGraceMs: this.config.ackWaitMs + this.config.heartbeatTimeoutMs,
          queueRecheckMs: 3 * this.config.ackWaitMs,
        },
        progressIntervalMs: this.config.progressIntervalMs,
        clock: this.clock,
        logger: this.log,
        metrics: this.metrics,
      });
      const controller = new Controller({
        name: kind.toLowerCase(),
        reconciler,
        concurrency: this.config.concurrency,
        clock: this.clock,
        logger: this.log,
        metrics: this.metrics,
      });
      const enqueue = (obj: TaskObject) => {
        if (this.leading) controller.enqueue(objectKey(obj));
      };
      informer.on('add', enqueue);
      informer.on('update', (obj, old) => {
        // The echo of our own status write carries nothing new; timers and
        // reports bring the task back when something changes.
        if (!reconciler.isOwnWrite(obj)) enqueue(obj);
        if (old.status?.phase !== obj.status?.phase && (isTerminalPhase(obj.status?.phase) || obj.status?.phase === 'Queued')) this.backlogChanged(kind);
      });
      informer.on('delete', (obj) => {
        reconciler.forget(obj.metadata?.uid);
        this.backlogChanged(kind);
      });
      this.taskInformers.set(kind, informer);
      this.taskReconcilers.set(kind, reconciler);
      this.taskControllers.set(kind, controller);
    }

    this.poolInformer = new Informer<WorkerPoolObject>({
      client: this.client,
      resource: { group: GROUP, version: VERSION, plural: PLURALS[Kind.WorkerPool] },
      ...(this.config.watchNamespace ? { namespace: this.config.watchNamespace } : {}),
      resyncPeriodMs: this.config.resyncMs,
      logger: this.log,
    });
    this.poolController = new Controller({
      name: 'workerpool',
      reconciler: new WorkerPoolReconciler({
        client: this.client,
        cache: this.poolInformer,
        backlog: async (kind: TaskKind) => (this.queue ? this.queue.backlog(kind).catch(() => undefined) : undefined),
        running: (_namespace: string, kind: TaskKind, deployment: string) => runningOnPool(this.taskInformers.get(kind)?.list() ?? [], deployment),
        metrics: this.metrics,
        clock: this.clock,
        logger: this.log,
      }),
      concurrency: 2,
      clock: this.clock,
      logger: this.log,
      metrics: this.metrics,
    });
    const enqueuePool = (obj: WorkerPoolObject) => {
      if (this.leading) this.poolController.enqueue(objectKey(obj));
    };
    this.poolInformer.on('add', enqueuePool);
    this.poolInformer.on('update', enqueuePool);
    this.poolInformer.on('delete', (obj) => {
      this.metrics.forgetWorkerPool(obj.metadata?.namespace ?? '', obj.metadata?.name ?? '');
      // A pass over a pool that is gone drops the reconciler's memory of it.
      enqueuePool(obj);
    });

    this.metrics.attach({
      tasks: (kind) => this.taskInformers.get(kind)?.list() ?? [],
      backlog: async (kind) => (this.queue ? (await this.queue.backlog(kind)).byPriority : undefined),
      isLeader: () => this.leading,
    });

    const le = this.config.leaderElection;
    this.elector = le.enabled
      ? new LeaderElector({
          client: this.client,
          namespace: le.namespace,
          name: le.name,
          identity: this.identity,
          leaseDurationSeconds: le.leaseDurationSeconds,
          renewDeadlineSeconds: le.renewDeadlineSeconds,
          retryPeriodSeconds: le.retryPeriodSeconds,
          clock: this.clock,
          logger: this.log,
          onStartedLeading: (signal) => this.startLeading(signal),
          onStoppedLeading: () => this.lostLeadership(),
          onNewLeader: (identity) => this.log.info({ leader: identity }, 'New leader elected'),
        })
      : undefined;
  }

  /** A task was queued, finished or deleted: every pool of its kind looks again now. */
  private backlogChanged(kind: TaskKind): void {
    if (!this.leading) return;
    for (const key of poolKeysForKind(this.poolInformer.list(), kind)) this.poolController.enqueue(key);
  }

  private onReport(report: Report): void {
    const kind = report.kind as TaskKind;
    const controller = this.taskControllers.get(kind);
    if (!controller) return;
    controller.enqueue(`${report.namespace}/${report.name}`);
    if (report.type !== 'progress' && report.type !== 'heartbeat') this.backlogChanged(kind);
  }

  async start(): Promise<void> {
    if (this.options.serveHttp ?? true) {
      this.servers.push(
        await startOpsServer({ port: this.config.metricsPort, metrics: this.metrics.registry, logger: this.log as never }),
        await startOpsServer({
          port: this.config.healthPort,
          health: { ready: () => this.ready() },
          logger: this.log as never,
        }),
      );
    }
    for (const informer of [...this.taskInformers.values(), this.poolInformer]) informer.start();
    if (this.elector) {
      this.elector.start();
    } else {
      void this.startLeading(new AbortController().signal);
    }
    this.log.info({ identity: this.identity, leaderElection: this.config.leaderElection.enabled }, 'Controller started');
  }

  /** Ready: caches synced, and on the leader, Redis and JetStream reachable. */
  ready(): boolean {
    const synced = [...this.taskInformers.values(), this.poolInformer].every((i) => i.hasSynced());
    if (!synced) return false;
    if (!this.leading) return true;
    return this.queue !== undefined && this.redis.status === 'ready';
  }

  isLeader(): boolean {
    return this.leading;
  }

  private async startLeading(signal: AbortSignal): Promise<void> {
    this.leaderAbort = new AbortController();
    const log = this.log;
    log.info({ identity: this.identity }, 'Became leader');
    await Promise.allSettled([this.redis.connect(), this.feedRedis.connect()]);

    await Promise.all([...this.taskInformers.values(), this.poolInformer].map((i) => i.waitForSync(signal)));
    if (signal.aborted) return;
    this.leading = true;

    this.feed = new ReportFeed({
      redis: this.feedRedis,
      prefix: this.config.keyPrefix,
      consumer: this.identity,
      onReport: (r) => this.onReport(r),
      logger: log,
    });
    this.feed.start();
    void this.openQueue(this.leaderAbort.signal);

    for (const [kind, controller] of this.taskControllers) {
      controller.start();
      for (const obj of this.taskInformers.get(kind)?.list() ?? []) controller.enqueue(objectKey(obj));
    }
    // Pools start once the queue is open (openQueue): before that their
    // backlog cannot be read, and a pass would only report it unavailable.
  }

  /** Connects to NATS and sets up the stream, retrying until it works or leadership ends. */
  private async openQueue(signal: AbortSignal): Promise<void> {
    let delay = 500;
    while (!signal.aborted && !this.queue) {
      try {
        this.nc ??= await connectNats(this.config.nats, this.log as never);
        this.queue = await TaskQueue.open(this.nc, {
          names: this.config.queue,
          replicas: this.config.streamReplicas,
          ackWaitMs: this.config.ackWaitMs,
        });
        this.log.info({ stream: this.config.queue.stream }, 'Task queue ready');
        // Tasks that waited in Pending for the queue go now; pools can read their backlog.
        for (const [kind, controller] of this.taskControllers) {
          for (const obj of this.taskInformers.get(kind)?.list() ?? []) controller.enqueue(objectKey(obj));
        }
        this.poolController.start();
        for (const obj of this.poolInformer.list()) this.poolController.enqueue(objectKey(obj));
      } catch (err) {
        this.log.warn({ err: (err as Error).message, retryInMs: delay }, 'Task queue not ready');
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 10_000);
      }
    }
  }

  private lostLeadership(): void {
    if (!this.leading || this.stopping) return;
    this.log.warn({ identity: this.identity }, 'Lost leadership');
    this.leading = false;
    this.options.onLostLeadership?.();
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.leaderAbort?.abort();
    await Promise.allSettled([...this.taskControllers.values(), this.poolController].map((c) => c.stop()));
    await this.feed?.stop();
    // Release the Lease last: a successor must not start while we still act.
    await this.elector?.stop();
    this.leading = false;
    await Promise.allSettled([...this.taskInformers.values(), this.poolInformer].map((i) => i.stop()));
    // drain() waits for a server; a controller stopping during a NATS outage must not.
    if (this.nc && !this.nc.isClosed()) {
      await Promise.race([this.nc.drain().catch(() => undefined), new Promise((r) => setTimeout(r, 2000).unref())]);
      await this.nc.close().catch(() => undefined);
    }
    this.redis.disconnect();
    this.feedRedis.disconnect();
    await Promise.allSettled(this.servers.map((s) => s.close()));
    this.log.info({ identity: this.identity }, 'Controller stopped');
  }
}

function defaultKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}
