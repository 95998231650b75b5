// The wire contract between controller and workers (docs/protocol.md).
// Neither side builds a subject, key or report by hand: they use these.

export {
  DEFAULT_STREAM_NAME,
  DEFAULT_KEY_PREFIX,
  TASK_SUBJECT_ROOT,
  STREAM_SUBJECTS,
  CANCEL_SUBJECT,
  DEFAULT_ACK_WAIT_MS,
  DUPLICATE_WINDOW_MS,
  HEARTBEAT_INTERVAL_SECONDS,
  DEFAULT_HEARTBEAT_TIMEOUT_SECONDS,
  CANCEL_FLAG_TTL_SECONDS,
  DEFAULT_REPORTS_MAX_LENGTH,
  CONTROLLER_CONSUMER_GROUP,
} from './constants.ts';

export { taskSubject, taskSubjectRoot, streamSubjects, kindSubjectFilter, parseTaskSubject, consumerName, consumerBindings, msgId } from './subjects.ts';

export { queueNames, DEFAULT_QUEUE_NAMES, DEFAULT_SUBJECT_PREFIX } from './names.ts';
export type { QueueNames } from './names.ts';
export type { ConsumerBinding } from './subjects.ts';

export {
  UidSchema,
  TaskMessageSchema,
  TranscriptionTaskMessageSchema,
  DiarizationTaskMessageSchema,
  encodeTaskMessage,
  decodeTaskMessage,
  salvageTaskIdentity,
} from './message.ts';
export type { TaskMessage, TaskMessageInput } from './message.ts';

export { ProtocolDecodeError, describeIssues } from './errors.ts';

export { ensureStream, ensureConsumers, StreamConfigConflictError } from './stream.ts';
export type { EnsureStreamOptions, EnsureConsumersOptions } from './stream.ts';

export { retryBackoffSeconds, deliveryAttempt, maxAttempts, attemptAllowed, canRetry } from './attempts.ts';
export type { RetryPolicyLike } from './attempts.ts';

export { PRIORITY_CYCLE, priorityOrder } from './priority.ts';

export { redisKeys, reportsStreamKey } from './keys.ts';
export type { TaskKeys } from './keys.ts';

export {
  ReportType,
  REPORT_TYPES,
  ReportSchema,
  parseReportEntry,
  fieldsToRecord,
  parseTaskState,
  TASK_STATE_FIELDS,
} from './reports.ts';
export type { Report, ReportOf, TaskState } from './reports.ts';

export { ReportWriter } from './report-writer.ts';
export type { ReportTarget, ReportWriterOptions, SucceededReport, FinishOptions } from './report-writer.ts';

export {
  CancelMessageSchema,
  encodeCancelMessage,
  decodeCancelMessage,
  requestCancel,
  isCancelRequested,
} from './cancel.ts';
export type { CancelMessage } from './cancel.ts';
