// An engine that runs a command once per chunk: any model wrapped in a script.
//
// Contract with the command (docs/results.md, "exec engine"):
//   argv      TQ_ENGINE_EXEC_COMMAND, run without a shell
//   stdin     one JSON object: operation, task, chunk, input, output, options
//   env       the worker's environment without its own TQ_* settings, plus
//             TQ_OPERATION, TQ_INPUT_FILE, TQ_OUTPUT_FILE, TQ_CHUNK_* and
//             TQ_MODEL / TQ_LANGUAGE / TQ_MIN_SPEAKERS / TQ_MAX_SPEAKERS
//   stdout    lines `progress <percent of this chunk>`, e.g. `progress 42.5`;
//             other lines are logged
//   output    the chunk's result JSON written to TQ_OUTPUT_FILE
//   exit      0 ok; 2 or 65 (EX_DATAERR): the input is bad, do not retry;
//             anything else, or death by a signal: retry
// On abort the command's process group gets SIGTERM, then SIGKILL after the
// grace period.
import { readFile, rm } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';
import { PipelineReason, abortError, retryable, throwIfAborted, unrecoverable } from '../pipeline/failures.ts';
import { CommandStartError, describeExit, runCommand, stderrSummary } from '../pipeline/run-command.ts';
import type {
  AudioChunk,
  ChunkDiarization,
  ChunkTranscript,
  DiarizeOptions,
  SpeechEngine,
  TaskIdentity,
  TranscribeOptions,
} from './engine.ts';
import { parseChunkDiarization, parseChunkTranscript } from './results.ts';
import type { ParseOutcome } from './results.ts';

/** Exit codes that mean "this input can never work": the task fails without a retry. */
export const PERMANENT_EXIT_CODES: ReadonlySet<number> = new Set([2, 65]);

const PROGRESS_LINE = /^progress[:\s]\s*(\d+(?:\.\d+)?)\s*%?\s*$/i;

export interface ExecEngineOptions {
  command: readonly string[];
  timeoutMs: number;
  killGraceMs: number;
  /** Lines the command prints that are not progress; for the task's log. */
  onOutputLine?: (line: string) => void;
  /** Base environment; the worker's own by default. */
  env?: NodeJS.ProcessEnv;
}

/** Parses a stdout line; the percent (0..100) for a progress line, otherwise undefined. */
export function parseProgressLine(line: string): number | undefined {
  const match = PROGRESS_LINE.exec(line.trim());
  if (!match) return undefined;
  const percent = Number(match[1]);
  return Number.isFinite(percent) ? Math.min(100, Math.max(0, percent)) : undefined;
}

// The worker's TQ_* variables are its own configuration (including API keys
// and server URLs) and none of the engine's business.
function engineEnvironment(base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(base)) if (!key.startsWith('TQ_')) env[key] = value;
  return env;
}

type Operation = 'transcribe' | 'diarize';

export class ExecEngine implements SpeechEngine {
  readonly name = 'exec' as const;
  readonly identity: string;
  // Scripts around pyannote and the like number their speakers afresh per
  // call; their voice embeddings are what links chunks (speakerEmbeddings).
  readonly usesKnownSpeakers = false;
  private readonly options: ExecEngineOptions;

  constructor(options: ExecEngineOptions) {
    if (options.command.length === 0 || options.command[0] === '') {
      throw new Error('the exec engine needs a command (TQ_ENGINE_EXEC_COMMAND)');
    }
    this.options = options;
    this.identity = `exec ${JSON.stringify(options.command)}`;
  }

  async transcribe(chunk: AudioChunk, options: TranscribeOptions, signal: AbortSignal): Promise<ChunkTranscript> {
    const env: Record<string, string> = { TQ_MODEL: options.model };
    if (options.language) env.TQ_LANGUAGE = options.language;
    const json = await this.run('transcribe', chunk, options.task, {
      model: options.model,
      language: options.language ?? null,
      prompt: options.prompt ?? null,
    }, env, signal, options.onProgress);
    return this.parsed(parseChunkTranscript(json), chunk);
  }

  async diarize(chunk: AudioChunk, options: DiarizeOptions, signal: AbortSignal): Promise<ChunkDiarization> {
    const env: Record<string, string> = {};
    if (options.minSpeakers !== undefined) env.TQ_MIN_SPEAKERS = String(options.minSpeakers);
    if (options.maxSpeakers !== undefined) env.TQ_MAX_SPEAKERS = String(options.maxSpeakers);
    const json = await this.run('diarize', chunk, options.task, {
      minSpeakers: options.minSpeakers ?? null,
      maxSpeakers: options.maxSpeakers ?? null,
    }, env, signal, options.onProgress);
    return this.parsed(parseChunkDiarization(json), chunk);
  }

  private parsed<T>(outcome: ParseOutcome<T>, chunk: AudioChunk): T {
    if (outcome.ok) return outcome.value;
    throw retryable(PipelineReason.EngineBadResponse, `exec engine wrote an unusable result for chunk ${chunk.index}: ${outcome.problem}`);
  }

  private async run(
    operation: Operation,
    chunk: AudioChunk,
    task: TaskIdentity,
    options: Record<string, unknown>,
    extraEnv: Record<string, string>,
    signal: AbortSignal,
    onProgress: ((fraction: number) => void) | undefined,
  ): Promise<unknown> {
    throwIfAborted(signal);
    const output = join(dirname(chunk.path), `${basename(chunk.path).replace(/\.[^.]+$/, '')}.result.json`);
    await rm(output, { force: true });
    const request = {
      operation,
      task,
      chunk: {
        index: chunk.index,
        count: chunk.count,
        startSeconds: chunk.startSeconds,
        durationSeconds: chunk.durationSeconds,
        format: chunk.format,
      },
      input: chunk.path,
      output,
      options,
    };
    const env = {
      ...engineEnvironment(this.options.env ?? process.env),
      ...extraEnv,
      TQ_OPERATION: operation,
      TQ_TASK_KIND: task.kind,
      TQ_INPUT_FILE: chunk.path,
      TQ_OUTPUT_FILE: output,
      TQ_CHUNK_INDEX: String(chunk.index),
      TQ_CHUNK_COUNT: String(chunk.count),
      TQ_CHUNK_START_SECONDS: String(chunk.startSeconds),
      TQ_CHUNK_DURATION_SECONDS: String(chunk.durationSeconds),
    };
    const timeout = AbortSignal.timeout(this.options.timeoutMs);
    const command = this.options.command[0] ?? '';
    let outcome;
    try {
      outcome = await runCommand(this.options.command, {
        signal: AbortSignal.any([signal, timeout]),
        env,
        cwd: dirname(chunk.path),
        stdin: `${JSON.stringify(request)}\n`,
        killGraceMs: this.options.killGraceMs,
        onStdoutLine: (line) => {
          const percent = parseProgressLine(line);
          if (percent !== undefined) onProgress?.(percent / 100);
          else if (line.trim() !== '') this.options.onOutputLine?.(line);
        },
      });
    } catch (err) {
      if (err instanceof CommandStartError) {
        throw retryable(PipelineReason.EngineMisconfigured, `exec engine ${err.message}`, err);
      }
      throw err;
    }
    if (signal.aborted) throw abortError(signal);
    const stderr = stderrSummary(outcome.stderrTail);
    const withStderr = (text: string) => (stderr ? `${text}; stderr:\n${stderr}` : text);
    if (outcome.aborted && timeout.aborted) {
      throw retryable(
        PipelineReason.EngineUnavailable,
        withStderr(`exec engine ${command} did not finish chunk ${chunk.index} within ${Math.round(this.options.timeoutMs / 1000)} s`),
      );
    }
    if (outcome.code !== 0) {
      const what = `exec engine ${command} ${describeExit(outcome)} on chunk ${chunk.index}`;
      if (outcome.code !== null && PERMANENT_EXIT_CODES.has(outcome.code)) {
        throw unrecoverable(PipelineReason.EngineRejected, withStderr(what));
      }
      throw retryable(PipelineReason.EngineFailed, withStderr(what));
    }
    let text: string;
    try {
      text = await readFile(output, 'utf8');
    } catch {
      throw retryable(PipelineReason.EngineBadResponse, withStderr(`exec engine ${command} exited 0 but wrote no ${output}`));
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw retryable(PipelineReason.EngineBadResponse, withStderr(`exec engine ${command} wrote a result that is not JSON`));
    } finally {
      await rm(output, { force: true });
    }
  }
}
