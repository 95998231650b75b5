import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeEngine } from '../../src/worker/engines/fake.ts';
import type { AudioChunk, TaskIdentity } from '../../src/worker/engines/engine.ts';
import { TaskCancelledError } from '../../src/worker/errors.ts';

const task: TaskIdentity = { namespace: 'default', name: 'x', uid: 'u', kind: 'TranscriptionTask', attempt: 1 };
const chunk = (index: number, start: number, duration: number): AudioChunk => ({
  path: '/nonexistent.wav', format: 'wav', index, count: 3, startSeconds: start, durationSeconds: duration,
});

describe('FakeEngine', () => {
  it('makes the same segments for the same chunk, covering it', async () => {
    const engine = new FakeEngine({ chunkMs: 0 });
    const a = await engine.transcribe(chunk(1, 4, 4), { task, model: 'm' }, new AbortController().signal);
    const b = await engine.transcribe(chunk(1, 4, 4), { task, model: 'm' }, new AbortController().signal);
    assert.deepEqual(a, b);
    assert.equal(a.language, 'en');
    assert.deepEqual(a.segments.map((s) => [s.start, s.end]), [[0, 1], [1, 3.5], [3.5, 4]]);
    assert.ok(a.segments.every((s) => s.text.length > 0));
  });

  it('diarizes with the requested number of speakers and embeddings that identify them', async () => {
    const engine = new FakeEngine({ chunkMs: 0 });
    const result = await engine.diarize(chunk(0, 0, 12), { task, minSpeakers: 3, maxSpeakers: 5 }, new AbortController().signal);
    assert.equal(new Set(result.segments.map((s) => s.speaker)).size, 3);
    assert.equal(Object.keys(result.speakerEmbeddings ?? {}).length, 3);
  });

  it('reports progress halfway and stops at once on abort', async () => {
    const engine = new FakeEngine({ chunkMs: 60_000 });
    const controller = new AbortController();
    const running = engine.transcribe(chunk(0, 0, 2), { task, model: 'm' }, controller.signal);
    controller.abort(new TaskCancelledError('stop'));
    await assert.rejects(running, (err: unknown) => err instanceof TaskCancelledError && err.message === 'stop');
    const progress: number[] = [];
    await new FakeEngine({ chunkMs: 2 }).transcribe(chunk(0, 0, 2), { task, model: 'm', onProgress: (f) => progress.push(f) }, new AbortController().signal);
    assert.deepEqual(progress, [0.5, 1]);
  });
});
