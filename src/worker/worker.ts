// The worker runtime: pulls messages of one task kind in priority order,
// runs up to `concurrency` of them at once, listens for cancel notices, and
// on shutdown stops pulling, lets running tasks finish within the grace
// period and hands the rest back.
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ReportWriter, decodeCancelMessage } from '../protocol/index.ts';
import type { WorkerConfig } from './config.ts';
import { TaskCancelledError, WorkerShutdownError } from './errors.ts';
import { WorkerMetrics } from './metrics.ts';
import { PriorityPuller, natsPuller } from './puller.ts';
import type { PullFn, PulledTask } from './puller.ts';
import type { RunTask } from './task-context.ts';
import { TaskRun } from './task-run.ts';
import type { TaskRunDeps } from './task-run.ts';

export interface WorkerOptions {
  config: WorkerConfig;
  nc: NatsConnection;
  redis: Redis;
  logger: Logger;
  /** The pipeline; main.ts passes the real one, tests their own. */
  runTask: RunTask;
  metrics?: WorkerMetrics;
  now?: () => Date;
  /** Replaces the server-backed pulls (tests of the loop itself). */
  pull?: PullFn;
}

export class Worker {
  readonly metrics: WorkerMetrics;
  private readonly options: WorkerOptions;
  private readonly logger: Logger;
  private readonly stopping = new AbortController();
  private readonly runs = new Set<TaskRun>();
  private readonly runDone = new Map<TaskRun, Promise<void>>();
  private readonly taskRunDeps: TaskRunDeps;
  private puller: PriorityPuller | undefined;
  private closePuller: (() => void) | undefined;
  private cancelSubscription: Subscription | undefined;
  private loop: Promise<void> | undefined;
  private slotFreed: (() => void) | undefined;
  private stopped: Promise<void> | undefined;

  constructor(options: WorkerOptions) {
    this.options = options;
    this.logger = options.logger;
    this.metrics = options.metrics ?? new WorkerMetrics();
    this.taskRunDeps = {
      config: options.config,
      redis: options.redis,
      reports: new ReportWriter({ redis: options.redis, prefix: options.config.keyPrefix }),
      runTask: options.runTask,
      logger: options.logger,
      metrics: this.metrics,
      now: options.now ?? (() => new Date()),
      runningHere: (uid, self) => {
        for (const run of this.runs) if (run !== self && run.uid === uid) return true;
        return false;
      },
    };
  }

  /** Runs in flight right now. */
  get activeRuns(): number {
    return this.runs.size;
  }

  /** Taking work: started, not stopping, and both connections up. */
  get ready(): boolean {
    return (
      this.loop !== undefined &&
      !this.stopping.signal.aborted &&
      !this.options.nc.isClosed() &&
      this.options.redis.status === 'ready'
    );
  }

  start(): void {
    if (this.loop) throw new Error('worker already started');
    const { config, nc } = this.options;
    this.cancelSubscription = nc.subscribe(config.queue.cancelSubject, {
      callback: (err, msg) => {
        if (err) return;
        try {
          this.cancel(decodeCancelMessage(msg.data).uid);
        } catch (decodeErr) {
          this.logger.warn({ err: decodeErr }, 'Ignored malformed cancel notice');
        }
      },
    });
    if (this.options.pull) {
      this.puller = new PriorityPuller({
        kind: config.taskKind,
        pull: this.options.pull,
        logger: this.logger,
        idlePollMs: config.idlePollMs,
      });
    } else {
      const { puller, close } = natsPuller({
        nc,
        queue: config.queue,
        kind: config.taskKind,
        logger: this.logger,
        idlePollMs: config.idlePollMs,
      });
      this.puller = puller;
      this.closePuller = close;
    }
    this.loop = this.pullLoop(this.puller);
    this.logger.info(
      { kind: config.taskKind, stream: config.queue.stream, concurrency: config.concurrency },
      'Worker started',
    );
  }

  /** Aborts the run of task `uid` on this worker, if there is one. */
  cancel(uid: string): boolean {
    let found = false;
    for (const run of this.runs) {
      if (run.uid === uid) {
        run.abort(new TaskCancelledError('cancel requested'));
        found = true;
      }
    }
    return found;
  }

  /**
   * Stops taking messages, waits up to `graceMs` for running tasks, then
   * hands the rest back (released + nak(0)). Resolves when every delivery
   * has been answered. Calling it again returns the same promise.
   */
  stop(graceMs = this.options.config.shutdownGraceSeconds * 1000): Promise<void> {
    this.stopped ??= this.shutdown(graceMs);
    return this.stopped;
  }

  private async shutdown(graceMs: number): Promise<void> {
    this.stopping.abort();
    this.slotFreed?.();
    await this.loop;
    this.closePuller?.();
    const pending = [...this.runDone.values()];
    if (pending.length > 0) {
      this.logger.info({ running: pending.length, graceMs }, 'Waiting for running tasks before shutdown');
      const finished = await Promise.race([
        Promise.all(pending).then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), graceMs).unref()),
      ]);
      if (!finished) {
        this.logger.warn({ running: this.runs.size }, 'Grace period over; handing running tasks back');
        for (const run of this.runs) run.abort(new WorkerShutdownError());
        await Promise.all([...this.runDone.values()]);
      }
    }
    this.cancelSubscription?.unsubscribe();
    this.logger.info('Worker stopped');
  }

  private async pullLoop(puller: PriorityPuller): Promise<void> {
    const signal = this.stopping.signal;
    const concurrency = this.options.config.concurrency;
    while (!signal.aborted) {
      if (this.runs.size >= concurrency) {
        await new Promise<void>((resolve) => {
          this.slotFreed = resolve;
        });
        this.slotFreed = undefined;
        continue;
      }
      let pulled: PulledTask | null;
      try {
        pulled = await puller.next(signal);
      } catch (err) {
        // next() handles pull errors itself; this is a bug, so slow down and go on.
        this.logger.error({ err }, 'Pull loop failed');
        await new Promise((resolve) => setTimeout(resolve, 1000));
        continue;
      }
      if (!pulled) break;
      this.launch(new TaskRun(this.taskRunDeps, pulled.delivery));
    }
  }

  private launch(run: TaskRun): void {
    this.runs.add(run);
    const done = run.execute().finally(() => {
      this.runs.delete(run);
      this.runDone.delete(run);
      this.slotFreed?.();
    });
    this.runDone.set(run, done);
  }
}
