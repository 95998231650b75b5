import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Kind, PRIORITIES, Priority } from '../../src/api/index.ts';
import { PRIORITY_CYCLE, consumerName } from '../../src/protocol/index.ts';
import { PriorityPuller } from '../../src/worker/puller.ts';
import type { TaskDelivery } from '../../src/worker/delivery.ts';
import { FakeDelivery, silentLogger } from './worker-fakes.ts';

/** Per-consumer queues behind the puller's pull function; records every pull asked for. */
function fakeConsumers() {
  const queues = new Map<string, TaskDelivery[]>(PRIORITIES.map((p) => [consumerName(Kind.TranscriptionTask, p), []]));
  const asked: string[] = [];
  let failNext: Error | undefined;
  return {
    asked,
    push(priority: Priority, count = 1) {
      for (let i = 0; i < count; i++) {
        queues.get(consumerName(Kind.TranscriptionTask, priority))!.push(new FakeDelivery({ priority, i }));
      }
    },
    failOnce(err: Error) {
      failNext = err;
    },
    pull: async (consumer: string) => {
      asked.push(consumer);
      if (failNext) {
        const err = failNext;
        failNext = undefined;
        throw err;
      }
      return queues.get(consumer)!.shift() ?? null;
    },
  };
}

function puller(pull: (consumer: string) => Promise<TaskDelivery | null>, idlePollMs = 3_600_000) {
  return new PriorityPuller({ kind: Kind.TranscriptionTask, pull, logger: silentLogger, idlePollMs, errorBackoffMs: 0 });
}

describe('priority puller', () => {
  it('follows the weighted cycle while every priority has work', async () => {
    const consumers = fakeConsumers();
    for (const p of PRIORITIES) consumers.push(p, 40);
    const p = puller(consumers.pull);
    const signal = new AbortController().signal;
    const order: Priority[] = [];
    for (let i = 0; i < 30; i++) order.push((await p.next(signal))!.priority);
    assert.deepEqual(order, [...PRIORITY_CYCLE, ...PRIORITY_CYCLE]);
    assert.equal(p.pullCount, 30);
  });

  it('falls through to the highest non-empty consumer, asking each at most once', async () => {
    const consumers = fakeConsumers();
    consumers.push(Priority.Low);
    const p = puller(consumers.pull);
    const pulled = await p.next(new AbortController().signal);
    assert.equal(pulled?.priority, Priority.Low);
    assert.deepEqual(consumers.asked, [
      'tq-transcription-critical',
      'tq-transcription-high',
      'tq-transcription-normal',
      'tq-transcription-low',
    ]);
  });

  it('waits while idle and looks again when notified', async () => {
    const consumers = fakeConsumers();
    const p = puller(consumers.pull);
    const next = p.next(new AbortController().signal);
    // Let it find every consumer empty and go to sleep.
    while (consumers.asked.length < 4) await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    consumers.push(Priority.High);
    p.notify();
    assert.equal((await next)?.priority, Priority.High);
  });

  it('returns null once stopped, without pulling', async () => {
    const consumers = fakeConsumers();
    const stop = new AbortController();
    const p = puller(consumers.pull);
    const next = p.next(stop.signal);
    while (consumers.asked.length < 4) await new Promise((resolve) => setImmediate(resolve));
    stop.abort();
    assert.equal(await next, null);
    consumers.push(Priority.High);
    assert.equal(await p.next(stop.signal), null);
    assert.equal(consumers.asked.length, 4);
  });

  it('keeps going after a failed pull', async () => {
    const consumers = fakeConsumers();
    consumers.push(Priority.Normal);
    consumers.failOnce(new Error('timeout'));
    const p = puller(consumers.pull);
    const pulled = await p.next(new AbortController().signal);
    assert.equal(pulled?.priority, Priority.Normal);
  });
});
