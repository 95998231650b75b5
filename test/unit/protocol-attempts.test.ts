import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { attemptAllowed, canRetry, deliveryAttempt, maxAttempts, retryBackoffSeconds } from '../../src/protocol/index.ts';

const spec = (maxRetries: number, backoffSeconds: number) => ({ retryPolicy: { maxRetries, backoffSeconds } });

describe('attempts and backoff', () => {
  it('doubles the backoff per failed attempt', () => {
    const s = spec(5, 30);
    assert.deepEqual(
      [1, 2, 3, 4].map((attempt) => retryBackoffSeconds(s, attempt)),
      [30, 60, 120, 240],
    );
  });

  it('caps the backoff at an hour, even for absurd attempt numbers', () => {
    assert.equal(retryBackoffSeconds(spec(20, 30), 8), 3600);
    assert.equal(retryBackoffSeconds(spec(20, 3600), 1), 3600);
    assert.equal(retryBackoffSeconds(spec(20, 1), 10_000), 3600);
  });

  it('numbers a run from the message attempt and the delivery count', () => {
    assert.equal(deliveryAttempt(1, 1), 1);
    assert.equal(deliveryAttempt(1, 3), 3);
    // A re-published task starts past 1.
    assert.equal(deliveryAttempt(3, 1), 3);
    assert.equal(deliveryAttempt(3, 2), 4);
  });

  it('allows maxRetries + 1 runs', () => {
    const s = spec(2, 1);
    assert.equal(maxAttempts(s), 3);
    assert.deepEqual([1, 2, 3, 4].map((a) => attemptAllowed(s, a)), [true, true, true, false]);
    assert.deepEqual([1, 2, 3].map((a) => canRetry(s, a)), [true, true, false]);
    assert.equal(canRetry(spec(0, 1), 1), false);
  });
});
