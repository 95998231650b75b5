// A pipeline that does no work: it sleeps chunk by chunk and reports
// progress, honouring the abort signal like the real one. It lets a worker
// process run end to end (demos, process-level tests of shutdown and crash
// handling) without audio, ffmpeg or an engine. Selected by TQ_PIPELINE=stub.
import { TaskCancelledError } from './errors.ts';
import type { RunTask, TaskContext, TaskRunResult } from './task-context.ts';

export interface StubPipelineOptions {
  chunks: number;
  chunkMs: number;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason instanceof Error ? signal.reason : new TaskCancelledError('the task was aborted'));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export function createStubPipeline(options: StubPipelineOptions): RunTask {
  return async (ctx: TaskContext): Promise<TaskRunResult> => {
    const { chunks, chunkMs } = options;
    for (let chunk = 0; chunk < chunks; chunk++) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      await sleep(chunkMs, ctx.signal);
      ctx.reportProgress(((chunk + 1) * 100) / chunks);
      ctx.logger.debug({ chunk, chunks }, 'Processed chunk');
    }
    const durationSeconds = (chunks * chunkMs) / 1000;
    return {
      summary: { durationSeconds, segments: chunks },
      result: { stub: true, worker: ctx.workerName, attempt: ctx.attempt, chunks, durationSeconds },
    };
  };
}
