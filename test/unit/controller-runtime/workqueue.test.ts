import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock, flushAsync } from '../../../src/controller/runtime/clock.ts';
import { ItemExponentialFailureRateLimiter } from '../../../src/controller/runtime/rate-limiter.ts';
import { WorkQueue } from '../../../src/controller/runtime/workqueue.ts';

function newQueue(clock = new FakeClock()): { queue: WorkQueue<string>; clock: FakeClock } {
  const queue = new WorkQueue<string>({
    clock,
    rateLimiter: new ItemExponentialFailureRateLimiter<string>(5, 1_000_000),
  });
  return { queue, clock };
}

/** Resolves to the value if `promise` settles within a few event-loop turns, else to 'pending'. */
async function peek<T>(promise: Promise<T>): Promise<T | 'pending'> {
  let settled = false;
  let value: T | undefined;
  void promise.then((v) => {
    settled = true;
    value = v;
  });
  await flushAsync();
  return settled ? (value as T) : 'pending';
}

describe('WorkQueue', () => {
  describe('dedup', () => {
    it('hands out a key added twice only once', async () => {
      const { queue } = newQueue();
      queue.add('ns/a');
      queue.add('ns/a');
      assert.equal(queue.len(), 1);
      assert.equal(await queue.get(), 'ns/a');
      assert.equal(queue.len(), 0);
      assert.equal(await peek(queue.get()), 'pending');
    });

    it('keeps first-ready order across distinct keys', async () => {
      const { queue } = newQueue();
      for (const key of ['ns/b', 'ns/a', 'ns/c', 'ns/a', 'ns/b']) queue.add(key);
      assert.equal(queue.len(), 3);
      assert.deepEqual([await queue.get(), await queue.get(), await queue.get()], ['ns/b', 'ns/a', 'ns/c']);
    });
  });

  describe('one worker per key', () => {
    it('does not hand out a key that is in flight, even when added again', async () => {
      const { queue } = newQueue();
      queue.add('ns/a');
      const first = await queue.get();
      assert.equal(first, 'ns/a');
      queue.add('ns/a');
      assert.equal(queue.len(), 0, 'in-flight key must not be queued');
      assert.equal(await peek(queue.get()), 'pending');
    });

    it('serves other keys while one is in flight', async () => {
      const { queue } = newQueue();
      queue.add('ns/a');
      queue.add('ns/b');
      assert.equal(await queue.get(), 'ns/a');
      queue.add('ns/a');
      assert.equal(await queue.get(), 'ns/b');
    });

    it('never runs one key on two concurrent workers', async () => {
      const { queue } = newQueue();
      const running = new Set<string>();
      let overlaps = 0;
      let processed = 0;
      const worker = async (): Promise<void> => {
        for (;;) {
          const key = await queue.get();
          if (key === undefined) return;
          if (running.has(key)) overlaps++;
          running.add(key);
          // Re-add while in flight, as an event arriving mid-reconcile would.
          if (processed < 50) queue.add(key);
          await flushAsync(1);
          processed++;
          running.delete(key);
          queue.done(key);
        }
      };
      const workers = [worker(), worker(), worker(), worker()];
      for (let i = 0; i < 20; i++) queue.add(`ns/k${i % 3}`);
      while (processed < 60 && (queue.len() > 0 || queue.inFlight() > 0)) await flushAsync(1);
      queue.shutDown();
      await Promise.all(workers);
      assert.equal(overlaps, 0);
      assert.ok(processed >= 50, `processed ${processed}`);
    });
  });

  describe('dirty re-run', () => {
    it('re-queues a key added while in flight once done() is called', async () => {
      const { queue } = newQueue();
      queue.add('ns/a');
      const key = (await queue.get())!;
      queue.add('ns/a');
      queue.add('ns/a');
      queue.done(key);
      assert.equal(queue.len(), 1, 'two adds while in flight give one re-run');
      assert.equal(await queue.get(), 'ns/a');
      queue.done('ns/a');
      assert.equal(queue.len(), 0);
    });

    it('does not re-queue a key that was not added while in flight', async () => {
      const { queue } = newQueue();
      queue.add('ns/a');
      queue.done((await queue.get())!);
      assert.equal(queue.len(), 0);
      assert.equal(await peek(queue.get()), 'pending');
    });

    it('hands a re-queued key straight to a waiting worker', async () => {
      const { queue } = newQueue();
      queue.add('ns/a');
      const key = (await queue.get())!;
      const waiting = queue.get();
      queue.add('ns/a');
      assert.equal(await peek(waiting), 'pending');
      queue.done(key);
      assert.equal(await peek(waiting), 'ns/a');
      assert.equal(queue.inFlight(), 1);
    });

    it('ignores done() for a key that is not in flight', () => {
      const { queue } = newQueue();
      queue.done('ns/ghost');
      queue.add('ns/a');
      queue.done('ns/a');
      assert.equal(queue.len(), 1);
    });
  });

  describe('waiting workers', () => {
    it('wakes waiting workers in arrival order', async () => {
      const { queue } = newQueue();
      const w1 = queue.get();
      const w2 = queue.get();
      queue.add('ns/a');
      queue.add('ns/b');
      assert.equal(await w1, 'ns/a');
      assert.equal(await w2, 'ns/b');
    });
  });

  describe('addAfter', () => {
    it('adds the key only once the delay has passed', async () => {
      const { queue, clock } = newQueue();
      queue.addAfter('ns/a', 1000);
      assert.equal(queue.len(), 0);
      assert.equal(queue.delayedLen(), 1);
      clock.advance(999);
      assert.equal(queue.len(), 0);
      clock.advance(1);
      assert.equal(queue.len(), 1);
      assert.equal(queue.delayedLen(), 0);
      assert.equal(await queue.get(), 'ns/a');
    });

    it('adds at once for a zero or negative delay', () => {
      const { queue } = newQueue();
      queue.addAfter('ns/a', 0);
      queue.addAfter('ns/b', -5);
      assert.equal(queue.len(), 2);
    });

    it('keeps the earlier time when a later delay is asked for', () => {
      const { queue, clock } = newQueue();
      queue.addAfter('ns/a', 1000);
      queue.addAfter('ns/a', 5000);
      clock.advance(1000);
      assert.equal(queue.len(), 1);
      clock.advance(10_000);
      assert.equal(queue.len(), 1, 'the later delay must not add it again');
    });

    it('moves the time earlier when an earlier delay is asked for', () => {
      const { queue, clock } = newQueue();
      queue.addAfter('ns/a', 5000);
      queue.addAfter('ns/a', 1000);
      assert.equal(queue.delayedLen(), 1);
      clock.advance(1000);
      assert.equal(queue.len(), 1);
      assert.equal(clock.pendingTimers(), 0, 'the superseded timer is cleared');
    });

    it('fires keys in due order', async () => {
      const { queue, clock } = newQueue();
      queue.addAfter('ns/late', 300);
      queue.addAfter('ns/early', 100);
      queue.addAfter('ns/middle', 200);
      clock.advance(300);
      assert.deepEqual([await queue.get(), await queue.get(), await queue.get()], ['ns/early', 'ns/middle', 'ns/late']);
    });

    it('dedups a delayed add with a key already queued', () => {
      const { queue, clock } = newQueue();
      queue.add('ns/a');
      queue.addAfter('ns/a', 100);
      clock.advance(100);
      assert.equal(queue.len(), 1);
    });

    it('marks an in-flight key dirty when its delay fires', async () => {
      const { queue, clock } = newQueue();
      queue.add('ns/a');
      const key = (await queue.get())!;
      queue.addAfter('ns/a', 100);
      clock.advance(100);
      assert.equal(queue.len(), 0);
      queue.done(key);
      assert.equal(queue.len(), 1);
    });
  });

  describe('rate limiting', () => {
    /** One failed pass: rate-limited add, wait out the backoff, take and finish the key. */
    async function failOnce(queue: WorkQueue<string>, clock: FakeClock, key: string): Promise<number> {
      queue.addRateLimited(key);
      const wait = clock.nextTimerIn();
      assert.notEqual(wait, undefined);
      clock.advance(wait! - 1);
      assert.equal(queue.len(), 0, 'not ready before the backoff has passed');
      clock.advance(1);
      assert.equal(queue.len(), 1);
      queue.done((await queue.get())!);
      return wait!;
    }

    it('backs off exponentially per key and resets on forget', async () => {
      const { queue, clock } = newQueue();
      const delays: number[] = [];
      for (let i = 0; i < 5; i++) delays.push(await failOnce(queue, clock, 'ns/a'));
      assert.deepEqual(delays, [5, 10, 20, 40, 80]);
      assert.equal(queue.numRequeues('ns/a'), 5);
      queue.forget('ns/a');
      assert.equal(queue.numRequeues('ns/a'), 0);
      assert.equal(await failOnce(queue, clock, 'ns/a'), 5);
    });

    it('tracks keys independently', () => {
      const { queue, clock } = newQueue();
      queue.addRateLimited('ns/a');
      queue.addRateLimited('ns/a');
      queue.addRateLimited('ns/b');
      assert.equal(queue.numRequeues('ns/a'), 2);
      assert.equal(queue.numRequeues('ns/b'), 1);
      clock.advance(5);
      assert.equal(queue.len(), 2, 'the pending 5 ms add of ns/a wins over the later 10 ms one');
    });

    it('caps the backoff at the maximum', async () => {
      const clock = new FakeClock();
      const queue = new WorkQueue<string>({ clock, rateLimiter: new ItemExponentialFailureRateLimiter(5, 1000) });
      const delays: number[] = [];
      for (let i = 0; i < 10; i++) delays.push(await failOnce(queue, clock, 'ns/a'));
      assert.deepEqual(delays, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
    });

    it('forget does not remove a queued key', () => {
      const { queue } = newQueue();
      queue.add('ns/a');
      queue.forget('ns/a');
      assert.equal(queue.len(), 1);
    });
  });

  describe('shutdown', () => {
    it('wakes waiting workers with undefined', async () => {
      const { queue } = newQueue();
      const waiting = queue.get();
      queue.shutDown();
      assert.equal(await waiting, undefined);
      assert.equal(await queue.get(), undefined);
      assert.equal(queue.isShuttingDown(), true);
    });

    it('drops queued keys, ignores new adds and cancels delayed ones', async () => {
      const { queue, clock } = newQueue();
      queue.add('ns/a');
      queue.addAfter('ns/b', 100);
      queue.addRateLimited('ns/c');
      queue.shutDown();
      queue.add('ns/d');
      clock.advance(1000);
      assert.equal(queue.len(), 0);
      assert.equal(queue.delayedLen(), 0);
      assert.equal(clock.pendingTimers(), 0);
      assert.equal(await queue.get(), undefined);
    });

    it('does not re-queue a dirty in-flight key after shutdown', async () => {
      const { queue } = newQueue();
      queue.add('ns/a');
      const key = (await queue.get())!;
      queue.add('ns/a');
      queue.shutDown();
      queue.done(key);
      assert.equal(queue.len(), 0);
      assert.equal(queue.inFlight(), 0);
    });

    it('shutDownWithDrain waits for keys in flight', async () => {
      const { queue } = newQueue();
      queue.add('ns/a');
      queue.add('ns/b');
      const a = (await queue.get())!;
      const b = (await queue.get())!;
      const drained = queue.shutDownWithDrain();
      assert.equal(await peek(drained), 'pending');
      queue.done(a);
      assert.equal(await peek(drained), 'pending');
      queue.done(b);
      assert.equal(await peek(drained), undefined);
    });

    it('shutDownWithDrain resolves at once when nothing is in flight', async () => {
      const { queue } = newQueue();
      queue.add('ns/a');
      await queue.shutDownWithDrain();
      assert.equal(queue.len(), 0);
    });
  });
});
