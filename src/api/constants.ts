// Names fixed by the API contract (the design document, section "API"). Anything a user,
// a GitOps tool or a worker can observe is spelled here once; the CRDs in
// crds/ must agree, and test/unit/api-crd-sync.test.ts checks that they do.

export const GROUP = 'taskqueue.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}` as const;
export type ApiVersion = typeof API_VERSION;

/** `kubectl get taskqueue` lists every kind through this category. */
export const CATEGORY = 'taskqueue';

export const Kind = {
  TranscriptionTask: 'TranscriptionTask',
  DiarizationTask: 'DiarizationTask',
  WorkerPool: 'WorkerPool',
} as const;
export type Kind = (typeof Kind)[keyof typeof Kind];
export const KINDS: readonly Kind[] = Object.values(Kind);

export const TASK_KINDS = [Kind.TranscriptionTask, Kind.DiarizationTask] as const;
export type TaskKind = (typeof TASK_KINDS)[number];

export function isTaskKind(value: unknown): value is TaskKind {
  return value === Kind.TranscriptionTask || value === Kind.DiarizationTask;
}

export const PLURALS = {
  TranscriptionTask: 'transcriptiontasks',
  DiarizationTask: 'diarizationtasks',
  WorkerPool: 'workerpools',
} as const satisfies Record<Kind, string>;

export const SINGULARS = {
  TranscriptionTask: 'transcriptiontask',
  DiarizationTask: 'diarizationtask',
  WorkerPool: 'workerpool',
} as const satisfies Record<Kind, string>;

export const SHORT_NAMES = {
  TranscriptionTask: 'tt',
  DiarizationTask: 'dt',
  WorkerPool: 'wp',
} as const satisfies Record<Kind, string>;

/** `<plural>.<group>`, the name of each CustomResourceDefinition. */
export function crdName(kind: Kind): string {
  return `${PLURALS[kind]}.${GROUP}`;
}

// Phases in the order a task normally moves through them.
export const Phase = {
  Pending: 'Pending',
  Queued: 'Queued',
  Running: 'Running',
  Retrying: 'Retrying',
  Succeeded: 'Succeeded',
  Failed: 'Failed',
  Cancelled: 'Cancelled',
} as const;
export type Phase = (typeof Phase)[keyof typeof Phase];
export const PHASES: readonly Phase[] = Object.values(Phase);

export const TERMINAL_PHASES: readonly Phase[] = [Phase.Succeeded, Phase.Failed, Phase.Cancelled];

/** A finished task never runs again: the controller only garbage-collects it. */
export function isTerminalPhase(phase: Phase | undefined): boolean {
  return phase !== undefined && TERMINAL_PHASES.includes(phase);
}

/**
 * Machine-readable reasons for `status.reason` and condition reasons.
 * Conditions may carry other CamelCase reasons; these are the ones the
 * controller and workers agree on.
 */
export const Reason = {
  // Life cycle, used on conditions as the task moves.
  Created: 'Created',
  Published: 'Published',
  Started: 'Started',
  Completed: 'Completed',
  RetryScheduled: 'RetryScheduled',
  // Why a task did not succeed.
  DeadlineExceeded: 'DeadlineExceeded',
  MaxRetriesExceeded: 'MaxRetriesExceeded',
  InvalidInput: 'InvalidInput',
  AudioUnavailable: 'AudioUnavailable',
  EngineError: 'EngineError',
  WorkerLost: 'WorkerLost',
  Cancelled: 'Cancelled',
  Deleted: 'Deleted',
  QueueUnavailable: 'QueueUnavailable',
  // WorkerPool.
  ScaledUp: 'ScaledUp',
  ScaledDown: 'ScaledDown',
  ScaleTargetNotFound: 'ScaleTargetNotFound',
  ScaleFailed: 'ScaleFailed',
  BacklogUnavailable: 'BacklogUnavailable',
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

export const ConditionType = {
  /** kstatus readiness: True once a task has succeeded, or a pool is scaling normally. */
  Ready: 'Ready',
  Queued: 'Queued',
  Running: 'Running',
  Succeeded: 'Succeeded',
  Failed: 'Failed',
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];
export const CONDITION_TYPES: readonly ConditionType[] = Object.values(ConditionType);

export const ConditionStatus = {
  True: 'True',
  False: 'False',
  Unknown: 'Unknown',
} as const;
export type ConditionStatus = (typeof ConditionStatus)[keyof typeof ConditionStatus];

// Lowest first: the index is the scheduling weight's rank.
export const Priority = {
  Low: 'Low',
  Normal: 'Normal',
  High: 'High',
  Critical: 'Critical',
} as const;
export type Priority = (typeof Priority)[keyof typeof Priority];
export const PRIORITIES: readonly Priority[] = Object.values(Priority);

/** Higher is more urgent; stable across releases because it orders queue pulls. */
export function priorityRank(priority: Priority): number {
  return PRIORITIES.indexOf(priority);
}

// Subject tokens: `taskqueue.tasks.<kind>.<priority>`. They are part of the
// wire format shared with workers, so they are spelled out rather than derived
// from the kind and priority names.
export const PRIORITY_SUBJECT_TOKEN = {
  Low: 'low',
  Normal: 'normal',
  High: 'high',
  Critical: 'critical',
} as const satisfies Record<Priority, string>;
export type PrioritySubjectToken = (typeof PRIORITY_SUBJECT_TOKEN)[Priority];

export const KIND_SUBJECT_TOKEN = {
  TranscriptionTask: 'transcription',
  DiarizationTask: 'diarization',
} as const satisfies Record<TaskKind, string>;
export type KindSubjectToken = (typeof KIND_SUBJECT_TOKEN)[TaskKind];

export function priorityFromSubjectToken(token: string): Priority | undefined {
  return PRIORITIES.find((p) => PRIORITY_SUBJECT_TOKEN[p] === token);
}

export function taskKindFromSubjectToken(token: string): TaskKind | undefined {
  return TASK_KINDS.find((k) => KIND_SUBJECT_TOKEN[k] === token);
}

// Spec defaults. The CRDs declare the same values (the apiserver applies them
// on create and on every read); the zod schemas use these so that code
// handling a spec from elsewhere (a queue message, a test) sees the same.
export const TASK_SPEC_DEFAULTS = {
  priority: Priority.Normal,
  timeoutSeconds: 3600,
  retryPolicy: { maxRetries: 3, backoffSeconds: 30 },
  resultTTLSeconds: 604800,
  cancel: false,
} as const;

export const TRANSCRIPTION_SPEC_DEFAULTS = {
  model: 'large-v3',
} as const;

export const WORKER_POOL_SPEC_DEFAULTS = {
  scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment' },
  minReplicas: 0,
  tasksPerReplica: 1,
  scaleDownDelaySeconds: 300,
} as const;

// Limits shared by the CRDs and the zod schemas.
export const LIMITS = {
  timeoutSeconds: { min: 1, max: 86400 },
  maxRetries: { min: 0, max: 20 },
  /** Backoff grows exponentially from this base and is capped at MAX_BACKOFF_SECONDS. */
  backoffSeconds: { min: 1, max: 3600 },
  ttlSecondsAfterFinished: { min: 0, max: 31536000 },
  resultTTLSeconds: { min: 1, max: 31536000 },
  speakers: { min: 1, max: 64 },
  progress: { min: 0, max: 100 },
  scaleDownDelaySeconds: { min: 0, max: 86400 },
  uriMaxLength: 2048,
  modelMaxLength: 128,
  nameMaxLength: 253,
  messageMaxLength: 32768,
  reasonMaxLength: 1024,
  conditionTypeMaxLength: 316,
  maxConditions: 16,
} as const;

export const MAX_BACKOFF_SECONDS = 3600;

/** Retry delay before attempt `attempt + 1`, given that `attempt` runs have failed (attempt >= 1). */
export function retryBackoffSeconds(backoffSeconds: number, attempt: number): number {
  const exponent = Math.max(0, attempt - 1);
  // 2 ** 12 * 1 s already passes the cap; stopping there avoids Infinity for huge attempts.
  return Math.min(MAX_BACKOFF_SECONDS, backoffSeconds * 2 ** Math.min(exponent, 12));
}

// Patterns are strings (RE2 and ECMAScript agree on them) so the CRD YAML and
// the zod schemas can be compared character for character.
export const AUDIO_URI_SCHEMES = ['https://', 'http://', 's3://', 'file://'] as const;
// The pattern alone enforces the schemes; the CRD repeats the check as a CEL
// rule (and zod as a refinement) only to say it in words next to the regex.
export const AUDIO_URI_PATTERN = '^(https?|s3|file)://\\S+$';

export function hasAllowedAudioScheme(uri: string): boolean {
  return AUDIO_URI_SCHEMES.some((scheme) => uri.startsWith(scheme));
}
/** ISO 639-1: exactly two lowercase letters. */
export const LANGUAGE_PATTERN = '^[a-z]{2}$';
export const MODEL_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:/-]*$';
/** RFC 1123 subdomain, as for Secret and Deployment names. */
export const DNS_SUBDOMAIN_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
export const KIND_NAME_PATTERN = '^[A-Z][A-Za-z0-9]*$';
export const API_VERSION_PATTERN = '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?v[0-9]+((alpha|beta)[0-9]+)?$';
// metav1.Condition's own validation, so conditions written by other tools fit too.
export const CONDITION_TYPE_PATTERN =
  '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$';
export const REASON_PATTERN = '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$';
