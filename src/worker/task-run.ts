// One delivery, from the message to the JetStream verb. The outcome mapping
// is docs/protocol.md's "Outcomes" table; the order of writes is always
// report first, verb second, so the controller never sees a message gone
// from the queue without knowing why.
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Reason, isTerminalPhase, PhaseSchema } from '../api/index.ts';
import {
  ProtocolDecodeError,
  attemptAllowed,
  canRetry,
  decodeTaskMessage,
  deliveryAttempt,
  maxAttempts,
  redisKeys,
  retryBackoffSeconds,
  salvageTaskIdentity,
} from '../protocol/index.ts';
import type { ReportTarget, ReportWriter, TaskMessage } from '../protocol/index.ts';
import type { WorkerConfig } from './config.ts';
import type { TaskDelivery } from './delivery.ts';
import {
  DeadlineExceededError,
  RetryableTaskError,
  SupersededError,
  TaskCancelledError,
  UnrecoverableTaskError,
  WorkerShutdownError,
} from './errors.ts';
import { Outcome } from './metrics.ts';
import type { WorkerMetrics } from './metrics.ts';
import { ProgressThrottle } from './progress.ts';
import type { RunTask, TaskContext, TaskRunResult } from './task-context.ts';

/** Progress reports per task: at most one per this interval. */
export const PROGRESS_INTERVAL_MS = 250;
/** How often a running task's Redis cancel flag is looked at. */
export const CANCEL_POLL_MS = 500;
/** After an abort, how long the pipeline gets to unwind before its slot is reused. */
export const ABORT_SETTLE_MS = 5000;
/** A finished task's state outlives its result by at least this, so a slow controller still reads it. */
export const FINISHED_STATE_MIN_TTL_SECONDS = 7 * 24 * 60 * 60;
/** When an outcome cannot be recorded, the delivery comes back after this. */
export const REPORT_FAILURE_RETRY_MS = 5000;
/** Reason for a run that failed with an error the pipeline did not classify. */
export const UNEXPECTED_ERROR_REASON = 'UnexpectedError';

export interface TaskRunDeps {
  config: WorkerConfig;
  redis: Redis;
  reports: ReportWriter;
  runTask: RunTask;
  logger: Logger;
  metrics: WorkerMetrics;
  now: () => Date;
  /** True when another run of this process already holds the task `uid`. */
  runningHere?: (uid: string, self: TaskRun) => boolean;
}

type Settled =
  | { kind: 'succeeded'; value: TaskRunResult }
  | { kind: 'threw'; error: unknown }
  | { kind: 'aborted'; reason: unknown };

/** A delivery being handled; the worker keeps one per slot to cancel or release it. */
export class TaskRun {
  readonly delivery: TaskDelivery;
  /** Set once the body decoded; cancel notices are matched on it. */
  uid: string | undefined;
  private readonly deps: TaskRunDeps;
  private readonly controller = new AbortController();

  constructor(deps: TaskRunDeps, delivery: TaskDelivery) {
    this.deps = deps;
    this.delivery = delivery;
  }

  /** Stops the run; the reason (TaskCancelledError, DeadlineExceededError, WorkerShutdownError) picks the outcome. */
  abort(reason: Error): void {
    if (!this.controller.signal.aborted) this.controller.abort(reason);
  }

  /** Handles the delivery to the end; never throws. */
  async execute(): Promise<void> {
    // Keep the message ours from the first moment: any Redis call below may
    // wait out an outage, and the ack wait must not expire meanwhile.
    const ackWaitMs = this.deps.config.ackWaitSeconds * 1000;
    let lastTick = performance.now();
    const working = setInterval(() => {
      const now = performance.now();
      // A gap longer than the ack wait means this process was paused (SIGSTOP,
      // a frozen node): JetStream has handed the message to someone else.
      if (now - lastTick > ackWaitMs) {
        this.abort(new SupersededError(`this worker was paused for ${Math.round((now - lastTick) / 1000)}s, longer than the ack wait`));
        return;
      }
      lastTick = now;
      this.delivery.working();
    }, Math.max(100, Math.min(ackWaitMs / 3, 15_000)));
    try {
      await this.handle();
    } catch (err) {
      // Only a bug gets here; the message comes back rather than being lost.
      this.deps.logger.error({ err, seq: this.delivery.info.streamSequence }, 'Task handling failed');
      this.delivery.nak(REPORT_FAILURE_RETRY_MS);
    } finally {
      clearInterval(working);
    }
  }

  private async handle(): Promise<void> {
    const { config, metrics } = this.deps;
    const { delivery } = this;

    let message: TaskMessage;
    try {
      message = decodeTaskMessage(delivery.data);
      if (message.kind !== config.taskKind) {
        throw new ProtocolDecodeError(`kind ${message.kind} arrived on a ${config.taskKind} consumer`, {
          field: 'kind',
          uid: message.uid,
        });
      }
    } catch (err) {
      await this.rejectMalformed(err);
      return;
    }
    // Checked and claimed in one synchronous step, so of two deliveries of one
    // task to this process exactly one runs; the other would share its files.
    const twin = this.deps.runningHere?.(message.uid, this) ?? false;
    if (!twin) this.uid = message.uid;

    const keys = redisKeys(config.keyPrefix, message.uid);
    const [cancelFlag, [phase, releases, releasedSeq, runningOn, heartbeatAt]] = await Promise.all([
      this.deps.redis.exists(keys.cancel),
      this.deps.redis.hmget(keys.state, 'phase', 'releases', 'releasedSeq', 'worker', 'heartbeatAt'),
    ]);
    // Deliveries of this message that a shutting-down worker handed back are not attempts.
    const handedBack = releasedSeq === String(delivery.info.streamSequence) ? Number(releases) || 0 : 0;
    const attempt = Math.max(message.attempt, deliveryAttempt(message.attempt, delivery.info.deliveryCount) - handedBack);
    const logger = this.deps.logger.child({
      namespace: message.namespace,
      name: message.name,
      kind: message.kind,
      uid: message.uid,
      attempt,
    });
    const target: ReportTarget = {
      uid: message.uid,
      namespace: message.namespace,
      name: message.name,
      kind: message.kind,
      attempt,
      worker: config.workerName,
    };
    const finish = { stateTTLSeconds: Math.max(message.spec.resultTTLSeconds, FINISHED_STATE_MIN_TTL_SECONDS) };

    const knownPhase = PhaseSchema.safeParse(phase);
    if (knownPhase.success && isTerminalPhase(knownPhase.data)) {
      // An earlier run finished but its ack was lost: nothing to do again.
      logger.info({ phase }, `Skipped finished ${message.kind}`);
      delivery.ack();
      return;
    }

    // A task this worker already runs (a second delivery would share its
    // files), or one another worker is visibly running (JetStream can deliver
    // a message again early, e.g. across a server restart): two runs would
    // both hold a GPU. Hand it back, uncounted; if that run dies, its
    // heartbeat goes stale and a later delivery runs it. Live: a heartbeat
    // younger than three intervals and than the ack wait (a normal
    // redelivery comes only after a whole ack wait of silence).
    const liveFor = Math.min(3 * config.heartbeatSeconds, config.ackWaitSeconds) * 1000;
    const beat = heartbeatAt ? Date.parse(heartbeatAt) : NaN;
    const elsewhere = phase === 'Running' && runningOn && runningOn !== config.workerName && this.deps.now().getTime() - beat < liveFor;
    if (twin || elsewhere) {
      await this.deps.reports.handedBack(message.uid, delivery.info.streamSequence).catch((err: unknown) => logger.warn({ err }, 'Could not count the hand-back'));
      delivery.nak(liveFor);
      logger.info({ runningOn }, `Handed back ${message.kind}: ${twin ? 'this worker is already running it' : 'it is running on another worker'}`);
      return;
    }

    if (!attemptAllowed(message.spec, attempt)) {
      const last = maxAttempts(message.spec);
      // The state shows the last attempt that ran, not this delivery's count.
      const recorded = await this.report(logger, () =>
        this.deps.reports.failed(
          { ...target, attempt: Math.min(attempt, last) },
          {
            reason: Reason.MaxRetriesExceeded,
            message: `delivery would be attempt ${attempt}, but maxRetries ${message.spec.retryPolicy.maxRetries} allows ${last}`,
            ...finish,
          },
        ),
      );
      if (!recorded) return;
      this.term(logger, Reason.MaxRetriesExceeded);
      metrics.tasksFailed.inc({ kind: message.kind, reason: Reason.MaxRetriesExceeded });
      logger.warn({ reason: Reason.MaxRetriesExceeded }, `Failed ${message.kind}: no attempts left`);
      return;
    }

    if (cancelFlag === 1 || message.spec.cancel) {
      const recorded = await this.report(logger, () =>
        this.deps.reports.cancelled(target, { message: 'cancelled before it started', ...finish }),
      );
      if (!recorded) return;
      this.term(logger, Reason.Cancelled);
      metrics.tasksCancelled.inc({ kind: message.kind });
      logger.info(`Cancelled ${message.kind} before it started`);
      return;
    }

    await this.run(message, target, logger, finish);
  }

  private async run(
    message: TaskMessage,
    target: ReportTarget,
    logger: Logger,
    finish: { stateTTLSeconds: number },
  ): Promise<void> {
    const { config, metrics, reports } = this.deps;
    const signal = this.controller.signal;
    const labels = { kind: message.kind };

    if (!(await reports.started(target))) {
      logger.warn(`A later attempt of this ${message.kind} has already started; dropping this delivery`);
      this.term(logger, 'superseded by a later attempt');
      return;
    }
    logger.info(`Started ${message.kind}`);
    metrics.tasksInProgress.inc(labels);
    const startedAt = performance.now();
    const endTimer = (outcome: Outcome) =>
      metrics.taskDuration.observe({ kind: message.kind, outcome }, (performance.now() - startedAt) / 1000);

    // A refused report means a later attempt owns the state: stop at once.
    const supersededUnless = (applied: boolean) => {
      if (!applied) this.abort(new SupersededError('a later attempt of this task has started elsewhere'));
      return applied;
    };
    const heartbeat = setInterval(() => {
      reports.heartbeat(target).then(supersededUnless, (err: unknown) => logger.warn({ err }, 'Heartbeat report failed'));
    }, config.heartbeatSeconds * 1000);
    // The NATS notice is the fast path; the flag also reaches a worker that
    // missed it (reconnecting), at a cost of one EXISTS per poll.
    const cancelKey = redisKeys(config.keyPrefix, message.uid).cancel;
    let checking = false;
    const cancelPoll = setInterval(() => {
      if (checking) return;
      checking = true;
      this.deps.redis
        .exists(cancelKey)
        .then(
          (flag) => {
            if (flag === 1) this.abort(new TaskCancelledError('cancel requested (Redis flag)'));
          },
          (err: unknown) => logger.warn({ err }, 'Could not read the cancel flag'),
        )
        .finally(() => {
          checking = false;
        });
    }, Math.min(CANCEL_POLL_MS, config.heartbeatSeconds * 1000));
    const deadline = setTimeout(
      () => this.abort(new DeadlineExceededError(`the run passed its timeoutSeconds (${message.spec.timeoutSeconds}s)`)),
      message.spec.timeoutSeconds * 1000,
    );
    const progress = new ProgressThrottle({
      minIntervalMs: PROGRESS_INTERVAL_MS,
      write: (percent) => reports.progress(target, percent).then(supersededUnless),
      onError: (err) => logger.warn({ err }, 'Progress report failed'),
    });

    const ctx: TaskContext = {
      message,
      attempt: target.attempt,
      signal,
      workerName: config.workerName,
      logger,
      redis: this.deps.redis,
      keyPrefix: config.keyPrefix,
      reportProgress: (percent) => progress.report(percent),
      config,
    };

    let settled: Settled;
    const running = Promise.resolve().then(() => this.deps.runTask(ctx));
    try {
      settled = await settle(running, signal);
    } finally {
      clearInterval(heartbeat);
      clearInterval(cancelPoll);
      clearTimeout(deadline);
      // Nothing about progress may land after the outcome.
      await progress.close(false);
      metrics.tasksInProgress.dec(labels);
    }
    await this.conclude(settled, message, target, logger, finish, endTimer);
    // The outcome is out; the slot stays taken until the pipeline has let go
    // of its resources (an engine process, a GPU), within reason.
    if (settled.kind === 'aborted') await waitAtMost(running, ABORT_SETTLE_MS);
  }

  private async conclude(
    settled: Settled,
    message: TaskMessage,
    target: ReportTarget,
    logger: Logger,
    finish: { stateTTLSeconds: number },
    endTimer: (outcome: Outcome) => void,
  ): Promise<void> {
    const { metrics, reports } = this.deps;
    const { delivery } = this;
    const kind = message.kind;

    if (settled.kind === 'succeeded') {
      const { summary, result } = settled.value;
      const ok = await this.report(logger, () =>
        reports.succeeded(target, { summary, result, resultTTLSeconds: message.spec.resultTTLSeconds, ...finish }),
      );
      if (!ok) return;
      delivery.ack();
      endTimer(Outcome.Succeeded);
      metrics.tasksSucceeded.inc({ kind });
      logger.info({ summary }, `Succeeded ${kind}`);
      return;
    }

    const error = settled.kind === 'aborted' ? settled.reason : settled.error;

    if (error instanceof SupersededError) {
      // The message and the task's state belong to the newer delivery: no report, no verb.
      endTimer(Outcome.Abandoned);
      logger.warn({ err: error }, `Abandoned superseded run of ${kind}`);
      return;
    }

    if (error instanceof WorkerShutdownError) {
      const ok = await this.report(logger, () =>
        reports.released(target, {
          message: 'handed back: the worker shut down before the run finished',
          streamSequence: delivery.info.streamSequence,
        }),
      );
      if (!ok) return;
      delivery.nak(0);
      endTimer(Outcome.Released);
      metrics.tasksReleased.inc({ kind });
      logger.info(`Released ${kind} for another worker`);
      return;
    }

    if (error instanceof TaskCancelledError) {
      if (!(await this.report(logger, () => reports.cancelled(target, { message: error.message, ...finish })))) return;
      this.term(logger, Reason.Cancelled);
      endTimer(Outcome.Cancelled);
      metrics.tasksCancelled.inc({ kind });
      logger.info(`Cancelled ${kind}`);
      return;
    }

    if (error instanceof DeadlineExceededError || error instanceof UnrecoverableTaskError) {
      const reason = error.reason;
      if (!(await this.report(logger, () => reports.failed(target, { reason, message: error.message, ...finish })))) return;
      this.term(logger, reason);
      endTimer(Outcome.Failed);
      metrics.tasksFailed.inc({ kind, reason });
      logger.warn({ reason, err: error }, `Failed ${kind}`);
      return;
    }

    // Retryable, or something the pipeline did not classify.
    const reason = error instanceof RetryableTaskError ? error.reason : UNEXPECTED_ERROR_REASON;
    const text = error instanceof Error ? error.message : String(error);
    if (canRetry(message.spec, target.attempt)) {
      const delaySeconds = retryBackoffSeconds(message.spec, target.attempt);
      const nextAttemptAt = new Date(this.deps.now().getTime() + delaySeconds * 1000);
      if (!(await this.report(logger, () => reports.retrying(target, { reason, message: text, nextAttemptAt })))) return;
      delivery.nak(delaySeconds * 1000);
      endTimer(Outcome.Retried);
      metrics.tasksRetried.inc({ kind, reason });
      logger.warn({ reason, err: error, delaySeconds }, `Retrying ${kind} after a failed attempt`);
      return;
    }
    const last = maxAttempts(message.spec);
    const finalMessage = `attempt ${target.attempt} of ${last} failed (${reason}): ${text}`;
    if (
      !(await this.report(logger, () =>
        reports.failed(target, { reason: Reason.MaxRetriesExceeded, message: finalMessage, ...finish }),
      ))
    ) {
      return;
    }
    this.term(logger, Reason.MaxRetriesExceeded);
    endTimer(Outcome.Failed);
    metrics.tasksFailed.inc({ kind, reason: Reason.MaxRetriesExceeded });
    logger.warn({ reason: Reason.MaxRetriesExceeded, cause: reason, err: error }, `Failed ${kind}: no attempts left`);
  }

  /**
   * Writes an outcome report. If it cannot be written the message is handed
   * back after a pause instead of being acknowledged unrecorded; resolves
   * false then.
   */
  private async report(logger: Logger, write: () => Promise<boolean>): Promise<boolean> {
    try {
      // A refused write means a later attempt owns the state and the message:
      // acking or naking this delivery would act for that run. Leave both alone.
      if (await write()) return true;
      logger.warn('A later attempt owns this task; its outcome and message are left to it');
      return false;
    } catch (err) {
      logger.error({ err }, 'Could not record the outcome; the task will be delivered again');
      this.delivery.nak(REPORT_FAILURE_RETRY_MS);
      return false;
    }
  }

  private term(logger: Logger, reason: string): void {
    logger.debug({ reason }, 'Terminating message');
    this.delivery.term(reason);
  }

  private async rejectMalformed(err: unknown): Promise<void> {
    const { config, metrics, logger } = this.deps;
    const { delivery } = this;
    const message = err instanceof Error ? err.message : String(err);
    const identity = salvageTaskIdentity(delivery.data);
    const uid = (err instanceof ProtocolDecodeError ? err.uid : undefined) ?? identity.uid;
    logger.warn(
      {
        reason: Reason.InvalidInput,
        field: err instanceof ProtocolDecodeError ? err.field : undefined,
        uid,
        subject: delivery.subject,
        seq: delivery.info.streamSequence,
        error: message,
      },
      'Terminated malformed message',
    );
    if (uid !== undefined) {
      const attempt = identity.attempt !== undefined ? deliveryAttempt(identity.attempt, delivery.info.deliveryCount) : delivery.info.deliveryCount;
      await this.deps.reports
        .failed(
          {
            uid,
            namespace: identity.namespace ?? '',
            name: identity.name ?? '',
            kind: identity.kind ?? config.taskKind,
            attempt,
            worker: config.workerName,
          },
          { reason: Reason.InvalidInput, message, stateTTLSeconds: FINISHED_STATE_MIN_TTL_SECONDS },
        )
        .catch((reportErr: unknown) => logger.error({ err: reportErr, uid }, 'Could not report the malformed message'));
    }
    delivery.term(`${Reason.InvalidInput}: ${message}`);
    metrics.tasksFailed.inc({ kind: config.taskKind, reason: Reason.InvalidInput });
  }
}

/**
 * Waits for the run or the abort, whichever comes first. A run that throws
 * after its signal fired counts as aborted: the signal's reason says why.
 */
function settle(running: Promise<TaskRunResult>, signal: AbortSignal): Promise<Settled> {
  return new Promise((resolve) => {
    const onAbort = () => resolve({ kind: 'aborted', reason: signal.reason });
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    running.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve({ kind: 'succeeded', value });
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        resolve(signal.aborted ? { kind: 'aborted', reason: signal.reason } : { kind: 'threw', error });
      },
    );
  });
}

async function waitAtMost(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise.then(
      () => undefined,
      () => undefined,
    ),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}
