import { DEFAULT_KEY_PREFIX } from './constants.ts';

export interface TaskKeys {
  /** Hash: the task's state as the workers last reported it. */
  state: string;
  /** String (JSON): the full result, expiring after resultTTLSeconds. */
  result: string;
  /** String: present while a cancel is requested. */
  cancel: string;
  /** Owned by the pipeline: whatever it needs to resume a long run. */
  checkpoints: string;
}

// The uid sits in a hash tag so one task's keys share a Redis Cluster slot
// and can be written in one MULTI.
export function redisKeys(prefix: string, uid: string): TaskKeys {
  const base = `${prefix}{${uid}}`;
  return {
    state: `${base}:state`,
    result: `${base}:result`,
    cancel: `${base}:cancel`,
    checkpoints: `${base}:checkpoints`,
  };
}

export function reportsStreamKey(prefix: string = DEFAULT_KEY_PREFIX): string {
  return `${prefix}{reports}`;
}
