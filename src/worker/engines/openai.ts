// An engine that speaks the OpenAI audio API: POST /v1/audio/transcriptions,
// multipart. Served by OpenAI itself and by self-hosted Whisper servers
// (faster-whisper-server/speaches, whisper.cpp's server, vLLM, LocalAI).
//
// Transcription asks for verbose_json with segment timestamps. Diarization
// asks for diarized_json (OpenAI's gpt-4o-transcribe-diarize and servers
// that copy it): segments with a `speaker` field; a verbose_json answer
// whose segments carry `speaker` is accepted too. Speakers heard in earlier
// chunks are sent as known_speaker_names[] / known_speaker_references[]
// (short WAV clips as data URLs), which is how that API keeps a speaker's
// label from one request to the next.
//
// Failures: 408, 429 and 5xx, network errors and timeouts are retryable
// (EngineUnavailable), as are 401/403 (the worker's API key, not the task, is
// wrong). Any other 4xx is the engine refusing this input: unrecoverable
// (EngineRejected). A 2xx body that is not the JSON described above is
// retryable (EngineBadResponse): proxies in front of model servers answer
// 200 with an HTML page while a backend restarts, and the number of attempts
// is bounded by the task's retryPolicy anyway.
import { openAsBlob } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { PipelineReason, abortError, retryable, throwIfAborted, unrecoverable } from '../pipeline/failures.ts';
import type {
  AudioChunk,
  ChunkDiarization,
  ChunkTranscript,
  DiarizeOptions,
  SpeechEngine,
  TranscribeOptions,
} from './engine.ts';
import { normalizeLanguage } from './languages.ts';
import { parseChunkDiarization, parseChunkTranscript } from './results.ts';

export interface OpenAiEngineOptions {
  /** Server base URL: http://host:8000, http://host:8000/v1 or the full endpoint URL. */
  url: string;
  apiKey?: string | undefined;
  /** Sent instead of the task's model when set. */
  model?: string | undefined;
  /** Model for diarization, which has no model in its spec. */
  diarizationModel?: string | undefined;
  timeoutMs: number;
}

/** OpenAI accepts at most this many known speakers per request. */
export const MAX_KNOWN_SPEAKERS = 4;
const DEFAULT_DIARIZATION_MODEL = 'gpt-4o-transcribe-diarize';

export function transcriptionsEndpoint(base: string): URL {
  const url = new URL(base);
  const path = url.pathname.replace(/\/+$/, '');
  if (path.endsWith('/audio/transcriptions')) url.pathname = path;
  else if (/\/v\d+$/.test(path)) url.pathname = `${path}/audio/transcriptions`;
  else url.pathname = `${path}/v1/audio/transcriptions`;
  return url;
}

interface WireSegment {
  start?: unknown;
  end?: unknown;
  text?: unknown;
  speaker?: unknown;
}

interface WireResponse {
  text?: unknown;
  language?: unknown;
  segments?: unknown;
}

function isObject(value: unknown): value is WireSegment {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function errorMessageOf(body: string): string {
  try {
    const json = JSON.parse(body) as { error?: { message?: unknown } | string; detail?: unknown; message?: unknown };
    if (typeof json.error === 'string') return json.error;
    if (typeof json.error?.message === 'string') return json.error.message;
    if (typeof json.detail === 'string') return json.detail;
    if (typeof json.message === 'string') return json.message;
  } catch {
    // not JSON: use the text itself
  }
  return body.replace(/\s+/g, ' ').trim().slice(0, 300);
}

export class OpenAiEngine implements SpeechEngine {
  readonly name = 'openai' as const;
  readonly identity: string;
  readonly usesKnownSpeakers = true;
  private readonly endpoint: URL;
  private readonly options: OpenAiEngineOptions;

  constructor(options: OpenAiEngineOptions) {
    this.options = options;
    this.endpoint = transcriptionsEndpoint(options.url);
    this.identity = `openai ${this.endpoint.host}${this.endpoint.pathname} model=${options.model ?? '(task)'}`;
  }

  async transcribe(chunk: AudioChunk, options: TranscribeOptions, signal: AbortSignal): Promise<ChunkTranscript> {
    const form = await this.baseForm(chunk, this.options.model ?? options.model);
    form.set('response_format', 'verbose_json');
    form.append('timestamp_granularities[]', 'segment');
    if (options.language) form.set('language', options.language);
    if (options.prompt) form.set('prompt', options.prompt);
    const body = await this.post(form, chunk, signal);
    const segments = this.segmentsOf(body, chunk, false);
    const parsed = parseChunkTranscript({
      segments: segments.map((s) => (isObject(s) ? { start: s.start, end: s.end, text: typeof s.text === 'string' ? s.text.trim() : s.text } : s)),
    });
    if (!parsed.ok) throw this.badResponse(`segments do not match verbose_json: ${parsed.problem}`);
    const language = typeof body.language === 'string' ? normalizeLanguage(body.language) : undefined;
    return language === undefined ? parsed.value : { ...parsed.value, language };
  }

  async diarize(chunk: AudioChunk, options: DiarizeOptions, signal: AbortSignal): Promise<ChunkDiarization> {
    const model = this.options.diarizationModel ?? this.options.model ?? DEFAULT_DIARIZATION_MODEL;
    const form = await this.baseForm(chunk, model);
    form.set('response_format', 'diarized_json');
    // OpenAI refuses diarization of more than 30 s without it.
    form.set('chunking_strategy', 'auto');
    for (const speaker of (options.knownSpeakers ?? []).slice(0, MAX_KNOWN_SPEAKERS)) {
      const clip = await readFile(speaker.path);
      form.append('known_speaker_names[]', speaker.label);
      form.append('known_speaker_references[]', `data:audio/wav;base64,${clip.toString('base64')}`);
    }
    const body = await this.post(form, chunk, signal);
    const segments = this.segmentsOf(body, chunk, true);
    const parsed = parseChunkDiarization({
      segments: segments.map((s) => (isObject(s) ? { start: s.start, end: s.end, speaker: s.speaker } : s)),
    });
    if (!parsed.ok) throw this.badResponse(`segments do not match diarized_json: ${parsed.problem}`);
    return parsed.value;
  }

  private async baseForm(chunk: AudioChunk, model: string): Promise<FormData> {
    const form = new FormData();
    const type = chunk.format === 'flac' ? 'audio/flac' : 'audio/wav';
    // openAsBlob streams the file into the request instead of loading it.
    form.set('file', await openAsBlob(chunk.path, { type }), basename(chunk.path));
    form.set('model', model);
    return form;
  }

  private badResponse(detail: string): Error {
    return retryable(PipelineReason.EngineBadResponse, `engine at ${this.endpoint.host} gave an unusable answer: ${detail}`);
  }

  private segmentsOf(body: WireResponse, chunk: AudioChunk, needSpeaker: boolean): WireSegment[] {
    if (Array.isArray(body.segments)) {
      const segments = body.segments as WireSegment[];
      if (needSpeaker && segments.some((s) => isObject(s) && s.speaker === undefined)) {
        throw this.badResponse('diarization segments have no speaker field (does the server support diarized_json?)');
      }
      return segments;
    }
    // A plain `json` answer: one segment over the chunk, if it said anything.
    if (!needSpeaker && typeof body.text === 'string') {
      return body.text.trim() === '' ? [] : [{ start: 0, end: chunk.durationSeconds, text: body.text }];
    }
    throw this.badResponse('the answer has no segments array');
  }

  private async post(form: FormData, chunk: AudioChunk, signal: AbortSignal): Promise<WireResponse> {
    throwIfAborted(signal);
    const timeout = AbortSignal.timeout(this.options.timeoutMs);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    const where = `${this.endpoint.host}${this.endpoint.pathname}`;
    const failed = (err: unknown): Error => {
      if (signal.aborted) return abortError(signal);
      if (timeout.aborted) {
        return retryable(PipelineReason.EngineUnavailable, `engine at ${where} did not answer chunk ${chunk.index} within ${Math.round(this.options.timeoutMs / 1000)} s`, err);
      }
      const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
      const detail = typeof cause?.code === 'string' ? cause.code : err instanceof Error ? err.message : String(err);
      return retryable(PipelineReason.EngineUnavailable, `engine at ${where} is unreachable: ${detail}`, err);
    };

    let response: Response;
    let text: string;
    try {
      response = await fetch(this.endpoint, { method: 'POST', body: form, headers, signal: AbortSignal.any([signal, timeout]) });
      text = await response.text();
    } catch (err) {
      throw failed(err);
    }
    if (!response.ok) {
      const what = `engine at ${where} answered ${response.status} for chunk ${chunk.index}: ${errorMessageOf(text)}`;
      if (response.status === 408 || response.status === 429 || response.status >= 500) {
        throw retryable(PipelineReason.EngineUnavailable, what);
      }
      if (response.status === 401 || response.status === 403) {
        throw retryable(PipelineReason.EngineMisconfigured, `${what} (check the worker's engine API key)`);
      }
      throw unrecoverable(PipelineReason.EngineRejected, what);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw this.badResponse(`not JSON: ${text.replace(/\s+/g, ' ').slice(0, 120)}`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw this.badResponse('not a JSON object');
    return json as WireResponse;
  }
}
