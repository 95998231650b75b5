// The main scenario against the real apiserver and nats-server: a
// pool with min 0 / max 4 / tasksPerReplica 1 / scaleDownDelaySeconds 2.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { timeToReplicas } from '../../../src/controller/workerpool/index.ts';
import { sleep, testEnv, waitFor } from '../../harness/index.ts';
import { poolFixture } from './fixture.ts';

/** The issue asks for a reaction within a second; a loaded CI host may relax it. */
// The speed itself is measured by bench/ (scale-up p50 ~50 ms); this bound
// only tells "woken by the queue" from "found by a periodic re-check" (15 s),
// with room for a machine shared with other test files.
const PROMPT_MS = Number(process.env.TQ_TEST_SCALE_PROMPT_MS ?? 3000);

test('10 queued tasks scale to 4 at once, draining scales to 0 only after the delay, one task brings back 1', async (t) => {
  const f = await poolFixture();
  try {
    await f.waitForStatus('the first pass to write status', (s) => s.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false);
    assert.equal(await f.specReplicas(), 0, 'an idle pool rests at zero');

    // Scale up: ten tasks, a wake-up each (as the manager sends on every publish).
    let seqs: number[] = [];
    const up = await timeToReplicas({
      kubeConfig: testEnv().kc,
      namespace: f.namespace,
      deployment: f.deploymentName,
      until: (r) => r === 4,
      trigger: async () => {
        seqs = await f.publish(10);
      },
    });
    t.diagnostic(`0 → 4 replicas ${up.ms.toFixed(0)} ms after the first publish (publishing 10 took ${up.triggerMs.toFixed(0)} ms)`);
    assert.ok(up.ms < PROMPT_MS, `scaled to 4 in ${up.ms.toFixed(0)} ms`);
    const upStatus = await f.waitForStatus('status after the scale-up', (s) => s.desiredReplicas === 4 && s.backlog === 10);
    const limited = upStatus.conditions?.find((c) => c.type === 'ScalingLimited');
    assert.equal(limited?.status, 'True', 'ten tasks want more than maxReplicas');
    assert.equal(limited?.reason, 'TooManyReplicas');
    assert.ok(upStatus.lastScaleTime, 'lastScaleTime is set');

    // Drain: nothing may move before scaleDownDelaySeconds (2 s).
    const drainedAt = performance.now();
    await f.remove(seqs);
    await sleep(1000 - (performance.now() - drainedAt));
    assert.equal(await f.specReplicas(), 4, 'still 4 a second after draining');
    const stabilizing = await f.waitForStatus('the pending scale-down in status', (s) =>
      s.conditions?.some((c) => c.type === 'ScalingActive' && c.reason === 'ScaleDownStabilized') ?? false,
    );
    assert.equal(stabilizing.desiredReplicas, 4);
    await f.waitForReplicas('scale-down to 0', (r) => r === 0, 15_000);
    const downAfter = performance.now() - drainedAt;
    t.diagnostic(`4 → 0 replicas ${downAfter.toFixed(0)} ms after draining (scaleDownDelaySeconds 2)`);
    assert.ok(downAfter >= 2000, `scaled down ${downAfter.toFixed(0)} ms after draining, not before the 2 s delay`);
    assert.ok(downAfter < 2000 + 3000, `and soon after it (${downAfter.toFixed(0)} ms): the reconciler requeued itself for the delay`);

    // From zero: one task brings one replica.
    const wake = await timeToReplicas({
      kubeConfig: testEnv().kc,
      namespace: f.namespace,
      deployment: f.deploymentName,
      until: (r) => r === 1,
      trigger: async () => {
        await f.publish(1);
      },
    });
    t.diagnostic(`0 → 1 replica ${wake.ms.toFixed(0)} ms after the publish`);
    assert.ok(wake.ms < PROMPT_MS, `woke from zero in ${wake.ms.toFixed(0)} ms`);

    // The record of it all: scale-ups to 4 (one per wake-up that saw more
    // tasks), one scale-down to 0, one scale-up to 1; an Event and a counter each.
    // (The watch can see the write before the reconciler has its answer.)
    await waitFor('the reconciler to record the wake-up', () => f.scales.at(-1)?.to === 1, { timeoutMs: 5000 });
    const steps = f.scales.map((s) => [s.from, s.to]);
    assert.deepEqual(steps.slice(-2), [[4, 0], [0, 1]], `scale writes: ${JSON.stringify(steps)}`);
    assert.ok(steps.slice(0, -2).every(([from, to]) => (to as number) > (from as number)), `only scale-ups before the drain: ${JSON.stringify(steps)}`);
    assert.equal(f.scaleWrites(), steps.length, 'every /scale write is accounted for');
    const reasons = await f.eventReasons();
    assert.ok(reasons.includes('ScaledUp'), `events: ${reasons.join(', ')}`);
    assert.ok(reasons.includes('ScaledDown'), `events: ${reasons.join(', ')}`);
    const metrics = await f.metrics.registry.metrics();
    assert.match(metrics, new RegExp(`taskqueue_workerpool_scale_events_total\\{namespace="${f.namespace}",workerpool="asr",direction="down"\\} 1`));
    assert.match(metrics, new RegExp(`taskqueue_workerpool_desired_replicas\\{namespace="${f.namespace}",workerpool="asr"\\} 1`));
  } finally {
    await f.cleanup();
  }
});

test('a backlog that only grows past maxReplicas costs few status writes', async () => {
  const f = await poolFixture();
  try {
    await f.waitForStatus('the first status', (s) => s.observedGeneration !== undefined);
    const before = f.client.calls.count('patch', 'workerpools/status');
    const started = performance.now();
    await f.publish(40);
    await f.waitForReplicas('4 replicas', (r) => r === 4);
    await f.waitForStatus('the backlog of 40 in status', (s) => s.backlog === 40);
    const writes = f.client.calls.count('patch', 'workerpools/status') - before;
    const seconds = (performance.now() - started) / 1000;
    // Up to four writes for desiredReplicas 1..4, then counts alone: at most
    // one write per statusCountsIntervalMs (2 s) however many tasks arrive.
    assert.ok(writes <= 4 + Math.ceil(seconds / 2) + 1, `${writes} status writes for 40 publishes in ${seconds.toFixed(1)} s`);
  } finally {
    await f.cleanup();
  }
});

test('a deleted pool forgets its metric series', async () => {
  const f = await poolFixture();
  try {
    await f.publish(2);
    await f.waitForReplicas('2 replicas', (r) => r === 2);
    assert.match(await f.metrics.registry.metrics(), /taskqueue_workerpool_backlog\{[^}]*workerpool="asr"\} 2/);
    await f.observer.delete({ group: 'taskqueue.dev', version: 'v1alpha1', plural: 'workerpools' }, f.namespace, f.poolName);
    await waitFor('the series to go', async () => !/workerpool="asr"/.test(await f.metrics.registry.metrics()), { timeoutMs: 10_000 });
  } finally {
    await f.cleanup();
  }
});
