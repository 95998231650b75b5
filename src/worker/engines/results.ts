// Parsing what engines return into ChunkTranscript / ChunkDiarization. The
// same schemas read checkpoints back from Redis, so a checkpoint written by
// an older worker is checked like any engine output.
import { z } from 'zod';
import type { ChunkDiarization, ChunkTranscript } from './engine.ts';

const seconds = z.number().refine(Number.isFinite, { message: 'must be a finite number' });

// Engines round times and occasionally put an end a hair before its start or
// a start a hair below zero; that is noise, not a broken answer.
function tidyTimes<T extends { start: number; end: number }>(segment: T): T {
  const start = Math.max(0, segment.start);
  return { ...segment, start, end: Math.max(start, segment.end) };
}

export const TranscriptSegmentSchema = z.object({ start: seconds, end: seconds, text: z.string() }).transform(tidyTimes);

export const ChunkTranscriptSchema = z.object({
  language: z.string().min(1).max(32).optional(),
  segments: z.array(TranscriptSegmentSchema),
});

export const SpeakerTurnSchema = z
  .object({
    start: seconds,
    end: seconds,
    speaker: z.union([z.string().min(1).max(128), z.int().min(0)]).transform(String),
  })
  .transform(tidyTimes);

export const ChunkDiarizationSchema = z.object({
  segments: z.array(SpeakerTurnSchema),
  speakerEmbeddings: z.record(z.string(), z.array(seconds).min(1)).optional(),
});

export type ParseOutcome<T> = { ok: true; value: T } | { ok: false; problem: string };

function describe(error: z.ZodError): string {
  const first = error.issues[0];
  if (!first) return 'invalid';
  const path = first.path.map(String).join('.');
  return `${path ? `${path}: ` : ''}${first.message}${error.issues.length > 1 ? ` (and ${error.issues.length - 1} more)` : ''}`;
}

export function parseChunkTranscript(value: unknown): ParseOutcome<ChunkTranscript> {
  const parsed = ChunkTranscriptSchema.safeParse(value);
  if (!parsed.success) return { ok: false, problem: describe(parsed.error) };
  const { language, segments } = parsed.data;
  return { ok: true, value: language === undefined ? { segments } : { language, segments } };
}

export function parseChunkDiarization(value: unknown): ParseOutcome<ChunkDiarization> {
  const parsed = ChunkDiarizationSchema.safeParse(value);
  if (!parsed.success) return { ok: false, problem: describe(parsed.error) };
  const { segments, speakerEmbeddings } = parsed.data;
  return { ok: true, value: speakerEmbeddings === undefined ? { segments } : { segments, speakerEmbeddings } };
}
