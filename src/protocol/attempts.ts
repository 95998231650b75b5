import { retryBackoffSeconds as backoffFromBase } from '../api/index.ts';

export interface RetryPolicyLike {
  retryPolicy: { maxRetries: number; backoffSeconds: number };
}

/**
 * Delay before the run after failed attempt `attempt` (1-based):
 * `backoffSeconds * 2^(attempt-1)`, capped at 3600 s.
 */
export function retryBackoffSeconds(spec: RetryPolicyLike, attempt: number): number {
  return backoffFromBase(spec.retryPolicy.backoffSeconds, attempt);
}

/**
 * The attempt a delivery runs as. JetStream counts deliveries of one message;
 * the message says which attempt it started at (a re-published task starts
 * past 1).
 */
export function deliveryAttempt(messageAttempt: number, deliveryCount: number): number {
  return messageAttempt + Math.max(1, deliveryCount) - 1;
}

/** A task runs at most `maxRetries + 1` times. */
export function maxAttempts(spec: RetryPolicyLike): number {
  return spec.retryPolicy.maxRetries + 1;
}

/** False for a delivery that must not run at all (MaxRetriesExceeded). */
export function attemptAllowed(spec: RetryPolicyLike, attempt: number): boolean {
  return attempt <= maxAttempts(spec);
}

/** Whether a retryable failure of `attempt` may be retried. */
export function canRetry(spec: RetryPolicyLike, attempt: number): boolean {
  return attempt < maxAttempts(spec);
}
