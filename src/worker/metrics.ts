import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** How a run ended, as the duration histogram's `outcome` label. */
export const Outcome = {
  Succeeded: 'succeeded',
  Failed: 'failed',
  Retried: 'retried',
  Cancelled: 'cancelled',
  Released: 'released',
  Abandoned: 'abandoned',
} as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];

// Speech runs last seconds to hours; the buckets follow that range.
const DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14_400, 28_800, 86_400];

/**
 * The worker's metrics. Labels are bounded sets (kind, outcome, reason);
 * a task's name or uid never becomes a label.
 */
export class WorkerMetrics {
  readonly registry: Registry;
  readonly taskDuration: Histogram<'kind' | 'outcome'>;
  readonly tasksSucceeded: Counter<'kind'>;
  readonly tasksFailed: Counter<'kind' | 'reason'>;
  readonly tasksRetried: Counter<'kind' | 'reason'>;
  readonly tasksCancelled: Counter<'kind'>;
  readonly tasksReleased: Counter<'kind'>;
  readonly tasksInProgress: Gauge<'kind'>;

  constructor(options: { registry?: Registry; defaultMetrics?: boolean } = {}) {
    this.registry = options.registry ?? new Registry();
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.taskDuration = new Histogram({
      name: 'taskqueue_worker_task_duration_seconds',
      help: 'Time from the start of a run to its outcome.',
      labelNames: ['kind', 'outcome'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.tasksSucceeded = new Counter({
      name: 'taskqueue_worker_tasks_succeeded_total',
      help: 'Runs that produced a result.',
      labelNames: ['kind'],
      registers,
    });
    this.tasksFailed = new Counter({
      name: 'taskqueue_worker_tasks_failed_total',
      help: 'Tasks this worker reported failed, by reason.',
      labelNames: ['kind', 'reason'],
      registers,
    });
    this.tasksRetried = new Counter({
      name: 'taskqueue_worker_tasks_retried_total',
      help: 'Runs that failed and were handed back for another attempt, by reason.',
      labelNames: ['kind', 'reason'],
      registers,
    });
    this.tasksCancelled = new Counter({
      name: 'taskqueue_worker_tasks_cancelled_total',
      help: 'Runs stopped by a cancel request.',
      labelNames: ['kind'],
      registers,
    });
    this.tasksReleased = new Counter({
      name: 'taskqueue_worker_tasks_released_total',
      help: 'Runs handed back unfinished because the worker shut down.',
      labelNames: ['kind'],
      registers,
    });
    this.tasksInProgress = new Gauge({
      name: 'taskqueue_worker_tasks_in_progress',
      help: 'Runs in progress on this worker.',
      labelNames: ['kind'],
      registers,
    });
  }
}
