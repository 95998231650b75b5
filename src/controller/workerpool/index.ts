// WorkerPool autoscaling: the policy, the reconciler, and the small helpers
// the manager uses to wake pools the moment their backlog may have moved.
import type { TaskKind } from '../../api/index.ts';
import type { WorkerPoolObject } from './reconciler.ts';

export {
  WorkerPoolReconciler,
  WORKER_POOL_RESOURCE,
  DEFAULT_RESYNC_MS,
  DEFAULT_BACKLOG_RETRY_MS,
  DEFAULT_STATUS_COUNTS_INTERVAL_MS,
} from './reconciler.ts';
export type { WorkerPoolReconcilerOptions, WorkerPoolObject, WorkerPoolCache, BacklogReading, ScaleRecord } from './reconciler.ts';
export { decide, recommend, initialState, DEFAULT_ACTIVATION_BACKLOG } from './policy.ts';
export type { ScalingBounds, ScalingInput, ScalingDecision, ScalingState, Recommendation } from './policy.ts';
export { PoolConditionType, PoolReason, buildStatus } from './status.ts';
export type { PoolObservation, PoolBlock } from './status.ts';
export { hpaLookup, HPA_RESOURCE } from './autoscalers.ts';
export type { AutoscalerLookup, OtherAutoscaler, HpaLookupOptions } from './autoscalers.ts';
export { timeToReplicas } from './latency.ts';
export type { TimeToReplicasOptions, TimeToReplicas } from './latency.ts';

/**
 * Work-queue keys ("namespace/name") of every pool that scales on `kind`.
 * The manager enqueues them whenever that kind's backlog may have changed (a
 * task queued, started, finished or deleted); the work queue folds a burst
 * of such wake-ups into one pass per pool.
 */
export function poolKeysForKind(pools: Iterable<WorkerPoolObject>, kind: TaskKind): string[] {
  const keys: string[] = [];
  for (const pool of pools) {
    const meta = pool.metadata;
    if (!meta?.name || !meta.namespace || meta.deletionTimestamp) continue;
    if ((pool.spec as { taskKind?: unknown } | undefined)?.taskKind !== kind) continue;
    keys.push(`${meta.namespace}/${meta.name}`);
  }
  return keys;
}

/**
 * Keys of the pools whose scaleTargetRef names this Deployment: for a
 * manager that also watches Deployments, so that creating a missing target
 * starts scaling at once rather than at the next periodic re-check.
 */
export function poolKeysForDeployment(pools: Iterable<WorkerPoolObject>, namespace: string, deployment: string): string[] {
  const keys: string[] = [];
  for (const pool of pools) {
    const meta = pool.metadata;
    if (!meta?.name || meta.namespace !== namespace) continue;
    const ref = (pool.spec as { scaleTargetRef?: { name?: unknown } } | undefined)?.scaleTargetRef;
    if (ref?.name === deployment) keys.push(`${namespace}/${meta.name}`);
  }
  return keys;
}

/**
 * True when `pod` is a name the Deployment's ReplicaSets give their pods:
 * `<deployment>-<pod-template-hash>-<5 characters>`. Stricter than a prefix
 * test, so pool "asr" does not count the pods of Deployment "asr-large".
 */
export function isPodOfDeployment(pod: string, deployment: string): boolean {
  const base = `${deployment}-`;
  if (pod.startsWith(base) && /^[a-z0-9]{1,10}-[a-z0-9]{5}$/.test(pod.slice(base.length))) return true;
  // generateName keeps 58 characters of "<replicaset>-" and adds 5: a long
  // Deployment name loses its hash, or part of itself, on the way.
  if (pod.length !== GENERATED_NAME_MAX) return false;
  const kept = pod.slice(0, GENERATED_NAME_MAX - GENERATED_SUFFIX);
  return kept.startsWith(base) || base.startsWith(kept);
}

const GENERATED_NAME_MAX = 63;
const GENERATED_SUFFIX = 5;

/**
 * Running tasks whose worker (the pod name a worker reports) is a pod of
 * this Deployment: the floor a scale-down must not cross.
 */
export function runningOnPool(tasks: Iterable<{ status?: { phase?: string; worker?: string } }>, deployment: string): number {
  let n = 0;
  for (const task of tasks) {
    const worker = task.status?.worker;
    if (task.status?.phase === 'Running' && worker !== undefined && isPodOfDeployment(worker, deployment)) n++;
  }
  return n;
}
