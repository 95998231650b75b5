import { z } from 'zod';
import { DiarizationTaskSpecSchema, Kind, LIMITS, TranscriptionTaskSpecSchema } from '../api/index.ts';
import { ProtocolDecodeError, decodeErrorFromZod } from './errors.ts';

// Braces would break the Redis Cluster hash tag `{<uid>}`, and whitespace
// has no place in a key or a Nats-Msg-Id; Kubernetes uids are UUIDs anyway.
export const UidSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[^{}\s]+$/, { message: 'uid must not contain braces or whitespace' });

const envelope = {
  namespace: z.string().min(1).max(LIMITS.nameMaxLength),
  name: z.string().min(1).max(LIMITS.nameMaxLength),
  uid: UidSchema,
  /** The attempt this message starts at: 1 for the first publish. */
  attempt: z.int().min(1),
};

export const TranscriptionTaskMessageSchema = z.object({
  ...envelope,
  kind: z.literal(Kind.TranscriptionTask),
  spec: TranscriptionTaskSpecSchema,
});

export const DiarizationTaskMessageSchema = z.object({
  ...envelope,
  kind: z.literal(Kind.DiarizationTask),
  spec: DiarizationTaskSpecSchema,
});

/** The body of a queue message: `{namespace, name, uid, kind, attempt, spec}`. */
export const TaskMessageSchema = z.discriminatedUnion('kind', [
  TranscriptionTaskMessageSchema,
  DiarizationTaskMessageSchema,
]);
export type TaskMessage = z.output<typeof TaskMessageSchema>;
export type TaskMessageInput = z.input<typeof TaskMessageSchema>;

/** Validates (filling spec defaults) and serialises a message for publishing. */
export function encodeTaskMessage(message: TaskMessageInput): Uint8Array {
  const parsed = TaskMessageSchema.safeParse(message);
  if (!parsed.success) throw decodeErrorFromZod('task message', parsed.error);
  return new TextEncoder().encode(JSON.stringify(parsed.data));
}

/**
 * Parses a queue message body. Throws ProtocolDecodeError naming the first bad
 * field; its `uid` is set when the body had a valid uid, so the worker can
 * still report the task as failed.
 */
export function decodeTaskMessage(data: Uint8Array | string): TaskMessage {
  const text = typeof data === 'string' ? data : new TextDecoder().decode(data);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ProtocolDecodeError(`task message is not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ProtocolDecodeError('task message is not a JSON object');
  }
  const parsed = TaskMessageSchema.safeParse(json);
  if (parsed.success) return parsed.data;
  const uid = UidSchema.safeParse((json as { uid?: unknown }).uid);
  throw decodeErrorFromZod('task message', parsed.error, uid.success ? uid.data : undefined);
}

/** What a body that failed to decode still tells about its task, for a `failed` report. */
export function salvageTaskIdentity(data: Uint8Array | string): {
  uid?: string;
  namespace?: string;
  name?: string;
  kind?: string;
  attempt?: number;
} {
  try {
    const json = JSON.parse(typeof data === 'string' ? data : new TextDecoder().decode(data)) as Record<string, unknown>;
    if (typeof json !== 'object' || json === null) return {};
    const out: { uid?: string; namespace?: string; name?: string; kind?: string; attempt?: number } = {};
    const uid = UidSchema.safeParse(json.uid);
    if (uid.success) out.uid = uid.data;
    if (typeof json.namespace === 'string') out.namespace = json.namespace.slice(0, LIMITS.nameMaxLength);
    if (typeof json.name === 'string') out.name = json.name.slice(0, LIMITS.nameMaxLength);
    if (typeof json.kind === 'string') out.kind = json.kind.slice(0, 63);
    if (Number.isSafeInteger(json.attempt) && (json.attempt as number) >= 1) out.attempt = json.attempt as number;
    return out;
  } catch {
    return {};
  }
}
