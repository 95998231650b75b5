// The openai engine against a real HTTP server that speaks the wire format.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { OpenAiEngine, transcriptionsEndpoint } from '../../src/worker/engines/openai.ts';
import type { AudioChunk, TaskIdentity } from '../../src/worker/engines/engine.ts';
import { RetryableTaskError, TaskCancelledError, UnrecoverableTaskError } from '../../src/worker/errors.ts';
import { makeTone, tempDir } from '../fixtures/audio.ts';
import type { TempDir } from '../fixtures/audio.ts';
import { startOpenAiEngineServer } from '../fixtures/openai-engine-server.ts';
import type { OpenAiEngineServer } from '../fixtures/openai-engine-server.ts';
import { freePort } from '../harness/index.ts';

const task: TaskIdentity = { namespace: 'default', name: 'tt', uid: 'u-1', kind: 'TranscriptionTask', attempt: 1 };

describe('transcriptionsEndpoint', () => {
  it('accepts a server root, a /v1 base or the full endpoint', () => {
    assert.equal(transcriptionsEndpoint('http://whisper:8000').href, 'http://whisper:8000/v1/audio/transcriptions');
    assert.equal(transcriptionsEndpoint('https://api.openai.com/v1/').href, 'https://api.openai.com/v1/audio/transcriptions');
    assert.equal(transcriptionsEndpoint('http://h/proxy/v1/audio/transcriptions').href, 'http://h/proxy/v1/audio/transcriptions');
  });
});

describe('OpenAiEngine', () => {
  let dir: TempDir;
  let server: OpenAiEngineServer;
  let chunk: AudioChunk;

  before(async () => {
    dir = await tempDir();
    const path = await makeTone(join(dir.path, 'chunk-00001.wav'), 3, { rate: 16_000, channels: 1 });
    chunk = { path, format: 'wav', index: 1, count: 3, startSeconds: 2, durationSeconds: 3 };
  });
  after(() => dir.remove());
  beforeEach(async () => {
    await server?.close();
    server = await startOpenAiEngineServer({ apiKey: 'sk-test' });
  });
  after(() => server.close());

  const engine = (overrides: Partial<ConstructorParameters<typeof OpenAiEngine>[0]> = {}) =>
    new OpenAiEngine({ url: server.url, apiKey: 'sk-test', timeoutMs: 30_000, ...overrides });

  it('uploads the chunk as the OpenAI API expects and parses verbose_json segments', async () => {
    const result = await engine().transcribe(chunk, { task, model: 'large-v3', prompt: 'previous words' }, new AbortController().signal);
    const [request] = server.requests;
    assert.ok(request);
    assert.equal(request.path, '/v1/audio/transcriptions');
    assert.equal(request.authorization, 'Bearer sk-test');
    assert.equal(request.fields.model, 'large-v3');
    assert.equal(request.fields.response_format, 'verbose_json');
    assert.deepEqual(request.fields['timestamp_granularities[]'], ['segment']);
    assert.equal(request.fields.prompt, 'previous words');
    assert.equal(request.fields.language, undefined);
    assert.equal(request.fileName, 'chunk-00001.wav');
    assert.equal(request.fileType, 'audio/wav');
    assert.ok(Math.abs((request.durationSeconds ?? 0) - 3) < 0.01);
    // Whisper servers name the language; results carry the ISO code.
    assert.equal(result.language, 'en');
    assert.deepEqual(
      result.segments.map((s) => [s.start, s.end]),
      [[0, 1], [1, 2], [2, 3]],
    );
    assert.match(result.segments[0]!.text, /^alpha 0\.0 to 1\.0$/);
  });

  it('sends the language when the task names one, and the pool model instead of the task model when set', async () => {
    const result = await engine({ model: 'Systran/faster-whisper-large-v3' }).transcribe(
      chunk,
      { task, model: 'large-v3', language: 'de' },
      new AbortController().signal,
    );
    assert.equal(server.requests[0]!.fields.language, 'de');
    assert.equal(server.requests[0]!.fields.model, 'Systran/faster-whisper-large-v3');
    assert.equal(result.language, 'de');
  });

  it('diarizes through diarized_json and passes known speakers as references', async () => {
    const result = await engine().diarize(
      chunk,
      { task: { ...task, kind: 'DiarizationTask' }, knownSpeakers: [{ label: 'SPEAKER_00', path: chunk.path }] },
      new AbortController().signal,
    );
    const request = server.requests[0]!;
    assert.equal(request.fields.response_format, 'diarized_json');
    assert.equal(request.fields.chunking_strategy, 'auto');
    assert.equal(request.fields.model, 'gpt-4o-transcribe-diarize');
    assert.deepEqual(request.fields['known_speaker_names[]'], ['SPEAKER_00']);
    const references = request.fields['known_speaker_references[]'] as string[];
    assert.equal(references.length, 1);
    assert.match(references[0]!, /^data:audio\/wav;base64,UklGR/);
    assert.deepEqual(
      result.segments.map((s) => [s.start, s.end, s.speaker]),
      [[0, 1.5, 'SPEAKER_00'], [1.5, 3, 'B']],
    );
  });

  const failures = [
    { name: '500', behaviour: { kind: 'status', status: 500 } as const, type: RetryableTaskError, reason: 'EngineUnavailable' },
    { name: '503', behaviour: { kind: 'status', status: 503 } as const, type: RetryableTaskError, reason: 'EngineUnavailable' },
    { name: '429', behaviour: { kind: 'status', status: 429 } as const, type: RetryableTaskError, reason: 'EngineUnavailable' },
    { name: '408', behaviour: { kind: 'status', status: 408 } as const, type: RetryableTaskError, reason: 'EngineUnavailable' },
    { name: '400', behaviour: { kind: 'status', status: 400 } as const, type: UnrecoverableTaskError, reason: 'EngineRejected' },
    { name: '413', behaviour: { kind: 'status', status: 413 } as const, type: UnrecoverableTaskError, reason: 'EngineRejected' },
    { name: 'an HTML page with 200', behaviour: { kind: 'garbage' } as const, type: RetryableTaskError, reason: 'EngineBadResponse' },
    { name: 'JSON without segments', behaviour: { kind: 'no-segments' } as const, type: RetryableTaskError, reason: 'EngineBadResponse' },
  ];
  for (const failure of failures) {
    it(`maps ${failure.name} to ${failure.type.name} ${failure.reason}`, async () => {
      server.respond(failure.behaviour);
      await assert.rejects(engine().transcribe(chunk, { task, model: 'm' }, new AbortController().signal), (err: unknown) => {
        assert.ok(err instanceof failure.type, String(err));
        assert.equal((err as RetryableTaskError).reason, failure.reason);
        assert.match((err as Error).message, /chunk 1|unusable answer/);
        return true;
      });
    });
  }

  it('includes the server\'s error message in a rejection', async () => {
    server.respond({ kind: 'status', status: 400, body: JSON.stringify({ error: { message: 'Invalid file format.' } }) });
    await assert.rejects(engine().transcribe(chunk, { task, model: 'm' }, new AbortController().signal), /Invalid file format\./);
  });

  it('treats a wrong API key as the worker\'s problem (retryable), not the task\'s', async () => {
    await assert.rejects(
      engine({ apiKey: 'wrong' }).transcribe(chunk, { task, model: 'm' }, new AbortController().signal),
      (err: unknown) => err instanceof RetryableTaskError && err.reason === 'EngineMisconfigured',
    );
  });

  it('rejects a diarization answer without speakers as a bad response', async () => {
    server.respond({ kind: 'verbose-only' });
    await assert.rejects(
      engine().diarize(chunk, { task: { ...task, kind: 'DiarizationTask' } }, new AbortController().signal),
      (err: unknown) => err instanceof RetryableTaskError && err.reason === 'EngineBadResponse' && /no speaker field/.test(err.message),
    );
  });

  it('stops waiting at once when the task is aborted, with the abort reason', async () => {
    server.respond({ kind: 'hang' });
    const controller = new AbortController();
    server.events.once('request', () => controller.abort(new TaskCancelledError('cancelled by test')));
    await assert.rejects(engine().transcribe(chunk, { task, model: 'm' }, controller.signal), (err: unknown) => {
      assert.ok(err instanceof TaskCancelledError);
      assert.equal(err.message, 'cancelled by test');
      return true;
    });
  });

  it('gives up on a server that never answers after its timeout, retryably', async () => {
    server.respond({ kind: 'hang' });
    await assert.rejects(
      engine({ timeoutMs: 300 }).transcribe(chunk, { task, model: 'm' }, new AbortController().signal),
      (err: unknown) => err instanceof RetryableTaskError && err.reason === 'EngineUnavailable' && /did not answer/.test(err.message),
    );
  });

  it('treats a refused connection as retryable', async () => {
    const port = await freePort();
    await assert.rejects(
      new OpenAiEngine({ url: `http://127.0.0.1:${port}`, timeoutMs: 30_000 }).transcribe(chunk, { task, model: 'm' }, new AbortController().signal),
      (err: unknown) => err instanceof RetryableTaskError && err.reason === 'EngineUnavailable' && /ECONNREFUSED/.test(err.message),
    );
  });
});
