// The pipeline's failure vocabulary. Every error the pipeline throws on
// purpose is built here, so the mapping from "what went wrong" to "retry or
// give up" (docs/results.md, "Failures") lives in one file.
import { RetryableTaskError, TaskCancelledError, UnrecoverableTaskError } from '../errors.ts';

/** CamelCase reasons the pipeline reports; they end up in the task's status.reason. */
export const PipelineReason = {
  UnsupportedScheme: 'UnsupportedScheme',
  AudioNotFound: 'AudioNotFound',
  AudioForbidden: 'AudioForbidden',
  AudioRejected: 'AudioRejected',
  AudioTooLarge: 'AudioTooLarge',
  AudioUnavailable: 'AudioUnavailable',
  InvalidAudio: 'InvalidAudio',
  SecretNotFound: 'SecretNotFound',
  EngineRejected: 'EngineRejected',
  EngineUnavailable: 'EngineUnavailable',
  EngineBadResponse: 'EngineBadResponse',
  EngineFailed: 'EngineFailed',
  EngineMisconfigured: 'EngineMisconfigured',
  WorkerFailure: 'WorkerFailure',
} as const;
export type PipelineReason = (typeof PipelineReason)[keyof typeof PipelineReason];

export function unrecoverable(reason: PipelineReason, message: string, cause?: unknown): UnrecoverableTaskError {
  return new UnrecoverableTaskError(reason, message, cause === undefined ? undefined : { cause });
}

export function retryable(reason: PipelineReason, message: string, cause?: unknown): RetryableTaskError {
  return new RetryableTaskError(reason, message, cause === undefined ? undefined : { cause });
}

/**
 * What to throw once the task's signal has fired. The runtime aborts with a
 * reason that says why (cancel, deadline, shutdown); that reason is passed on
 * untouched so the runtime can tell them apart.
 */
export function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error && reason.name !== 'AbortError') return reason;
  return new TaskCancelledError('the task was aborted');
}

export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw abortError(signal);
}

export function isPipelineFailure(err: unknown): boolean {
  return err instanceof RetryableTaskError || err instanceof UnrecoverableTaskError || err instanceof TaskCancelledError;
}
