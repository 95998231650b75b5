// The exec engine running a real command (test/fixtures/exec-engine.ts).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ExecEngine, parseProgressLine } from '../../src/worker/engines/exec.ts';
import type { AudioChunk, TaskIdentity } from '../../src/worker/engines/engine.ts';
import { RetryableTaskError, TaskCancelledError, UnrecoverableTaskError } from '../../src/worker/errors.ts';
import { makeTone, tempDir } from '../fixtures/audio.ts';
import type { TempDir } from '../fixtures/audio.ts';
import { pidAlive, waitFor } from '../harness/index.ts';

const script = resolve(import.meta.dirname, '../fixtures/exec-engine.ts');
const task: TaskIdentity = { namespace: 'default', name: 'tt', uid: 'u-1', kind: 'TranscriptionTask', attempt: 2 };

describe('parseProgressLine', () => {
  it('reads `progress <percent>` and nothing else', () => {
    assert.equal(parseProgressLine('progress 42'), 42);
    assert.equal(parseProgressLine('progress: 12.5%'), 12.5);
    assert.equal(parseProgressLine('  PROGRESS 150 '), 100);
    assert.equal(parseProgressLine('loading progress bar'), undefined);
    assert.equal(parseProgressLine('progress'), undefined);
  });
});

describe('ExecEngine', () => {
  let dir: TempDir;
  let chunk: AudioChunk;
  let log: string;

  before(async () => {
    dir = await tempDir();
    const path = await makeTone(join(dir.path, 'chunk-00000.wav'), 2.5, { rate: 16_000, channels: 1 });
    chunk = { path, format: 'wav', index: 0, count: 1, startSeconds: 0, durationSeconds: 2.5 };
    log = join(dir.path, 'calls.jsonl');
  });
  after(() => dir.remove());

  const engine = (args: string[] = [], options: { killGraceMs?: number; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}) =>
    new ExecEngine({
      command: [process.execPath, script, '--log', log, ...args],
      timeoutMs: options.timeoutMs ?? 60_000,
      killGraceMs: options.killGraceMs ?? 5_000,
      ...(options.env ? { env: options.env } : {}),
    });

  async function lastCall(): Promise<{ request: Record<string, unknown>; env: Record<string, unknown> }> {
    const lines = (await readFile(log, 'utf8')).trim().split('\n');
    return JSON.parse(lines.at(-1)!) as { request: Record<string, unknown>; env: Record<string, unknown> };
  }

  it('sends the task on stdin and in the environment, reports progress, reads the result file', async () => {
    const progress: number[] = [];
    const result = await engine().transcribe(
      chunk,
      { task, model: 'large-v3', language: 'fr', prompt: 'before', onProgress: (f) => progress.push(f) },
      new AbortController().signal,
    );
    assert.deepEqual(progress, [0.25, 0.5, 0.75, 1]);
    assert.equal(result.language, 'fr');
    assert.deepEqual(result.segments.map((s) => [s.start, s.end]), [[0, 1], [1, 2], [2, 2.5]]);
    const call = await lastCall();
    assert.equal(call.request.operation, 'transcribe');
    assert.deepEqual(call.request.task, task);
    assert.deepEqual(call.request.options, { model: 'large-v3', language: 'fr', prompt: 'before' });
    assert.equal(call.env.input, chunk.path);
    assert.equal(call.env.operation, 'transcribe');
    assert.equal(call.env.chunkIndex, '0');
    assert.match(String(call.env.output), /chunk-00000\.result\.json$/);
  });

  it('keeps the worker\'s own TQ_* settings (API keys) out of the engine\'s environment', async () => {
    await engine([], { env: { ...process.env, TQ_ENGINE_OPENAI_API_KEY: 'secret', TQ_SECRET_PROBE: 'x' } }).transcribe(
      chunk,
      { task, model: 'm' },
      new AbortController().signal,
    );
    assert.deepEqual((await lastCall()).env.leakedWorkerSetting, []);
  });

  it('diarizes with speaker embeddings', async () => {
    const result = await engine().diarize(chunk, { task: { ...task, kind: 'DiarizationTask' }, maxSpeakers: 3 }, new AbortController().signal);
    assert.deepEqual(result.segments.map((s) => s.speaker), ['spk0', 'spk1', 'spk0']);
    assert.deepEqual(result.speakerEmbeddings, { spk0: [1, 0], spk1: [0, 1] });
    assert.deepEqual((await lastCall()).request.options, { minSpeakers: null, maxSpeakers: 3 });
  });

  it('fails for good on exit code 2, with the end of stderr in the message', async () => {
    await assert.rejects(
      engine(['--exit-code', '2', '--stderr', 'unsupported sample format']).transcribe(chunk, { task, model: 'm' }, new AbortController().signal),
      (err: unknown) => {
        assert.ok(err instanceof UnrecoverableTaskError, String(err));
        assert.equal(err.reason, 'EngineRejected');
        assert.match(err.message, /exited with code 2 on chunk 0/);
        assert.match(err.message, /unsupported sample format/);
        return true;
      },
    );
  });

  it('retries on any other exit code', async () => {
    await assert.rejects(
      engine(['--exit-code', '1', '--stderr', 'CUDA out of memory']).transcribe(chunk, { task, model: 'm' }, new AbortController().signal),
      (err: unknown) => err instanceof RetryableTaskError && err.reason === 'EngineFailed' && /CUDA out of memory/.test(err.message),
    );
  });

  it('retries when the command exits 0 without a usable result', async () => {
    for (const flag of ['--garbage', '--no-output']) {
      await assert.rejects(
        engine([flag]).transcribe(chunk, { task, model: 'm' }, new AbortController().signal),
        (err: unknown) => err instanceof RetryableTaskError && err.reason === 'EngineBadResponse',
      );
    }
  });

  it('retries when the command cannot be started', async () => {
    const missing = new ExecEngine({ command: [join(dir.path, 'no-such-engine')], timeoutMs: 60_000, killGraceMs: 1000 });
    await assert.rejects(
      missing.transcribe(chunk, { task, model: 'm' }, new AbortController().signal),
      (err: unknown) => err instanceof RetryableTaskError && err.reason === 'EngineMisconfigured' && /ENOENT/.test(err.message),
    );
  });

  it('terminates the command when the task is aborted and rejects with the abort reason', async () => {
    const pidFile = join(dir.path, 'hang.pid');
    const controller = new AbortController();
    const running = engine(['--hang', '--pid-file', pidFile]).transcribe(
      chunk,
      { task, model: 'm', onProgress: () => controller.abort(new TaskCancelledError()) },
      controller.signal,
    );
    await assert.rejects(running, TaskCancelledError);
    const pid = Number(await readFile(pidFile, 'utf8'));
    assert.equal(pidAlive(pid), false);
  });

  it('kills a command that ignores SIGTERM once the grace period is over', async () => {
    const pidFile = join(dir.path, 'stubborn.pid');
    const controller = new AbortController();
    const running = engine(['--hang', '--ignore-term', '--pid-file', pidFile], { killGraceMs: 200 }).transcribe(
      chunk,
      { task, model: 'm', onProgress: () => controller.abort(new TaskCancelledError()) },
      controller.signal,
    );
    await assert.rejects(running, TaskCancelledError);
    const pid = Number(await readFile(pidFile, 'utf8'));
    await waitFor('stubborn engine gone', () => !pidAlive(pid), { timeoutMs: 5000, intervalMs: 20 });
  });

  it('does not wait for a helper the command left behind, and kills it', async () => {
    const orphanPid = join(dir.path, 'orphan.pid');
    const result = await engine(['--orphan', orphanPid]).transcribe(chunk, { task, model: 'm' }, new AbortController().signal);
    assert.equal(result.segments.length, 3);
    const pid = Number(await readFile(orphanPid, 'utf8'));
    await waitFor('orphaned helper gone', () => !pidAlive(pid), { timeoutMs: 5000, intervalMs: 20 });
  });

  it('stops a command that runs past the engine timeout, retryably', async () => {
    await assert.rejects(
      engine(['--hang'], { timeoutMs: 300, killGraceMs: 1000 }).transcribe(chunk, { task, model: 'm' }, new AbortController().signal),
      (err: unknown) => err instanceof RetryableTaskError && err.reason === 'EngineUnavailable' && /did not finish/.test(err.message),
    );
  });
});
