// ffprobe and ffmpeg: what the audio is, and cutting it into what engines take.
import { CommandStartError, describeExit, runCommand, stderrSummary } from './run-command.ts';
import type { CommandOutcome } from './run-command.ts';
import { PipelineReason, abortError, retryable, unrecoverable } from './failures.ts';
import type { ChunkFormat } from './settings.ts';

export const FFPROBE = process.env.TQ_FFPROBE_BIN ?? 'ffprobe';
export const FFMPEG = process.env.TQ_FFMPEG_BIN ?? 'ffmpeg';

/** What engines receive: 16 kHz mono, the rate speech models are trained on. */
export const ENGINE_SAMPLE_RATE = 16_000;

export interface AudioInfo {
  durationSeconds: number;
  codec: string | undefined;
  sampleRate: number | undefined;
  channels: number | undefined;
  formatName: string | undefined;
}

async function run(argv: string[], signal: AbortSignal, what: string): Promise<CommandOutcome> {
  let outcome: CommandOutcome;
  try {
    outcome = await runCommand(argv, { signal, killGraceMs: 2000 });
  } catch (err) {
    if (err instanceof CommandStartError) {
      throw retryable(PipelineReason.WorkerFailure, `${what}: ${err.message} (is ffmpeg installed on this worker?)`, err);
    }
    throw err;
  }
  if (outcome.aborted) throw abortError(signal);
  return outcome;
}

// A full disk or a killed helper is this worker's trouble; another worker may do fine.
function isWorkerTrouble(outcome: CommandOutcome): boolean {
  return outcome.signal !== null || /No space left on device|Cannot allocate memory|Too many open files/i.test(outcome.stderrTail);
}

interface ProbeJson {
  streams?: Array<{ codec_type?: string; codec_name?: string; sample_rate?: string; channels?: number; duration?: string }>;
  format?: { duration?: string; format_name?: string };
}

function positiveNumber(value: string | undefined): number | undefined {
  const parsed = Number(value);
  return value !== undefined && Number.isFinite(parsed) && parsed > 0 ? parsed : undefined;
}

/** Reads the first audio stream's facts; InvalidAudio when there is none. */
export async function probeAudio(path: string, signal: AbortSignal): Promise<AudioInfo> {
  const outcome = await run(
    [FFPROBE, '-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', '-select_streams', 'a:0', path],
    signal,
    'ffprobe',
  );
  if (outcome.code !== 0) {
    if (isWorkerTrouble(outcome)) {
      throw retryable(PipelineReason.WorkerFailure, `ffprobe ${describeExit(outcome)}: ${stderrSummary(outcome.stderrTail, 5)}`);
    }
    throw unrecoverable(PipelineReason.InvalidAudio, `the audio cannot be read: ${stderrSummary(outcome.stderrTail, 5) || describeExit(outcome)}`);
  }
  let probe: ProbeJson;
  try {
    probe = JSON.parse(outcome.stdout) as ProbeJson;
  } catch (err) {
    throw retryable(PipelineReason.WorkerFailure, 'ffprobe printed something that is not JSON', err);
  }
  const stream = probe.streams?.find((s) => s.codec_type === 'audio');
  if (!stream) throw unrecoverable(PipelineReason.InvalidAudio, 'the file has no audio stream');
  const durationSeconds =
    positiveNumber(probe.format?.duration) ?? positiveNumber(stream.duration) ?? (await measureByDecoding(path, signal));
  if (durationSeconds === undefined || durationSeconds <= 0) {
    throw unrecoverable(PipelineReason.InvalidAudio, 'the audio has no duration (empty or undecodable)');
  }
  return {
    durationSeconds,
    codec: stream.codec_name,
    sampleRate: positiveNumber(stream.sample_rate),
    channels: stream.channels,
    formatName: probe.format?.format_name,
  };
}

// Some containers (raw ADTS, some streams) carry no duration; decoding the
// whole file once is slow but exact, and only happens for those.
async function measureByDecoding(path: string, signal: AbortSignal): Promise<number | undefined> {
  const outcome = await run(
    [FFMPEG, '-nostdin', '-v', 'error', '-i', path, '-map', '0:a:0', '-f', 'null', '-progress', 'pipe:1', '-'],
    signal,
    'ffmpeg',
  );
  if (outcome.code !== 0) {
    throw unrecoverable(PipelineReason.InvalidAudio, `the audio cannot be decoded: ${stderrSummary(outcome.stderrTail, 5) || describeExit(outcome)}`);
  }
  let last: number | undefined;
  for (const match of outcome.stdout.matchAll(/^out_time_us=(\d+)$/gm)) last = Number(match[1]) / 1e6;
  return last;
}

/**
 * Writes [startSeconds, startSeconds + durationSeconds) of `source` to `dest`
 * as 16 kHz mono WAV (16-bit PCM) or FLAC. Seeking before -i is exact when
 * transcoding, and keeps the cost per chunk independent of its position.
 */
export async function extractSegment(options: {
  source: string;
  dest: string;
  startSeconds: number;
  durationSeconds: number;
  format: ChunkFormat;
  signal: AbortSignal;
}): Promise<void> {
  const codec = options.format === 'flac' ? ['-c:a', 'flac'] : ['-c:a', 'pcm_s16le'];
  const outcome = await run(
    [
      FFMPEG, '-nostdin', '-v', 'error', '-y',
      '-ss', options.startSeconds.toFixed(3),
      '-t', options.durationSeconds.toFixed(3),
      '-i', options.source,
      '-map', '0:a:0', '-vn', '-sn', '-dn',
      '-ac', '1', '-ar', String(ENGINE_SAMPLE_RATE),
      ...codec,
      '-f', options.format,
      options.dest,
    ],
    options.signal,
    'ffmpeg',
  );
  if (outcome.code !== 0) {
    const detail = stderrSummary(outcome.stderrTail, 5) || describeExit(outcome);
    if (isWorkerTrouble(outcome)) throw retryable(PipelineReason.WorkerFailure, `ffmpeg ${describeExit(outcome)}: ${detail}`);
    throw unrecoverable(PipelineReason.InvalidAudio, `the audio cannot be decoded at ${options.startSeconds.toFixed(1)} s: ${detail}`);
  }
}
