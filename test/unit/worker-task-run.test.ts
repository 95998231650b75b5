import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerMetrics } from '../../src/worker/metrics.ts';
import {
  DeadlineExceededError,
  RetryableTaskError,
  TaskCancelledError,
  UnrecoverableTaskError,
  WorkerShutdownError,
} from '../../src/worker/errors.ts';
import { TaskRun, UNEXPECTED_ERROR_REASON } from '../../src/worker/task-run.ts';
import type { RunTask, TaskContext } from '../../src/worker/task-context.ts';
import { FakeDelivery, fakeRedis, fakeReports, messageBody, silentLogger, unitConfig } from './worker-fakes.ts';
import type { FakeRedisState } from './worker-fakes.ts';

const NOW = new Date('2026-03-04T05:06:07.000Z');

interface Outcome {
  verbs: string[];
  reports: { type: string; attempt: number; detail: Record<string, unknown> }[];
  ran: number;
  metrics: WorkerMetrics;
}

async function runOnce(
  body: unknown,
  pipeline: (ctx: TaskContext, run: TaskRun) => Promise<unknown>,
  options: { deliveryCount?: number; redis?: FakeRedisState } = {},
): Promise<Outcome> {
  const { writer, reports } = fakeReports();
  const metrics = new WorkerMetrics({ defaultMetrics: false });
  const delivery = new FakeDelivery(body, { deliveryCount: options.deliveryCount ?? 1 });
  let ran = 0;
  let run!: TaskRun;
  const runTask: RunTask = async (ctx) => {
    ran++;
    return (await pipeline(ctx, run)) as Awaited<ReturnType<RunTask>>;
  };
  run = new TaskRun(
    {
      config: unitConfig(),
      redis: fakeRedis(options.redis),
      reports: writer,
      runTask,
      logger: silentLogger,
      metrics,
      now: () => NOW,
    },
    delivery,
  );
  await run.execute();
  return {
    verbs: delivery.answers,
    reports: reports.map((r) => ({ type: r.type, attempt: r.target.attempt, detail: r.detail })),
    ran,
    metrics,
  };
}

const succeed = async () => ({ summary: { language: 'en', segments: 2 }, result: { text: 'hi' } });

/** Waits for the abort and rethrows its reason, as a well-behaved pipeline does. */
const untilAborted = (ctx: TaskContext) =>
  new Promise((_, reject) => {
    if (ctx.signal.aborted) reject(ctx.signal.reason);
    ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
  });

async function counter(metrics: WorkerMetrics, name: string): Promise<Record<string, number>> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  return Object.fromEntries((metric?.values ?? []).map((v) => [JSON.stringify(v.labels), v.value]));
}

describe('task run outcomes', () => {
  it('success: started, succeeded, then ack', async () => {
    const out = await runOnce(messageBody(), succeed);
    assert.deepEqual(out.verbs, ['ack']);
    assert.deepEqual(out.reports.map((r) => r.type), ['started', 'succeeded']);
    const succeeded = out.reports[1]!;
    assert.deepEqual(succeeded.detail.summary, { language: 'en', segments: 2 });
    assert.deepEqual(succeeded.detail.result, { text: 'hi' });
    assert.equal(succeeded.detail.resultTTLSeconds, 604800);
    assert.deepEqual(await counter(out.metrics, 'taskqueue_worker_tasks_succeeded_total'), { '{"kind":"TranscriptionTask"}': 1 });
  });

  it('passes the attempt and a working context to the pipeline', async () => {
    let seen: TaskContext | undefined;
    const out = await runOnce(messageBody({ attempt: 2 }), async (ctx) => {
      seen = ctx;
      ctx.reportProgress(5);
      return succeed();
    }, { deliveryCount: 2 });
    assert.equal(seen?.attempt, 3);
    assert.equal(seen?.workerName, 'worker-0');
    assert.equal(seen?.keyPrefix, 'tq:');
    assert.equal(seen?.signal.aborted, false);
    assert.deepEqual(out.reports.map((r) => r.type), ['started', 'progress', 'succeeded']);
    assert.ok(out.reports.every((r) => r.attempt === 3));
  });

  it('retryable failure with attempts left: retrying with nextAttemptAt, nak after the backoff', async () => {
    const out = await runOnce(messageBody(), async () => {
      throw new RetryableTaskError('AudioUnavailable', 'source answered 503');
    }, { deliveryCount: 2 });
    // attempt 2, backoff 10 s * 2^(2-1)
    assert.deepEqual(out.verbs, ['nak 20000']);
    const retrying = out.reports.find((r) => r.type === 'retrying')!;
    assert.equal(retrying.detail.reason, 'AudioUnavailable');
    assert.equal((retrying.detail.nextAttemptAt as Date).toISOString(), '2026-03-04T05:06:27.000Z');
  });

  it('retryable failure on the last attempt: failed MaxRetriesExceeded, term', async () => {
    const out = await runOnce(messageBody(), async () => {
      throw new RetryableTaskError('EngineUnavailable', 'GPU server down');
    }, { deliveryCount: 3 });
    assert.deepEqual(out.verbs, ['term']);
    const failed = out.reports.at(-1)!;
    assert.equal(failed.type, 'failed');
    assert.equal(failed.detail.reason, 'MaxRetriesExceeded');
    assert.match(String(failed.detail.message), /attempt 3 of 3 failed \(EngineUnavailable\): GPU server down/);
  });

  it('an unclassified error is retried', async () => {
    const out = await runOnce(messageBody(), async () => {
      throw new TypeError('undefined is not a function');
    });
    assert.deepEqual(out.verbs, ['nak 10000']);
    assert.equal(out.reports.at(-1)!.detail.reason, UNEXPECTED_ERROR_REASON);
  });

  it('unrecoverable failure: failed with its reason, term at once', async () => {
    const out = await runOnce(messageBody(), async () => {
      throw new UnrecoverableTaskError('AudioNotFound', 'source answered 404');
    });
    assert.deepEqual(out.verbs, ['term']);
    assert.deepEqual(out.reports.at(-1)!.detail, {
      reason: 'AudioNotFound',
      message: 'source answered 404',
      stateTTLSeconds: 604800,
    });
    assert.deepEqual(await counter(out.metrics, 'taskqueue_worker_tasks_failed_total'), {
      '{"kind":"TranscriptionTask","reason":"AudioNotFound"}': 1,
    });
  });

  it('a delivery past maxRetries + 1 is not run: failed MaxRetriesExceeded, term', async () => {
    const out = await runOnce(messageBody({ attempt: 3 }), succeed, { deliveryCount: 2 });
    assert.equal(out.ran, 0);
    assert.deepEqual(out.verbs, ['term']);
    assert.deepEqual(out.reports.map((r) => [r.type, r.attempt, r.detail.reason]), [['failed', 3, 'MaxRetriesExceeded']]);
  });

  it('cancel flag set before the start: cancelled, term, never run', async () => {
    const out = await runOnce(messageBody(), succeed, { redis: { cancel: true } });
    assert.equal(out.ran, 0);
    assert.deepEqual(out.verbs, ['term']);
    assert.deepEqual(out.reports.map((r) => r.type), ['cancelled']);
  });

  it('a task already finished is acknowledged without running it again', async () => {
    const out = await runOnce(messageBody(), succeed, { redis: { phase: 'Succeeded' } });
    assert.equal(out.ran, 0);
    assert.deepEqual(out.verbs, ['ack']);
    assert.deepEqual(out.reports, []);
  });

  it('cancel while running: cancelled, term', async () => {
    const out = await runOnce(messageBody(), (ctx, run) => {
      run.abort(new TaskCancelledError('cancel requested'));
      return untilAborted(ctx);
    });
    assert.deepEqual(out.verbs, ['term']);
    assert.deepEqual(out.reports.map((r) => r.type), ['started', 'cancelled']);
  });

  it('deadline: failed DeadlineExceeded, term', async () => {
    const out = await runOnce(messageBody(), (ctx, run) => {
      run.abort(new DeadlineExceededError());
      return untilAborted(ctx);
    });
    assert.deepEqual(out.verbs, ['term']);
    assert.equal(out.reports.at(-1)!.detail.reason, 'DeadlineExceeded');
  });

  it('a delivery handed back on shutdown keeps its attempt number', async () => {
    let attempt = 0;
    const out = await runOnce(messageBody(), async (ctx) => {
      attempt = ctx.attempt;
      return succeed();
    }, { deliveryCount: 3, redis: { releases: 1, releasedSeq: 1 } });
    assert.equal(attempt, 2);
    assert.deepEqual(out.reports.map((r) => `${r.type}@${r.attempt}`), ['started@2', 'succeeded@2']);

    // Hand-backs of another message (a re-published task) do not count.
    const other = await runOnce(messageBody(), async (ctx) => {
      attempt = ctx.attempt;
      return succeed();
    }, { deliveryCount: 3, redis: { releases: 1, releasedSeq: 99 } });
    assert.equal(attempt, 3);
    assert.equal(other.verbs[0], 'ack');
  });

  it('shutdown past the grace period: released, nak(0)', async () => {
    const out = await runOnce(messageBody(), (ctx, run) => {
      run.abort(new WorkerShutdownError());
      return untilAborted(ctx);
    });
    assert.deepEqual(out.verbs, ['nak 0']);
    assert.deepEqual(out.reports.map((r) => r.type), ['started', 'released']);
  });

  it('the abort reason wins over whatever the pipeline throws while unwinding', async () => {
    const out = await runOnce(messageBody(), async (_ctx, run) => {
      run.abort(new TaskCancelledError());
      throw new RetryableTaskError('EngineFailed', 'killed');
    });
    assert.deepEqual(out.verbs, ['term']);
    assert.equal(out.reports.at(-1)!.type, 'cancelled');
  });

  it('malformed body with a uid: failed InvalidInput naming the field, term', async () => {
    const out = await runOnce(messageBody({}, { audio: { uri: 'ftp://x' } }), succeed);
    assert.equal(out.ran, 0);
    assert.deepEqual(out.verbs, ['term']);
    assert.equal(out.reports.length, 1);
    assert.equal(out.reports[0]!.type, 'failed');
    assert.equal(out.reports[0]!.detail.reason, 'InvalidInput');
    assert.match(String(out.reports[0]!.detail.message), /spec\.audio\.uri/);
  });

  it('malformed body without a uid: term only', async () => {
    const out = await runOnce('{"hello":', succeed);
    assert.deepEqual(out.verbs, ['term']);
    assert.deepEqual(out.reports, []);
  });

  it('a message of another kind is refused as invalid', async () => {
    const out = await runOnce(messageBody({ kind: 'DiarizationTask' }), succeed);
    assert.equal(out.ran, 0);
    assert.deepEqual(out.verbs, ['term']);
    assert.equal(out.reports[0]!.detail.reason, 'InvalidInput');
  });
});
