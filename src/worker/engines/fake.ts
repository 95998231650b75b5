// A deterministic engine with no model behind it, for demos and tests on
// machines without a GPU. It takes a fixed time per chunk and makes up
// segments from the chunk's position and length alone, so the same audio
// always gives the same result, wherever the chunks were cut.
import { abortError } from '../pipeline/failures.ts';
import type {
  AudioChunk,
  ChunkDiarization,
  ChunkTranscript,
  DiarizeOptions,
  SpeakerTurn,
  SpeechEngine,
  TranscribeOptions,
  TranscriptSegment,
} from './engine.ts';

const WORDS = [
  'the', 'queue', 'worker', 'takes', 'a', 'task', 'and', 'reports', 'progress', 'while', 'the', 'model',
  'listens', 'to', 'every', 'chunk', 'of', 'audio', 'until', 'the', 'recording', 'ends', 'cleanly', 'today',
];

/** Length of a made-up utterance; segments are cut on this grid of the whole recording. */
export const FAKE_SEGMENT_SECONDS = 2.5;
/** Length of one speaker's turn in a made-up conversation. */
export const FAKE_TURN_SECONDS = 3;
const DEFAULT_SPEAKERS = 2;

export interface FakeEngineOptions {
  /** Time spent per chunk, in milliseconds. */
  chunkMs: number;
}

async function pause(ms: number, signal: AbortSignal, onProgress?: (fraction: number) => void): Promise<void> {
  if (signal.aborted) throw abortError(signal);
  if (ms <= 0) return;
  // Two halves, so a progress report lands in the middle of a chunk as with a real engine.
  for (const fraction of [0.5, 1]) {
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        clearTimeout(timer);
        reject(abortError(signal));
      };
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms / 2);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    onProgress?.(fraction);
  }
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/**
 * Pieces of the grid [k*step, (k+1)*step) of the whole recording that fall
 * inside the chunk, in chunk-relative seconds. Cutting on a global grid is
 * what makes the merged result independent of the chunk length.
 */
function gridPieces(chunk: AudioChunk, step: number): Array<{ slot: number; start: number; end: number }> {
  const chunkStart = chunk.startSeconds;
  const chunkEnd = chunk.startSeconds + chunk.durationSeconds;
  const pieces: Array<{ slot: number; start: number; end: number }> = [];
  for (let slot = Math.floor(chunkStart / step); slot * step < chunkEnd; slot++) {
    const start = Math.max(chunkStart, slot * step);
    const end = Math.min(chunkEnd, (slot + 1) * step);
    if (end - start > 0.001) pieces.push({ slot, start: round(start - chunkStart), end: round(end - chunkStart) });
  }
  return pieces;
}

function sentence(slot: number): string {
  const length = 4 + (slot % 5);
  const words: string[] = [];
  for (let i = 0; i < length; i++) words.push(WORDS[(slot * 7 + i * 3) % WORDS.length] ?? 'audio');
  const text = words.join(' ');
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
}

function speakerCount(options: DiarizeOptions): number {
  const min = options.minSpeakers ?? 1;
  const max = options.maxSpeakers ?? Math.max(min, DEFAULT_SPEAKERS);
  return Math.min(Math.max(DEFAULT_SPEAKERS, min), max);
}

export class FakeEngine implements SpeechEngine {
  readonly name = 'fake' as const;
  readonly identity = 'fake/v1';
  readonly usesKnownSpeakers = false;
  private readonly chunkMs: number;

  constructor(options: FakeEngineOptions) {
    this.chunkMs = options.chunkMs;
  }

  async transcribe(chunk: AudioChunk, options: TranscribeOptions, signal: AbortSignal): Promise<ChunkTranscript> {
    await pause(this.chunkMs, signal, options.onProgress);
    const segments: TranscriptSegment[] = gridPieces(chunk, FAKE_SEGMENT_SECONDS).map((piece) => ({
      start: piece.start,
      end: piece.end,
      text: sentence(piece.slot),
    }));
    return { language: options.language ?? 'en', segments };
  }

  async diarize(chunk: AudioChunk, options: DiarizeOptions, signal: AbortSignal): Promise<ChunkDiarization> {
    await pause(this.chunkMs, signal, options.onProgress);
    const speakers = speakerCount(options);
    // Local labels are shuffled from chunk to chunk, as with a real
    // diarizer; the embeddings (one axis per voice) let the merge tell who is who.
    const speakerEmbeddings: Record<string, number[]> = {};
    const segments: SpeakerTurn[] = gridPieces(chunk, FAKE_TURN_SECONDS).map((piece) => {
      const voice = piece.slot % speakers;
      const label = `chunk${chunk.index}-voice${(voice + chunk.index) % speakers}`;
      speakerEmbeddings[label] = Array.from({ length: speakers }, (_, axis) => (axis === voice ? 1 : 0));
      return { start: piece.start, end: piece.end, speaker: label };
    });
    return { segments, speakerEmbeddings };
  }
}
