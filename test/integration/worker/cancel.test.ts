// Cancellation of a running task, by the NATS notice and by the Redis flag
// alone, within a second; a task cancelled before it starts never runs; and
// timeoutSeconds aborts a run that goes on too long.
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Reason } from '../../../src/api/index.ts';
import { CANCEL_FLAG_TTL_SECONDS, encodeCancelMessage, redisKeys, requestCancel } from '../../../src/protocol/index.ts';
import { DeadlineExceededError, TaskCancelledError } from '../../../src/worker/errors.ts';
import type { Worker } from '../../../src/worker/worker.ts';
import {
  abortableSleep,
  ok,
  publishTask,
  queueFixture,
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

/** A pipeline that works for a minute unless aborted; records why it stopped. */
function longRun() {
  const stops: unknown[] = [];
  const runTask = async (ctx: { signal: AbortSignal; reportProgress(p: number): void }) => {
    ctx.reportProgress(10);
    try {
      await abortableSleep(60_000, ctx.signal);
    } catch (err) {
      stops.push(err);
      throw err;
    }
    return ok;
  };
  return { runTask, stops };
}

describe('cancellation', () => {
  it('stops a running task within a second of the NATS notice', async () => {
    const pipeline = longRun();
    worker = startWorker(fx, pipeline.runTask);
    const message = await publishTask(fx, taskMessage());
    await waitForPhase(fx, message.uid, 'Running');
    const sent = Date.now();
    // Only the notice: no Redis flag, so this is the NATS path alone.
    fx.nc.publish(fx.queue.cancelSubject, encodeCancelMessage(message.uid));
    const state = await waitForPhase(fx, message.uid, 'Cancelled', 5000);
    const took = Date.now() - sent;
    assert.ok(took < 1000, `cancelled after ${took} ms`);
    assert.ok(pipeline.stops[0] instanceof TaskCancelledError);
    assert.equal(state.message, 'cancel requested');
    await waitFor('the message to be terminated', async () => (await streamMessages(fx)) === 0);
  });

  it('stops a running task within a second of the Redis flag alone', async () => {
    const pipeline = longRun();
    worker = startWorker(fx, pipeline.runTask);
    const message = await publishTask(fx, taskMessage());
    await waitForPhase(fx, message.uid, 'Running');
    const sent = Date.now();
    await fx.redis.set(redisKeys(fx.keyPrefix, message.uid).cancel, '1', 'EX', CANCEL_FLAG_TTL_SECONDS);
    await waitForPhase(fx, message.uid, 'Cancelled', 5000);
    const took = Date.now() - sent;
    assert.ok(took < 1000, `cancelled after ${took} ms`);
    assert.ok(pipeline.stops[0] instanceof TaskCancelledError);
    await waitFor('the message to be terminated', async () => (await streamMessages(fx)) === 0);
  });

  it('never starts a task whose cancel was requested while it was queued', async () => {
    let runs = 0;
    worker = startWorker(fx, async () => {
      runs++;
      return ok;
    });
    const input = taskMessage();
    await requestCancel({ redis: fx.redis, nc: fx.nc, uid: input.uid, prefix: fx.keyPrefix, names: fx.queue });
    await publishTask(fx, input);
    const state = await waitForPhase(fx, input.uid, 'Cancelled');
    assert.equal(state.message, 'cancelled before it started');
    await waitFor('the message to be terminated', async () => (await streamMessages(fx)) === 0);
    assert.equal(runs, 0);
  });

  it('ignores a cancel for a task it is not running', async () => {
    const pipeline = longRun();
    worker = startWorker(fx, async (ctx) => {
      await sleep(300);
      return pipeline.runTask(ctx).catch(() => ok);
    });
    fx.nc.publish(fx.queue.cancelSubject, encodeCancelMessage('someone-else'));
    fx.nc.publish(fx.queue.cancelSubject, new TextEncoder().encode('garbage'));
    const message = await publishTask(fx, taskMessage());
    await waitForPhase(fx, message.uid, 'Running');
    fx.nc.publish(fx.queue.cancelSubject, encodeCancelMessage('someone-else'));
    await sleep(500);
    assert.equal(pipeline.stops.length, 0);
  });
});

describe('timeoutSeconds', () => {
  it('aborts the run past its deadline: failed DeadlineExceeded, terminated', async () => {
    const pipeline = longRun();
    worker = startWorker(fx, pipeline.runTask);
    const message = await publishTask(fx, taskMessage({ spec: { timeoutSeconds: 1 } }));
    const running = await waitForPhase(fx, message.uid, 'Running');
    const state = await waitForPhase(fx, message.uid, 'Failed', 5000);
    assert.equal(state.reason, Reason.DeadlineExceeded);
    const took = Date.parse(state.updatedAt!) - Date.parse(running.startedAt!);
    assert.ok(took >= 950 && took < 2000, `deadline hit after ${took} ms`);
    assert.ok(pipeline.stops[0] instanceof DeadlineExceededError);
    await waitFor('the message to be terminated', async () => (await streamMessages(fx)) === 0);
    await sleep(1000);
    assert.equal(pipeline.stops.length, 1);
  });
});
