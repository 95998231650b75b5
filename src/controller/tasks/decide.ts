// The task state machine, as a pure function: from the object, what the
// workers last said (the Redis state hash) and the time, decide the phase
// the status must show and what the controller must do about the queue.
// No I/O here, so every rule is unit-tested without servers.
import { Phase, Reason, isTerminalPhase, type ResultSummary, type TaskSpec, type TaskStatus } from '../../api/index.ts';
import { maxAttempts, type TaskState } from '../../protocol/index.ts';

export interface Timing {
  /** A Running task whose last heartbeat is older than this has lost its worker. */
  heartbeatTimeoutMs: number;
  /** How long after its timeoutSeconds a run may still report before the controller fails it. */
  deadlineGraceMs: number;
  /** How long JetStream gets to redeliver a lost or retried run before the controller checks the message is still there. */
  redeliveryGraceMs: number;
  /** How often a waiting task's message is checked to still be deliverable. */
  queueRecheckMs: number;
}

export type TaskAction =
  /** Put the task on the queue at this attempt (idempotent: the message id is uid:attempt). */
  | { type: 'publish'; attempt: number }
  /** Make sure the queued message still exists; if it is gone, publish this attempt. */
  | { type: 'ensureQueued'; attempt: number }
  /** Stop the task wherever it is: cancel flag, cancel notice, queued message removed. */
  | { type: 'discard' }
  /** The task is finished: a message still in the stream (its ack was lost) must not run it again. */
  | { type: 'dequeue' };

export interface Decision {
  phase: Phase;
  reason: string;
  message: string;
  progress?: number;
  attempts?: number;
  worker?: string;
  queuedAt?: string;
  startTime?: string;
  completionTime?: string;
  nextAttemptTime?: string;
  lastReportTime?: string;
  result?: { ref?: string; summary?: ResultSummary };
  actions: TaskAction[];
  /** Look again after this long even if nothing changes (heartbeat, deadline, retry timers). */
  requeueAfterMs?: number;
}

export interface DecideInput {
  now: Date;
  spec: TaskSpec;
  status: TaskStatus | undefined;
  state: TaskState | undefined;
  summary: ResultSummary | undefined;
  /** When this controller process last found the queued message deliverable (undefined: never). */
  queueCheckedAt: number | undefined;
  timing: Timing;
}

const ms = (iso: string | undefined): number | undefined => (iso ? Date.parse(iso) : undefined);

function minDefined(...values: (number | undefined)[]): number | undefined {
  const defined = values.filter((v): v is number => v !== undefined && Number.isFinite(v));
  return defined.length ? Math.max(0, Math.min(...defined)) : undefined;
}

export function decide(input: DecideInput): Decision {
  const { now, spec, status, state, timing } = input;
  const nowMs = now.getTime();
  const nowIso = now.toISOString();
  const limit = maxAttempts(spec);
  const reported = state?.phase;
  const common = {
    queuedAt: status?.queuedAt ?? nowIso,
    ...(state?.attempt !== undefined ? { attempts: state.attempt } : { attempts: status?.attempts ?? 0 }),
    ...(state?.worker ? { worker: state.worker } : {}),
    ...(state?.startedAt ? { startTime: state.startedAt } : {}),
    ...(state?.heartbeatAt || state?.updatedAt ? { lastReportTime: state.updatedAt ?? state.heartbeatAt } : {}),
  };

  // A worker's final word wins over anything the controller would decide now:
  // the run really ended that way.
  if (reported && isTerminalPhase(reported)) {
    const succeeded = reported === Phase.Succeeded;
    return {
      ...common,
      phase: reported,
      reason: state?.reason ?? (succeeded ? Reason.Completed : reported === Phase.Cancelled ? Reason.Cancelled : Reason.EngineError),
      message: state?.message ?? (succeeded ? 'The task completed' : `The task ended ${reported}`),
      progress: succeeded ? 100 : (state?.progress ?? status?.progress ?? 0),
      completionTime: state?.updatedAt ?? nowIso,
      ...(succeeded ? { result: { ...(state?.resultRef ? { ref: state.resultRef } : {}), ...(input.summary ? { summary: input.summary } : {}) } } : {}),
      actions: state?.seq !== undefined ? [{ type: 'dequeue' }] : [],
    };
  }

  if (spec.cancel) {
    return {
      ...common,
      phase: Phase.Cancelled,
      reason: Reason.Cancelled,
      message: 'Cancelled: spec.cancel is true',
      progress: state?.progress ?? status?.progress ?? 0,
      completionTime: nowIso,
      actions: [{ type: 'discard' }],
    };
  }

  if (reported === Phase.Running) {
    const attempt = state?.attempt ?? 1;
    const heartbeat = ms(state?.heartbeatAt) ?? ms(state?.startedAt) ?? nowMs;
    const lostAt = heartbeat + timing.heartbeatTimeoutMs;
    const started = ms(state?.startedAt) ?? nowMs;
    const deadline = started + spec.timeoutSeconds * 1000 + timing.deadlineGraceMs;

    if (nowMs >= deadline) {
      return {
        ...common,
        phase: Phase.Failed,
        reason: Reason.DeadlineExceeded,
        message: `Attempt ${attempt} ran past timeoutSeconds (${spec.timeoutSeconds}s) without finishing`,
        progress: state?.progress ?? 0,
        completionTime: nowIso,
        actions: [{ type: 'discard' }],
      };
    }
    if (nowMs >= lostAt) {
      // The last heartbeat's time, not 'N seconds ago': the message must not change on every pass.
      const since = new Date(heartbeat).toISOString();
      const who = state?.worker ? `worker ${state.worker}` : 'its worker';
      if (attempt >= limit) {
        return {
          ...common,
          phase: Phase.Failed,
          reason: Reason.MaxRetriesExceeded,
          message: `Attempt ${attempt} of ${limit} was lost: ${who} stopped reporting at ${since}`,
          progress: state?.progress ?? 0,
          completionTime: nowIso,
          actions: [{ type: 'discard' }],
        };
      }
      // JetStream redelivers the message once its ack wait passes; if it has
      // not by the grace period, the message itself is checked.
      const verifyAt = lostAt + timing.redeliveryGraceMs;
      return {
        ...common,
        phase: Phase.Retrying,
        reason: Reason.WorkerLost,
        message: `Attempt ${attempt} of ${limit} was lost: ${who} stopped reporting at ${since}; waiting for redelivery`,
        progress: state?.progress ?? 0,
        actions: nowMs >= verifyAt ? [{ type: 'ensureQueued', attempt: attempt + 1 }] : [],
        requeueAfterMs: nowMs >= verifyAt ? timing.redeliveryGraceMs : verifyAt - nowMs,
      };
    }
    return {
      ...common,
      phase: Phase.Running,
      reason: Reason.Started,
      message: `Attempt ${attempt} of ${limit} running${state?.worker ? ` on ${state.worker}` : ''}`,
      progress: state?.progress ?? 0,
      actions: [],
      requeueAfterMs: minDefined(lostAt - nowMs, deadline - nowMs),
    };
  }

  if (reported === Phase.Retrying) {
    const attempt = state?.attempt ?? 1;
    const next = ms(state?.nextAttemptAt);
    const verifyAt = next !== undefined ? next + timing.redeliveryGraceMs : undefined;
    const overdue = verifyAt !== undefined && nowMs >= verifyAt;
    return {
      ...common,
      phase: Phase.Retrying,
      reason: state?.reason ?? Reason.RetryScheduled,
      message: `Attempt ${attempt} of ${limit} failed${state?.message ? `: ${state.message}` : ''}`,
      progress: state?.progress ?? 0,
      ...(state?.nextAttemptAt ? { nextAttemptTime: state.nextAttemptAt } : {}),
      actions: overdue ? [{ type: 'ensureQueued', attempt: attempt + 1 }] : [],
      ...(verifyAt !== undefined ? { requeueAfterMs: overdue ? timing.redeliveryGraceMs : verifyAt - nowMs } : {}),
    };
  }

  // Attempts keep counting across a loss of the state hash: the status remembers them.
  const nextAttempt = Math.max(state?.attempt ?? 0, status?.attempts ?? 0) + 1;

  // Not running: waiting in the queue, or not queued yet.
  if (state?.seq === undefined) {
    // The status says a run reported recently, but Redis has nothing (it lost
    // the hash): the run is probably going on, and its next heartbeat restores
    // the state. Queuing it again now would start a second run.
    const lastReport = ms(status?.lastReportTime);
    if (status?.phase === Phase.Running && lastReport !== undefined && nowMs - lastReport < timing.heartbeatTimeoutMs) {
      return {
        ...common,
        phase: Phase.Running,
        reason: status.reason ?? Reason.Started,
        message: status.message ?? 'Running',
        progress: status.progress ?? 0,
        actions: [],
        requeueAfterMs: lastReport + timing.heartbeatTimeoutMs - nowMs,
      };
    }
    return {
      ...common,
      phase: Phase.Queued,
      reason: Reason.Published,
      message: 'Waiting for a worker',
      progress: 0,
      actions: [{ type: 'publish', attempt: nextAttempt }],
    };
  }
  // Checked once per controller process, then every queueRecheckMs, so a
  // message the queue lost track of is found without a restart.
  const checkedAt = input.queueCheckedAt;
  const due = checkedAt === undefined || nowMs - checkedAt >= timing.queueRecheckMs;
  return {
    ...common,
    phase: Phase.Queued,
    reason: Reason.Published,
    message: reported === Phase.Queued && state.message ? `Waiting for a worker (${state.message})` : 'Waiting for a worker',
    progress: state.progress ?? 0,
    actions: due ? [{ type: 'ensureQueued', attempt: nextAttempt }] : [],
    requeueAfterMs: due ? timing.queueRecheckMs : checkedAt + timing.queueRecheckMs - nowMs,
  };
}

/** The status to write: the decision laid over the current status. */
export function statusFromDecision(current: TaskStatus | undefined, d: Decision): TaskStatus {
  const next: TaskStatus = {
    ...(current ?? {}),
    phase: d.phase,
    reason: d.reason,
    message: d.message,
    ...(d.progress !== undefined ? { progress: d.progress } : {}),
    ...(d.attempts !== undefined ? { attempts: d.attempts } : {}),
    ...(d.worker !== undefined ? { worker: d.worker } : {}),
    ...(d.queuedAt !== undefined ? { queuedAt: d.queuedAt } : {}),
    ...(d.startTime !== undefined ? { startTime: d.startTime } : {}),
    ...(d.completionTime !== undefined ? { completionTime: d.completionTime } : {}),
    ...(d.lastReportTime !== undefined ? { lastReportTime: d.lastReportTime } : {}),
    ...(d.result !== undefined ? { result: d.result } : {}),
  };
  if (d.nextAttemptTime !== undefined) next.nextAttemptTime = d.nextAttemptTime;
  else delete next.nextAttemptTime;
  return next;
}
