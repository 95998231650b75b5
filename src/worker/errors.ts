// How a task run ends when it does not succeed. The runtime maps each to a
// JetStream verb and a report (docs/protocol.md, "Outcomes"):
//   RetryableTaskError      -> nak(backoff) while attempts remain, else failed MaxRetriesExceeded
//   UnrecoverableTaskError  -> failed <reason>, term
//   TaskCancelledError      -> cancelled, term
//   DeadlineExceededError   -> failed DeadlineExceeded, term
//   WorkerShutdownError     -> released, nak(0)
//   SupersededError         -> nothing: the message belongs to a newer delivery
// Anything else thrown by a pipeline is treated as retryable: an unknown
// failure is more often a flaky dependency than bad input.
import { Reason } from '../api/index.ts';

const CAMEL_CASE = /^[A-Z][A-Za-z0-9]*$/;

// status.reason must be CamelCase; a malformed reason from a pipeline must not
// make the report itself invalid, so it falls back rather than throwing.
function camelCaseOr(reason: string, fallback: string): string {
  return CAMEL_CASE.test(reason) ? reason : fallback;
}

/** A failure that may go away on another attempt (network, engine overloaded). */
export class RetryableTaskError extends Error {
  override name = 'RetryableTaskError';
  readonly reason: string;

  constructor(reason: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.reason = camelCaseOr(reason, Reason.EngineError);
  }
}

/** Bad input: running it again gives the same answer (unsupported audio, a 4xx from the source). */
export class UnrecoverableTaskError extends Error {
  override name = 'UnrecoverableTaskError';
  readonly reason: string;

  constructor(reason: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.reason = camelCaseOr(reason, Reason.InvalidInput);
  }
}

/** The task was cancelled (NATS notice or Redis flag); also the abort reason of its signal. */
export class TaskCancelledError extends Error {
  override name = 'TaskCancelledError';
  readonly reason: string = Reason.Cancelled;

  constructor(message = 'the task was cancelled', options?: ErrorOptions) {
    super(message, options);
  }
}

/** The run went past the task's timeoutSeconds; also the abort reason of its signal. */
export class DeadlineExceededError extends Error {
  override name = 'DeadlineExceededError';
  readonly reason: string = Reason.DeadlineExceeded;

  constructor(message = 'the task ran past its timeoutSeconds', options?: ErrorOptions) {
    super(message, options);
  }
}

/** The worker is stopping and the grace period ran out: the task is handed back, not failed. */
export class WorkerShutdownError extends Error {
  override name = 'WorkerShutdownError';
  readonly reason: string = 'WorkerShutdown';

  constructor(message = 'the worker is shutting down', options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * Another delivery of the same message owns the task now: this process was
 * paused past the ack wait, or a later attempt wrote the state. The run stops
 * and sends neither report nor verb, since either would act for the newer run.
 */
export class SupersededError extends Error {
  override name = 'SupersededError';
  readonly reason: string = 'Superseded';

  constructor(message = 'a later delivery of this task owns it now', options?: ErrorOptions) {
    super(message, options);
  }
}
