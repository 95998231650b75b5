// main.ts wired to the real pipeline (src/worker/pipeline) with the fake
// engine: a file:// recording goes through fetch, chunking and merge, and
// the result lands in Redis with progress on the way.
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkerProcess, publishTask, queueFixture, reportsFor, stopPrivateServers, taskMessage, waitForPhase } from './support.ts';
import type { QueueFixture } from './support.ts';

let fx: QueueFixture;
let dir: string;
let worker: WorkerProcess | undefined;

beforeEach(async () => {
  fx = await queueFixture();
  dir = mkdtempSync(join(tmpdir(), 'tq-audio-'));
});

afterEach(async () => {
  await worker?.process.kill('SIGKILL');
  worker = undefined;
  await fx.close();
  rmSync(dir, { recursive: true, force: true });
});

after(stopPrivateServers);

describe('worker process with the real pipeline', () => {
  it('transcribes a local recording with the fake engine', { timeout: 60_000 }, async () => {
    const audio = join(dir, 'tone.wav');
    execFileSync('sox', ['-n', '-r', '16000', '-c', '1', audio, 'synth', '4', 'sine', '440']);
    worker = new WorkerProcess(fx, {
      TQ_PIPELINE: 'standard',
      TQ_ENGINE: 'fake',
      TQ_FAKE_CHUNK_MS: '100',
      TQ_CHUNK_SECONDS: '1',
      TQ_AUDIO_FILE_ROOTS: dir,
      TQ_AUDIO_DIR: join(dir, 'work'),
    });
    await worker.waitForLog('Worker started');
    const message = await publishTask(fx, taskMessage({ spec: { audio: { uri: `file://${audio}` }, language: 'en' } }));
    const state = await waitForPhase(fx, message.uid, 'Succeeded', 30_000);
    const result = JSON.parse((await fx.redis.get(state.resultRef!))!) as { segments: unknown[]; durationSeconds: number };
    assert.ok(result.segments.length > 0);
    assert.ok(Math.abs(result.durationSeconds - 4) < 0.1);
    const reports = await reportsFor(fx, message.uid);
    const succeeded = reports.at(-1)!;
    assert.equal(succeeded.type, 'succeeded');
    assert.equal(succeeded.type === 'succeeded' && succeeded.summary.language, 'en');
    const progress = reports.flatMap((r) => (r.type === 'progress' ? [r.progress] : []));
    assert.ok(progress.length > 0, 'expected progress reports');
    assert.deepEqual(progress, [...progress].sort((a, b) => a - b));
  });
});
