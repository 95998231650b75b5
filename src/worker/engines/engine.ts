// The one interface every speech engine implements. The pipeline cuts the
// audio into chunks and calls an engine once per chunk; times in what an
// engine returns are seconds from the start of that chunk, and the pipeline
// shifts them onto the recording's timeline when it merges.
import type { TaskKind } from '../../api/index.ts';
import type { ChunkFormat, EngineName } from '../pipeline/settings.ts';

export interface AudioChunk {
  /** 16 kHz mono WAV or FLAC, as `format` says. */
  path: string;
  format: ChunkFormat;
  /** 0-based position of this chunk, and how many there are. */
  index: number;
  count: number;
  /** Where the chunk starts in the whole recording, and how long it is. */
  startSeconds: number;
  durationSeconds: number;
}

export interface TaskIdentity {
  namespace: string;
  name: string;
  uid: string;
  kind: TaskKind;
  attempt: number;
}

interface CallOptions {
  task: TaskIdentity;
  /** Fraction 0..1 of this chunk done, for engines that can tell. */
  onProgress?: (fraction: number) => void;
}

export interface TranscribeOptions extends CallOptions {
  model: string;
  /** ISO 639-1; undefined lets the engine detect it. */
  language?: string | undefined;
  /** The end of the previous chunk's text, so the engine can carry context over the cut. */
  prompt?: string | undefined;
}

/** A reference recording of a speaker already heard in an earlier chunk. */
export interface KnownSpeaker {
  /** The label the merged result gives this speaker, e.g. SPEAKER_00. */
  label: string;
  /** A short 16 kHz mono WAV of that speaker alone. */
  path: string;
}

export interface DiarizeOptions extends CallOptions {
  minSpeakers?: number | undefined;
  maxSpeakers?: number | undefined;
  /**
   * Speakers from earlier chunks. Engines that can match voices against
   * references (OpenAI's known_speaker_references) label them with the
   * given label, which keeps speaker identity across chunks.
   */
  knownSpeakers?: readonly KnownSpeaker[];
}

export interface TranscriptSegment {
  start: number;
  end: number;
  text: string;
}

export interface ChunkTranscript {
  /** Language the engine detected or used, if it says. */
  language?: string | undefined;
  segments: TranscriptSegment[];
}

export interface SpeakerTurn {
  start: number;
  end: number;
  speaker: string;
}

export interface ChunkDiarization {
  segments: SpeakerTurn[];
  /**
   * One voice embedding per speaker label of this chunk. When every chunk
   * carries them, the merge links speakers across chunks by cosine
   * similarity; without them, labels are taken as the engine gave them.
   */
  speakerEmbeddings?: Record<string, number[]> | undefined;
}

export interface SpeechEngine {
  readonly name: EngineName;
  /**
   * Identifies what the engine would produce (engine, model, command). A
   * checkpoint made under another identity is not reused: mixing outputs of
   * two models in one transcript would be wrong.
   */
  readonly identity: string;
  /** True when diarize() uses `knownSpeakers`; the pipeline only cuts reference clips for such engines. */
  readonly usesKnownSpeakers: boolean;
  transcribe(chunk: AudioChunk, options: TranscribeOptions, signal: AbortSignal): Promise<ChunkTranscript>;
  diarize(chunk: AudioChunk, options: DiarizeOptions, signal: AbortSignal): Promise<ChunkDiarization>;
}
