// runTask end to end: audio served over HTTP or from a volume, cut with
// ffmpeg, sent to real engines, checkpointed in a real Redis.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Redis } from 'ioredis';
import { runTask } from '../../../src/worker/pipeline/index.ts';
import type { DiarizationResult, TranscriptionResult } from '../../../src/worker/pipeline/index.ts';
import type { PipelineConfigInput } from '../../../src/worker/pipeline/settings.ts';
import { FakeEngine } from '../../../src/worker/engines/fake.ts';
import type { AudioChunk, SpeechEngine } from '../../../src/worker/engines/engine.ts';
import { redisKeys } from '../../../src/protocol/keys.ts';
import { UnrecoverableTaskError, WorkerShutdownError } from '../../../src/worker/errors.ts';
import { uniqueKeyPrefix } from '../../harness/index.ts';
import { makeCorrupt, makeTone, tempDir } from '../../fixtures/audio.ts';
import type { TempDir } from '../../fixtures/audio.ts';
import { startAudioServer } from '../../fixtures/audio-server.ts';
import type { AudioServer } from '../../fixtures/audio-server.ts';
import { startOpenAiEngineServer } from '../../fixtures/openai-engine-server.ts';
import type { OpenAiEngineServer } from '../../fixtures/openai-engine-server.ts';
import { connectRedis, diarizationMessage, testRedis, testTask, transcriptionMessage } from '../../fixtures/pipeline-context.ts';
import type { TestRedis } from '../../fixtures/pipeline-context.ts';

/** Segments in order, each starting where the previous ended or later, inside the recording. */
function assertContinuous(segments: ReadonlyArray<{ start: number; end: number }>, duration: number): void {
  let previous = 0;
  for (const segment of segments) {
    assert.ok(segment.start >= previous - 1e-9, `segment at ${segment.start} starts before ${previous}`);
    assert.ok(segment.end >= segment.start);
    previous = segment.end;
  }
  assert.ok(previous <= duration + 1e-9);
}

/** A fake engine that records the chunks it was asked for and can stop the task at one of them. */
function recordingEngine(options: { stopAt?: number; stop?: () => void } = {}): SpeechEngine & { calls: number[] } {
  const inner = new FakeEngine({ chunkMs: 0 });
  const calls: number[] = [];
  const check = (chunk: AudioChunk) => {
    calls.push(chunk.index);
    if (chunk.index === options.stopAt) options.stop?.();
  };
  return {
    name: inner.name,
    identity: inner.identity,
    usesKnownSpeakers: inner.usesKnownSpeakers,
    calls,
    async transcribe(chunk, opts, signal) {
      check(chunk);
      return inner.transcribe(chunk, opts, signal);
    },
    async diarize(chunk, opts, signal) {
      check(chunk);
      return inner.diarize(chunk, opts, signal);
    },
  };
}

describe('runTask', () => {
  let dir: TempDir;
  let redisServer: TestRedis;
  let redis: Redis;
  let audioServer: AudioServer;
  let engineServer: OpenAiEngineServer;
  let volume: string;
  let audioDir: string;
  let sevenSeconds: string;
  let sevenSecondsUri: string;

  before(async () => {
    dir = await tempDir();
    redisServer = await testRedis();
    redis = connectRedis(redisServer.url);
    audioServer = await startAudioServer();
    engineServer = await startOpenAiEngineServer();
    volume = join(dir.path, 'volume');
    audioDir = join(dir.path, 'audio');
    await mkdir(volume);
    sevenSeconds = await makeTone(join(volume, 'seven.wav'), 7);
    sevenSecondsUri = pathToFileURL(sevenSeconds).href;
  });
  after(async () => {
    redis.disconnect();
    await engineServer.close();
    await audioServer.close();
    await redisServer.stop();
    await dir.remove();
  });

  const config = (extra: PipelineConfigInput = {}): PipelineConfigInput => ({
    audioDir,
    audioFileRoots: [volume],
    chunkSeconds: 2,
    fakeChunkMs: 0,
    engine: 'fake',
    ...extra,
  });

  it('transcribes a multi-chunk recording fetched over http with the fake engine', async () => {
    const uri = audioServer.addFile('seven.wav', await readFile(sevenSeconds));
    const { ctx, progress } = testTask({ message: transcriptionMessage({ audio: { uri } }), redis, config: config() });
    const { summary, result } = await runTask(ctx);
    const transcript = result as TranscriptionResult;
    assert.deepEqual(summary, { language: 'en', durationSeconds: 7, segments: transcript.segments.length });
    assert.equal(transcript.durationSeconds, 7);
    assertContinuous(transcript.segments, 7);
    assert.equal(transcript.segments.at(-1)?.end, 7);
    assert.deepEqual(transcript.segments.map((s) => s.id), transcript.segments.map((_, i) => i));
    // Download first, then one step per chunk, never backwards, 100 left to the runtime.
    assert.deepEqual(progress, [...progress].sort((a, b) => a - b));
    assert.ok(progress.includes(5));
    assert.ok(progress.includes(28) && progress.includes(52) && progress.includes(76));
    assert.equal(progress.at(-1), 99);
    assert.equal(await redis.exists(redisKeys(ctx.keyPrefix, ctx.message.uid).checkpoints), 0);
    assert.deepEqual(await readdir(audioDir), []);
  });

  it('sends each 16 kHz chunk to an OpenAI-compatible server and stitches the answers on one timeline', async () => {
    const before = engineServer.requests.length;
    const { ctx } = testTask({
      message: transcriptionMessage({ audio: { uri: sevenSecondsUri }, model: 'small' }),
      redis,
      config: config({ engine: 'openai', engineOpenaiUrl: engineServer.url }),
    });
    const { summary, result } = await runTask(ctx);
    const requests = engineServer.requests.slice(before);
    assert.deepEqual(requests.map((r) => Math.round((r.durationSeconds ?? 0) * 100) / 100), [2, 2, 2, 1]);
    assert.ok(requests.every((r) => r.fields.model === 'small'));
    // Each chunk after the first carries the end of the previous one's text.
    assert.equal(requests[0]!.fields.prompt, undefined);
    assert.match(String(requests[1]!.fields.prompt), /bravo 1\.0 to 2\.0$/);
    const transcript = result as TranscriptionResult;
    assert.deepEqual(
      transcript.segments.map((s) => [s.start, s.end]),
      [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 6], [6, 7]],
    );
    assert.deepEqual(summary, { language: 'en', durationSeconds: 7, segments: 7 });
  });

  it('resumes after an interrupted run: only the remaining chunks reach the engine, nothing is duplicated', async () => {
    const message = transcriptionMessage({ audio: { uri: sevenSecondsUri } });
    const keyPrefix = uniqueKeyPrefix();
    const engineConfig = config({ engine: 'openai', engineOpenaiUrl: engineServer.url });

    // First run: the worker is shut down while chunk 2 is at the engine.
    const first = testTask({ message, redis, keyPrefix, config: engineConfig });
    const start = engineServer.requests.length;
    const onRequest = (_request: unknown, index: number) => {
      if (index === start + 2) first.controller.abort(new WorkerShutdownError());
    };
    engineServer.events.on('request', onRequest);
    await assert.rejects(runTask(first.ctx), WorkerShutdownError);
    engineServer.events.off('request', onRequest);
    assert.equal(engineServer.requests.length - start, 3);
    const key = redisKeys(keyPrefix, message.uid).checkpoints;
    assert.deepEqual((await redis.hkeys(key)).sort(), ['0', '1', 'plan']);
    const ttl = await redis.ttl(key);
    assert.ok(ttl > 0 && ttl <= message.spec.resultTTLSeconds);

    // Second run, as attempt 2 on another worker.
    const second = testTask({ message, redis, keyPrefix, config: engineConfig, attempt: 2 });
    const resumeStart = engineServer.requests.length;
    const { result } = await runTask(second.ctx);
    const resumed = engineServer.requests.slice(resumeStart);
    assert.deepEqual(resumed.map((r) => Math.round((r.durationSeconds ?? 0) * 100) / 100), [2, 1]);
    // The resumed chunk still gets the previous chunk's text as context.
    assert.match(String(resumed[0]!.fields.prompt), /bravo 1\.0 to 2\.0$/);
    const afterDownload = second.progress.filter((p) => p > 5);
    assert.ok(afterDownload[0]! >= 52, `progress goes on from the checkpoint, got ${afterDownload.join(',')}`);

    const transcript = result as TranscriptionResult;
    assert.deepEqual(
      transcript.segments.map((s) => [s.start, s.end]),
      [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 6], [6, 7]],
    );
    assertContinuous(transcript.segments, 7);
    assert.equal(new Set(transcript.segments.map((s) => `${s.start}`)).size, transcript.segments.length);
    assert.equal(await redis.exists(key), 0);
  });

  it('resumes with the same merged result as an uninterrupted run', async () => {
    const keyPrefix = uniqueKeyPrefix();
    const message = transcriptionMessage({ audio: { uri: sevenSecondsUri } });
    const reference = await runTask(testTask({ message: transcriptionMessage({ audio: { uri: sevenSecondsUri } }), redis, config: config() }).ctx);

    const first = testTask({ message, redis, keyPrefix, config: config() });
    const stopping = recordingEngine({ stopAt: 3, stop: () => first.controller.abort(new WorkerShutdownError()) });
    await assert.rejects(runTask(first.ctx, { engine: stopping }), WorkerShutdownError);
    assert.deepEqual(stopping.calls, [0, 1, 2, 3]);

    const resuming = recordingEngine();
    const second = await runTask(testTask({ message, redis, keyPrefix, config: config() }).ctx, { engine: resuming });
    assert.deepEqual(resuming.calls, [3]);
    assert.deepEqual(second, reference);
  });

  it('starts over when the checkpoints belong to a different run (chunk length changed)', async () => {
    const keyPrefix = uniqueKeyPrefix();
    const message = transcriptionMessage({ audio: { uri: sevenSecondsUri } });
    const first = testTask({ message, redis, keyPrefix, config: config() });
    const stopping = recordingEngine({ stopAt: 2, stop: () => first.controller.abort(new WorkerShutdownError()) });
    await assert.rejects(runTask(first.ctx, { engine: stopping }), WorkerShutdownError);

    const again = recordingEngine();
    const { result } = await runTask(testTask({ message, redis, keyPrefix, config: config({ chunkSeconds: 3 }) }).ctx, { engine: again });
    assert.deepEqual(again.calls, [0, 1, 2]);
    assertContinuous((result as TranscriptionResult).segments, 7);
  });

  it('diarizes across chunks with the fake engine, linking voices by embedding', async () => {
    const { ctx } = testTask({ message: diarizationMessage({ audio: { uri: sevenSecondsUri }, maxSpeakers: 4 }), redis, config: config() });
    const { summary, result } = await runTask(ctx);
    const diarization = result as DiarizationResult;
    // Turns on a 3 s grid, alternating between two voices, whatever the 2 s chunking did to them.
    assert.deepEqual(diarization.segments, [
      { start: 0, end: 3, speaker: 'SPEAKER_00' },
      { start: 3, end: 6, speaker: 'SPEAKER_01' },
      { start: 6, end: 7, speaker: 'SPEAKER_00' },
    ]);
    assert.deepEqual(summary, { durationSeconds: 7, segments: 3, speakers: 2 });
  });

  it('keeps speaker identity across chunks on an OpenAI diarization server through known-speaker references', async () => {
    const server = await startOpenAiEngineServer({ segmentSeconds: 5 / 3 });
    try {
      const twelve = await makeTone(join(volume, 'twelve.wav'), 12);
      const { ctx } = testTask({
        message: diarizationMessage({ audio: { uri: pathToFileURL(twelve).href } }),
        redis,
        config: config({ engine: 'openai', engineOpenaiUrl: server.url, chunkSeconds: 5 }),
      });
      const { summary, result } = await runTask(ctx);
      assert.deepEqual(server.requests.map((r) => r.fields['known_speaker_names[]'] ?? []), [[], ['SPEAKER_00', 'SPEAKER_01'], ['SPEAKER_00', 'SPEAKER_01']]);
      const references = server.requests[1]!.fields['known_speaker_references[]'] as string[];
      assert.equal(references.length, 2);
      assert.ok(references.every((r) => r.startsWith('data:audio/wav;base64,')));
      const diarization = result as DiarizationResult;
      assert.equal(summary.speakers, 2);
      assert.deepEqual(new Set(diarization.segments.map((s) => s.speaker)), new Set(['SPEAKER_00', 'SPEAKER_01']));
    } finally {
      await server.close();
    }
  });

  it('diarizes with an exec engine, one process per chunk, linking its per-chunk labels by embedding', async () => {
    const script = join(import.meta.dirname, '../../fixtures/exec-engine.ts');
    const log = join(dir.path, 'exec-calls.jsonl');
    const { ctx, progress } = testTask({
      message: diarizationMessage({ audio: { uri: sevenSecondsUri }, minSpeakers: 1, maxSpeakers: 2 }),
      redis,
      config: config({ engine: 'exec', engineExecCommand: [process.execPath, script, '--log', log] }),
    });
    const { summary, result } = await runTask(ctx);
    const calls = (await readFile(log, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { chunk: number; operation: string });
    assert.deepEqual(calls.map((c) => [c.chunk, c.operation]), [[0, 'diarize'], [1, 'diarize'], [2, 'diarize'], [3, 'diarize']]);
    const diarization = result as DiarizationResult;
    assert.deepEqual(
      diarization.segments.map((s) => [s.start, s.end, s.speaker]),
      [0, 1, 2, 3, 4, 5, 6].map((t) => [t, t + 1, t % 2 === 0 ? 'SPEAKER_00' : 'SPEAKER_01']),
    );
    assert.deepEqual(summary, { durationSeconds: 7, segments: 7, speakers: 2 });
    // The engine's own progress lines move the task between chunk boundaries.
    assert.ok(progress.some((p) => p > 5 && p < 28), progress.join(','));
  });

  it('fails for good on audio ffprobe cannot read, and cleans up', async () => {
    const uri = audioServer.addFile('corrupt.wav', await readFile(await makeCorrupt(join(dir.path, 'corrupt.wav'))));
    const { ctx } = testTask({ message: transcriptionMessage({ audio: { uri } }), redis, config: config() });
    await assert.rejects(runTask(ctx), (err: unknown) => err instanceof UnrecoverableTaskError && err.reason === 'InvalidAudio');
    assert.deepEqual(await readdir(audioDir), []);
  });

  it('fails for good when the engine rejects a chunk, keeping the chunks done before it', async () => {
    const server = await startOpenAiEngineServer();
    try {
      server.queue({ kind: 'ok' }, { kind: 'status', status: 400, body: JSON.stringify({ error: { message: 'Audio file is too short' } }) });
      const { ctx } = testTask({
        message: transcriptionMessage({ audio: { uri: sevenSecondsUri } }),
        redis,
        config: config({ engine: 'openai', engineOpenaiUrl: server.url }),
      });
      await assert.rejects(runTask(ctx), (err: unknown) =>
        err instanceof UnrecoverableTaskError && err.reason === 'EngineRejected' && /chunk 1: Audio file is too short/.test(err.message));
      assert.deepEqual((await redis.hkeys(redisKeys(ctx.keyPrefix, ctx.message.uid).checkpoints)).sort(), ['0', 'plan']);
    } finally {
      await server.close();
    }
  });
});
