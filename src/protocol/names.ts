import { DEFAULT_STREAM_NAME } from './constants.ts';

/**
 * Where one installation's queue lives on a NATS account. Defaults are the
 * names DESIGN.md fixes (stream TASKQUEUE, subjects `taskqueue.tasks.…`);
 * a second installation on the same account, or a test, picks its own stream
 * name and subject prefix, since JetStream streams may not share subjects.
 */
export interface QueueNames {
  stream: string;
  /** First subject token(s): `<prefix>.tasks.<kind>.<priority>`, `<prefix>.control.cancel`. */
  subjectPrefix: string;
  cancelSubject: string;
}

export const DEFAULT_SUBJECT_PREFIX = 'taskqueue';

export function queueNames(options: { stream?: string | undefined; subjectPrefix?: string | undefined } = {}): QueueNames {
  const subjectPrefix = options.subjectPrefix || DEFAULT_SUBJECT_PREFIX;
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(subjectPrefix)) {
    throw new Error(`subject prefix ${JSON.stringify(subjectPrefix)} must be dot-separated tokens of letters, digits, _ and -`);
  }
  return {
    stream: options.stream || DEFAULT_STREAM_NAME,
    subjectPrefix,
    cancelSubject: `${subjectPrefix}.control.cancel`,
  };
}

export const DEFAULT_QUEUE_NAMES: QueueNames = queueNames();
