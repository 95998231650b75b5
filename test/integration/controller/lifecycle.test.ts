// A task's life through the real apiserver, JetStream and Redis, driven by a
// worker that speaks the real protocol: each test asserts on what `kubectl
// get` would show and on the stream and keys behind it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api } from '@kubernetes/client-node';
import { GROUP, PLURALS, Phase, Reason, VERSION } from '../../../src/api/index.ts';
import { redisKeys } from '../../../src/protocol/index.ts';
import { sleep, waitFor } from '../../harness/index.ts';
import { ProtocolWorker, controllerTestEnv } from './support.ts';

const audio = { uri: 'https://example.com/audio/interview.flac' };

test('a task goes Queued -> Running -> Succeeded with progress moving, a result and Events', async (t) => {
  const env = await controllerTestEnv();
  t.after(() => env.cleanup());
  await env.startManager();
  const worker = new ProtocolWorker(env, 'gpu-worker-7d9f-abcde');

  await env.createTask('TranscriptionTask', 'interview', { audio, language: 'en' });
  const queued = await env.waitForTask('TranscriptionTask', 'interview', 'Queued', (s) => s.phase === Phase.Queued);
  assert.ok(queued.queuedAt, 'queuedAt is set');
  assert.equal(await env.streamMessages(), 1, 'one message on the stream');

  const { msg, task, attempt } = await worker.take('TranscriptionTask');
  assert.equal(task.name, 'interview');
  assert.equal(attempt, 1);
  assert.equal(task.spec.priority, 'Normal');
  const target = worker.target(task, attempt);
  await worker.reports.started(target);
  const running = await env.waitForTask('TranscriptionTask', 'interview', 'Running', (s) => s.phase === Phase.Running);
  assert.equal(running.worker, 'gpu-worker-7d9f-abcde');
  assert.equal(running.attempts, 1);
  assert.ok(running.startTime);

  await worker.reports.progress(target, 35);
  await env.waitForTask('TranscriptionTask', 'interview', 'progress 35', (s) => s.progress === 35);
  await sleep(1100);
  await worker.reports.progress(target, 70);
  await env.waitForTask('TranscriptionTask', 'interview', 'progress 70', (s) => s.progress === 70);

  await worker.reports.succeeded(target, { summary: { language: 'en', durationSeconds: 62.5, segments: 14 }, result: { text: 'hello' }, resultTTLSeconds: 600 });
  msg.ack();
  const done = await env.waitForTask('TranscriptionTask', 'interview', 'Succeeded', (s) => s.phase === Phase.Succeeded);
  assert.equal(done.progress, 100);
  assert.equal(done.result?.ref, redisKeys(env.keyPrefix, task.uid).result);
  assert.equal(done.result?.summary?.segments, 14);
  assert.ok(done.completionTime);
  const ready = done.conditions?.find((c) => c.type === 'Ready');
  assert.equal(ready?.status, 'True');
  assert.equal(done.conditions?.find((c) => c.type === 'Succeeded')?.status, 'True');
  assert.equal(done.conditions?.find((c) => c.type === 'Running')?.status, 'False');
  assert.ok(done.conditions?.every((c) => c.observedGeneration === 1));
  assert.equal(done.observedGeneration, 1);
  assert.equal(await env.redis.get(done.result?.ref as string), JSON.stringify({ text: 'hello' }));

  await waitFor('phase Events', async () => {
    const events = await env.kc.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: env.namespace, fieldSelector: 'involvedObject.name=interview' });
    const reasons = new Set(events.items.map((e) => e.reason));
    return ['Queued', 'Running', 'Succeeded'].every((r) => reasons.has(r));
  });
});

test('a failed attempt shows Retrying with the next attempt time, and the last one Failed with MaxRetriesExceeded', async (t) => {
  const env = await controllerTestEnv();
  t.after(() => env.cleanup());
  await env.startManager();
  const worker = new ProtocolWorker(env);
  await env.createTask('DiarizationTask', 'meeting', { audio, retryPolicy: { maxRetries: 1, backoffSeconds: 1 }, minSpeakers: 2, maxSpeakers: 4 });

  const first = await worker.take('DiarizationTask');
  await worker.reports.started(worker.target(first.task, first.attempt));
  const nextAttemptAt = new Date(Date.now() + 1000);
  await worker.reports.retrying(worker.target(first.task, first.attempt), { reason: 'EngineUnavailable', message: 'engine answered 503', nextAttemptAt });
  first.msg.nak(1000);
  const retrying = await env.waitForTask('DiarizationTask', 'meeting', 'Retrying', (s) => s.phase === Phase.Retrying);
  assert.equal(retrying.reason, 'EngineUnavailable');
  assert.equal(retrying.nextAttemptTime, nextAttemptAt.toISOString());
  assert.match(retrying.message ?? '', /503/);

  const second = await worker.take('DiarizationTask');
  assert.equal(second.attempt, 2, 'the redelivery is the second attempt');
  await worker.reports.started(worker.target(second.task, second.attempt));
  const running = await env.waitForTask('DiarizationTask', 'meeting', 'Running again', (s) => s.phase === Phase.Running);
  assert.equal(running.attempts, 2);
  assert.equal(running.nextAttemptTime, undefined, 'nextAttemptTime is cleared');
  await worker.reports.failed(worker.target(second.task, second.attempt), { reason: Reason.MaxRetriesExceeded, message: 'attempt 2 of 2 failed: engine answered 503' });
  second.msg.term();
  const failed = await env.waitForTask('DiarizationTask', 'meeting', 'Failed', (s) => s.phase === Phase.Failed);
  assert.equal(failed.reason, Reason.MaxRetriesExceeded);
  assert.equal(failed.attempts, 2);
  assert.equal(failed.conditions?.find((c) => c.type === 'Failed')?.status, 'True');
  assert.equal(failed.conditions?.find((c) => c.type === 'Ready')?.status, 'False');
});

test('a run past timeoutSeconds is failed with DeadlineExceeded and its worker told to stop', async (t) => {
  const env = await controllerTestEnv();
  t.after(() => env.cleanup());
  await env.startManager({ heartbeatTimeoutMs: 2000 });
  const worker = new ProtocolWorker(env);
  await env.createTask('TranscriptionTask', 'slow', { audio, timeoutSeconds: 1 });
  const { task, attempt } = await worker.take('TranscriptionTask');
  const target = worker.target(task, attempt);
  await worker.reports.started(target);
  // The worker keeps heartbeating but never finishes (it ignores its own deadline).
  const beat = setInterval(() => void worker.reports.heartbeat(target), 300);
  t.after(() => clearInterval(beat));
  const failed = await env.waitForTask('TranscriptionTask', 'slow', 'Failed', (s) => s.phase === Phase.Failed, 20_000);
  assert.equal(failed.reason, Reason.DeadlineExceeded);
  assert.ok(await env.redis.exists(redisKeys(env.keyPrefix, task.uid).cancel), 'the cancel flag is raised');
});

test('a worker that vanishes is noticed: Retrying with WorkerLost, then the redelivered attempt succeeds', async (t) => {
  const env = await controllerTestEnv();
  t.after(() => env.cleanup());
  await env.startManager({ heartbeatTimeoutMs: 1500, ackWaitMs: 3000 });
  const worker = new ProtocolWorker(env);
  await env.createTask('TranscriptionTask', 'orphan', { audio, retryPolicy: { maxRetries: 2, backoffSeconds: 1 } });
  const first = await worker.take('TranscriptionTask');
  await worker.reports.started(worker.target(first.task, first.attempt));
  // No heartbeat, no ack: the worker is gone.
  const lost = await env.waitForTask('TranscriptionTask', 'orphan', 'Retrying (WorkerLost)', (s) => s.phase === Phase.Retrying, 15_000);
  assert.equal(lost.reason, Reason.WorkerLost);

  const second = await worker.take('TranscriptionTask', 'Normal', 20_000);
  assert.equal(second.attempt, 2);
  const target = worker.target(second.task, second.attempt);
  await worker.reports.started(target);
  await worker.reports.succeeded(target, { summary: { segments: 1 }, result: {}, resultTTLSeconds: 60 });
  second.msg.ack();
  const done = await env.waitForTask('TranscriptionTask', 'orphan', 'Succeeded', (s) => s.phase === Phase.Succeeded);
  assert.equal(done.attempts, 2);
});

test('spec.cancel cancels a queued task: Cancelled, and its message is removed from the stream', async (t) => {
  const env = await controllerTestEnv();
  t.after(() => env.cleanup());
  await env.startManager();
  await env.createTask('TranscriptionTask', 'never-mind', { audio });
  await env.waitForTask('TranscriptionTask', 'never-mind', 'Queued', (s) => s.phase === Phase.Queued);
  assert.equal(await env.streamMessages(), 1);
  await env.client.mergePatch({ group: GROUP, version: VERSION, plural: PLURALS.TranscriptionTask }, env.namespace, 'never-mind', { spec: { cancel: true } });
  const cancelled = await env.waitForTask('TranscriptionTask', 'never-mind', 'Cancelled', (s) => s.phase === Phase.Cancelled);
  assert.equal(cancelled.reason, Reason.Cancelled);
  assert.equal(await env.streamMessages(), 0, 'the message is gone');
});

test('spec.cancel stops a running task: its worker hears it on NATS and the Redis flag is raised', async (t) => {
  const env = await controllerTestEnv();
  t.after(() => env.cleanup());
  await env.startManager();
  const worker = new ProtocolWorker(env);
  const heard: string[] = [];
  const sub = env.nc.subscribe(env.names.cancelSubject, { callback: (_err, m) => void heard.push(m.string()) });
  t.after(() => sub.unsubscribe());
  const created = await env.createTask('TranscriptionTask', 'stop-me', { audio });
  const { task, attempt } = await worker.take('TranscriptionTask');
  await worker.reports.started(worker.target(task, attempt));
  await env.waitForTask('TranscriptionTask', 'stop-me', 'Running', (s) => s.phase === Phase.Running);
  await env.client.mergePatch({ group: GROUP, version: VERSION, plural: PLURALS.TranscriptionTask }, env.namespace, 'stop-me', { spec: { cancel: true } });
  await env.waitForTask('TranscriptionTask', 'stop-me', 'Cancelled', (s) => s.phase === Phase.Cancelled);
  await waitFor('the cancel notice', () => heard.some((h) => h.includes(created.metadata?.uid as string)));
  assert.ok(await env.redis.exists(redisKeys(env.keyPrefix, task.uid).cancel));
});

test('deleting a task stops it, removes its message and Redis keys, then lets the object go', async (t) => {
  const env = await controllerTestEnv();
  t.after(() => env.cleanup());
  await env.startManager();
  const worker = new ProtocolWorker(env);
  const ref = { group: GROUP, version: VERSION, plural: PLURALS.TranscriptionTask };

  // A queued one: the message goes.
  await env.createTask('TranscriptionTask', 'queued-then-deleted', { audio });
  await env.waitForTask('TranscriptionTask', 'queued-then-deleted', 'Queued', (s) => s.phase === Phase.Queued);
  const withFinalizer = await env.getTask('TranscriptionTask', 'queued-then-deleted');
  assert.deepEqual(withFinalizer?.metadata?.finalizers, ['taskqueue.dev/cleanup']);
  await env.client.delete(ref, env.namespace, 'queued-then-deleted');
  await waitFor('the object to be gone', async () => (await env.getTask('TranscriptionTask', 'queued-then-deleted')) === undefined);
  assert.equal(await env.streamMessages(), 0);

  // A finished one: its result and state go.
  await env.createTask('TranscriptionTask', 'done-then-deleted', { audio });
  const { msg, task, attempt } = await worker.take('TranscriptionTask');
  const target = worker.target(task, attempt);
  await worker.reports.started(target);
  await worker.reports.succeeded(target, { summary: {}, result: { text: 'x' }, resultTTLSeconds: 600 });
  msg.ack();
  await env.waitForTask('TranscriptionTask', 'done-then-deleted', 'Succeeded', (s) => s.phase === Phase.Succeeded);
  const keys = redisKeys(env.keyPrefix, task.uid);
  assert.equal(await env.redis.exists(keys.state, keys.result), 2);
  await env.client.delete(ref, env.namespace, 'done-then-deleted');
  await waitFor('the object to be gone', async () => (await env.getTask('TranscriptionTask', 'done-then-deleted')) === undefined);
  assert.equal(await env.redis.exists(keys.state, keys.result, keys.checkpoints), 0, 'state and result keys are gone');
});

test('a report for a deleted task never touches a new task of the same name', async (t) => {
  const env = await controllerTestEnv();
  t.after(() => env.cleanup());
  await env.startManager();
  const worker = new ProtocolWorker(env);
  const ref = { group: GROUP, version: VERSION, plural: PLURALS.TranscriptionTask };
  await env.createTask('TranscriptionTask', 'reused', { audio });
  const old = await worker.take('TranscriptionTask');
  await env.client.delete(ref, env.namespace, 'reused');
  await waitFor('the old object to be gone', async () => (await env.getTask('TranscriptionTask', 'reused')) === undefined);

  await env.createTask('TranscriptionTask', 'reused', { audio, priority: 'High' });
  await env.waitForTask('TranscriptionTask', 'reused', 'new one Queued', (s) => s.phase === Phase.Queued);
  // The old run's worker, unaware, reports success for the old uid.
  const oldTarget = worker.target(old.task, old.attempt);
  await worker.reports.started(oldTarget);
  await worker.reports.succeeded(oldTarget, { summary: {}, result: {}, resultTTLSeconds: 60 });
  await sleep(1500);
  const status = (await env.getTask('TranscriptionTask', 'reused'))?.status;
  assert.equal(status?.phase, Phase.Queued, 'the new task is still waiting for its own run');
  assert.equal(status?.worker, undefined);
});

test('a burst of 100 progress reports makes only a few status writes', async (t) => {
  const env = await controllerTestEnv();
  t.after(() => env.cleanup());
  const manager = await env.startManager({ progressIntervalMs: 1000 });
  const worker = new ProtocolWorker(env);
  await env.createTask('TranscriptionTask', 'chatty', { audio });
  const { msg, task, attempt } = await worker.take('TranscriptionTask');
  const target = worker.target(task, attempt);
  await worker.reports.started(target);
  await env.waitForTask('TranscriptionTask', 'chatty', 'Running', (s) => s.phase === Phase.Running);
  const before = manager.client.calls.count('patch', 'transcriptiontasks/status');
  const started = Date.now();
  for (let p = 1; p <= 100; p++) {
    await worker.reports.progress(target, p * 0.99);
    await sleep(10);
  }
  const burstSeconds = (Date.now() - started) / 1000;
  await env.waitForTask('TranscriptionTask', 'chatty', 'final progress 99', (s) => s.progress === 99);
  await sleep(1200);
  const writes = manager.client.calls.count('patch', 'transcriptiontasks/status') - before;
  // One write per interval of the burst, plus the trailing write of the last value.
  assert.ok(writes <= Math.ceil(burstSeconds) + 2, `${writes} status writes for 100 reports over ${burstSeconds.toFixed(1)} s`);
  assert.ok(writes >= 1);
  msg.ack();
});

test('ttlSecondsAfterFinished deletes a finished task, like a Job', async (t) => {
  const env = await controllerTestEnv();
  t.after(() => env.cleanup());
  await env.startManager();
  const worker = new ProtocolWorker(env);
  await env.createTask('TranscriptionTask', 'short-lived', { audio, ttlSecondsAfterFinished: 1 });
  const { msg, task, attempt } = await worker.take('TranscriptionTask');
  const target = worker.target(task, attempt);
  await worker.reports.started(target);
  await worker.reports.failed(target, { reason: 'AudioNotFound', message: 'HTTP 404 from the audio source' });
  msg.term();
  const failed = await env.waitForTask('TranscriptionTask', 'short-lived', 'Failed', (s) => s.phase === Phase.Failed);
  assert.equal(failed.reason, 'AudioNotFound');
  await waitFor('the finished task to be deleted', async () => (await env.getTask('TranscriptionTask', 'short-lived')) === undefined, { timeoutMs: 15_000 });
  assert.equal(await env.redis.exists(redisKeys(env.keyPrefix, task.uid).state), 0, 'its keys went with it');
});
