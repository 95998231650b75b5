// The controller's Prometheus metrics. Names carry the taskqueue_ prefix;
// labels are kinds, phases, reasons and pool names, never a task's name or uid.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { Phase, PHASES, Reason, TASK_KINDS, PRIORITIES, type TaskKind, type TaskStatus, type Priority } from '../api/index.ts';
import type { ControllerMetrics, ReconcileOutcome } from './runtime/index.ts';

export interface ClusterView {
  /** Every task the informers hold, for the per-phase gauges. */
  tasks(kind: TaskKind): Iterable<{ status?: TaskStatus; spec?: unknown }>;
  /** Backlog per priority, or undefined while the queue is unreachable. */
  backlog(kind: TaskKind): Promise<Record<Priority, number> | undefined>;
  isLeader(): boolean;
}

export class ControllerMetricsRegistry implements ControllerMetrics {
  readonly registry = new Registry();
  readonly reconcileDuration: Histogram<'controller' | 'outcome'>;
  readonly reconcileErrors: Counter<'controller'>;
  readonly statusWrites: Counter<'kind'>;
  readonly statusWritesCoalesced: Counter<'kind'>;
  readonly taskDuration: Histogram<'kind' | 'outcome'>;
  readonly succeeded: Counter<'kind'>;
  readonly failed: Counter<'kind' | 'reason'>;
  readonly finished: Counter<'kind' | 'phase'>;
  readonly deadLetters: Counter<'kind'>;
  readonly workerPoolBacklog: Gauge<'namespace' | 'workerpool'>;
  readonly workerPoolDesired: Gauge<'namespace' | 'workerpool'>;
  readonly workerPoolReplicas: Gauge<'namespace' | 'workerpool'>;
  readonly workerPoolScaleEvents: Counter<'namespace' | 'workerpool' | 'direction'>;
  private view: ClusterView | undefined;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'taskqueue_controller_' });
    this.reconcileDuration = new Histogram({
      name: 'taskqueue_reconcile_duration_seconds',
      help: 'Time one reconcile pass took, by controller and outcome.',
      labelNames: ['controller', 'outcome'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.reconcileErrors = new Counter({
      name: 'taskqueue_reconcile_errors_total',
      help: 'Reconcile passes that failed and were retried with backoff, or failed terminally.',
      labelNames: ['controller'],
      registers,
    });
    this.statusWrites = new Counter({ name: 'taskqueue_status_writes_total', help: 'Status patches sent to the apiserver.', labelNames: ['kind'], registers });
    this.statusWritesCoalesced = new Counter({
      name: 'taskqueue_status_writes_coalesced_total',
      help: 'Progress-only status changes held back to respect the per-task write interval.',
      labelNames: ['kind'],
      registers,
    });
    this.taskDuration = new Histogram({
      name: 'taskqueue_task_duration_seconds',
      help: 'Time from a task starting to run (or being created, if it never ran) to finishing, by kind and final phase.',
      labelNames: ['kind', 'outcome'],
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400],
      registers,
    });
    this.succeeded = new Counter({ name: 'taskqueue_tasks_succeeded_total', help: 'Tasks that reached Succeeded.', labelNames: ['kind'], registers });
    this.failed = new Counter({ name: 'taskqueue_tasks_failed_total', help: 'Tasks that reached Failed, by reason.', labelNames: ['kind', 'reason'], registers });
    this.finished = new Counter({ name: 'taskqueue_tasks_finished_total', help: 'Tasks that reached a terminal phase.', labelNames: ['kind', 'phase'], registers });
    this.deadLetters = new Counter({
      name: 'taskqueue_dead_letters_total',
      help: 'Tasks given up after every attempt (MaxRetriesExceeded): their input or engine needs a person.',
      labelNames: ['kind'],
      registers,
    });
    this.workerPoolBacklog = new Gauge({ name: 'taskqueue_workerpool_backlog', help: 'Messages waiting or in flight for the pool.', labelNames: ['namespace', 'workerpool'], registers });
    this.workerPoolDesired = new Gauge({ name: 'taskqueue_workerpool_desired_replicas', help: 'Replicas the pool wants.', labelNames: ['namespace', 'workerpool'], registers });
    this.workerPoolReplicas = new Gauge({ name: 'taskqueue_workerpool_replicas', help: 'Replicas the target Deployment has.', labelNames: ['namespace', 'workerpool'], registers });
    this.workerPoolScaleEvents = new Counter({
      name: 'taskqueue_workerpool_scale_events_total',
      help: 'Scale writes to a pool target, by direction.',
      labelNames: ['namespace', 'workerpool', 'direction'],
      registers,
    });

    const self = this;
    new Gauge({
      name: 'taskqueue_tasks',
      help: 'Tasks in the cluster by kind and phase (from the controller cache).',
      labelNames: ['kind', 'phase'],
      registers,
      collect() {
        this.reset();
        const view = self.view;
        if (!view) return;
        for (const kind of TASK_KINDS) {
          const counts = new Map<string, number>(PHASES.map((p) => [p, 0]));
          for (const t of view.tasks(kind)) {
            const phase = t.status?.phase ?? Phase.Pending;
            counts.set(phase, (counts.get(phase) ?? 0) + 1);
          }
          for (const [phase, n] of counts) this.set({ kind, phase }, n);
        }
      },
    });
    new Gauge({
      name: 'taskqueue_tasks_in_progress',
      help: 'Tasks Running right now, by kind.',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        const view = self.view;
        if (!view) return;
        for (const kind of TASK_KINDS) {
          let n = 0;
          for (const t of view.tasks(kind)) if (t.status?.phase === Phase.Running) n++;
          this.set({ kind }, n);
        }
      },
    });
    new Gauge({
      name: 'taskqueue_tasks_past_deadline',
      help: 'Running tasks whose startTime plus timeoutSeconds has passed (should be 0: the controller fails them).',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        const view = self.view;
        if (!view) return;
        const now = Date.now();
        for (const kind of TASK_KINDS) {
          let n = 0;
          for (const t of view.tasks(kind)) {
            const timeout = (t.spec as { timeoutSeconds?: number } | undefined)?.timeoutSeconds ?? 3600;
            const start = t.status?.startTime ? Date.parse(t.status.startTime) : NaN;
            if (t.status?.phase === Phase.Running && start + timeout * 1000 < now) n++;
          }
          this.set({ kind }, n);
        }
      },
    });
    new Gauge({
      name: 'taskqueue_queue_depth',
      help: 'Messages waiting or unacknowledged in JetStream, by kind and priority (leader only).',
      labelNames: ['kind', 'priority'],
      registers,
      async collect() {
        this.reset();
        const view = self.view;
        if (!view?.isLeader()) return;
        for (const kind of TASK_KINDS) {
          const backlog = await view.backlog(kind).catch(() => undefined);
          if (!backlog) continue;
          for (const priority of PRIORITIES) this.set({ kind, priority }, backlog[priority]);
        }
      },
    });
    new Gauge({
      name: 'taskqueue_leader_is_leader',
      help: '1 on the replica that holds the leader Lease.',
      registers,
      collect() {
        this.set(self.view?.isLeader() ? 1 : 0);
      },
    });
  }

  attach(view: ClusterView): void {
    this.view = view;
  }

  observeReconcile(controller: string, durationSeconds: number, outcome: ReconcileOutcome): void {
    this.reconcileDuration.observe({ controller, outcome }, durationSeconds);
    if (outcome === 'error' || outcome === 'terminal') this.reconcileErrors.inc({ controller });
  }

  observeFinished(kind: TaskKind, status: TaskStatus, creationTimestamp: Date | string | undefined): void {
    const phase = status.phase ?? Phase.Failed;
    this.finished.inc({ kind, phase });
    if (phase === Phase.Succeeded) this.succeeded.inc({ kind });
    if (phase === Phase.Failed) {
      this.failed.inc({ kind, reason: status.reason ?? 'Unknown' });
      if (status.reason === Reason.MaxRetriesExceeded) this.deadLetters.inc({ kind });
    }
    const end = status.completionTime ? Date.parse(status.completionTime) : Date.now();
    const startIso = status.startTime ?? (creationTimestamp ? new Date(creationTimestamp).toISOString() : undefined);
    if (startIso) this.taskDuration.observe({ kind, outcome: phase }, Math.max(0, (end - Date.parse(startIso)) / 1000));
  }

  /** Drops a pool's series when the pool is deleted. */
  forgetWorkerPool(namespace: string, workerpool: string): void {
    for (const g of [this.workerPoolBacklog, this.workerPoolDesired, this.workerPoolReplicas]) g.remove({ namespace, workerpool });
    for (const direction of ['up', 'down']) this.workerPoolScaleEvents.remove({ namespace, workerpool, direction });
  }
}
