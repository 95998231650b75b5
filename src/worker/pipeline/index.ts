// The worker's entry point into a task: fetch the audio, cut it into chunks,
// run the engine chunk by chunk (resuming from Redis checkpoints), merge.
//
//   fetchAudio ─▶ probeAudio ─▶ planChunks ─▶ for each chunk not checkpointed:
//                                              extractSegment ─▶ engine ─▶ checkpoint
//                                           ─▶ merge ─▶ result
//
// Progress: the download is the first DOWNLOAD_SHARE percent, the chunks the
// rest, in equal parts, with an engine's in-chunk progress where it has one.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Kind } from '../../api/index.ts';
import { createEngine } from '../engines/index.ts';
import type { AudioChunk, ChunkDiarization, ChunkTranscript, KnownSpeaker, SpeechEngine, TaskIdentity } from '../engines/index.ts';
import { parseChunkDiarization, parseChunkTranscript } from '../engines/results.ts';
import { fetchAudio } from './audio.ts';
import { ChunkCheckpoints } from './checkpoints.ts';
import { chunkDuration, planChunks } from './chunks.ts';
import type { ChunkPlan, ChunkSpan } from './chunks.ts';
import type { PipelineContext, PipelineResult } from './context.ts';
import type { RunTask } from '../task-context.ts';
import { throwIfAborted } from './failures.ts';
import { extractSegment, probeAudio } from './media.ts';
import { mergeDiarizations, mergeTranscripts } from './merge.ts';
import { resolvePipelineSettings } from './settings.ts';
import type { PipelineSettings } from './settings.ts';

export type { PipelineContext, PipelineResult } from './context.ts';
export { PipelineReason } from './failures.ts';
export { PIPELINE_ENV_SCHEMA, parsePipelineEnv, resolvePipelineSettings } from './settings.ts';
export type { PipelineSettings, PipelineEnv } from './settings.ts';
export type { TranscriptionResult, DiarizationResult } from './merge.ts';

export const DOWNLOAD_SHARE = 5;
/** Characters of the previous chunk's text handed to the engine as context. */
const PROMPT_CHARS = 200;
/** Reference clips of known speakers: OpenAI takes 2 to 10 s. */
const REFERENCE_MIN_SECONDS = 2;
const REFERENCE_MAX_SECONDS = 10;

export interface RunTaskOverrides {
  /** Use this engine instead of the one the config names (tests, embedding). */
  engine?: SpeechEngine;
}

/** Reports integer percents, never going back and never 100 before the result exists. */
class ProgressReporter {
  private last = -1;
  private readonly report: (percent: number) => void;

  constructor(report: (percent: number) => void) {
    this.report = report;
  }

  set(percent: number): void {
    const value = Math.min(99, Math.max(0, Math.floor(percent)));
    if (value <= this.last) return;
    this.last = value;
    this.report(value);
  }

  download(fraction: number): void {
    this.set(DOWNLOAD_SHARE * fraction);
  }

  chunks(done: number, total: number): void {
    this.set(DOWNLOAD_SHARE + ((100 - DOWNLOAD_SHARE) * done) / total);
  }
}

// A uid is validated by the protocol (no braces, no whitespace) but may still
// hold characters a path should not.
function workDirName(uid: string): string {
  return uid.replace(/[^A-Za-z0-9._-]/g, '_');
}

function promptFrom(previous: ChunkTranscript | undefined): string | undefined {
  if (!previous) return undefined;
  const text = previous.segments.map((s) => s.text.trim()).filter(Boolean).join(' ');
  if (text === '') return undefined;
  if (text.length <= PROMPT_CHARS) return text;
  const tail = text.slice(-PROMPT_CHARS);
  const space = tail.indexOf(' ');
  return space > 0 ? tail.slice(space + 1) : tail;
}

export async function runTask(ctx: PipelineContext, overrides: RunTaskOverrides = {}): Promise<PipelineResult> {
  const settings = resolvePipelineSettings(ctx.config);
  const { message, signal } = ctx;
  const logger = ctx.logger;
  const engine = overrides.engine ?? createEngine(settings, logger);
  const progress = new ProgressReporter((percent) => ctx.reportProgress(percent));
  const task: TaskIdentity = {
    namespace: message.namespace,
    name: message.name,
    uid: message.uid,
    kind: message.kind,
    attempt: ctx.attempt,
  };

  const workDir = join(settings.audioDir, workDirName(message.uid));
  // A crashed earlier attempt on this pod may have left files behind.
  await rm(workDir, { recursive: true, force: true });
  await mkdir(workDir, { recursive: true });
  try {
    const audio = await fetchAudio(message.spec.audio, {
      workDir,
      maxBytes: settings.audioMaxBytes,
      fileRoots: settings.audioFileRoots,
      secretsDir: settings.secretsDir,
      idleTimeoutMs: settings.audioFetchIdleTimeoutSeconds * 1000,
      signal,
      onProgress: (fraction) => progress.download(fraction),
    });
    const info = await probeAudio(audio.path, signal);
    const plan = planChunks(info.durationSeconds, settings.chunkSeconds);
    logger.info(
      { bytes: audio.bytes, durationSeconds: plan.durationSeconds, chunks: plan.chunks.length, codec: info.codec, engine: engine.name },
      'Fetched audio',
    );

    const checkpoints = new ChunkCheckpoints({
      redis: ctx.redis,
      keyPrefix: ctx.keyPrefix,
      uid: message.uid,
      ttlSeconds: message.spec.resultTTLSeconds,
      logger,
    });
    const fingerprint = runFingerprint(ctx, settings, engine, plan, audio.bytes);
    const run = new ChunkRun({ ctx, settings, engine, plan, task, workDir, source: audio.path, progress, checkpoints, logger });
    await run.restore(fingerprint);
    await run.processAll();
    const built = run.build();
    await checkpoints.clear().catch((err: unknown) => logger.warn({ err }, 'Could not delete chunk checkpoints'));
    progress.set(99);
    return built;
  } finally {
    await rm(workDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

function runFingerprint(ctx: PipelineContext, settings: PipelineSettings, engine: SpeechEngine, plan: ChunkPlan, bytes: number): string {
  const { message } = ctx;
  const options =
    message.kind === Kind.TranscriptionTask
      ? { model: message.spec.model, language: message.spec.language ?? null }
      : { minSpeakers: message.spec.minSpeakers ?? null, maxSpeakers: message.spec.maxSpeakers ?? null };
  return JSON.stringify({
    v: 1,
    kind: message.kind,
    engine: engine.identity,
    options,
    bytes,
    durationSeconds: plan.durationSeconds,
    chunkSeconds: plan.chunkSeconds,
    chunks: plan.chunks.length,
    format: settings.chunkFormat,
  });
}

interface ChunkRunOptions {
  ctx: PipelineContext;
  settings: PipelineSettings;
  engine: SpeechEngine;
  plan: ChunkPlan;
  task: TaskIdentity;
  workDir: string;
  source: string;
  progress: ProgressReporter;
  checkpoints: ChunkCheckpoints;
  logger: Logger;
}

/** One pass over a plan's chunks, for either task kind. */
class ChunkRun {
  private readonly deps: ChunkRunOptions;
  private readonly outputs: Array<ChunkTranscript | ChunkDiarization | undefined>;
  private readonly isTranscription: boolean;
  /** Reference clips of speakers heard so far, by recording label. */
  private readonly references = new Map<string, string>();
  private checkpointsWork = true;

  constructor(options: ChunkRunOptions) {
    this.deps = options;
    this.outputs = new Array(options.plan.chunks.length).fill(undefined);
    this.isTranscription = options.ctx.message.kind === Kind.TranscriptionTask;
  }

  /** Takes what an earlier attempt finished; Redis trouble only costs the head start. */
  async restore(fingerprint: string): Promise<void> {
    let saved: Map<number, unknown>;
    try {
      saved = await this.deps.checkpoints.load(fingerprint);
    } catch (err) {
      this.checkpointsWork = false;
      this.deps.logger.warn({ err }, 'Chunk checkpoints unavailable; processing every chunk');
      return;
    }
    const restored: number[] = [];
    for (const [index, value] of saved) {
      if (index >= this.outputs.length) continue;
      const parsed = this.isTranscription ? parseChunkTranscript(value) : parseChunkDiarization(value);
      if (parsed.ok) {
        this.outputs[index] = parsed.value;
        restored.push(index);
      }
    }
    if (restored.length > 0) {
      this.deps.logger.info({ restored: restored.length, chunks: this.outputs.length }, 'Resuming from chunk checkpoints');
    }
    this.deps.progress.chunks(restored.length, this.outputs.length);
  }

  async processAll(): Promise<void> {
    const { plan, ctx } = this.deps;
    for (const span of plan.chunks) {
      if (this.outputs[span.index] !== undefined) continue;
      throwIfAborted(ctx.signal);
      await this.processChunk(span);
    }
  }

  private done(): number {
    return this.outputs.filter((output) => output !== undefined).length;
  }

  private async processChunk(span: ChunkSpan): Promise<void> {
    const { ctx, settings, engine, plan, workDir, logger } = this.deps;
    const signal = ctx.signal;
    const chunk: AudioChunk = {
      path: join(workDir, `chunk-${String(span.index).padStart(5, '0')}.${settings.chunkFormat}`),
      format: settings.chunkFormat,
      index: span.index,
      count: plan.chunks.length,
      startSeconds: span.startSeconds,
      durationSeconds: chunkDuration(span),
    };
    await extractSegment({
      source: this.deps.source,
      dest: chunk.path,
      startSeconds: chunk.startSeconds,
      durationSeconds: chunk.durationSeconds,
      format: chunk.format,
      signal,
    });
    const doneBefore = this.done();
    const onProgress = (fraction: number) =>
      this.deps.progress.chunks(doneBefore + Math.min(1, Math.max(0, fraction)), plan.chunks.length);
    const started = Date.now();
    let output: ChunkTranscript | ChunkDiarization;
    try {
      const message = ctx.message;
      if (message.kind === Kind.TranscriptionTask) {
        output = await engine.transcribe(
          chunk,
          {
            task: this.deps.task,
            model: message.spec.model,
            language: message.spec.language,
            prompt: promptFrom(this.outputs[span.index - 1] as ChunkTranscript | undefined),
            onProgress,
          },
          signal,
        );
      } else {
        output = await engine.diarize(
          chunk,
          {
            task: this.deps.task,
            minSpeakers: message.spec.minSpeakers,
            maxSpeakers: message.spec.maxSpeakers,
            knownSpeakers: engine.usesKnownSpeakers ? await this.knownSpeakers(span.index) : [],
            onProgress,
          },
          signal,
        );
      }
    } finally {
      await rm(chunk.path, { force: true });
    }
    this.outputs[span.index] = output;
    logger.info(
      { chunk: span.index, chunks: plan.chunks.length, segments: output.segments.length, ms: Date.now() - started },
      'Processed chunk',
    );
    if (this.checkpointsWork) {
      await this.deps.checkpoints.save(span.index, output).catch((err: unknown) => {
        logger.warn({ err, chunk: span.index }, 'Could not checkpoint chunk');
      });
    }
    this.deps.progress.chunks(this.done(), plan.chunks.length);
  }

  /**
   * Reference clips for the speakers of chunks before `index`: each
   * speaker's longest turn, cut from the source. Recomputed from the outputs
   * so far, so a resumed run sends the same references as an uninterrupted one.
   */
  private async knownSpeakers(index: number): Promise<KnownSpeaker[]> {
    const earlier = this.outputs.slice(0, index);
    if (earlier.length === 0 || earlier.some((output) => output === undefined)) return [];
    const { plan, ctx, workDir } = this.deps;
    const message = ctx.message;
    const merged = mergeDiarizations({ ...plan, chunks: plan.chunks.slice(0, index) }, earlier as ChunkDiarization[], {
      maxSpeakers: message.kind === Kind.DiarizationTask ? message.spec.maxSpeakers : undefined,
      honourKnownLabels: this.deps.engine.usesKnownSpeakers,
    });
    const longest = new Map<string, { start: number; end: number }>();
    for (const turn of merged.segments) {
      const best = longest.get(turn.speaker);
      if (!best || turn.end - turn.start > best.end - best.start) longest.set(turn.speaker, turn);
    }
    const known: KnownSpeaker[] = [];
    for (const [label, turn] of [...longest].sort(([a], [b]) => a.localeCompare(b))) {
      if (turn.end - turn.start < REFERENCE_MIN_SECONDS) continue;
      let path = this.references.get(label);
      if (!path) {
        path = join(workDir, `speaker-${label}.wav`);
        await extractSegment({
          source: this.deps.source,
          dest: path,
          startSeconds: turn.start,
          durationSeconds: Math.min(REFERENCE_MAX_SECONDS, turn.end - turn.start),
          format: 'wav',
          signal: ctx.signal,
        });
        this.references.set(label, path);
      }
      known.push({ label, path });
    }
    return known;
  }

  build(): PipelineResult {
    const { plan, ctx, engine } = this.deps;
    const outputs = this.outputs.map((output, index) => {
      if (output === undefined) throw new Error(`chunk ${index} has no output`);
      return output;
    });
    const message = ctx.message;
    if (message.kind === Kind.TranscriptionTask) {
      const result = mergeTranscripts(plan, outputs as ChunkTranscript[], message.spec.language);
      return {
        summary: {
          ...(result.language !== undefined ? { language: result.language } : {}),
          durationSeconds: result.durationSeconds,
          segments: result.segments.length,
        },
        result,
      };
    }
    const result = mergeDiarizations(plan, outputs as ChunkDiarization[], {
      maxSpeakers: message.spec.maxSpeakers,
      honourKnownLabels: engine.usesKnownSpeakers,
    });
    return {
      summary: { durationSeconds: result.durationSeconds, segments: result.segments.length, speakers: result.speakers },
      result,
    };
  }
}

// The runtime calls the pipeline through its RunTask type; this keeps the two in step.
runTask satisfies RunTask;
