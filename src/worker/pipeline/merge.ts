// Stitching per-chunk engine outputs into one result on the recording's
// timeline (formats: docs/results.md).
import type { ChunkDiarization, ChunkTranscript } from '../engines/engine.ts';
import { roundSeconds } from './chunks.ts';
import type { ChunkPlan, ChunkSpan } from './chunks.ts';

export interface TranscriptionResult {
  language?: string;
  durationSeconds: number;
  text: string;
  segments: Array<{ id: number; start: number; end: number; text: string }>;
}

export interface DiarizationResult {
  speakers: number;
  durationSeconds: number;
  segments: Array<{ start: number; end: number; speaker: string }>;
}

/** Places a chunk-relative [start, end] on the recording's timeline, inside the chunk. */
function place(span: ChunkSpan, start: number, end: number): { start: number; end: number } {
  const placedStart = roundSeconds(Math.min(span.endSeconds, Math.max(span.startSeconds, span.startSeconds + start)));
  const placedEnd = roundSeconds(Math.min(span.endSeconds, Math.max(placedStart, span.startSeconds + end)));
  return { start: placedStart, end: placedEnd };
}

function spanOf(plan: ChunkPlan, index: number): ChunkSpan {
  const span = plan.chunks[index];
  if (!span) throw new RangeError(`chunk ${index} is not in the plan`);
  return span;
}

/**
 * Transcript segments in order, without overlaps: each starts where the one
 * before it ended at the earliest. Chunks do not overlap, so nothing is
 * transcribed twice; clamping to the chunk keeps an engine's overshoot past
 * the end of its audio from reaching into the next chunk.
 */
export function mergeTranscripts(plan: ChunkPlan, outputs: readonly ChunkTranscript[], requestedLanguage?: string): TranscriptionResult {
  const segments: TranscriptionResult['segments'] = [];
  const languageSeconds = new Map<string, number>();
  let previousEnd = 0;
  outputs.forEach((output, index) => {
    const span = spanOf(plan, index);
    if (output.language) {
      languageSeconds.set(output.language, (languageSeconds.get(output.language) ?? 0) + (span.endSeconds - span.startSeconds));
    }
    const ordered = [...output.segments].sort((a, b) => a.start - b.start || a.end - b.end);
    for (const segment of ordered) {
      const text = segment.text.trim();
      if (text === '') continue;
      const placed = place(span, segment.start, segment.end);
      const start = Math.max(placed.start, previousEnd);
      const end = Math.max(start, placed.end);
      segments.push({ id: segments.length, start, end, text });
      previousEnd = end;
    }
  });
  // The language spoken longest, when the engine detected it per chunk.
  let detected: string | undefined;
  let longest = -1;
  for (const [language, seconds] of languageSeconds) {
    if (seconds > longest) {
      detected = language;
      longest = seconds;
    }
  }
  const language = requestedLanguage ?? detected;
  return {
    ...(language !== undefined ? { language } : {}),
    durationSeconds: plan.durationSeconds,
    text: segments.map((s) => s.text).join(' '),
    segments,
  };
}

// ---------------------------------------------------------------------------
// Speakers across chunks

/** Cosine similarity above which two chunks' voices are taken to be one speaker. */
export const SPEAKER_SIMILARITY_THRESHOLD = 0.6;

export function speakerLabel(n: number): string {
  return `SPEAKER_${String(n).padStart(2, '0')}`;
}

function cosine(a: readonly number[], b: readonly number[]): number {
  let dot = 0;
  let normA = 0;
  let normB = 0;
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    dot += x * y;
    normA += x * x;
    normB += y * y;
  }
  return normA === 0 || normB === 0 ? 0 : dot / Math.sqrt(normA * normB);
}

function normalized(vector: readonly number[]): number[] {
  const norm = Math.sqrt(vector.reduce((sum, x) => sum + x * x, 0));
  return norm === 0 ? [...vector] : vector.map((x) => x / norm);
}

/**
 * Gives each chunk's local speaker labels a label of the whole recording,
 * SPEAKER_00, SPEAKER_01, ... in order of first appearance.
 *
 * A local label is the same speaker as an earlier one when
 *   - the engine was given that label as a known speaker and used it, or
 *   - its voice embedding is close to that speaker's (cosine >= threshold).
 * Otherwise it is a new speaker: labels alone never link chunks, since a
 * diarizer numbers the voices of each request afresh. Two labels of one
 * chunk never become one speaker, and past maxSpeakers a voice joins its
 * nearest speaker instead of making a new one.
 */
export class SpeakerLinker {
  private readonly centroids: number[][] = [];
  private readonly maxSpeakers: number;
  private readonly honourKnownLabels: boolean;

  constructor(options: { maxSpeakers?: number | undefined; honourKnownLabels: boolean }) {
    this.maxSpeakers = options.maxSpeakers ?? Number.POSITIVE_INFINITY;
    this.honourKnownLabels = options.honourKnownLabels;
  }

  get count(): number {
    return this.centroids.length;
  }

  get labels(): string[] {
    return this.centroids.map((_, n) => speakerLabel(n));
  }

  /** Maps the chunk's local labels to recording labels, and learns its voices. */
  assign(output: ChunkDiarization): Map<string, string> {
    const firstSeen = new Map<string, number>();
    for (const turn of output.segments) {
      firstSeen.set(turn.speaker, Math.min(firstSeen.get(turn.speaker) ?? Number.POSITIVE_INFINITY, turn.start));
    }
    const locals = [...firstSeen.keys()].sort((a, b) => (firstSeen.get(a) ?? 0) - (firstSeen.get(b) ?? 0) || a.localeCompare(b));
    const known = new Set(this.labels);
    const taken = new Set<number>();
    const mapping = new Map<string, string>();

    // Labels the engine matched against references come first, so voices
    // after them cannot claim those speakers.
    for (const local of locals) {
      if (this.honourKnownLabels && known.has(local)) {
        const n = Number(local.slice('SPEAKER_'.length));
        taken.add(n);
        mapping.set(local, local);
        this.learn(n, output.speakerEmbeddings?.[local]);
      }
    }
    for (const local of locals) {
      if (mapping.has(local)) continue;
      const embedding = output.speakerEmbeddings?.[local];
      let best = -1;
      let bestSimilarity = Number.NEGATIVE_INFINITY;
      if (embedding) {
        this.centroids.forEach((centroid, n) => {
          if (taken.has(n) || centroid.length === 0) return;
          const similarity = cosine(centroid, embedding);
          if (similarity > bestSimilarity) {
            best = n;
            bestSimilarity = similarity;
          }
        });
      }
      let n: number;
      if (best >= 0 && (bestSimilarity >= SPEAKER_SIMILARITY_THRESHOLD || this.centroids.length >= this.maxSpeakers)) n = best;
      else {
        n = this.centroids.length;
        this.centroids.push([]);
      }
      taken.add(n);
      mapping.set(local, speakerLabel(n));
      this.learn(n, embedding);
    }
    return mapping;
  }

  private learn(n: number, embedding: readonly number[] | undefined): void {
    if (!embedding) return;
    const unit = normalized(embedding);
    const centroid = this.centroids[n];
    if (!centroid) return;
    if (centroid.length === 0) centroid.push(...unit);
    else for (let i = 0; i < centroid.length; i++) centroid[i] = (centroid[i] ?? 0) + (unit[i] ?? 0);
  }
}

/** A turn cut by a chunk boundary is joined back when both halves are this close to the cut. */
const BOUNDARY_JOIN_SECONDS = 0.5;

/**
 * Speaker turns on the recording's timeline, with recording-wide labels.
 * Turns may overlap (people talk over each other); a turn that a chunk
 * boundary cut in two is one turn again.
 */
export function mergeDiarizations(
  plan: ChunkPlan,
  outputs: readonly ChunkDiarization[],
  options: { maxSpeakers?: number | undefined; honourKnownLabels: boolean },
): DiarizationResult {
  const linker = new SpeakerLinker(options);
  const turns: DiarizationResult['segments'] = [];
  outputs.forEach((output, index) => {
    const span = spanOf(plan, index);
    const mapping = linker.assign(output);
    for (const turn of output.segments) {
      const placed = place(span, turn.start, turn.end);
      if (placed.end <= placed.start) continue;
      turns.push({ ...placed, speaker: mapping.get(turn.speaker) ?? turn.speaker });
    }
  });
  turns.sort((a, b) => a.start - b.start || a.end - b.end || a.speaker.localeCompare(b.speaker));

  const boundaries = plan.chunks.slice(1).map((span) => span.startSeconds);
  const nearBoundary = (end: number, start: number) =>
    boundaries.some((b) => end >= b - BOUNDARY_JOIN_SECONDS && end <= b + 1e-6 && start >= b - 1e-6 && start <= b + BOUNDARY_JOIN_SECONDS);
  const joined: DiarizationResult['segments'] = [];
  const lastBySpeaker = new Map<string, DiarizationResult['segments'][number]>();
  for (const turn of turns) {
    const last = lastBySpeaker.get(turn.speaker);
    if (last && nearBoundary(last.end, turn.start)) {
      last.end = Math.max(last.end, turn.end);
      continue;
    }
    const copy = { ...turn };
    joined.push(copy);
    lastBySpeaker.set(turn.speaker, copy);
  }
  const speakers = new Set(joined.map((turn) => turn.speaker));
  return { speakers: speakers.size, durationSeconds: plan.durationSeconds, segments: joined };
}
