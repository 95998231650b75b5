import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock, flushAsync } from '../../../src/controller/runtime/clock.ts';
import {
  Controller,
  type ReconcileOutcome,
  type ReconcileResult,
  objectKey,
  splitKey,
} from '../../../src/controller/runtime/controller.ts';
import {
  ConflictError,
  InvalidError,
  NotFoundError,
  TerminalError,
  TransientApiError,
} from '../../../src/controller/runtime/errors.ts';
import type { Logger } from '../../../src/controller/runtime/logger.ts';
import { ItemExponentialFailureRateLimiter } from '../../../src/controller/runtime/rate-limiter.ts';

interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: object;
  msg: string | undefined;
}

function recordingLogger(entries: LogEntry[], bindings: object = {}): Logger {
  const at =
    (level: LogEntry['level']) =>
    (obj: object, msg?: string): void => {
      entries.push({ level, obj: { ...bindings, ...obj }, msg });
    };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more) => recordingLogger(entries, { ...bindings, ...more }),
  };
}

type Behaviour = () => Promise<ReconcileResult | void> | ReconcileResult | void;

interface Harness {
  controller: Controller;
  clock: FakeClock;
  calls: string[];
  outcomes: ReconcileOutcome[];
  logs: LogEntry[];
  /** Script of results for successive calls; the last entry repeats. */
  script: Behaviour[];
}

function harness(concurrency = 1): Harness {
  const clock = new FakeClock();
  const calls: string[] = [];
  const outcomes: ReconcileOutcome[] = [];
  const logs: LogEntry[] = [];
  const script: Behaviour[] = [() => undefined];
  const controller = new Controller({
    name: 'test',
    concurrency,
    clock,
    logger: recordingLogger(logs),
    rateLimiter: new ItemExponentialFailureRateLimiter<string>(5, 1000),
    metrics: { observeReconcile: (name, seconds, outcome) => {
      assert.equal(name, 'test');
      assert.ok(seconds >= 0);
      outcomes.push(outcome);
    } },
    reconciler: {
      reconcile: async (key) => {
        calls.push(key);
        const step = script.length > 1 ? script.shift()! : script[0]!;
        return step();
      },
    },
  });
  return { controller, clock, calls, outcomes, logs, script };
}

describe('Controller', () => {
  it('reconciles queued keys and forgets them on success', async () => {
    const h = harness();
    h.controller.enqueue('ns/a');
    h.controller.enqueue('ns/a');
    h.controller.start();
    await flushAsync();
    assert.deepEqual(h.calls, ['ns/a']);
    assert.deepEqual(h.outcomes, ['success']);
    assert.equal(h.controller.queue.numRequeues('ns/a'), 0);
    assert.equal(h.clock.pendingTimers(), 0, 'success without requeueAfter schedules nothing');
    await h.controller.stop();
  });

  it('requeues after requeueAfterMs on success, with the backoff reset', async () => {
    const h = harness();
    h.script.splice(0, 1, () => {
      throw new Error('boom');
    }, () => ({ requeueAfterMs: 30_000 }), () => undefined);
    h.controller.enqueue('ns/a');
    h.controller.start();
    await flushAsync();
    assert.deepEqual(h.outcomes, ['error']);
    assert.equal(h.controller.queue.numRequeues('ns/a'), 1);
    await h.clock.advanceAsync(5);
    assert.deepEqual(h.outcomes, ['error', 'requeue']);
    assert.equal(h.controller.queue.numRequeues('ns/a'), 0);
    await h.clock.advanceAsync(29_999);
    assert.equal(h.calls.length, 2);
    await h.clock.advanceAsync(1);
    assert.equal(h.calls.length, 3);
    assert.deepEqual(h.outcomes, ['error', 'requeue', 'success']);
    await h.controller.stop();
  });

  it('retries a generic error with growing backoff and logs it', async () => {
    const h = harness();
    h.script.splice(0, 1, () => {
      throw new TransientApiError('etcd leader changed', { code: 500 });
    });
    h.controller.enqueue('ns/a');
    h.controller.start();
    await flushAsync();
    const gaps: number[] = [];
    for (let i = 0; i < 4; i++) {
      const wait = h.clock.nextTimerIn()!;
      gaps.push(wait);
      await h.clock.advanceAsync(wait);
    }
    assert.deepEqual(gaps, [5, 10, 20, 40]);
    assert.equal(h.calls.length, 5);
    assert.ok(h.outcomes.every((o) => o === 'error'));
    const errors = h.logs.filter((l) => l.level === 'error' && l.msg === 'Reconciler error');
    assert.equal(errors.length, 5);
    assert.equal((errors[0]!.obj as { key: string }).key, 'ns/a');
    assert.equal((errors[0]!.obj as { controller: string }).controller, 'test');
    await h.controller.stop();
  });

  it('treats NotFound from a reconciler as an ordinary error', async () => {
    const h = harness();
    h.script.splice(0, 1, () => {
      throw new NotFoundError('gone', { code: 404 });
    });
    h.controller.enqueue('ns/a');
    h.controller.start();
    await flushAsync();
    assert.deepEqual(h.outcomes, ['error']);
    assert.equal(h.controller.queue.delayedLen(), 1);
    await h.controller.stop();
  });

  it('requeues a conflict quietly with backoff', async () => {
    const h = harness();
    h.script.splice(0, 1, () => {
      throw new ConflictError('the object has been modified', { code: 409 });
    }, () => undefined);
    h.controller.enqueue('ns/a');
    h.controller.start();
    await flushAsync();
    assert.deepEqual(h.outcomes, ['conflict']);
    assert.equal(h.logs.filter((l) => l.level === 'error').length, 0, 'no error log for a conflict');
    assert.equal(h.logs.filter((l) => l.level === 'debug').length, 1);
    assert.equal(h.controller.queue.numRequeues('ns/a'), 1);
    await h.clock.advanceAsync(5);
    assert.deepEqual(h.outcomes, ['conflict', 'success']);
    await h.controller.stop();
  });

  it('recognises a raw ApiException-shaped 409 as a conflict', async () => {
    const h = harness();
    h.script.splice(0, 1, () => {
      throw Object.assign(new Error('HTTP-Code: 409'), { code: 409, body: '{"reason":"Conflict"}', headers: {} });
    }, () => undefined);
    h.controller.enqueue('ns/a');
    h.controller.start();
    await flushAsync();
    assert.deepEqual(h.outcomes, ['conflict']);
    await h.controller.stop();
  });

  for (const [label, make] of [
    ['TerminalError', () => new TerminalError('audio.uri scheme ftp is not supported', { reason: 'InvalidInput' })],
    ['InvalidError', () => new InvalidError('spec.maxSpeakers: Invalid value', { code: 422 })],
  ] as const) {
    it(`does not retry a ${label}, forgets the key and logs at error`, async () => {
      const h = harness();
      h.script.splice(0, 1, () => {
        throw make();
      });
      h.controller.enqueue('ns/a');
      h.controller.start();
      await flushAsync();
      assert.deepEqual(h.outcomes, ['terminal']);
      assert.equal(h.controller.queue.numRequeues('ns/a'), 0);
      assert.equal(h.clock.pendingTimers(), 0, 'nothing scheduled');
      await h.clock.advanceAsync(10_000_000);
      assert.equal(h.calls.length, 1);
      const logged = h.logs.filter((l) => l.level === 'error');
      assert.equal(logged.length, 1);
      assert.match(logged[0]!.msg!, /not retrying/);
      await h.controller.stop();
    });
  }

  it('a terminal failure resets the backoff of earlier errors', async () => {
    const h = harness();
    h.script.splice(0, 1, () => {
      throw new Error('flaky');
    }, () => {
      throw new TerminalError('bad spec');
    });
    h.controller.enqueue('ns/a');
    h.controller.start();
    await flushAsync();
    assert.equal(h.controller.queue.numRequeues('ns/a'), 1);
    await h.clock.advanceAsync(5);
    assert.deepEqual(h.outcomes, ['error', 'terminal']);
    assert.equal(h.controller.queue.numRequeues('ns/a'), 0);
    await h.controller.stop();
  });

  it('runs distinct keys in parallel but never one key twice at once', async () => {
    const clock = new FakeClock();
    let active = 0;
    let maxActive = 0;
    const activeKeys = new Set<string>();
    let overlap = false;
    const gates: (() => void)[] = [];
    const controller = new Controller({
      name: 'test',
      concurrency: 3,
      clock,
      reconciler: {
        reconcile: async (key) => {
          if (activeKeys.has(key)) overlap = true;
          activeKeys.add(key);
          active++;
          maxActive = Math.max(maxActive, active);
          await new Promise<void>((resolve) => gates.push(resolve));
          active--;
          activeKeys.delete(key);
        },
      },
    });
    for (const key of ['ns/a', 'ns/b', 'ns/c', 'ns/d']) controller.enqueue(key);
    controller.start();
    await flushAsync();
    assert.equal(active, 3, 'three workers busy');
    controller.enqueue('ns/a'); // changes while in flight
    for (let round = 0; round < 10 && (gates.length > 0 || active > 0); round++) {
      for (const open of gates.splice(0)) open();
      await flushAsync();
    }
    assert.equal(overlap, false);
    assert.equal(maxActive, 3);
    assert.equal(active, 0);
    await controller.stop();
  });

  it('re-runs a key that changed during its reconcile', async () => {
    const h = harness();
    let release!: () => void;
    h.script.splice(0, 1, () => new Promise<void>((resolve) => (release = resolve)), () => undefined);
    h.controller.enqueue('ns/a');
    h.controller.start();
    await flushAsync();
    h.controller.enqueue('ns/a');
    h.controller.enqueue('ns/a');
    assert.equal(h.calls.length, 1);
    release();
    await flushAsync();
    assert.deepEqual(h.calls, ['ns/a', 'ns/a']);
    await h.controller.stop();
  });

  it('stop() aborts the signal, waits for in-flight reconciles and drops queued keys', async () => {
    const clock = new FakeClock();
    let seenSignal: AbortSignal | undefined;
    let finished = false;
    let calls = 0;
    const controller = new Controller({
      name: 'test',
      clock,
      reconciler: {
        reconcile: async (_key, signal) => {
          calls++;
          seenSignal = signal;
          await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
          await flushAsync(1);
          finished = true;
        },
      },
    });
    controller.enqueue('ns/a');
    controller.enqueue('ns/b');
    controller.start();
    await flushAsync();
    assert.equal(seenSignal?.aborted, false);
    const stopped = controller.stop();
    assert.equal(seenSignal?.aborted, true);
    await stopped;
    assert.equal(finished, true, 'stop waited for the in-flight reconcile');
    assert.equal(calls, 1, 'queued key not started after stop');
    assert.equal(controller.isRunning(), false);
    assert.throws(() => controller.start());
  });

  it('keeps running when a reconciler throws synchronously or a non-Error', async () => {
    const h = harness();
    h.script.splice(0, 1, () => {
      throw 'a string';
    }, () => undefined);
    h.controller.enqueue('ns/a');
    h.controller.enqueue('ns/b');
    h.controller.start();
    await flushAsync();
    assert.deepEqual(h.outcomes, ['error', 'success']);
    await h.controller.stop();
  });

  it('rejects a bad concurrency', () => {
    assert.throws(() => new Controller({ name: 'x', concurrency: 0, reconciler: { reconcile: async () => {} } }));
  });
});

describe('object keys', () => {
  it('builds namespace/name and name for cluster-scoped objects', () => {
    assert.equal(objectKey({ metadata: { namespace: 'ns', name: 'a' } }), 'ns/a');
    assert.equal(objectKey({ metadata: { name: 'node-1' } }), 'node-1');
    assert.throws(() => objectKey({ metadata: {} }));
  });

  it('splits keys back', () => {
    assert.deepEqual(splitKey('ns/a'), { namespace: 'ns', name: 'a' });
    assert.deepEqual(splitKey('node-1'), { namespace: undefined, name: 'node-1' });
    for (const bad of ['', '/a', 'ns/', 'a/b/c']) assert.throws(() => splitKey(bad), bad);
  });
});
