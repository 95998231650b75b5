// The worker as a process (`node src/worker/main.ts`), as Kubernetes runs it:
// a bad environment stops it with every problem listed; probes and metrics
// answer; SIGTERM lets a short task finish and hands a long one back at once;
// SIGKILL mid-task leaves the task to JetStream, which gives it to another
// worker after the ack wait, as the next attempt.
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { projectRoot } from '../../harness/index.ts';
import type { Worker } from '../../../src/worker/worker.ts';
import {
  WorkerProcess,
  ok,
  publishTask,
  queueFixture,
  reportsFor,
  startWorker,
  stopPrivateServers,
  streamMessages,
  taskMessage,
  taskState,
  waitFor,
  waitForPhase,
} from './support.ts';
import type { QueueFixture } from './support.ts';

let fx: QueueFixture;
const workers: WorkerProcess[] = [];
let inProcess: Worker | undefined;

function spawnWorker(env: Record<string, string> = {}): WorkerProcess {
  const worker = new WorkerProcess(fx, env);
  workers.push(worker);
  return worker;
}

beforeEach(async () => {
  fx = await queueFixture({ ackWaitMs: 30_000 });
});

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.process.kill('SIGKILL')));
  await inProcess?.stop(0);
  inProcess = undefined;
  await fx.close();
});

after(stopPrivateServers);

describe('worker process', () => {
  it('refuses to start on a bad environment, naming every variable', async () => {
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [join(projectRoot, 'src', 'worker', 'main.ts')],
        { env: { PATH: process.env.PATH, TQ_CONCURRENCY: 'lots', TQ_ENGINE: 'gpu' }, timeout: 30_000 },
        (error, _stdout, stderr) => resolve({ code: error ? (error.code as number) : 0, stderr }),
      );
    });
    assert.equal(result.code, 1);
    for (const variable of ['TQ_NATS_URL', 'TQ_REDIS_URL', 'TQ_TASK_KIND', 'TQ_CONCURRENCY', 'TQ_ENGINE']) {
      assert.match(result.stderr, new RegExp(`${variable}: `));
    }
  });

  it('answers /healthz, /readyz and /metrics', async () => {
    const worker = spawnWorker({ TQ_STUB_CHUNKS: '2', TQ_STUB_CHUNK_MS: '50' });
    const ports = await worker.waitForLog('Serving probes and metrics');
    await worker.waitForLog('Worker started');
    const base = (port: unknown) => `http://127.0.0.1:${String(port)}`;
    assert.equal((await fetch(`${base(ports.healthPort)}/healthz`)).status, 200);
    assert.equal((await fetch(`${base(ports.healthPort)}/readyz`)).status, 200);
    const message = await publishTask(fx, taskMessage());
    await waitForPhase(fx, message.uid, 'Succeeded');
    const metrics = await (await fetch(`${base(ports.metricsPort)}/metrics`)).text();
    assert.match(metrics, /taskqueue_worker_tasks_succeeded_total\{kind="TranscriptionTask"\} 1/);
    assert.match(metrics, /taskqueue_worker_task_duration_seconds_count\{kind="TranscriptionTask",outcome="succeeded"\} 1/);
    assert.match(metrics, /taskqueue_worker_tasks_in_progress\{kind="TranscriptionTask"\} 0/);
    assert.doesNotMatch(metrics, new RegExp(message.uid));
  });

  it('SIGTERM: a task that fits in the grace period finishes, then exit 0', async () => {
    const worker = spawnWorker({ TQ_STUB_CHUNKS: '5', TQ_STUB_CHUNK_MS: '200', TQ_SHUTDOWN_GRACE_SECONDS: '10' });
    await worker.waitForLog('Worker started');
    const message = await publishTask(fx, taskMessage());
    await waitForPhase(fx, message.uid, 'Running');
    worker.process.signal('SIGTERM');
    assert.equal(await worker.process.exited(), 0);
    const state = await taskState(fx, message.uid);
    assert.equal(state?.phase, 'Succeeded');
    assert.equal(state?.worker, worker.name);
    assert.equal(await streamMessages(fx), 0);
  });

  it('SIGTERM: a long task is handed back at once and the next worker takes it', async () => {
    const a = spawnWorker({ TQ_STUB_CHUNKS: '100', TQ_STUB_CHUNK_MS: '200', TQ_SHUTDOWN_GRACE_SECONDS: '1' });
    await a.waitForLog('Worker started');
    const message = await publishTask(fx, taskMessage());
    const running = await waitForPhase(fx, message.uid, 'Running');
    assert.equal(running.worker, a.name);
    const signalled = Date.now();
    a.process.signal('SIGTERM');
    assert.equal(await a.process.exited(), 0);
    const exitedAfter = Date.now() - signalled;
    assert.ok(exitedAfter < 5000, `exited ${exitedAfter} ms after SIGTERM with a 1 s grace period`);
    const released = await taskState(fx, message.uid);
    assert.equal(released?.phase, 'Queued');
    assert.deepEqual(
      (await reportsFor(fx, message.uid)).filter((r) => r.type === 'started' || r.type === 'released').map((r) => r.type),
      ['started', 'released'],
    );

    // nak(0): the message is back now, not after the 30 s ack wait, and the
    // hand-back did not use up an attempt.
    const runs: number[] = [];
    inProcess = startWorker(fx, async (ctx) => {
      runs.push(ctx.attempt);
      return ok;
    }, { workerName: 'worker-b' });
    const done = await waitForPhase(fx, message.uid, 'Succeeded', 5000);
    assert.ok(Date.now() - signalled < 10_000);
    assert.equal(done.worker, 'worker-b');
    assert.equal(done.attempt, 1);
    assert.deepEqual(runs, [1]);
  });

  it('SIGTERM while idle exits 0 at once', async () => {
    const worker = spawnWorker();
    await worker.waitForLog('Worker started');
    const signalled = Date.now();
    worker.process.signal('SIGTERM');
    assert.equal(await worker.process.exited(), 0);
    assert.ok(Date.now() - signalled < 3000);
  });
});

describe('worker crash', () => {
  it('SIGKILL mid-task: another worker takes it after the ack wait, as the next attempt', { timeout: 60_000 }, async () => {
    await fx.close();
    fx = await queueFixture({ ackWaitMs: 2000 });
    const a = spawnWorker({ TQ_STUB_CHUNKS: '100', TQ_STUB_CHUNK_MS: '200', TQ_ACK_WAIT_SECONDS: '2' });
    await a.waitForLog('Worker started');
    const message = await publishTask(fx, taskMessage());
    await waitForPhase(fx, message.uid, 'Running');
    // Let it keep the message past one ack wait, so the working() keep-alive is proven too.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    assert.equal((await taskState(fx, message.uid))?.attempt, 1);
    await a.process.kill('SIGKILL');
    const killedAt = Date.now();

    const runs: { attempt: number; at: number }[] = [];
    inProcess = startWorker(fx, async (ctx) => {
      runs.push({ attempt: ctx.attempt, at: Date.now() });
      return ok;
    }, { workerName: 'worker-b', ackWaitSeconds: 2 });
    const done = await waitForPhase(fx, message.uid, 'Succeeded', 15_000);
    assert.equal(done.worker, 'worker-b');
    assert.equal(done.attempt, 2);
    assert.deepEqual(runs.map((r) => r.attempt), [2]);
    const waited = runs[0]!.at - killedAt;
    // Redelivered by the ack wait (2 s from the last keep-alive, sent every ~0.67 s), not at once.
    assert.ok(waited >= 1000 && waited < 6000, `taken over ${waited} ms after the kill`);
    await waitFor('the message to leave the stream', async () => (await streamMessages(fx)) === 0);
  });
});
