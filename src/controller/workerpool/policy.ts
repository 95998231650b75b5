// How many replicas a WorkerPool's Deployment should have, as a pure
// function of the backlog, the tasks running, the replicas it has now and
// the recent past. No I/O and no clock of its own: the reconciler passes
// `now`, so the unit tests drive time by hand.
//
// Scaling up follows the backlog at once: a GPU worker takes tens of seconds
// to start, and every second of waiting is a user's task standing still.
// Scaling down is the expensive mistake (a warm worker killed only to be
// started again a minute later), so it waits: replicas come down to the
// highest need seen over the last scaleDownDelaySeconds. That is the HPA's
// scale-down stabilization window, and it means a replica is removed only
// after the need has stayed below it for the whole delay; any rise in between
// starts the delay again, so a backlog oscillating around a threshold causes
// one scale-up and nothing else.

/** The WorkerPool spec fields the policy reads. */
export interface ScalingBounds {
  minReplicas: number;
  maxReplicas: number;
  tasksPerReplica: number;
  scaleDownDelaySeconds: number;
}

export interface ScalingInput {
  /** Milliseconds since the epoch. */
  now: number;
  bounds: ScalingBounds;
  /** Messages waiting plus delivered-but-unacknowledged, across the kind's priorities. */
  backlog: number;
  /** Tasks in phase Running on this pool's workers. */
  running: number;
  /** Replicas the target asks for now (its /scale spec.replicas). */
  current: number;
  /**
   * Backlog at which the pool counts as active (KEDA's activation
   * threshold). Below it the backlog calls for no replica at all, so an
   * idle pool can rest at zero. Default 1: any waiting task wakes the pool.
   */
  activationBacklog?: number;
}

/** What the backlog alone calls for, before the scale-down delay is applied. */
export interface Recommendation {
  /** ceil(backlog / tasksPerReplica), or 0 below the activation threshold; unbounded. */
  need: number;
  /** `need` within [minReplicas, maxReplicas], raised so no running task loses its pod. */
  target: number;
  /** Which bound cut `need`, if one did. */
  limited: 'min' | 'max' | undefined;
  /** True when the running tasks, not the backlog, set `target`. */
  heldByRunning: boolean;
}

export interface ScalingDecision extends Recommendation {
  /** Replicas to set now. */
  desired: number;
  direction: 'up' | 'down' | 'none';
  /**
   * Set while a scale-down waits out the delay: the time (ms since the
   * epoch) at which `desired` will next drop if the need stays as it is.
   */
  nextScaleDownAt: number | undefined;
}

/** One change of the recommended target: `replicas` from `at` until the next sample. */
export interface Sample {
  at: number;
  replicas: number;
}

/**
 * What the policy remembers between passes: the recommended targets of the
 * last scaleDownDelaySeconds, oldest first, one entry per change. Immutable;
 * decide() returns the next state.
 */
export interface ScalingState {
  readonly samples: readonly Sample[];
}

/**
 * Enough samples for any realistic churn inside one delay (the list holds
 * changes of the target, not passes). Past it the two oldest merge into
 * their maximum, which can only delay a scale-down, never hasten one.
 */
export const MAX_SAMPLES = 256;

export const DEFAULT_ACTIVATION_BACKLOG = 1;

/**
 * The state for a pool seen for the first time (or again after a controller
 * restart): as if its current replicas had been needed just now. A new
 * leader thus never scales down before a full delay has passed under its own
 * eyes, whatever the previous leader knew.
 */
export function initialState(now: number, current: number): ScalingState {
  return { samples: [{ at: now, replicas: current }] };
}

export function recommend(input: Omit<ScalingInput, 'now'>): Recommendation {
  const { bounds, backlog, running, current } = input;
  const activation = Math.max(1, input.activationBacklog ?? DEFAULT_ACTIVATION_BACKLOG);
  const tasksPerReplica = Math.max(1, bounds.tasksPerReplica);
  const need = backlog >= activation ? Math.max(1, Math.ceil(backlog / tasksPerReplica)) : 0;
  const limited = need > bounds.maxReplicas ? 'max' : need < bounds.minReplicas ? 'min' : undefined;
  const bounded = Math.min(bounds.maxReplicas, Math.max(bounds.minReplicas, need));
  // Running tasks hold their pods, but only pods that exist: a stale count
  // must not make the pool grow, it may only keep it from shrinking.
  const floor = Math.max(0, Math.min(running, current));
  return { need, target: Math.max(bounded, floor), limited, heldByRunning: floor > bounded };
}

/** One pass of the policy: the replicas to set now, and the state to keep. */
export function decide(input: ScalingInput, state: ScalingState): { decision: ScalingDecision; state: ScalingState } {
  const rec = recommend(input);
  const { now, current, bounds } = input;
  const delayMs = Math.max(0, bounds.scaleDownDelaySeconds) * 1000;
  const samples = prune(record(state.samples, { at: now, replicas: rec.target }), now, delayMs);
  const next: ScalingState = { samples };

  if (rec.target >= current) {
    const direction = rec.target > current ? 'up' : 'none';
    return { decision: { ...rec, desired: rec.target, direction, nextScaleDownAt: undefined }, state: next };
  }

  // Below the current replicas: come down only as far as the highest target
  // still inside the window, and never above maxReplicas (a lowered maximum
  // applies at once), except where running tasks hold their pods.
  const ceiling = Math.max(bounds.maxReplicas, rec.target);
  const desired = Math.min(current, windowMax(samples, now, delayMs), ceiling);
  const nextScaleDownAt = desired > rec.target ? dropTime(samples, desired, delayMs) : undefined;
  const direction = desired < current ? 'down' : 'none';
  return { decision: { ...rec, desired, direction, nextScaleDownAt }, state: next };
}

/** Appends a sample unless the target did not change. */
function record(samples: readonly Sample[], sample: Sample): Sample[] {
  const last = samples[samples.length - 1];
  if (last !== undefined && last.replicas === sample.replicas && last.at <= sample.at) return [...samples];
  // A clock that stepped backwards (a test, or a host resync) must not
  // reorder the window: the new sample takes the last one's time.
  const at = last !== undefined && sample.at < last.at ? last.at : sample.at;
  return [...samples, { at, replicas: sample.replicas }];
}

/**
 * Index of the sample in effect at the window's start (the last one at or
 * before now - delay), or 0 when every sample is newer.
 */
function windowStartIndex(samples: readonly Sample[], now: number, delayMs: number): number {
  const start = now - delayMs;
  let index = 0;
  for (let i = 0; i < samples.length; i++) {
    if ((samples[i] as Sample).at <= start) index = i;
    else break;
  }
  return index;
}

/** Drops samples that ended before the window began, and caps the list. */
function prune(samples: Sample[], now: number, delayMs: number): Sample[] {
  let kept = samples.slice(windowStartIndex(samples, now, delayMs));
  while (kept.length > MAX_SAMPLES) {
    const [first, second, ...rest] = kept as [Sample, Sample, ...Sample[]];
    kept = [{ at: first.at, replicas: Math.max(first.replicas, second.replicas) }, ...rest];
  }
  return kept;
}

/** The highest target in effect at any time in [now - delay, now]. */
function windowMax(samples: readonly Sample[], now: number, delayMs: number): number {
  let max = 0;
  for (let i = windowStartIndex(samples, now, delayMs); i < samples.length; i++) {
    max = Math.max(max, (samples[i] as Sample).replicas);
  }
  return max;
}

/**
 * When the window maximum falls below `level`: a sample stays in effect
 * until the next one begins, and stays in the window for `delayMs` after
 * that. The newest sample is the current target, below `level`, so a later
 * sample always exists.
 */
function dropTime(samples: readonly Sample[], level: number, delayMs: number): number | undefined {
  for (let i = samples.length - 2; i >= 0; i--) {
    if ((samples[i] as Sample).replicas >= level) return (samples[i + 1] as Sample).at + delayMs;
  }
  return undefined;
}
