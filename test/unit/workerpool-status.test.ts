// WorkerPool status and conditions as built from one pass's observation, and
// the helpers the manager uses to wake pools. No servers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WorkerPoolStatus } from '../../src/api/index.ts';
import { FakeClock } from '../../src/controller/runtime/clock.ts';
import { decide, initialState, recommend, type ScalingBounds } from '../../src/controller/workerpool/policy.ts';
import { buildStatus, onlyCountsDiffer, PoolReason, sameStatus, type PoolObservation } from '../../src/controller/workerpool/status.ts';
import { isPodOfDeployment, poolKeysForDeployment, poolKeysForKind, runningOnPool } from '../../src/controller/workerpool/index.ts';
import { describeAutoscalers, targetsDeployment } from '../../src/controller/workerpool/autoscalers.ts';

const bounds: ScalingBounds = { minReplicas: 0, maxReplicas: 4, tasksPerReplica: 1, scaleDownDelaySeconds: 60 };

function observation(clock: FakeClock, overrides: Partial<PoolObservation> = {}): PoolObservation {
  return {
    now: new Date(clock.now()),
    generation: 3,
    taskKind: 'TranscriptionTask',
    targetName: 'asr',
    bounds,
    backlog: 0,
    running: 0,
    replicas: 0,
    recommendation: undefined,
    decision: undefined,
    scaledAt: undefined,
    block: undefined,
    ...overrides,
  };
}

function scaled(clock: FakeClock, backlog: number, current: number) {
  return decide({ now: clock.now(), bounds, backlog, running: 0, current }, initialState(clock.now(), current)).decision;
}

function condition(status: WorkerPoolStatus, type: string) {
  const c = status.conditions?.find((x) => x.type === type);
  assert.ok(c, `condition ${type} is present`);
  return c;
}

describe('buildStatus', () => {
  it('reports a pool that scaled to its maximum', () => {
    const clock = new FakeClock();
    const decision = scaled(clock, 10, 0);
    const status = buildStatus(undefined, observation(clock, { backlog: 10, decision, scaledAt: new Date(clock.now()) }));
    assert.equal(status.backlog, 10);
    assert.equal(status.desiredReplicas, 4);
    assert.equal(status.replicas, 0, 'replicas are what the target reports, not what was asked');
    assert.equal(status.lastScaleTime, new Date(clock.now()).toISOString());
    assert.equal(status.observedGeneration, 3);
    assert.equal(condition(status, 'Ready').status, 'True');
    assert.equal(condition(status, 'ScalingActive').reason, PoolReason.BacklogRead);
    assert.equal(condition(status, 'ScalingLimited').status, 'True');
    assert.equal(condition(status, 'ScalingLimited').reason, PoolReason.TooManyReplicas);
    assert.equal(condition(status, 'TargetNotFound').status, 'False');
    for (const c of status.conditions ?? []) assert.equal(c.observedGeneration, 3);
  });

  it('says when a scale-down waits out the delay, and when running tasks hold replicas', () => {
    const clock = new FakeClock();
    let r = decide({ now: clock.now(), bounds, backlog: 0, running: 0, current: 4 }, initialState(clock.now(), 4));
    let status = buildStatus(undefined, observation(clock, { decision: r.decision, replicas: 4 }));
    assert.equal(condition(status, 'ScalingActive').reason, PoolReason.ScaleDownStabilized);
    assert.equal(status.desiredReplicas, 4);
    clock.advance(60_000);
    r = decide({ now: clock.now(), bounds, backlog: 0, running: 2, current: 4 }, r.state);
    status = buildStatus(status, observation(clock, { decision: r.decision, replicas: 4, running: 2 }));
    assert.equal(condition(status, 'ScalingActive').reason, PoolReason.HeldByRunningTasks);
    assert.equal(status.desiredReplicas, 2);
  });

  it('reports a missing target, drops replicas, and still says what the backlog calls for', () => {
    const clock = new FakeClock();
    const before = buildStatus(undefined, observation(clock, { replicas: 2 }));
    const recommendation = recommend({ bounds, backlog: 3, running: 0, current: 0 });
    const status = buildStatus(
      before,
      observation(clock, {
        backlog: 3,
        replicas: null,
        recommendation,
        block: { reason: PoolReason.ScaleTargetNotFound, message: 'Deployment asr not found' },
      }),
    );
    assert.equal(status.replicas, undefined);
    assert.equal(status.desiredReplicas, 3);
    assert.equal(condition(status, 'TargetNotFound').status, 'True');
    assert.equal(condition(status, 'TargetNotFound').reason, 'ScaleTargetNotFound');
    assert.equal(condition(status, 'ScalingActive').status, 'False');
    assert.equal(condition(status, 'Ready').status, 'False');
    assert.equal(condition(status, 'Ready').reason, 'ScaleTargetNotFound');
  });

  it('keeps the last known backlog and desired replicas while the queue cannot be read', () => {
    const clock = new FakeClock();
    const before = buildStatus(undefined, observation(clock, { backlog: 7, decision: scaled(clock, 7, 4) }));
    clock.advance(1000);
    const status = buildStatus(
      before,
      observation(clock, { backlog: undefined, replicas: 4, block: { reason: PoolReason.BacklogUnavailable, message: 'NATS is down' } }),
    );
    assert.equal(status.backlog, 7);
    assert.equal(status.desiredReplicas, 4);
    assert.equal(condition(status, 'ScalingActive').reason, 'BacklogUnavailable');
    assert.equal(condition(status, 'ScalingLimited').reason, PoolReason.TooManyReplicas, 'left as it was, not guessed');
  });

  it('keeps lastTransitionTime while a condition keeps its status', () => {
    const clock = new FakeClock();
    const first = buildStatus(undefined, observation(clock, { backlog: 1, decision: scaled(clock, 1, 0) }));
    clock.advance(30_000);
    const second = buildStatus(first, observation(clock, { backlog: 2, decision: scaled(clock, 2, 1) }));
    assert.equal(condition(second, 'Ready').lastTransitionTime, condition(first, 'Ready').lastTransitionTime);
    clock.advance(30_000);
    const blocked = buildStatus(second, observation(clock, { block: { reason: PoolReason.ConflictingAutoscaler, message: 'an HPA' } }));
    assert.notEqual(condition(blocked, 'Ready').lastTransitionTime, condition(first, 'Ready').lastTransitionTime);
    assert.equal(condition(blocked, 'ScalingActive').reason, 'ConflictingAutoscaler');
  });

  it('tells a counts-only change from one that must be written at once', () => {
    const clock = new FakeClock();
    const a = buildStatus(undefined, observation(clock, { backlog: 1, decision: scaled(clock, 1, 1), replicas: 1 }));
    const b = buildStatus(a, observation(clock, { backlog: 1, decision: scaled(clock, 1, 1), replicas: 1 }));
    assert.ok(sameStatus(a, b));
    const countsOnly = { ...a, backlog: 2, running: 1 };
    assert.ok(!sameStatus(a, countsOnly));
    assert.ok(onlyCountsDiffer(a, countsOnly));
    assert.ok(!onlyCountsDiffer(a, { ...a, desiredReplicas: 2 }));
  });
});

describe('waking pools', () => {
  const pool = (namespace: string, name: string, taskKind: string, target: string, deleting = false) => ({
    metadata: { namespace, name, uid: `${namespace}-${name}`, ...(deleting ? { deletionTimestamp: new Date() } : {}) },
    spec: { taskKind, scaleTargetRef: { name: target } },
  });
  const pools = [
    pool('a', 'asr', 'TranscriptionTask', 'asr-workers'),
    pool('b', 'asr', 'TranscriptionTask', 'asr-workers'),
    pool('a', 'dia', 'DiarizationTask', 'dia-workers'),
    pool('a', 'gone', 'TranscriptionTask', 'old', true),
  ];

  it('finds every pool of a kind, across namespaces', () => {
    assert.deepEqual(poolKeysForKind(pools, 'TranscriptionTask'), ['a/asr', 'b/asr']);
    assert.deepEqual(poolKeysForKind(pools, 'DiarizationTask'), ['a/dia']);
  });

  it('finds the pools of a Deployment', () => {
    assert.deepEqual(poolKeysForDeployment(pools, 'a', 'asr-workers'), ['a/asr']);
    assert.deepEqual(poolKeysForDeployment(pools, 'c', 'asr-workers'), []);
  });

  it('counts only the running tasks on pods of the Deployment', () => {
    assert.ok(isPodOfDeployment('asr-7d9f8c6b5-x2k4q', 'asr'));
    assert.ok(!isPodOfDeployment('asr-large-7d9f8c6b5-x2k4q', 'asr'), 'another Deployment with a longer name');
    assert.ok(!isPodOfDeployment('asr-x2k4q', 'asr'));
    const long = 'a'.repeat(50);
    assert.ok(isPodOfDeployment(`${long}-7d9f8c6`.slice(0, 58) + 'x2k4q', long), 'a name generateName had to cut');
    const tasks = [
      { status: { phase: 'Running', worker: 'asr-7d9f8c6b5-x2k4q' } },
      { status: { phase: 'Running', worker: 'asr-7d9f8c6b5-abcde' } },
      { status: { phase: 'Succeeded', worker: 'asr-7d9f8c6b5-x2k4q' } },
      { status: { phase: 'Running', worker: 'asr-large-7d9f8c6b5-x2k4q' } },
      { status: { phase: 'Queued' } },
    ];
    assert.equal(runningOnPool(tasks, 'asr'), 2);
  });
});

describe('other autoscalers', () => {
  it('recognizes an HPA on the Deployment, and names KEDA behind it', () => {
    const hpa = (name: string, kind: string, target: string, apiVersion = 'apps/v1') => ({ metadata: { name }, spec: { scaleTargetRef: { apiVersion, kind, name: target } } });
    assert.ok(targetsDeployment(hpa('h', 'Deployment', 'asr'), 'asr'));
    assert.ok(!targetsDeployment(hpa('h', 'StatefulSet', 'asr'), 'asr'));
    assert.ok(!targetsDeployment(hpa('h', 'Deployment', 'other'), 'asr'));
    assert.ok(!targetsDeployment(hpa('h', 'Deployment', 'asr', 'example.com/v1'), 'asr'));
    const message = describeAutoscalers([{ kind: 'HorizontalPodAutoscaler', name: 'keda-hpa-asr', scaledObject: 'asr' }], 'asr');
    assert.match(message, /HorizontalPodAutoscaler keda-hpa-asr \(KEDA ScaledObject asr\) also scales Deployment asr/);
  });
});
