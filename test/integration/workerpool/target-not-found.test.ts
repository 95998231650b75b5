// A pool whose Deployment does not exist yet: a condition that says so, no
// scale writes, no failing reconciles; and scaling as soon as it appears.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sleep } from '../../harness/index.ts';
import { poolFixture } from './fixture.ts';

test('a missing Deployment gives TargetNotFound without errors, and scaling starts once it exists', async () => {
  // A short periodic re-check: nothing else wakes the pool when a Deployment appears.
  const f = await poolFixture({ deployment: false, reconciler: { resyncMs: 500 } });
  try {
    await f.publish(3);
    const missing = await f.waitForStatus('TargetNotFound, with the backlog of 3', (s) =>
      s.backlog === 3 && (s.conditions?.some((c) => c.type === 'TargetNotFound' && c.status === 'True') ?? false),
    );
    const byType = new Map(missing.conditions?.map((c) => [c.type, c]));
    assert.equal(byType.get('TargetNotFound')?.reason, 'ScaleTargetNotFound');
    assert.match(byType.get('TargetNotFound')?.message ?? '', /Deployment asr-workers not found/);
    assert.equal(byType.get('Ready')?.status, 'False');
    assert.equal(byType.get('ScalingActive')?.status, 'False');
    assert.equal(missing.desiredReplicas, 3, 'the status still says what the backlog calls for');
    assert.equal(missing.replicas, undefined);

    await sleep(1500); // a few periodic passes
    assert.equal(f.scaleWrites(), 0, 'no scale write to a Deployment that is not there');
    assert.equal(await f.reconcileErrors(), 0, 'a missing target is a condition, not a failing reconcile');
    assert.ok((await f.eventReasons()).includes('ScaleTargetNotFound'), 'a Warning Event says so once');
    const transitionAt = byType.get('TargetNotFound')?.lastTransitionTime;
    const still = await f.poolStatus();
    assert.equal(still?.conditions?.find((c) => c.type === 'TargetNotFound')?.lastTransitionTime, transitionAt);

    await f.createDeployment(0);
    await f.waitForReplicas('scaling to start once the Deployment exists', (r) => r === 3, 10_000);
    const found = await f.waitForStatus('TargetNotFound False', (s) =>
      s.conditions?.some((c) => c.type === 'TargetNotFound' && c.status === 'False') ?? false,
    );
    assert.equal(found.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    assert.equal(await f.reconcileErrors(), 0);
  } finally {
    await f.cleanup();
  }
});
