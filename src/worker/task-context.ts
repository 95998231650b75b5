// The contract between the worker runtime and the task pipeline: the runtime
// takes a message, builds a TaskContext and calls RunTask once; the pipeline
// returns a TaskRunResult or throws one of the errors in ./errors.ts.
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { TaskMessage } from '../protocol/index.ts';
import type { WorkerConfig } from './config.ts';

export interface TaskContext {
  message: TaskMessage;
  /** This run's attempt: message.attempt + deliveryCount - 1. */
  attempt: number;
  /**
   * Fires on cancel, deadline or shutdown; `signal.reason` is a
   * TaskCancelledError, DeadlineExceededError or WorkerShutdownError.
   */
  signal: AbortSignal;
  workerName: string;
  /** Carries namespace, name, uid, kind and attempt on every line. */
  logger: Logger;
  redis: Redis;
  keyPrefix: string;
  /**
   * Integer percent, 0..100. Cheap to call as often as the pipeline likes:
   * the runtime coalesces calls and writes at most a few reports a second.
   */
  reportProgress(percent: number): void;
  config: WorkerConfig;
}

export interface TaskRunSummary {
  language?: string;
  durationSeconds?: number;
  segments?: number;
  speakers?: number;
}

export interface TaskRunResult {
  /** Small enough for the task's status. */
  summary: TaskRunSummary;
  /** The full result, stored in Redis for resultTTLSeconds. */
  result: unknown;
}

export type RunTask = (ctx: TaskContext) => Promise<TaskRunResult>;
