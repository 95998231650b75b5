import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock, flushAsync } from '../../../src/controller/runtime/clock.ts';
import {
  defaultControllerRateLimiter,
  ItemBucketRateLimiter,
  ItemExponentialFailureRateLimiter,
  MaxOfRateLimiter,
  TokenBucket,
} from '../../../src/controller/runtime/rate-limiter.ts';

describe('TokenBucket', () => {
  it('allows a burst at once, then paces at qps', () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 10, burst: 3, clock });
    assert.equal(bucket.tryAcquire(), true);
    assert.equal(bucket.tryAcquire(), true);
    assert.equal(bucket.tryAcquire(), true);
    assert.equal(bucket.tryAcquire(), false);
    clock.advance(99);
    assert.equal(bucket.tryAcquire(), false);
    clock.advance(1);
    assert.equal(bucket.tryAcquire(), true);
    assert.equal(bucket.tryAcquire(), false);
  });

  it('never holds more than burst tokens after a quiet period', () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 10, burst: 2, clock });
    clock.advance(60_000);
    assert.equal(bucket.tryAcquire(), true);
    assert.equal(bucket.tryAcquire(), true);
    assert.equal(bucket.tryAcquire(), false);
  });

  it('reserve() returns growing waits for callers past the burst', () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 5, burst: 1, clock });
    assert.deepEqual([bucket.reserve(), bucket.reserve(), bucket.reserve()], [0, 200, 400]);
  });

  it('acquire() resolves in order as tokens refill', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 10, burst: 1, clock });
    const done: number[] = [];
    const all = [0, 1, 2, 3].map((i) => bucket.acquire().then(() => done.push(i)));
    await flushAsync();
    assert.deepEqual(done, [0]);
    await clock.advanceAsync(100);
    assert.deepEqual(done, [0, 1]);
    await clock.advanceAsync(200);
    assert.deepEqual(done, [0, 1, 2, 3]);
    await Promise.all(all);
  });

  it('acquire() rejects on abort and hands its token back', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 1, burst: 1, clock });
    await bucket.acquire();
    const controller = new AbortController();
    const waiting = bucket.acquire(controller.signal);
    controller.abort(new Error('cancelled'));
    await assert.rejects(waiting, /cancelled/);
    assert.equal(clock.pendingTimers(), 0);
    clock.advance(1000);
    assert.equal(bucket.tryAcquire(), true, 'the aborted reservation did not keep a token');
  });

  it('acquire() rejects at once with an aborted signal', async () => {
    const bucket = new TokenBucket({ qps: 1, burst: 1, clock: new FakeClock() });
    await assert.rejects(bucket.acquire(AbortSignal.abort(new Error('early'))), /early/);
    assert.equal(bucket.tryAcquire(), true);
  });

  it('does not limit with qps Infinity', () => {
    const bucket = new TokenBucket({ qps: Number.POSITIVE_INFINITY, burst: 1, clock: new FakeClock() });
    for (let i = 0; i < 1000; i++) assert.equal(bucket.reserve(), 0);
  });

  it('rejects nonsense settings', () => {
    assert.throws(() => new TokenBucket({ qps: 0, burst: 1 }));
    assert.throws(() => new TokenBucket({ qps: 1, burst: 0 }));
    assert.throws(() => new TokenBucket({ qps: Number.NaN, burst: 1 }));
  });
});

describe('ItemExponentialFailureRateLimiter', () => {
  it('doubles per failure from the base and caps at the max', () => {
    const limiter = new ItemExponentialFailureRateLimiter<string>(5, 1_000_000);
    const delays = Array.from({ length: 6 }, () => limiter.when('a'));
    assert.deepEqual(delays, [5, 10, 20, 40, 80, 160]);
    for (let i = 0; i < 100; i++) limiter.when('a');
    assert.equal(limiter.when('a'), 1_000_000);
    assert.equal(limiter.numRequeues('a'), 107);
  });

  it('survives exponents that overflow a double', () => {
    const limiter = new ItemExponentialFailureRateLimiter<string>(5, 1000);
    let last = 0;
    for (let i = 0; i < 2000; i++) last = limiter.when('a');
    assert.equal(last, 1000);
  });

  it('keeps keys apart and forgets one at a time', () => {
    const limiter = new ItemExponentialFailureRateLimiter<string>(1, 100);
    limiter.when('a');
    limiter.when('a');
    limiter.when('b');
    limiter.forget('a');
    assert.equal(limiter.numRequeues('a'), 0);
    assert.equal(limiter.numRequeues('b'), 1);
    assert.equal(limiter.when('a'), 1);
    assert.equal(limiter.when('b'), 2);
  });
});

describe('MaxOfRateLimiter and the default controller limiter', () => {
  it('takes the longest delay', () => {
    const clock = new FakeClock();
    const limiter = new MaxOfRateLimiter<string>(
      new ItemExponentialFailureRateLimiter<string>(5, 1000),
      new ItemBucketRateLimiter<string>({ qps: 1, burst: 2, clock }),
    );
    assert.equal(limiter.when('a'), 5);
    assert.equal(limiter.when('b'), 5);
    assert.equal(limiter.when('c'), 1000, 'the overall bucket is empty: the third item waits a second');
    assert.equal(limiter.numRequeues('a'), 1);
    limiter.forget('a');
    assert.equal(limiter.numRequeues('a'), 0);
  });

  it('starts at 5 ms like client-go', () => {
    const limiter = defaultControllerRateLimiter<string>(new FakeClock());
    assert.equal(limiter.when('a'), 5);
    assert.equal(limiter.when('a'), 10);
  });
});
