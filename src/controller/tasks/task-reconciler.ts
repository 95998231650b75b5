// Reconciles TranscriptionTask and DiarizationTask objects. Each pass reads
// the world (the object from the informer cache, the workers' state hash in
// Redis, the queued message in JetStream), decides the status with decide(),
// acts on the queue, and writes /status once if it changed.
import type { KubernetesObject } from '@kubernetes/client-node';
import {
  API_VERSION,
  GROUP,
  PLURALS,
  Phase,
  Reason,
  TASK_SPEC_SCHEMAS,
  VERSION,
  isTerminalPhase,
  type TaskKind,
  type TaskSpec,
  type TaskStatus,
} from '../../api/index.ts';
import { describeIssues } from '../../protocol/errors.ts';
import { isNotFound, type Clock, type KubeClient, type Logger, type ReconcileResult, type Reconciler, type ResourceRef } from '../runtime/index.ts';
import type { TaskQueue } from '../queue/task-queue.ts';
import type { TaskStore, StoredTask } from '../reports/task-store.ts';
import type { ControllerMetricsRegistry } from '../metrics.ts';
import { conditionsForPhase, setCondition } from './conditions.ts';
import { decide, statusFromDecision, type Decision, type TaskAction, type Timing } from './decide.ts';

export const TASK_FINALIZER = 'taskqueue.dev/cleanup';

export interface TaskObject extends KubernetesObject {
  spec?: unknown;
  status?: TaskStatus;
}

export interface TaskCache {
  get(namespace: string | undefined, name: string): TaskObject | undefined;
}

export interface TaskReconcilerOptions {
  kind: TaskKind;
  client: KubeClient;
  cache: TaskCache;
  /** The queue when NATS is reachable; undefined while it is not. */
  queue: () => TaskQueue | undefined;
  store: TaskStore;
  timing: Timing;
  /** Progress-only status changes reach the apiserver at most this often per task. */
  progressIntervalMs: number;
  clock: Clock;
  logger: Logger;
  metrics?: ControllerMetricsRegistry;
  /** Retry delay when NATS or Redis is unreachable. */
  dependencyRetryMs?: number;
}

interface Written {
  status: TaskStatus;
  at: number;
  resourceVersion: string | undefined;
}

class DependencyUnavailable extends Error {
  readonly reason: string;
  constructor(reason: string, message: string, cause?: unknown) {
    super(message, { cause });
    this.reason = reason;
  }
}

export class TaskReconciler implements Reconciler {
  readonly kind: TaskKind;
  readonly ref: ResourceRef;
  private readonly o: TaskReconcilerOptions;
  /** The status this process last wrote per uid: the informer cache may not have caught up yet. */
  private readonly written = new Map<string, Written>();
  /** When this process last found each uid's queued message deliverable (after a restart, trust nothing). */
  private readonly verified = new Map<string, number>();
  /** uids whose message looked orphaned once; a second look confirms it before anything is re-queued. */
  private readonly suspectedOrphans = new Set<string>();
  /** Finished tasks whose leftover message could not be removed yet (NATS was away), by uid. */
  private readonly pendingDequeue = new Map<string, number>();

  constructor(options: TaskReconcilerOptions) {
    this.o = options;
    this.kind = options.kind;
    this.ref = { group: GROUP, version: VERSION, plural: PLURALS[options.kind] };
  }

  async reconcile(key: string): Promise<ReconcileResult | void> {
    const [namespace, name] = splitNamespacedKey(key);
    let obj = this.o.cache.get(namespace, name);
    if (!obj?.metadata?.uid) return;
    const uid = obj.metadata.uid;
    const log = this.o.logger.child({ kind: this.kind, namespace, name });

    if (obj.metadata.deletionTimestamp) {
      await this.finalize(obj, log);
      return;
    }
    if (!(obj.metadata.finalizers ?? []).includes(TASK_FINALIZER)) {
      obj = await this.o.client.mergePatch<TaskObject>(this.ref, namespace, name, {
        metadata: { finalizers: [...(obj.metadata.finalizers ?? []), TASK_FINALIZER], resourceVersion: obj.metadata.resourceVersion },
      });
    }

    const current = this.currentStatus(obj);
    if (isTerminalPhase(current?.phase)) return this.afterFinished(obj, current as TaskStatus, log);

    const parsed = TASK_SPEC_SCHEMAS[this.kind].safeParse(obj.spec ?? {});
    if (!parsed.success) {
      // The CRD schema should have caught this; an older CRD or a hand-edited
      // object can still get here. The task fails once, with the fields named.
      const decision: Decision = {
        phase: Phase.Failed,
        reason: Reason.InvalidInput,
        message: `Invalid spec: ${describeIssues(parsed.error.issues)}`,
        completionTime: new Date(this.o.clock.now()).toISOString(),
        actions: [],
      };
      await this.writeStatus(obj, current, decision, log);
      return;
    }
    const spec = parsed.data as TaskSpec;

    let stored: StoredTask;
    try {
      stored = await this.o.store.read(uid);
    } catch (err) {
      return this.dependencyDown(obj, current, new DependencyUnavailable('ReportsUnavailable', `Redis is unreachable: ${(err as Error).message}`, err), log);
    }

    const now = new Date(this.o.clock.now());
    let decision = decide({
      now,
      spec,
      status: current,
      state: stored.state,
      summary: stored.summary,
      queueCheckedAt: this.verified.get(uid),
      timing: this.o.timing,
    });

    try {
      for (const action of decision.actions) {
        if (action.type === 'dequeue') {
          // A finished task's status must not wait for NATS: the removal is
          // retried from afterFinished() until it goes through.
          await this.act(action, obj, spec, stored, log).catch((err: unknown) => {
            if (stored.state?.seq !== undefined) this.pendingDequeue.set(uid, stored.state.seq);
            log.warn({ err: (err as Error).message }, 'Could not remove the message of a finished task yet');
          });
        } else {
          await this.act(action, obj, spec, stored, log);
        }
      }
    } catch (err) {
      if (!(err instanceof DependencyUnavailable)) throw err;
      if (decision.actions.some((a) => a.type === 'publish') && (current?.phase === undefined || current.phase === Phase.Pending)) {
        decision = { ...decision, phase: Phase.Pending, reason: err.reason, message: err.message };
        await this.writeStatus(obj, current, decision, log);
        return { requeueAfterMs: this.o.dependencyRetryMs ?? 5000 };
      }
      return this.dependencyDown(obj, current, err, log);
    }

    return this.writeStatus(obj, current, decision, log);
  }

  private currentStatus(obj: TaskObject): TaskStatus | undefined {
    const uid = obj.metadata?.uid as string;
    const mine = this.written.get(uid);
    // Our own last write is newer than a cache that has not seen it yet.
    if (mine && mine.resourceVersion !== undefined && resourceVersionOlder(obj.metadata?.resourceVersion, mine.resourceVersion)) return mine.status;
    return obj.status;
  }

  private async act(action: TaskAction, obj: TaskObject, spec: TaskSpec, stored: StoredTask, log: Logger): Promise<void> {
    const uid = obj.metadata?.uid as string;
    const queue = this.o.queue();
    if (!queue) throw new DependencyUnavailable(Reason.QueueUnavailable, 'NATS JetStream is unreachable; the task will be queued when it returns');
    const task = { namespace: obj.metadata?.namespace as string, name: obj.metadata?.name as string, uid, kind: this.kind, spec };
    try {
      switch (action.type) {
        case 'publish': {
          const { seq, attempt } = await this.publishFresh(queue, task, action.attempt, log);
          await this.o.store.recordPublished(task, seq);
          this.verified.set(uid, this.o.clock.now());
          log.info({ seq, attempt, priority: spec.priority }, `Published ${this.kind}`);
          return;
        }
        case 'ensureQueued': {
          const seq = stored.state?.seq;
          const where = seq === undefined ? 'gone' : await queue.check(seq);
          if (where === 'queued') {
            this.suspectedOrphans.delete(uid);
            this.verified.set(uid, this.o.clock.now());
            return;
          }
          if (where === 'orphaned') {
            // Only a second sighting counts: an ack racing the check looks the same once.
            if (!this.suspectedOrphans.has(uid)) {
              this.suspectedOrphans.add(uid);
              return;
            }
            await queue.remove(seq as number);
          }
          this.suspectedOrphans.delete(uid);
          const { seq: newSeq, attempt } = await this.publishFresh(queue, task, action.attempt, log);
          await this.o.store.recordPublished(task, newSeq);
          this.verified.set(uid, this.o.clock.now());
          log.warn({ lostSeq: seq, seq: newSeq, attempt, why: where }, `Queued ${this.kind} again: its message was ${where}`);
          return;
        }
        case 'discard': {
          await this.discard(uid, stored.state?.seq, queue);
          return;
        }
        case 'dequeue': {
          const seq = stored.state?.seq;
          if (seq !== undefined && (await queue.remove(seq))) log.info({ seq }, `Removed the message of finished ${this.kind}`);
          return;
        }
      }
    } catch (err) {
      if (err instanceof DependencyUnavailable) throw err;
      throw new DependencyUnavailable(Reason.QueueUnavailable, `Queue operation failed: ${(err as Error).message}`, err);
    }
  }

  /**
   * Publishes at `attempt`, or a later one if JetStream already holds that
   * attempt's id (duplicate window) for a message that is no longer there:
   * an answer "duplicate" for a consumed message would leave the task
   * waiting on nothing.
   */
  private async publishFresh(queue: TaskQueue, task: Parameters<TaskQueue['publish']>[0], attempt: number, log: Logger): Promise<{ seq: number; attempt: number }> {
    for (let next = attempt; next < attempt + 10; next++) {
      const { seq, duplicate } = await queue.publish(task, next);
      if (!duplicate || (await queue.messageExists(seq))) return { seq, attempt: next };
      log.info({ seq, attempt: next }, 'That attempt was queued and consumed before; publishing the next');
    }
    throw new Error(`attempts ${attempt} to ${attempt + 9} were all consumed already`);
  }

  private async discard(uid: string, seq: number | undefined, queue: TaskQueue): Promise<void> {
    await this.o.store.raiseCancelFlag(uid);
    await queue.notifyCancel(uid);
    if (seq !== undefined) await queue.remove(seq);
  }

  /** Keeps the last phase, says why nothing moves, and tries again soon. */
  private async dependencyDown(obj: TaskObject, current: TaskStatus | undefined, err: DependencyUnavailable, log: Logger): Promise<ReconcileResult> {
    log.warn({ reason: err.reason, err: err.message }, 'Dependency unavailable');
    const phase = current?.phase ?? Phase.Pending;
    const now = new Date(this.o.clock.now());
    const status: TaskStatus = {
      ...(current ?? {}),
      phase,
      conditions: setCondition(current?.conditions, { type: 'Ready', status: 'False', reason: err.reason, message: err.message }, now, obj.metadata?.generation),
    };
    if (phase === Phase.Pending) {
      status.reason = err.reason;
      status.message = err.message;
    }
    await this.patchStatus(obj, current, status);
    return { requeueAfterMs: this.o.dependencyRetryMs ?? 5000 };
  }

  private async writeStatus(obj: TaskObject, current: TaskStatus | undefined, decision: Decision, log: Logger): Promise<ReconcileResult | void> {
    const uid = obj.metadata?.uid as string;
    const now = new Date(this.o.clock.now());
    const generation = obj.metadata?.generation;
    const next = statusFromDecision(current, decision);
    let conditions = current?.conditions;
    for (const c of conditionsForPhase(decision.phase, decision.reason, decision.message)) {
      conditions = setCondition(conditions, c, now, generation);
    }
    next.conditions = conditions;
    if (generation !== undefined) next.observedGeneration = generation;

    const requeue = decision.requeueAfterMs !== undefined ? { requeueAfterMs: decision.requeueAfterMs } : undefined;
    if (sameStatus(current, next, { ignoreProgress: false })) return requeue;

    // Progress alone is coalesced: at most one write per interval per task.
    // Phase changes and everything else go out at once.
    if (current?.phase === next.phase && sameStatus(current, next, { ignoreProgress: true })) {
      const last = this.written.get(uid)?.at ?? 0;
      const wait = last + this.o.progressIntervalMs - now.getTime();
      if (wait > 0) {
        this.o.metrics?.statusWritesCoalesced.inc({ kind: this.kind });
        return { requeueAfterMs: Math.min(wait, decision.requeueAfterMs ?? wait) };
      }
    }

    await this.patchStatus(obj, current, next);
    if (current?.phase !== next.phase) this.recordTransition(obj, current, next, log);
    // Our own write does not come back as work (see isOwnWrite); a task that
    // just finished still needs the pass that schedules its TTL and leftovers.
    if (isTerminalPhase(next.phase)) return { requeueAfterMs: 1 };
    return requeue;
  }

  /** True when `obj` is exactly the version our last status write produced: nothing new to reconcile. */
  isOwnWrite(obj: TaskObject): boolean {
    const mine = this.written.get(obj.metadata?.uid as string);
    return mine?.resourceVersion !== undefined && mine.resourceVersion === obj.metadata?.resourceVersion;
  }

  private async patchStatus(obj: TaskObject, current: TaskStatus | undefined, next: TaskStatus): Promise<void> {
    const uid = obj.metadata?.uid as string;
    const patch: Record<string, unknown> = { ...next };
    // A merge patch removes a field only when told to with null.
    for (const key of Object.keys(current ?? {})) if (!(key in next)) patch[key] = null;
    const updated = await this.o.client.mergePatchStatus<TaskObject>(this.ref, obj.metadata?.namespace, obj.metadata?.name as string, {
      status: patch,
    });
    this.written.set(uid, { status: next, at: this.o.clock.now(), resourceVersion: updated.metadata?.resourceVersion });
    this.o.metrics?.statusWrites.inc({ kind: this.kind });
  }

  private recordTransition(obj: TaskObject, current: TaskStatus | undefined, next: TaskStatus, log: Logger): void {
    const phase = next.phase as Phase;
    const warning = phase === Phase.Failed || (phase === Phase.Retrying && next.reason === Reason.WorkerLost);
    log.info({ from: current?.phase ?? 'new', to: phase, reason: next.reason, attempts: next.attempts }, `${this.kind} ${phase}`);
    const regarding = { apiVersion: API_VERSION, kind: this.kind, metadata: obj.metadata } as KubernetesObject;
    this.o.client
      .createEvent({ regarding, type: warning ? 'Warning' : 'Normal', reason: phase === Phase.Failed || phase === Phase.Retrying ? (next.reason ?? phase) : phase, message: next.message ?? phase })
      .catch((err: unknown) => log.debug({ err: (err as Error).message }, 'Event not recorded'));
    if (isTerminalPhase(phase)) this.o.metrics?.observeFinished(this.kind, next, obj.metadata?.creationTimestamp);
  }

  /** A finished task only waits for ttlSecondsAfterFinished (and for its leftover message to go). */
  private async afterFinished(obj: TaskObject, status: TaskStatus, log: Logger): Promise<ReconcileResult | void> {
    const uid = obj.metadata?.uid as string;
    const leftover = this.pendingDequeue.get(uid);
    if (leftover !== undefined) {
      const queue = this.o.queue();
      try {
        if (!queue) throw new Error('NATS JetStream is unreachable');
        await queue.remove(leftover);
        this.pendingDequeue.delete(uid);
      } catch (err) {
        log.debug({ err: (err as Error).message }, 'Leftover message of a finished task not removed yet');
        return { requeueAfterMs: this.o.dependencyRetryMs ?? 5000 };
      }
    }
    const ttl = (obj.spec as { ttlSecondsAfterFinished?: number } | undefined)?.ttlSecondsAfterFinished;
    if (ttl === undefined || !status.completionTime) return;
    const expiresAt = Date.parse(status.completionTime) + ttl * 1000;
    const wait = expiresAt - this.o.clock.now();
    if (wait > 0) return { requeueAfterMs: wait };
    try {
      await this.o.client.delete(this.ref, obj.metadata?.namespace, obj.metadata?.name as string, {
        uid: obj.metadata?.uid,
        propagationPolicy: 'Background',
      });
      log.info({ ttlSecondsAfterFinished: ttl }, `Deleted finished ${this.kind}`);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** The object is being deleted: stop it wherever it is, clean Redis, let it go. */
  private async finalize(obj: TaskObject, log: Logger): Promise<void> {
    const uid = obj.metadata?.uid as string;
    const finalizers = obj.metadata?.finalizers ?? [];
    if (!finalizers.includes(TASK_FINALIZER)) return;
    const status = this.currentStatus(obj);
    if (!isTerminalPhase(status?.phase)) {
      const queue = this.o.queue();
      if (!queue) throw new DependencyUnavailable(Reason.QueueUnavailable, 'NATS JetStream is unreachable; deletion waits for it');
      const stored = await this.o.store.read(uid);
      await this.discard(uid, stored.state?.seq, queue);
    }
    await this.o.store.remove(uid);
    try {
      await this.o.client.mergePatch(this.ref, obj.metadata?.namespace, obj.metadata?.name as string, {
        metadata: { finalizers: finalizers.filter((f) => f !== TASK_FINALIZER), resourceVersion: obj.metadata?.resourceVersion },
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    this.forget(uid);
    log.info({ phase: status?.phase ?? Phase.Pending }, `Cleaned up deleted ${this.kind}`);
  }

  /** Forget per-uid memory of objects that are gone (called from the informer's delete handler). */
  forget(uid: string | undefined): void {
    if (!uid) return;
    this.written.delete(uid);
    this.verified.delete(uid);
    this.suspectedOrphans.delete(uid);
    this.pendingDequeue.delete(uid);
  }
}

function splitNamespacedKey(key: string): [string, string] {
  const slash = key.indexOf('/');
  return slash < 0 ? ['', key] : [key.slice(0, slash), key.slice(slash + 1)];
}

/** resourceVersions are opaque, but etcd's are integers; compare them only when both are. */
function resourceVersionOlder(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b || !/^\d+$/.test(a) || !/^\d+$/.test(b)) return false;
  return BigInt(a) < BigInt(b);
}

function sameStatus(a: TaskStatus | undefined, b: TaskStatus, options: { ignoreProgress: boolean }): boolean {
  const strip = (s: TaskStatus | undefined) => {
    const copy: Record<string, unknown> = { ...(s ?? {}) };
    if (options.ignoreProgress) {
      delete copy.progress;
      delete copy.lastReportTime;
      delete copy.message;
    }
    copy.conditions = (s?.conditions ?? []).map((c) => ({ ...c, message: options.ignoreProgress ? '' : c.message }));
    return canonical(copy);
  };
  return strip(a) === strip(b);
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined).sort(([x], [y]) => x.localeCompare(y)))
      : v,
  );
}
