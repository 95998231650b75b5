// taskqueue.dev/v1alpha1 as TypeScript types and zod schemas.
//
// The CRDs in crds/ are what the apiserver enforces; these schemas mirror
// them for code that meets a spec or status outside the apiserver (queue
// messages read by workers, status built by the controller, tests).
// test/unit/api-crd-sync.test.ts fails when the two disagree on a field,
// an enum, a default, a bound or a required list.
//
// Objects strip unknown keys instead of rejecting them: the apiserver already
// rejects or prunes them, and a worker one release behind must still accept a
// message that a newer controller wrote with an extra field.

import { z } from 'zod';
import type { V1ObjectMeta } from '@kubernetes/client-node';
import {
  API_VERSION,
  AUDIO_URI_PATTERN,
  API_VERSION_PATTERN,
  CONDITION_TYPE_PATTERN,
  ConditionStatus,
  DNS_SUBDOMAIN_PATTERN,
  KIND_NAME_PATTERN,
  Kind,
  LANGUAGE_PATTERN,
  LIMITS,
  MODEL_PATTERN,
  Phase,
  Priority,
  REASON_PATTERN,
  TASK_SPEC_DEFAULTS,
  TRANSCRIPTION_SPEC_DEFAULTS,
  WORKER_POOL_SPEC_DEFAULTS,
  hasAllowedAudioScheme,
} from './constants.ts';
import type { TaskKind } from './constants.ts';

const dateTime = () => z.iso.datetime({ offset: true });
const dnsSubdomain = () => z.string().min(1).max(LIMITS.nameMaxLength).regex(new RegExp(DNS_SUBDOMAIN_PATTERN));
const nonNegativeInt64 = () => z.int().min(0);
const nonNegativeInt32 = () => z.int32().min(0);

// ---------------------------------------------------------------------------
// Shared pieces

export const PrioritySchema = z.enum(Priority);
export const PhaseSchema = z.enum(Phase);

export const LocalObjectReferenceSchema = z.object({
  name: dnsSubdomain(),
});
export type LocalObjectReference = z.output<typeof LocalObjectReferenceSchema>;

export const AudioSourceSchema = z.object({
  uri: z
    .string()
    .max(LIMITS.uriMaxLength)
    .regex(new RegExp(AUDIO_URI_PATTERN), { message: 'audio.uri must be a URI without blanks' })
    .refine(hasAllowedAudioScheme, { message: 'audio.uri must start with https://, http://, s3:// or file://' }),
  secretRef: LocalObjectReferenceSchema.optional(),
});
export type AudioSource = z.output<typeof AudioSourceSchema>;

export const RetryPolicySchema = z.object({
  maxRetries: z
    .int()
    .min(LIMITS.maxRetries.min)
    .max(LIMITS.maxRetries.max)
    .default(TASK_SPEC_DEFAULTS.retryPolicy.maxRetries),
  backoffSeconds: z
    .int()
    .min(LIMITS.backoffSeconds.min)
    .max(LIMITS.backoffSeconds.max)
    .default(TASK_SPEC_DEFAULTS.retryPolicy.backoffSeconds),
});
export type RetryPolicy = z.output<typeof RetryPolicySchema>;

/** metav1.Condition, with the apiserver's own limits. */
export const ConditionSchema = z.object({
  type: z.string().max(LIMITS.conditionTypeMaxLength).regex(new RegExp(CONDITION_TYPE_PATTERN)),
  status: z.enum(ConditionStatus),
  observedGeneration: nonNegativeInt64().optional(),
  lastTransitionTime: dateTime(),
  reason: z.string().min(1).max(LIMITS.reasonMaxLength).regex(new RegExp(REASON_PATTERN)),
  message: z.string().max(LIMITS.messageMaxLength),
});
export type Condition = z.output<typeof ConditionSchema>;

const conditions = () => z.array(ConditionSchema).max(LIMITS.maxConditions);

// ---------------------------------------------------------------------------
// Task specs

// Fields common to both task kinds. Kept as a shape (not a schema) so each
// kind builds one flat object, as the CRDs do.
const taskSpecShape = {
  audio: AudioSourceSchema,
  priority: PrioritySchema.default(TASK_SPEC_DEFAULTS.priority),
  timeoutSeconds: z
    .int()
    .min(LIMITS.timeoutSeconds.min)
    .max(LIMITS.timeoutSeconds.max)
    .default(TASK_SPEC_DEFAULTS.timeoutSeconds),
  // prefault: an absent retryPolicy becomes {} and then gets its own defaults,
  // the same thing the apiserver does with `default: {}`.
  retryPolicy: RetryPolicySchema.prefault({}),
  ttlSecondsAfterFinished: z
    .int()
    .min(LIMITS.ttlSecondsAfterFinished.min)
    .max(LIMITS.ttlSecondsAfterFinished.max)
    .optional(),
  resultTTLSeconds: z
    .int()
    .min(LIMITS.resultTTLSeconds.min)
    .max(LIMITS.resultTTLSeconds.max)
    .default(TASK_SPEC_DEFAULTS.resultTTLSeconds),
  cancel: z.boolean().default(TASK_SPEC_DEFAULTS.cancel),
};

export const TranscriptionTaskSpecSchema = z.object({
  ...taskSpecShape,
  model: z
    .string()
    .min(1)
    .max(LIMITS.modelMaxLength)
    .regex(new RegExp(MODEL_PATTERN))
    .default(TRANSCRIPTION_SPEC_DEFAULTS.model),
  /** ISO 639-1; absent means the engine detects the language. */
  language: z
    .string()
    .max(2)
    .regex(new RegExp(LANGUAGE_PATTERN), { message: 'language must be an ISO 639-1 code (two lowercase letters)' })
    .optional(),
});
export type TranscriptionTaskSpec = z.output<typeof TranscriptionTaskSpecSchema>;
export type TranscriptionTaskSpecInput = z.input<typeof TranscriptionTaskSpecSchema>;

const speakers = () => z.int().min(LIMITS.speakers.min).max(LIMITS.speakers.max);

export const DiarizationTaskSpecSchema = z
  .object({
    ...taskSpecShape,
    minSpeakers: speakers().optional(),
    maxSpeakers: speakers().optional(),
  })
  .refine(
    (spec) => spec.minSpeakers === undefined || spec.maxSpeakers === undefined || spec.minSpeakers <= spec.maxSpeakers,
    { message: 'minSpeakers must be less than or equal to maxSpeakers', path: ['minSpeakers'] },
  );
export type DiarizationTaskSpec = z.output<typeof DiarizationTaskSpecSchema>;
export type DiarizationTaskSpecInput = z.input<typeof DiarizationTaskSpecSchema>;

export type TaskSpec = TranscriptionTaskSpec | DiarizationTaskSpec;

// ---------------------------------------------------------------------------
// Task status

export const ResultSummarySchema = z.object({
  /** Detected or requested language; engines may report codes longer than ISO 639-1. */
  language: z.string().max(32).optional(),
  durationSeconds: z.number().min(0).optional(),
  segments: nonNegativeInt64().optional(),
  speakers: nonNegativeInt64().optional(),
});
export type ResultSummary = z.output<typeof ResultSummarySchema>;

export const TaskResultSchema = z.object({
  /** Where the full result lives: a Redis key or the output URI. */
  ref: z.string().max(LIMITS.uriMaxLength).optional(),
  summary: ResultSummarySchema.optional(),
});
export type TaskResult = z.output<typeof TaskResultSchema>;

export const TaskStatusSchema = z.object({
  phase: PhaseSchema.optional(),
  progress: z.int().min(LIMITS.progress.min).max(LIMITS.progress.max).optional(),
  attempts: nonNegativeInt32().optional(),
  queuedAt: dateTime().optional(),
  startTime: dateTime().optional(),
  completionTime: dateTime().optional(),
  /** When a Retrying task is published again. */
  nextAttemptTime: dateTime().optional(),
  /** Last progress or heartbeat report applied from a worker. */
  lastReportTime: dateTime().optional(),
  worker: z.string().max(LIMITS.nameMaxLength).optional(),
  reason: z.string().max(LIMITS.reasonMaxLength).regex(new RegExp(REASON_PATTERN)).optional(),
  message: z.string().max(LIMITS.messageMaxLength).optional(),
  result: TaskResultSchema.optional(),
  observedGeneration: nonNegativeInt64().optional(),
  conditions: conditions().optional(),
});
export type TaskStatus = z.output<typeof TaskStatusSchema>;

// ---------------------------------------------------------------------------
// WorkerPool

export const TaskKindSchema = z.enum([Kind.TranscriptionTask, Kind.DiarizationTask]);

export const ScaleTargetRefSchema = z.object({
  apiVersion: z
    .string()
    .max(LIMITS.nameMaxLength)
    .regex(new RegExp(API_VERSION_PATTERN))
    .default(WORKER_POOL_SPEC_DEFAULTS.scaleTargetRef.apiVersion),
  kind: z.string().max(63).regex(new RegExp(KIND_NAME_PATTERN)).default(WORKER_POOL_SPEC_DEFAULTS.scaleTargetRef.kind),
  name: dnsSubdomain(),
});
export type ScaleTargetRef = z.output<typeof ScaleTargetRefSchema>;

export const WorkerPoolSpecSchema = z
  .object({
    taskKind: TaskKindSchema,
    scaleTargetRef: ScaleTargetRefSchema,
    minReplicas: nonNegativeInt32().default(WORKER_POOL_SPEC_DEFAULTS.minReplicas),
    maxReplicas: z.int32().min(1),
    tasksPerReplica: z.int32().min(1).default(WORKER_POOL_SPEC_DEFAULTS.tasksPerReplica),
    scaleDownDelaySeconds: z
      .int32()
      .min(LIMITS.scaleDownDelaySeconds.min)
      .max(LIMITS.scaleDownDelaySeconds.max)
      .default(WORKER_POOL_SPEC_DEFAULTS.scaleDownDelaySeconds),
  })
  .refine((spec) => spec.minReplicas <= spec.maxReplicas, {
    message: 'minReplicas must be less than or equal to maxReplicas',
    path: ['minReplicas'],
  });
export type WorkerPoolSpec = z.output<typeof WorkerPoolSpecSchema>;
export type WorkerPoolSpecInput = z.input<typeof WorkerPoolSpecSchema>;

export const WorkerPoolStatusSchema = z.object({
  /** Tasks of this kind waiting in the queue (pending plus unacknowledged). */
  backlog: nonNegativeInt64().optional(),
  /** Tasks of this kind in phase Running. */
  running: nonNegativeInt64().optional(),
  desiredReplicas: nonNegativeInt32().optional(),
  replicas: nonNegativeInt32().optional(),
  lastScaleTime: dateTime().optional(),
  observedGeneration: nonNegativeInt64().optional(),
  conditions: conditions().optional(),
});
export type WorkerPoolStatus = z.output<typeof WorkerPoolStatusSchema>;

// ---------------------------------------------------------------------------
// Whole objects

// Metadata is the apiserver's business; the schemas only insist it is there.
const ObjectMetaSchema = z.custom<V1ObjectMeta>(
  (value) => typeof value === 'object' && value !== null && !Array.isArray(value),
  { message: 'metadata must be an object' },
);

export const TranscriptionTaskSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(Kind.TranscriptionTask),
  metadata: ObjectMetaSchema,
  spec: TranscriptionTaskSpecSchema,
  status: TaskStatusSchema.optional(),
});
export type TranscriptionTask = z.output<typeof TranscriptionTaskSchema>;

export const DiarizationTaskSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(Kind.DiarizationTask),
  metadata: ObjectMetaSchema,
  spec: DiarizationTaskSpecSchema,
  status: TaskStatusSchema.optional(),
});
export type DiarizationTask = z.output<typeof DiarizationTaskSchema>;

export const TaskSchema = z.discriminatedUnion('kind', [TranscriptionTaskSchema, DiarizationTaskSchema]);
export type Task = TranscriptionTask | DiarizationTask;

export const WorkerPoolSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(Kind.WorkerPool),
  metadata: ObjectMetaSchema,
  spec: WorkerPoolSpecSchema,
  status: WorkerPoolStatusSchema.optional(),
});
export type WorkerPool = z.output<typeof WorkerPoolSchema>;

export const TASK_SPEC_SCHEMAS = {
  TranscriptionTask: TranscriptionTaskSpecSchema,
  DiarizationTask: DiarizationTaskSpecSchema,
} as const satisfies Record<TaskKind, z.ZodType>;

// ---------------------------------------------------------------------------
// Defaults

/**
 * Fills in the defaults the CRD declares, for a spec that did not come
 * through the apiserver's defaulting (or came through an older CRD).
 * Throws a ZodError when the spec is invalid: for an object read from the
 * apiserver that means this module and the CRD disagree.
 */
export function applyTaskSpecDefaults(kind: 'TranscriptionTask', spec: TranscriptionTaskSpecInput): TranscriptionTaskSpec;
export function applyTaskSpecDefaults(kind: 'DiarizationTask', spec: DiarizationTaskSpecInput): DiarizationTaskSpec;
export function applyTaskSpecDefaults(kind: TaskKind, spec: unknown): TaskSpec;
export function applyTaskSpecDefaults(kind: TaskKind, spec: unknown): TaskSpec {
  return TASK_SPEC_SCHEMAS[kind].parse(spec);
}

/** As applyTaskSpecDefaults, for a WorkerPool spec. */
export function applyWorkerPoolSpecDefaults(spec: WorkerPoolSpecInput): WorkerPoolSpec {
  return WorkerPoolSpecSchema.parse(spec);
}
