// The WorkerPool status, rebuilt from what one reconcile pass observed. Pure,
// so every condition rule is unit-tested without an apiserver; the reconciler
// only gathers the observation and writes the result.
import { ConditionStatus, ConditionType, Reason, type TaskKind, type WorkerPoolStatus } from '../../api/index.ts';
import { setCondition } from '../tasks/conditions.ts';
import type { Recommendation, ScalingBounds, ScalingDecision } from './policy.ts';

export const PoolConditionType = {
  /** kstatus readiness: True while the pool reads its backlog and scales its target. */
  Ready: ConditionType.Ready,
  /** True while the replicas follow the backlog; False says what stops them. */
  ScalingActive: 'ScalingActive',
  /** True while minReplicas or maxReplicas cuts what the backlog calls for. */
  ScalingLimited: 'ScalingLimited',
  /** True while the Deployment named by scaleTargetRef does not exist. */
  TargetNotFound: 'TargetNotFound',
} as const;
export type PoolConditionType = (typeof PoolConditionType)[keyof typeof PoolConditionType];

/** Condition reasons of a WorkerPool; the scale Events use Reason.ScaledUp and Reason.ScaledDown. */
export const PoolReason = {
  ScalingActive: 'ScalingActive',
  BacklogRead: 'BacklogRead',
  ScaleDownStabilized: 'ScaleDownStabilized',
  HeldByRunningTasks: 'HeldByRunningTasks',
  TooManyReplicas: 'TooManyReplicas',
  TooFewReplicas: 'TooFewReplicas',
  DesiredWithinRange: 'DesiredWithinRange',
  TargetFound: 'TargetFound',
  ScaleTargetNotFound: Reason.ScaleTargetNotFound,
  BacklogUnavailable: Reason.BacklogUnavailable,
  ScaleFailed: Reason.ScaleFailed,
  ConflictingAutoscaler: 'ConflictingAutoscaler',
  UnsupportedScaleTarget: 'UnsupportedScaleTarget',
  InvalidSpec: 'InvalidSpec',
} as const;
export type PoolReason = (typeof PoolReason)[keyof typeof PoolReason];

/** Why a pass did not (or could not) set the replicas. */
export interface PoolBlock {
  reason:
    | typeof PoolReason.InvalidSpec
    | typeof PoolReason.UnsupportedScaleTarget
    | typeof PoolReason.ScaleTargetNotFound
    | typeof PoolReason.ConflictingAutoscaler
    | typeof PoolReason.BacklogUnavailable
    | typeof PoolReason.ScaleFailed;
  message: string;
}

export interface PoolObservation {
  now: Date;
  generation: number | undefined;
  taskKind: TaskKind | undefined;
  targetName: string | undefined;
  bounds: ScalingBounds | undefined;
  /** undefined when the queue could not be read: the last known value stays. */
  backlog: number | undefined;
  running: number;
  /** The target's observed replicas; null when it does not exist; undefined when not looked at. */
  replicas: number | null | undefined;
  /** What the backlog calls for, when it was read. */
  recommendation: Recommendation | undefined;
  /** The policy's decision, when the pool was free to act on it. */
  decision: ScalingDecision | undefined;
  /** Set when this pass changed the target's replicas. */
  scaledAt: Date | undefined;
  block: PoolBlock | undefined;
}

const T = ConditionStatus.True;
const F = ConditionStatus.False;

export function buildStatus(previous: WorkerPoolStatus | undefined, obs: PoolObservation): WorkerPoolStatus {
  const next: WorkerPoolStatus = {};
  const backlog = obs.backlog ?? previous?.backlog;
  if (backlog !== undefined) next.backlog = backlog;
  next.running = obs.running;
  const desired = obs.decision?.desired ?? obs.recommendation?.target ?? previous?.desiredReplicas;
  if (desired !== undefined) next.desiredReplicas = desired;
  const replicas = obs.replicas === undefined ? previous?.replicas : (obs.replicas ?? undefined);
  if (replicas !== undefined) next.replicas = replicas;
  const lastScaleTime = obs.scaledAt?.toISOString() ?? previous?.lastScaleTime;
  if (lastScaleTime !== undefined) next.lastScaleTime = lastScaleTime;
  if (obs.generation !== undefined) next.observedGeneration = obs.generation;
  next.conditions = buildConditions(previous, obs);
  return next;
}

function buildConditions(previous: WorkerPoolStatus | undefined, obs: PoolObservation): WorkerPoolStatus['conditions'] {
  const { now, generation, block } = obs;
  const target = `Deployment ${obs.targetName ?? '(unnamed)'}`;
  let conditions = previous?.conditions;
  const set = (type: PoolConditionType, status: ConditionStatus, reason: string, message: string) => {
    conditions = setCondition(conditions, { type, status, reason, message }, now, generation);
  };

  if (block) {
    set(PoolConditionType.Ready, F, block.reason, block.message);
    set(PoolConditionType.ScalingActive, F, block.reason, block.message);
  } else {
    set(PoolConditionType.Ready, T, PoolReason.ScalingActive, `Scaling ${target} on the ${obs.taskKind ?? 'task'} backlog`);
    const [reason, message] = activeReason(obs, target);
    set(PoolConditionType.ScalingActive, T, reason, message);
  }

  const rec = obs.decision ?? obs.recommendation;
  if (rec && obs.bounds) {
    if (rec.limited === 'max') {
      set(PoolConditionType.ScalingLimited, T, PoolReason.TooManyReplicas, `The backlog calls for more than maxReplicas (${obs.bounds.maxReplicas})`);
    } else if (rec.limited === 'min') {
      set(PoolConditionType.ScalingLimited, T, PoolReason.TooFewReplicas, `The backlog calls for fewer than minReplicas (${obs.bounds.minReplicas})`);
    } else {
      set(PoolConditionType.ScalingLimited, F, PoolReason.DesiredWithinRange, 'The backlog calls for a replica count within minReplicas and maxReplicas');
    }
  }

  if (block?.reason === PoolReason.ScaleTargetNotFound) {
    set(PoolConditionType.TargetNotFound, T, PoolReason.ScaleTargetNotFound, block.message);
  } else if (typeof obs.replicas === 'number') {
    set(PoolConditionType.TargetNotFound, F, PoolReason.TargetFound, `${target} exists`);
  }
  return conditions;
}

function activeReason(obs: PoolObservation, target: string): [PoolReason, string] {
  const d = obs.decision;
  if (d?.heldByRunning) {
    return [PoolReason.HeldByRunningTasks, `Keeping ${d.target} replicas: tasks are running on them and the backlog calls for fewer`];
  }
  if (d && d.desired > d.target) {
    const delay = obs.bounds?.scaleDownDelaySeconds ?? 0;
    return [
      PoolReason.ScaleDownStabilized,
      `Keeping ${d.desired} replicas until the backlog has called for fewer for scaleDownDelaySeconds (${delay}s)`,
    ];
  }
  return [PoolReason.BacklogRead, `${target} follows the backlog`];
}

/**
 * True when two statuses differ only in the counts that move with every
 * task (backlog, running, replicas): those changes may wait a little and go
 * out together, everything else is written at once.
 */
export function onlyCountsDiffer(a: WorkerPoolStatus | undefined, b: WorkerPoolStatus): boolean {
  const strip = (s: WorkerPoolStatus | undefined) => {
    const { backlog: _b, running: _r, replicas: _p, ...rest } = s ?? {};
    return canonical(rest);
  };
  return strip(a) === strip(b);
}

export function sameStatus(a: WorkerPoolStatus | undefined, b: WorkerPoolStatus): boolean {
  return canonical(a ?? {}) === canonical(b);
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>)
            .filter(([, x]) => x !== undefined)
            .sort(([x], [y]) => x.localeCompare(y)),
        )
      : v,
  );
}
