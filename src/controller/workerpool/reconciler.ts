// Reconciles WorkerPool objects: sizes each pool's Deployment to the backlog
// of its task kind through the Deployment's /scale subresource.
//
// One pass, level-based like every reconciler here:
//   1. read the pool from the cache and check its spec;
//   2. read, in parallel, the target's /scale, the kind's backlog and the
//      other autoscalers of the namespace;
//   3. stop and say why if the target is missing, someone else scales it,
//      or the queue cannot be read;
//   4. ask the policy for the replicas, patch /scale if they differ, record
//      an Event and the metrics;
//   5. write /status once, if it changed;
//   6. come back when a pending scale-down falls due, or for the periodic
//      re-check that catches anything the event-driven wake-ups missed.
import type { KubernetesObject, V1Scale } from '@kubernetes/client-node';
import { API_VERSION, GROUP, Kind, PLURALS, Reason, VERSION, WorkerPoolSpecSchema, type TaskKind, type WorkerPoolSpec, type WorkerPoolStatus } from '../../api/index.ts';
import { describeIssues } from '../../protocol/errors.ts';
import type { ControllerMetricsRegistry } from '../metrics.ts';
import {
  isNotFound,
  splitKey,
  type Clock,
  type KubeClient,
  type Logger,
  type ReconcileResult,
  type Reconciler,
  type ResourceRef,
} from '../runtime/index.ts';
import { describeAutoscalers, hpaLookup, type AutoscalerLookup } from './autoscalers.ts';
import { decide, initialState, recommend, type ScalingBounds, type ScalingDecision, type ScalingState } from './policy.ts';
import { buildStatus, onlyCountsDiffer, PoolReason, sameStatus, type PoolBlock, type PoolObservation } from './status.ts';

export const WORKER_POOL_RESOURCE: ResourceRef = { group: GROUP, version: VERSION, plural: PLURALS.WorkerPool };

export interface WorkerPoolObject extends KubernetesObject {
  spec?: unknown;
  status?: WorkerPoolStatus;
}

export interface WorkerPoolCache {
  get(namespace: string | undefined, name: string): WorkerPoolObject | undefined;
  /** Every cached pool. When given, two pools scaling one Deployment are told apart (the older one wins). */
  list?(): Iterable<WorkerPoolObject>;
}

export interface BacklogReading {
  /** Waiting plus delivered-but-unacknowledged messages of the kind, all priorities. */
  total: number;
}

/** What happened in one scale write; handed to `onScale` for benchmarks and tests. */
export interface ScaleRecord {
  namespace: string;
  name: string;
  target: string;
  from: number;
  to: number;
  direction: 'up' | 'down';
  backlog: number;
  running: number;
  /** clock.now() when the pass read the backlog that led to this write. */
  backlogReadAt: number;
  /** clock.now() when the apiserver accepted the write. */
  scaledAt: number;
}

export interface WorkerPoolReconcilerOptions {
  client: KubeClient;
  cache: WorkerPoolCache;
  /** The kind's backlog; undefined (or a rejection) while the queue is unreachable. */
  backlog: (kind: TaskKind) => Promise<BacklogReading | undefined>;
  /** Tasks of `kind` in phase Running on the workers of `deploymentName` in `namespace`. */
  running: (namespace: string, kind: TaskKind, deploymentName: string) => number;
  metrics?: ControllerMetricsRegistry;
  clock: Clock;
  logger: Logger;
  /** Finds HPAs (and so KEDA) on the same Deployment; lists HPAs through `client` by default. */
  autoscalers?: AutoscalerLookup;
  /** Periodic re-check of every pool, whatever happens (default 15 s). */
  resyncMs?: number;
  /** Re-check after the queue could not be read (default 5 s). */
  backlogRetryMs?: number;
  /**
   * A status change that only moves backlog, running or replicas is written
   * at most this often per pool (default 2 s); anything else at once.
   */
  statusCountsIntervalMs?: number;
  /** Backlog that wakes a pool at zero replicas (default 1). */
  activationBacklog?: number;
  onScale?: (record: ScaleRecord) => void;
}

interface PoolMemory {
  uid: string;
  state: ScalingState | undefined;
}

interface Written {
  uid: string;
  status: WorkerPoolStatus;
  at: number;
  resourceVersion: string | undefined;
}

export const DEFAULT_RESYNC_MS = 15_000;
export const DEFAULT_BACKLOG_RETRY_MS = 5_000;
export const DEFAULT_STATUS_COUNTS_INTERVAL_MS = 2_000;

export class WorkerPoolReconciler implements Reconciler {
  private readonly o: WorkerPoolReconcilerOptions;
  private readonly autoscalers: AutoscalerLookup;
  private readonly resyncMs: number;
  private readonly backlogRetryMs: number;
  private readonly countsIntervalMs: number;
  /** Per pool key: the policy's window. Lost on restart, by design (see initialState). */
  private readonly memory = new Map<string, PoolMemory>();
  /** The status this process last wrote per pool key: the cache may not have caught up yet. */
  private readonly written = new Map<string, Written>();
  /** Pools whose HPA lookup failed, so the warning is logged once and not every pass. */
  private readonly lookupWarned = new Set<string>();

  constructor(options: WorkerPoolReconcilerOptions) {
    this.o = options;
    this.autoscalers = options.autoscalers ?? hpaLookup(options.client, { clock: options.clock });
    this.resyncMs = options.resyncMs ?? DEFAULT_RESYNC_MS;
    this.backlogRetryMs = options.backlogRetryMs ?? DEFAULT_BACKLOG_RETRY_MS;
    this.countsIntervalMs = options.statusCountsIntervalMs ?? DEFAULT_STATUS_COUNTS_INTERVAL_MS;
  }

  async reconcile(key: string, signal?: AbortSignal): Promise<ReconcileResult | void> {
    const { namespace = '', name } = splitKey(key);
    const pool = this.o.cache.get(namespace, name);
    if (!pool?.metadata?.uid || pool.metadata.deletionTimestamp) {
      this.forget(key);
      return;
    }
    const uid = pool.metadata.uid;
    const log = this.o.logger.child({ kind: Kind.WorkerPool, namespace, name });
    const now = this.o.clock.now();
    const previous = this.currentStatus(key, pool);
    const base = {
      now: new Date(now),
      generation: pool.metadata.generation,
      taskKind: undefined,
      targetName: undefined,
      bounds: undefined,
      backlog: undefined,
      running: previous?.running ?? 0,
      replicas: undefined,
      recommendation: undefined,
      decision: undefined,
      scaledAt: undefined,
    } satisfies Omit<PoolObservation, 'block'>;

    // 1. The spec. The CRD schema rejects bad ones; an older CRD or a
    //    hand-edited object can still get here, and retrying cannot help.
    const parsed = WorkerPoolSpecSchema.safeParse(pool.spec ?? {});
    if (!parsed.success) {
      const block: PoolBlock = { reason: PoolReason.InvalidSpec, message: `Invalid spec: ${describeIssues(parsed.error.issues)}` };
      await this.finish(pool, previous, { ...base, block }, log);
      return;
    }
    const spec = parsed.data;
    const bounds: ScalingBounds = spec;
    const targetName = spec.scaleTargetRef.name;
    const described = { ...base, taskKind: spec.taskKind, targetName, bounds };
    if (!isDeploymentRef(spec)) {
      const ref = spec.scaleTargetRef;
      const block: PoolBlock = {
        reason: PoolReason.UnsupportedScaleTarget,
        message: `scaleTargetRef ${ref.apiVersion} ${ref.kind} is not supported: a WorkerPool scales an apps/v1 Deployment`,
      };
      await this.finish(pool, previous, { ...described, block }, log);
      return;
    }

    // 2. The world, read in parallel: the latency from a queued task to a
    //    scale write is the slowest of the three, not their sum.
    const backlogReadAt = this.o.clock.now();
    const [scaleRead, backlogRead, othersRead] = await Promise.allSettled([
      this.o.client.getScale(namespace, targetName, signal ? { signal } : {}),
      this.o.backlog(spec.taskKind),
      this.autoscalers.autoscalersOf(namespace, targetName, signal),
    ]);
    signal?.throwIfAborted();
    const running = this.o.running(namespace, spec.taskKind, targetName);
    const backlog = backlogRead.status === 'fulfilled' ? backlogRead.value?.total : undefined;
    const observed = { ...described, running, backlog };

    // 3. What stops the pool from scaling.
    if (scaleRead.status === 'rejected') {
      if (!isNotFound(scaleRead.reason)) throw scaleRead.reason;
      this.memory.delete(key);
      const recommendation = backlog === undefined ? undefined : recommend({ bounds, backlog, running, current: 0, ...this.activation() });
      const block: PoolBlock = {
        reason: PoolReason.ScaleTargetNotFound,
        message: `Deployment ${targetName} not found in namespace ${namespace}; scaling starts once it exists`,
      };
      return this.finish(pool, previous, { ...observed, replicas: null, recommendation, block }, log, this.resyncMs);
    }
    const scale = scaleRead.value;
    const current = scale.spec?.replicas ?? 0;
    const replicas = scale.status?.replicas ?? 0;
    const withTarget = { ...observed, replicas };

    const conflict = this.conflictWith(pool, namespace, targetName, othersRead, log);
    if (conflict !== undefined) {
      this.memory.delete(key);
      const recommendation = backlog === undefined ? undefined : recommend({ bounds, backlog, running, current, ...this.activation() });
      const block: PoolBlock = { reason: PoolReason.ConflictingAutoscaler, message: conflict };
      return this.finish(pool, previous, { ...withTarget, recommendation, block }, log, this.resyncMs);
    }

    if (backlog === undefined) {
      const cause = backlogRead.status === 'rejected' ? `: ${errorMessage(backlogRead.reason)}` : '';
      const block: PoolBlock = {
        reason: PoolReason.BacklogUnavailable,
        message: `The ${spec.taskKind} backlog cannot be read from NATS JetStream${cause}; replicas stay at ${current}`,
      };
      return this.finish(pool, previous, { ...withTarget, block }, log, this.backlogRetryMs);
    }

    // 4. The policy, and the scale write.
    const memory = this.memory.get(key);
    const state = memory?.uid === uid && memory.state ? memory.state : initialState(now, current);
    const { decision, state: nextState } = decide(
      { now, bounds, backlog, running, current, ...this.activation() },
      state,
    );
    this.memory.set(key, { uid, state: nextState });

    let scaledAt: Date | undefined;
    let observedReplicas = replicas;
    if (decision.desired !== current) {
      let written: V1Scale;
      try {
        written = await this.o.client.patchScale(namespace, targetName, decision.desired, signal ? { signal } : {});
      } catch (err) {
        if (signal?.aborted) throw err;
        if (isNotFound(err)) {
          this.memory.delete(key);
          const block: PoolBlock = {
            reason: PoolReason.ScaleTargetNotFound,
            message: `Deployment ${targetName} not found in namespace ${namespace}; scaling starts once it exists`,
          };
          return this.finish(pool, previous, { ...observed, replicas: null, recommendation: decision, block }, log, this.resyncMs);
        }
        // Keep the window as it was before this pass (the write did not
        // happen), say why in status, and let the controller back off.
        this.memory.set(key, { uid, state });
        const block: PoolBlock = { reason: PoolReason.ScaleFailed, message: `Scaling Deployment ${targetName} to ${decision.desired} failed: ${errorMessage(err)}` };
        await this.finish(pool, previous, { ...withTarget, decision, block }, log);
        throw err;
      }
      const at = this.o.clock.now();
      scaledAt = new Date(at);
      observedReplicas = written.status?.replicas ?? replicas;
      this.recordScale(pool, spec, decision, { current, backlog, running, backlogReadAt, at }, log);
    }

    // 5 and 6.
    const requeue = decision.nextScaleDownAt !== undefined ? Math.max(1, decision.nextScaleDownAt - now + settleMs(bounds)) : undefined;
    return this.finish(
      pool,
      previous,
      { ...withTarget, replicas: observedReplicas, decision, scaledAt, block: undefined },
      log,
      requeue === undefined ? this.resyncMs : Math.min(requeue, this.resyncMs),
    );
  }

  /**
   * Forgets a pool that is gone: its policy window, its last status and its
   * metric series. Safe to call for keys never seen.
   */
  forget(key: string): void {
    this.memory.delete(key);
    this.lookupWarned.delete(key);
    this.written.delete(key);
    const { namespace, name } = splitKey(key);
    if (namespace) this.o.metrics?.forgetWorkerPool(namespace, name);
  }

  private activation(): { activationBacklog?: number } {
    return this.o.activationBacklog === undefined ? {} : { activationBacklog: this.o.activationBacklog };
  }

  /** A message naming whoever else scales the Deployment, or undefined if nobody does. */
  private conflictWith(
    pool: WorkerPoolObject,
    namespace: string,
    targetName: string,
    othersRead: PromiseSettledResult<Awaited<ReturnType<AutoscalerLookup['autoscalersOf']>>>,
    log: Logger,
  ): string | undefined {
    const key = poolKey(pool);
    if (othersRead.status === 'fulfilled') {
      this.lookupWarned.delete(key);
      if (othersRead.value.length > 0) return describeAutoscalers(othersRead.value, targetName);
    } else if (!this.lookupWarned.has(key)) {
      // Without the answer the pool scales: a missing RBAC rule or an old
      // cluster must not stop autoscaling altogether.
      this.lookupWarned.add(key);
      log.warn({ err: errorMessage(othersRead.reason) }, 'Cannot list HorizontalPodAutoscalers; scaling without checking for one');
    }
    const rival = this.olderPoolOnSameTarget(pool, namespace, targetName);
    if (rival) {
      return `WorkerPool ${rival} also scales Deployment ${targetName} and is older; this pool leaves the replicas to it`;
    }
    return undefined;
  }

  /** The name of an older WorkerPool in the namespace with the same target, if any. */
  private olderPoolOnSameTarget(pool: WorkerPoolObject, namespace: string, targetName: string): string | undefined {
    if (!this.o.cache.list) return undefined;
    const mine = rank(pool);
    let winner: { rank: [number, string]; name: string } | undefined;
    for (const other of this.o.cache.list()) {
      const meta = other.metadata;
      if (!meta?.name || meta.namespace !== namespace || meta.uid === pool.metadata?.uid || meta.deletionTimestamp) continue;
      const parsed = WorkerPoolSpecSchema.safeParse(other.spec ?? {});
      if (!parsed.success || parsed.data.scaleTargetRef.name !== targetName || !isDeploymentRef(parsed.data)) continue;
      const r = rank(other);
      if (compareRank(r, mine) < 0 && (!winner || compareRank(r, winner.rank) < 0)) winner = { rank: r, name: meta.name };
    }
    return winner?.name;
  }

  private recordScale(
    pool: WorkerPoolObject,
    spec: WorkerPoolSpec,
    decision: ScalingDecision,
    facts: { current: number; backlog: number; running: number; backlogReadAt: number; at: number },
    log: Logger,
  ): void {
    const namespace = pool.metadata?.namespace ?? '';
    const name = pool.metadata?.name ?? '';
    const target = spec.scaleTargetRef.name;
    const direction = decision.desired > facts.current ? 'up' : 'down';
    const detail =
      direction === 'up'
        ? `backlog ${facts.backlog} at ${spec.tasksPerReplica} per replica`
        : `backlog ${facts.backlog}, ${facts.running} running, lower for scaleDownDelaySeconds (${spec.scaleDownDelaySeconds}s)`;
    const message = `Scaled Deployment ${target} from ${facts.current} to ${decision.desired} replicas: ${detail}`;
    log.info({ target, from: facts.current, to: decision.desired, backlog: facts.backlog, running: facts.running }, direction === 'up' ? 'Scaled up Deployment' : 'Scaled down Deployment');
    this.o.metrics?.workerPoolScaleEvents.inc({ namespace, workerpool: name, direction });
    this.event(pool, 'Normal', direction === 'up' ? Reason.ScaledUp : Reason.ScaledDown, message, log);
    this.o.onScale?.({
      namespace,
      name,
      target,
      from: facts.current,
      to: decision.desired,
      direction,
      backlog: facts.backlog,
      running: facts.running,
      backlogReadAt: facts.backlogReadAt,
      scaledAt: facts.at,
    });
  }

  /** Writes the status if it changed, updates the gauges, and says when to come back. */
  private async finish(
    pool: WorkerPoolObject,
    previous: WorkerPoolStatus | undefined,
    obs: PoolObservation,
    log: Logger,
    requeueAfterMs?: number,
  ): Promise<ReconcileResult | void> {
    const namespace = pool.metadata?.namespace ?? '';
    const name = pool.metadata?.name ?? '';
    const next = buildStatus(previous, obs);
    this.updateGauges(namespace, name, next);
    this.reportBlockChange(pool, previous, obs.block, log);

    let requeue = requeueAfterMs;
    if (!sameStatus(previous, next)) {
      const mine = this.written.get(poolKey(pool));
      const last = mine?.uid === pool.metadata?.uid ? mine?.at : undefined;
      const wait = last === undefined ? 0 : last + this.countsIntervalMs - obs.now.getTime();
      if (previous !== undefined && onlyCountsDiffer(previous, next) && wait > 0) {
        // Counts alone move with every task; they go out together shortly.
        requeue = requeue === undefined ? wait : Math.min(requeue, wait);
      } else {
        await this.patchStatus(pool, previous, next);
      }
    }
    return requeue === undefined ? undefined : { requeueAfterMs: requeue };
  }

  private updateGauges(namespace: string, workerpool: string, status: WorkerPoolStatus): void {
    const m = this.o.metrics;
    if (!m) return;
    const labels = { namespace, workerpool };
    if (status.backlog !== undefined) m.workerPoolBacklog.set(labels, status.backlog);
    if (status.desiredReplicas !== undefined) m.workerPoolDesired.set(labels, status.desiredReplicas);
    if (status.replicas !== undefined) m.workerPoolReplicas.set(labels, status.replicas);
    else m.workerPoolReplicas.remove(labels);
  }

  /** A Warning Event when the pool becomes blocked, or blocked for another reason; not on every pass. */
  private reportBlockChange(pool: WorkerPoolObject, previous: WorkerPoolStatus | undefined, block: PoolBlock | undefined, log: Logger): void {
    const before = previous?.conditions?.find((c) => c.type === 'ScalingActive');
    if (!block) {
      if (before?.status === 'False') log.info({ was: before.reason }, 'Scaling resumed');
      return;
    }
    if (before?.status === 'False' && before.reason === block.reason) return;
    log.warn({ reason: block.reason }, block.message);
    this.event(pool, 'Warning', block.reason, block.message, log);
  }

  private event(pool: WorkerPoolObject, type: 'Normal' | 'Warning', reason: string, message: string, log: Logger): void {
    const regarding = { apiVersion: API_VERSION, kind: Kind.WorkerPool, metadata: pool.metadata } as KubernetesObject;
    // Not awaited: an Event is a courtesy, and the scale write must not wait for it.
    this.o.client
      .createEvent({ regarding, type, reason, message })
      .catch((err: unknown) => log.debug({ err: errorMessage(err) }, 'Event not recorded'));
  }

  private currentStatus(key: string, pool: WorkerPoolObject): WorkerPoolStatus | undefined {
    const mine = this.written.get(key);
    if (mine && mine.uid === pool.metadata?.uid && mine.resourceVersion !== undefined && resourceVersionOlder(pool.metadata?.resourceVersion, mine.resourceVersion)) return mine.status;
    return pool.status;
  }

  private async patchStatus(pool: WorkerPoolObject, previous: WorkerPoolStatus | undefined, next: WorkerPoolStatus): Promise<void> {
    const patch: Record<string, unknown> = { ...next };
    // A merge patch removes a field only when told to with null.
    for (const field of Object.keys(previous ?? {})) if (!(field in next)) patch[field] = null;
    const namespace = pool.metadata?.namespace;
    const name = pool.metadata?.name as string;
    try {
      const updated = await this.o.client.mergePatchStatus<WorkerPoolObject>(WORKER_POOL_RESOURCE, namespace, name, { status: patch });
      this.written.set(poolKey(pool), {
        uid: pool.metadata?.uid as string,
        status: next,
        at: this.o.clock.now(),
        resourceVersion: updated.metadata?.resourceVersion,
      });
    } catch (err) {
      // Deleted while we looked at it: the informer's delete event follows.
      if (!isNotFound(err)) throw err;
    }
  }
}

/**
 * How long past a scale-down's due time the pass runs. A queue drained task
 * by task leaves one window step per task, milliseconds apart; looking a
 * moment later takes them in one write instead of a burst of small ones.
 */
function settleMs(bounds: ScalingBounds): number {
  return Math.min(1000, bounds.scaleDownDelaySeconds * 100);
}

function poolKey(pool: WorkerPoolObject): string {
  return `${pool.metadata?.namespace ?? ''}/${pool.metadata?.name ?? ''}`;
}

function isDeploymentRef(spec: WorkerPoolSpec): boolean {
  const { apiVersion, kind } = spec.scaleTargetRef;
  return kind === 'Deployment' && apiVersion === 'apps/v1';
}

function rank(pool: WorkerPoolObject): [number, string] {
  const created = pool.metadata?.creationTimestamp;
  const at = created ? new Date(created).getTime() : Number.POSITIVE_INFINITY;
  return [Number.isNaN(at) ? Number.POSITIVE_INFINITY : at, pool.metadata?.name ?? ''];
}

function compareRank(a: [number, string], b: [number, string]): number {
  if (a[0] < b[0]) return -1;
  if (a[0] > b[0]) return 1;
  return a[1].localeCompare(b[1]);
}

/** resourceVersions are opaque, but etcd's are integers; compare them only when both are. */
function resourceVersionOlder(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b || !/^\d+$/.test(a) || !/^\d+$/.test(b)) return false;
  return BigInt(a) < BigInt(b);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
