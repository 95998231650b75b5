// Priority order through real consumers: a mixed backlog of 1,000 messages is
// served in the 15-slot weighted cycle, and Low keeps moving while High
// messages keep arriving.
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PRIORITIES, Priority } from '../../../src/api/index.ts';
import { PRIORITY_CYCLE, consumerName } from '../../../src/protocol/index.ts';
import type { Worker } from '../../../src/worker/worker.ts';
import { ok, publishTask, queueFixture, sleep, startWorker, stopPrivateServers, taskMessage, waitFor } from './support.ts';
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

async function publishMany(priority: Priority, count: number): Promise<void> {
  for (let i = 0; i < count; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, count - i) }, () => publishTask(fx, taskMessage({ spec: { priority } }))),
    );
  }
}

function gaps(order: Priority[], priority: Priority): number[] {
  const at = order.flatMap((p, i) => (p === priority ? [i] : []));
  return at.map((position, i) => position - (i === 0 ? -1 : at[i - 1]!));
}

describe('priority order', () => {
  it('serves 1,000 mixed messages in the weighted cycle', { timeout: 120_000 }, async () => {
    for (const priority of PRIORITIES) await publishMany(priority, 250);
    const order: Priority[] = [];
    worker = startWorker(fx, async (ctx) => {
      order.push(ctx.message.spec.priority);
      return ok;
    });
    await waitFor('1,000 tasks to run', () => order.length === 1000, { timeoutMs: 100_000, intervalMs: 50 });

    // While every priority has a backlog (31 full cycles), the order is the cycle itself.
    const cycles = Array.from({ length: 31 }, () => PRIORITY_CYCLE).flat();
    assert.deepEqual(order.slice(0, cycles.length), cycles);
    // Low is never more than 15 pulls away, first to last.
    assert.ok(gaps(order, Priority.Low).every((gap) => gap <= 15), `Low gaps: ${gaps(order, Priority.Low).join(',')}`);
    // Critical drains first, Low last.
    const last = (p: Priority) => order.lastIndexOf(p);
    assert.ok(last(Priority.Critical) < last(Priority.High));
    assert.ok(last(Priority.High) < last(Priority.Normal));
    assert.ok(last(Priority.Normal) < last(Priority.Low));
    for (const priority of PRIORITIES) assert.equal(order.filter((p) => p === priority).length, 250);
    // The last run has been handed its task; its ack follows a moment later.
    await waitFor('every consumer to be drained and acknowledged', async () => {
      for (const priority of PRIORITIES) {
        const info = await fx.jsm.consumers.info(fx.queue.stream, consumerName('TranscriptionTask', priority));
        if (info.num_pending + info.num_ack_pending !== 0) return false;
      }
      return true;
    }, { timeoutMs: 10_000, intervalMs: 50 });
  });

  it('keeps Low moving under a steady stream of High', { timeout: 120_000 }, async () => {
    await publishMany(Priority.High, 60);
    await publishMany(Priority.Low, 10);
    const order: Priority[] = [];
    let lowDone = 0;
    worker = startWorker(fx, async (ctx) => {
      order.push(ctx.message.spec.priority);
      if (ctx.message.spec.priority === Priority.Low) lowDone++;
      // A little work per task, so the publisher below keeps ahead of the worker.
      await sleep(5);
      return ok;
    });
    let published = 0;
    const feeding = (async () => {
      while (lowDone < 10 && published < 2000) {
        await publishMany(Priority.High, 10);
        published += 10;
        await sleep(20);
      }
    })();
    await waitFor('every Low task to run', () => lowDone === 10, { timeoutMs: 100_000, intervalMs: 50 });
    await feeding;
    const highWaiting = (await fx.jsm.consumers.info(fx.queue.stream, consumerName('TranscriptionTask', Priority.High))).num_pending;
    assert.ok(highWaiting > 0, 'High must still be waiting when the last Low runs, or the test proves nothing');
    const lowGaps = gaps(order, Priority.Low);
    assert.equal(lowGaps.length, 10);
    assert.ok(lowGaps.every((gap) => gap <= 15), `Low gaps: ${lowGaps.join(',')}`);
  });
});
