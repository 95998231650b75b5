import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  DeadlineExceededError,
  RetryableTaskError,
  TaskCancelledError,
  UnrecoverableTaskError,
  WorkerShutdownError,
} from '../../src/worker/errors.ts';

describe('task errors', () => {
  it('carry a CamelCase reason and their cause', () => {
    const cause = new Error('socket hang up');
    const retryable = new RetryableTaskError('AudioUnavailable', 'source answered 503', { cause });
    assert.equal(retryable.reason, 'AudioUnavailable');
    assert.equal(retryable.cause, cause);
    assert.equal(retryable.name, 'RetryableTaskError');
    const bad = new UnrecoverableTaskError('UnsupportedScheme', 'ftp is not supported');
    assert.equal(bad.reason, 'UnsupportedScheme');
    assert.ok(bad instanceof Error);
  });

  it('fall back to a valid reason rather than producing an invalid report', () => {
    assert.equal(new RetryableTaskError('not camel', 'x').reason, 'EngineError');
    assert.equal(new UnrecoverableTaskError('', 'x').reason, 'InvalidInput');
  });

  it('name the outcomes the runtime maps', () => {
    assert.equal(new TaskCancelledError().reason, 'Cancelled');
    assert.equal(new DeadlineExceededError().reason, 'DeadlineExceeded');
    assert.equal(new WorkerShutdownError().reason, 'WorkerShutdown');
    assert.equal(new TaskCancelledError('x', { cause: 'c' }).cause, 'c');
  });
});
