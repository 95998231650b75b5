// The task state machine, rule by rule, without servers or clocks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyTaskSpecDefaults, Phase, Reason, type TaskStatus } from '../../src/api/index.ts';
import type { TaskState } from '../../src/protocol/index.ts';
import { decide, statusFromDecision, type DecideInput } from '../../src/controller/tasks/decide.ts';
import { conditionsForPhase, setCondition } from '../../src/controller/tasks/conditions.ts';

const now = new Date('2026-01-01T12:00:00.000Z');
const at = (secondsAgo: number) => new Date(now.getTime() - secondsAgo * 1000).toISOString();
const timing = { heartbeatTimeoutMs: 30_000, deadlineGraceMs: 30_000, redeliveryGraceMs: 90_000, queueRecheckMs: 180_000 };
const spec = applyTaskSpecDefaults('TranscriptionTask', {
  audio: { uri: 'https://example.com/a.wav' },
  timeoutSeconds: 600,
  retryPolicy: { maxRetries: 2, backoffSeconds: 10 },
});

function input(overrides: Partial<DecideInput>): DecideInput {
  return { now, spec, status: undefined, state: undefined, summary: undefined, queueCheckedAt: now.getTime() - 1000, timing, ...overrides };
}

const running = (over: Partial<TaskState> = {}): TaskState => ({
  phase: Phase.Running,
  attempt: 1,
  worker: 'gpu-worker-abc',
  startedAt: at(60),
  heartbeatAt: at(2),
  updatedAt: at(2),
  progress: 40,
  seq: 7,
  ...over,
});

test('a new task is published at attempt 1 and shows Queued', () => {
  const d = decide(input({}));
  assert.equal(d.phase, Phase.Queued);
  assert.deepEqual(d.actions, [{ type: 'publish', attempt: 1 }]);
  assert.equal(d.queuedAt, now.toISOString());
});

test('a queued task is not published again once its message is recorded', () => {
  const d = decide(input({ status: { phase: Phase.Queued, queuedAt: at(5) }, state: { seq: 3 } }));
  assert.equal(d.phase, Phase.Queued);
  assert.deepEqual(d.actions, []);
  assert.equal(d.queuedAt, at(5), 'queuedAt is kept');
});

test('a queued message is checked after a controller restart, and again every recheck period', () => {
  const d = decide(input({ status: { phase: Phase.Queued }, state: { seq: 3 }, queueCheckedAt: undefined }));
  assert.deepEqual(d.actions, [{ type: 'ensureQueued', attempt: 1 }]);
  const fresh = decide(input({ status: { phase: Phase.Queued }, state: { seq: 3 }, queueCheckedAt: now.getTime() - 60_000 }));
  assert.deepEqual(fresh.actions, []);
  assert.equal(fresh.requeueAfterMs, 120_000, 'looks again when the period is up');
  const due = decide(input({ status: { phase: Phase.Queued }, state: { seq: 3 }, queueCheckedAt: now.getTime() - 180_000 }));
  assert.deepEqual(due.actions, [{ type: 'ensureQueued', attempt: 1 }]);
});

test('attempts keep counting when Redis lost the state: the next publish follows status.attempts', () => {
  const d = decide(input({ status: { phase: Phase.Retrying, attempts: 2 }, state: undefined }));
  assert.deepEqual(d.actions, [{ type: 'publish', attempt: 3 }]);
});

test('a run that reported moments ago is not queued again when Redis lost its state', () => {
  const status = { phase: Phase.Running, attempts: 1, lastReportTime: at(5), worker: 'w', progress: 30 };
  const d = decide(input({ status, state: undefined }));
  assert.equal(d.phase, Phase.Running);
  assert.deepEqual(d.actions, []);
  assert.equal(d.requeueAfterMs, 25_000, 'looks again when the heartbeat would be stale');
  // Silent for longer than the heartbeat timeout: it is gone, queue the next attempt.
  const stale = decide(input({ status: { ...status, lastReportTime: at(31) }, state: undefined }));
  assert.deepEqual(stale.actions, [{ type: 'publish', attempt: 2 }]);
});

test('a running report becomes Running with worker, start time, attempt and progress', () => {
  const d = decide(input({ status: { phase: Phase.Queued }, state: running() }));
  assert.equal(d.phase, Phase.Running);
  assert.equal(d.worker, 'gpu-worker-abc');
  assert.equal(d.startTime, at(60));
  assert.equal(d.attempts, 1);
  assert.equal(d.progress, 40);
  assert.deepEqual(d.actions, []);
  // Next look: when the heartbeat would go stale (28 s), before the deadline.
  assert.equal(d.requeueAfterMs, 28_000);
});

test('a stale heartbeat with attempts left shows Retrying with WorkerLost, then checks the message after the grace period', () => {
  const lost = decide(input({ state: running({ heartbeatAt: at(40) }) }));
  assert.equal(lost.phase, Phase.Retrying);
  assert.equal(lost.reason, Reason.WorkerLost);
  assert.deepEqual(lost.actions, []);
  assert.equal(lost.requeueAfterMs, 80_000, 'lost at -10s, verify at +80s');

  const overdue = decide(input({ state: running({ heartbeatAt: at(200) }) }));
  assert.deepEqual(overdue.actions, [{ type: 'ensureQueued', attempt: 2 }]);
});

test('a stale heartbeat on the last attempt fails the task with MaxRetriesExceeded and discards the message', () => {
  const d = decide(input({ state: running({ attempt: 3, heartbeatAt: at(40) }) }));
  assert.equal(d.phase, Phase.Failed);
  assert.equal(d.reason, Reason.MaxRetriesExceeded);
  assert.match(d.message, /gpu-worker-abc/);
  assert.deepEqual(d.actions, [{ type: 'discard' }]);
  assert.equal(d.completionTime, now.toISOString());
});

test('a run past timeoutSeconds plus grace fails with DeadlineExceeded', () => {
  const d = decide(input({ state: running({ startedAt: at(600 + 31) }) }));
  assert.equal(d.phase, Phase.Failed);
  assert.equal(d.reason, Reason.DeadlineExceeded);
  assert.deepEqual(d.actions, [{ type: 'discard' }]);
  const inTime = decide(input({ state: running({ startedAt: at(600 + 29) }) }));
  assert.equal(inTime.phase, Phase.Running);
});

test('a retrying report shows Retrying with the next attempt time; overdue, the message is checked', () => {
  const state: TaskState = { phase: Phase.Retrying, attempt: 1, reason: 'EngineUnavailable', message: 'HTTP 503', nextAttemptAt: at(-10), seq: 4 };
  const d = decide(input({ state }));
  assert.equal(d.phase, Phase.Retrying);
  assert.equal(d.reason, 'EngineUnavailable');
  assert.equal(d.nextAttemptTime, at(-10));
  assert.deepEqual(d.actions, []);
  const overdue = decide(input({ state: { ...state, nextAttemptAt: at(100) } }));
  assert.deepEqual(overdue.actions, [{ type: 'ensureQueued', attempt: 2 }]);
});

test("a worker's terminal report wins, with the result reference and summary", () => {
  const d = decide(input({
    state: { phase: Phase.Succeeded, attempt: 2, resultRef: 'tq:{u}:result', updatedAt: at(1), worker: 'w' },
    summary: { language: 'en', durationSeconds: 12.5, segments: 3 },
  }));
  assert.equal(d.phase, Phase.Succeeded);
  assert.equal(d.progress, 100);
  assert.deepEqual(d.result, { ref: 'tq:{u}:result', summary: { language: 'en', durationSeconds: 12.5, segments: 3 } });
  assert.equal(d.completionTime, at(1));
  assert.equal(d.attempts, 2);

  assert.deepEqual(d.actions, [], 'no message recorded, nothing to remove');
  const withMessage = decide(input({ state: { phase: Phase.Succeeded, resultRef: 'r', seq: 9 } }));
  assert.deepEqual(withMessage.actions, [{ type: 'dequeue' }], 'a message left behind by a lost ack must not run the task again');

  const failed = decide(input({ state: { phase: Phase.Failed, reason: 'AudioNotFound', message: 'HTTP 404' } }));
  assert.equal(failed.phase, Phase.Failed);
  assert.equal(failed.reason, 'AudioNotFound');
});

test('spec.cancel cancels a queued or running task and discards it, unless it already finished', () => {
  const cancelSpec = { ...spec, cancel: true };
  const d = decide(input({ spec: cancelSpec, state: running() }));
  assert.equal(d.phase, Phase.Cancelled);
  assert.equal(d.reason, Reason.Cancelled);
  assert.deepEqual(d.actions, [{ type: 'discard' }]);
  const done = decide(input({ spec: cancelSpec, state: { phase: Phase.Succeeded, resultRef: 'r' } }));
  assert.equal(done.phase, Phase.Succeeded);
});

test('statusFromDecision drops nextAttemptTime once the task is no longer retrying', () => {
  const current: TaskStatus = { phase: Phase.Retrying, nextAttemptTime: at(-5), attempts: 1 };
  const next = statusFromDecision(current, decide(input({ status: current, state: running({ attempt: 2 }) })));
  assert.equal(next.phase, Phase.Running);
  assert.equal(next.nextAttemptTime, undefined);
  assert.equal(next.attempts, 2);
});

test('setCondition keeps lastTransitionTime while the status stays, and moves it on a flip', () => {
  const t0 = new Date('2026-01-01T00:00:00Z');
  const t1 = new Date('2026-01-01T00:01:00Z');
  let conditions = setCondition(undefined, { type: 'Running', status: 'True', reason: 'Started', message: 'a' }, t0, 1);
  conditions = setCondition(conditions, { type: 'Running', status: 'True', reason: 'Started', message: 'b' }, t1, 2);
  assert.equal(conditions[0]?.lastTransitionTime, t0.toISOString());
  assert.equal(conditions[0]?.message, 'b');
  assert.equal(conditions[0]?.observedGeneration, 2);
  conditions = setCondition(conditions, { type: 'Running', status: 'False', reason: 'Completed', message: 'c' }, t1, 2);
  assert.equal(conditions[0]?.lastTransitionTime, t1.toISOString());
});

test('Ready is True only for Succeeded (kstatus), each phase sets its own condition', () => {
  for (const phase of Object.values(Phase)) {
    const byType = Object.fromEntries(conditionsForPhase(phase, 'R', 'm').map((c) => [c.type, c.status]));
    assert.equal(byType.Ready, phase === Phase.Succeeded ? 'True' : 'False', phase);
    assert.equal(byType.Running, phase === Phase.Running ? 'True' : 'False', phase);
    assert.equal(byType.Failed, phase === Phase.Failed ? 'True' : 'False', phase);
  }
});
