import { z } from 'zod';
import { LIMITS, PhaseSchema, ResultSummarySchema } from '../api/index.ts';
import type { Phase } from '../api/index.ts';
import { decodeErrorFromZod } from './errors.ts';
import { UidSchema } from './message.ts';

export const ReportType = {
  Started: 'started',
  Progress: 'progress',
  Heartbeat: 'heartbeat',
  Retrying: 'retrying',
  Released: 'released',
  Succeeded: 'succeeded',
  Failed: 'failed',
  Cancelled: 'cancelled',
} as const;
export type ReportType = (typeof ReportType)[keyof typeof ReportType];
export const REPORT_TYPES: readonly ReportType[] = Object.values(ReportType);

// Stream entries and hash fields are strings on the wire.
const intField = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .regex(/^-?\d+$/, { message: 'must be an integer' })
    .transform(Number)
    .pipe(z.int().min(min).max(max));
const timestampField = () => z.iso.datetime({ offset: true });
const reasonField = () => z.string().min(1).max(LIMITS.reasonMaxLength);
const messageField = () => z.string().max(LIMITS.messageMaxLength);

const jsonField = <T extends z.ZodType>(schema: T) =>
  z
    .string()
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be JSON' });
        return z.NEVER;
      }
    })
    .pipe(schema);

// A `failed` report for a message too broken to name its task still carries
// the uid, so identity fields other than uid may be empty.
const reportCommon = {
  uid: UidSchema,
  namespace: z.string().max(LIMITS.nameMaxLength),
  name: z.string().max(LIMITS.nameMaxLength),
  kind: z.string().max(63),
  attempt: intField(0),
  worker: z.string().max(LIMITS.nameMaxLength),
  at: timestampField(),
};

export const ReportSchema = z.discriminatedUnion('type', [
  z.object({ ...reportCommon, type: z.literal(ReportType.Started) }),
  z.object({ ...reportCommon, type: z.literal(ReportType.Progress), progress: intField(0, 100) }),
  z.object({ ...reportCommon, type: z.literal(ReportType.Heartbeat) }),
  z.object({
    ...reportCommon,
    type: z.literal(ReportType.Retrying),
    reason: reasonField(),
    message: messageField(),
    nextAttemptAt: timestampField(),
  }),
  z.object({ ...reportCommon, type: z.literal(ReportType.Released), message: messageField() }),
  z.object({
    ...reportCommon,
    type: z.literal(ReportType.Succeeded),
    resultRef: z.string().max(LIMITS.uriMaxLength),
    summary: jsonField(ResultSummarySchema),
  }),
  z.object({ ...reportCommon, type: z.literal(ReportType.Failed), reason: reasonField(), message: messageField() }),
  z.object({ ...reportCommon, type: z.literal(ReportType.Cancelled), message: messageField() }),
]);
export type Report = z.output<typeof ReportSchema>;
export type ReportOf<T extends ReportType> = Extract<Report, { type: T }>;

/** Turns XREAD's flat `[field, value, ...]` list (or an object) into a record. */
export function fieldsToRecord(fields: readonly string[] | Readonly<Record<string, string>>): Record<string, string> {
  if (!Array.isArray(fields)) return { ...(fields as Record<string, string>) };
  const list = fields as readonly string[];
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < list.length; i += 2) out[list[i] as string] = list[i + 1] as string;
  return out;
}

/** Parses one entry of the reports stream; throws ProtocolDecodeError naming the bad field. */
export function parseReportEntry(fields: readonly string[] | Readonly<Record<string, string>>): Report {
  const record = fieldsToRecord(fields);
  const parsed = ReportSchema.safeParse(record);
  if (parsed.success) return parsed.data;
  const uid = UidSchema.safeParse(record.uid);
  throw decodeErrorFromZod('report', parsed.error, uid.success ? uid.data : undefined);
}

/** The `<prefix>{<uid>}:state` hash, as far as it could be read. */
export interface TaskState {
  namespace?: string;
  name?: string;
  kind?: string;
  uid?: string;
  attempt?: number;
  phase?: Phase;
  progress?: number;
  worker?: string;
  startedAt?: string;
  heartbeatAt?: string;
  updatedAt?: string;
  reason?: string;
  message?: string;
  resultRef?: string;
  /** JSON of the result summary (language, durationSeconds, segments, speakers), once succeeded. */
  summary?: string;
  nextAttemptAt?: string;
  /** Stream sequence of the queued message; written by the controller. */
  seq?: number;
  /** Stream sequence of the message last handed back on shutdown... */
  releasedSeq?: number;
  /** ...and how many times it was: those deliveries are not attempts. */
  releases?: number;
}

const stateFields = {
  namespace: z.string(),
  name: z.string(),
  kind: z.string(),
  uid: z.string(),
  attempt: intField(0),
  phase: PhaseSchema,
  progress: intField(0, 100),
  worker: z.string(),
  startedAt: timestampField(),
  heartbeatAt: timestampField(),
  updatedAt: timestampField(),
  reason: z.string(),
  message: z.string(),
  resultRef: z.string(),
  summary: z.string(),
  nextAttemptAt: timestampField(),
  seq: intField(0),
  releasedSeq: intField(0),
  releases: intField(0),
} satisfies Record<keyof TaskState, z.ZodType>;

export const TASK_STATE_FIELDS = Object.keys(stateFields) as (keyof TaskState)[];

/**
 * Reads a state hash (HGETALL). Undefined when the hash is empty (no such
 * task). A field that does not parse is left out rather than failing the
 * whole state: the controller acts on the level it can read.
 */
export function parseTaskState(hash: Readonly<Record<string, string>> | null | undefined): TaskState | undefined {
  if (!hash || Object.keys(hash).length === 0) return undefined;
  const state: Record<string, unknown> = {};
  for (const field of TASK_STATE_FIELDS) {
    const raw = hash[field];
    if (raw === undefined || raw === '') continue;
    const parsed = stateFields[field].safeParse(raw);
    if (parsed.success) state[field] = parsed.data;
  }
  return state as TaskState;
}
