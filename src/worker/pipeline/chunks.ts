// Where a recording is cut. The plan depends only on the duration and the
// chunk length, so a retry on another worker cuts at the same places and can
// reuse the chunks an earlier attempt finished.

export interface ChunkSpan {
  index: number;
  startSeconds: number;
  endSeconds: number;
}

export interface ChunkPlan {
  durationSeconds: number;
  chunkSeconds: number;
  chunks: ChunkSpan[];
}

/** Milliseconds: finer than any engine's timestamps, coarse enough to compare plans exactly. */
export function roundSeconds(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/**
 * Cuts [0, duration) into chunks of `chunkSeconds`. A remainder shorter than
 * a quarter chunk (at most 10 s) joins the chunk before it: an engine given a
 * sliver of audio tends to hallucinate, and a whole request for it is waste.
 */
export function planChunks(durationSeconds: number, chunkSeconds: number): ChunkPlan {
  if (!(durationSeconds > 0)) throw new RangeError(`duration must be positive, got ${durationSeconds}`);
  if (!(chunkSeconds > 0)) throw new RangeError(`chunk length must be positive, got ${chunkSeconds}`);
  const duration = Math.max(0.001, roundSeconds(durationSeconds));
  const foldBelow = Math.min(chunkSeconds / 4, 10);
  const chunks: ChunkSpan[] = [];
  let start = 0;
  while (start < duration) {
    let end = roundSeconds(Math.min(duration, start + chunkSeconds));
    if (duration - end < foldBelow) end = duration;
    chunks.push({ index: chunks.length, startSeconds: start, endSeconds: end });
    start = end;
  }
  return { durationSeconds: duration, chunkSeconds, chunks };
}

export function chunkDuration(span: ChunkSpan): number {
  return roundSeconds(span.endSeconds - span.startSeconds);
}
