// Names and numbers fixed by docs/protocol.md. The controller and the workers
// read them from here so that neither side spells a subject or a key itself.

export const DEFAULT_STREAM_NAME = 'TASKQUEUE';
export const DEFAULT_KEY_PREFIX = 'tq:';

// Subjects under the default prefix (see names.ts for other installations).
/** Task subjects: `taskqueue.tasks.<kind>.<priority>`. */
export const TASK_SUBJECT_ROOT = 'taskqueue.tasks';
export const STREAM_SUBJECTS: readonly string[] = [`${TASK_SUBJECT_ROOT}.>`];

/** Core NATS (not JetStream): a cancel is only useful to a worker running the task right now. */
export const CANCEL_SUBJECT = 'taskqueue.control.cancel';

export const DEFAULT_ACK_WAIT_MS = 60_000;
/** Publishing the same `<uid>:<attempt>` inside this window stores it once. */
export const DUPLICATE_WINDOW_MS = 60 * 60 * 1000;

export const HEARTBEAT_INTERVAL_SECONDS = 5;
/** The controller calls a Running task lost when its heartbeat is this old. */
export const DEFAULT_HEARTBEAT_TIMEOUT_SECONDS = 30;

/** The cancel flag outlives any queued message that might still carry the task. */
export const CANCEL_FLAG_TTL_SECONDS = 24 * 60 * 60;

/** XADD MAXLEN ~ for the reports stream. */
export const DEFAULT_REPORTS_MAX_LENGTH = 100_000;
/** Consumer group the controller reads the reports stream with. */
export const CONTROLLER_CONSUMER_GROUP = 'tq-controller';
