// How a run's end maps to JetStream verbs and reports, end to end through a
// real stream: success is acked, a retryable failure comes back after its
// backoff as the next attempt, attempts stop at maxRetries, bad input and
// malformed messages are terminated at once and never seen again.
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Reason } from '../../../src/api/index.ts';
import { RetryableTaskError, UnrecoverableTaskError } from '../../../src/worker/errors.ts';
import type { TaskContext } from '../../../src/worker/task-context.ts';
import type { Worker } from '../../../src/worker/worker.ts';
import {
  ok,
  publishRaw,
  publishTask,
  queueFixture,
  reportsFor,
  sleep,
  startWorker,
  stopPrivateServers,
  streamMessages,
  taskMessage,
  waitFor,
  waitForPhase,
} from './support.ts';
import type { QueueFixture } from './support.ts';

let fx: QueueFixture;
let worker: Worker | undefined;

beforeEach(async () => {
  fx = await queueFixture();
});

afterEach(async () => {
  await worker?.stop(0);
  worker = undefined;
  await fx.close();
});

after(stopPrivateServers);

describe('worker outcomes', () => {
  it('success: result stored, message acknowledged', async () => {
    worker = startWorker(fx, async (ctx) => {
      ctx.reportProgress(50);
      return { summary: { language: 'en', segments: 3 }, result: { text: `hello ${ctx.message.name}` } };
    });
    const message = await publishTask(fx, taskMessage());
    const state = await waitForPhase(fx, message.uid, 'Succeeded');
    assert.equal(state.progress, 100);
    assert.equal(state.attempt, 1);
    assert.equal(JSON.parse((await fx.redis.get(state.resultRef!))!).text, `hello ${message.name}`);
    await waitFor('the message to leave the stream', async () => (await streamMessages(fx)) === 0);
    const types = (await reportsFor(fx, message.uid)).map((r) => r.type);
    assert.equal(types[0], 'started');
    assert.equal(types.at(-1), 'succeeded');
  });

  it('retryable failure: redelivered after the backoff as the next attempt', async () => {
    const runs: { attempt: number; at: number }[] = [];
    worker = startWorker(fx, async (ctx: TaskContext) => {
      runs.push({ attempt: ctx.attempt, at: Date.now() });
      if (ctx.attempt === 1) throw new RetryableTaskError('AudioUnavailable', 'source answered 503');
      return ok;
    });
    const message = await publishTask(fx, taskMessage({ spec: { retryPolicy: { maxRetries: 2, backoffSeconds: 1 } } }));
    const retrying = await waitForPhase(fx, message.uid, 'Retrying');
    assert.equal(retrying.reason, 'AudioUnavailable');
    assert.ok(retrying.nextAttemptAt);
    const state = await waitForPhase(fx, message.uid, 'Succeeded');
    assert.equal(state.attempt, 2);
    assert.deepEqual(runs.map((r) => r.attempt), [1, 2]);
    const gap = runs[1]!.at - runs[0]!.at;
    assert.ok(gap >= 950, `second attempt came ${gap} ms after the first; backoff is 1 s`);
    assert.deepEqual(
      (await reportsFor(fx, message.uid)).filter((r) => r.type !== 'progress' && r.type !== 'heartbeat').map((r) => `${r.type}@${r.attempt}`),
      ['started@1', 'retrying@1', 'started@2', 'succeeded@2'],
    );
  });

  it('stops at maxRetries with MaxRetriesExceeded', async () => {
    const attempts: number[] = [];
    worker = startWorker(fx, async (ctx) => {
      attempts.push(ctx.attempt);
      throw new RetryableTaskError('EngineUnavailable', 'GPU server down');
    });
    const message = await publishTask(fx, taskMessage({ spec: { retryPolicy: { maxRetries: 1, backoffSeconds: 1 } } }));
    const state = await waitForPhase(fx, message.uid, 'Failed');
    assert.equal(state.reason, Reason.MaxRetriesExceeded);
    assert.match(state.message ?? '', /attempt 2 of 2 failed \(EngineUnavailable\)/);
    assert.deepEqual(attempts, [1, 2]);
    await waitFor('the message to leave the stream', async () => (await streamMessages(fx)) === 0);
    await sleep(1500);
    assert.deepEqual(attempts, [1, 2]);
  });

  it('bad input: failed with its reason, terminated at once, never run again', async () => {
    let runs = 0;
    worker = startWorker(fx, async () => {
      runs++;
      throw new UnrecoverableTaskError('AudioNotFound', 'source answered 404');
    });
    const message = await publishTask(fx, taskMessage());
    const state = await waitForPhase(fx, message.uid, 'Failed');
    assert.equal(state.reason, 'AudioNotFound');
    assert.equal(state.message, 'source answered 404');
    await waitFor('the message to leave the stream', async () => (await streamMessages(fx)) === 0);
    await sleep(1500);
    assert.equal(runs, 1);
  });

  it('malformed messages: terminated, reported when they carry a uid, not retried', async () => {
    const ran: string[] = [];
    worker = startWorker(fx, async (ctx) => {
      ran.push(ctx.message.name);
      return ok;
    });
    await publishRaw(fx, 'this is not json');
    await publishRaw(fx, JSON.stringify({ uid: 'broken-uid-1', namespace: 'media', name: 'broken', kind: 'TranscriptionTask', attempt: 1, spec: { audio: { uri: 'ftp://nope' } } }));
    const good = await publishTask(fx, taskMessage());
    await waitForPhase(fx, good.uid, 'Succeeded');
    const broken = await waitForPhase(fx, 'broken-uid-1', 'Failed');
    assert.equal(broken.reason, Reason.InvalidInput);
    assert.match(broken.message ?? '', /spec\.audio\.uri/);
    await waitFor('the stream to empty', async () => (await streamMessages(fx)) === 0);
    await sleep(1500);
    assert.equal(await streamMessages(fx), 0);
    assert.deepEqual(ran, [good.name]);
  });

  it('a delivery beyond maxRetries + 1 is failed without running', async () => {
    let runs = 0;
    worker = startWorker(fx, async () => {
      runs++;
      return ok;
    });
    const message = await publishTask(fx, taskMessage({ attempt: 4, spec: { retryPolicy: { maxRetries: 2, backoffSeconds: 1 } } }));
    const state = await waitForPhase(fx, message.uid, 'Failed');
    assert.equal(state.reason, Reason.MaxRetriesExceeded);
    assert.equal(state.attempt, 3);
    assert.equal(runs, 0);
    await waitFor('the message to leave the stream', async () => (await streamMessages(fx)) === 0);
  });
});
