import {
  KIND_SUBJECT_TOKEN,
  PRIORITIES,
  PRIORITY_SUBJECT_TOKEN,
  TASK_KINDS,
  priorityFromSubjectToken,
  taskKindFromSubjectToken,
} from '../api/index.ts';
import type { Priority, TaskKind } from '../api/index.ts';
import { DEFAULT_QUEUE_NAMES, type QueueNames } from './names.ts';

/** `taskqueue.tasks.<kind>.<priority>`, e.g. `taskqueue.tasks.transcription.high`. */
export function taskSubject(kind: TaskKind, priority: Priority, names: QueueNames = DEFAULT_QUEUE_NAMES): string {
  return `${taskSubjectRoot(names)}.${KIND_SUBJECT_TOKEN[kind]}.${PRIORITY_SUBJECT_TOKEN[priority]}`;
}

/** `<prefix>.tasks`: every task subject of one installation starts with it. */
export function taskSubjectRoot(names: QueueNames = DEFAULT_QUEUE_NAMES): string {
  return `${names.subjectPrefix}.tasks`;
}

/** What the stream captures: `<prefix>.tasks.>`. */
export function streamSubjects(names: QueueNames = DEFAULT_QUEUE_NAMES): string[] {
  return [`${taskSubjectRoot(names)}.>`];
}

/** Matches every priority of one kind: a worker's wake-up subscription. */
export function kindSubjectFilter(kind: TaskKind, names: QueueNames = DEFAULT_QUEUE_NAMES): string {
  return `${taskSubjectRoot(names)}.${KIND_SUBJECT_TOKEN[kind]}.*`;
}

/** Inverse of taskSubject; undefined for anything else. */
export function parseTaskSubject(subject: string, names: QueueNames = DEFAULT_QUEUE_NAMES): { kind: TaskKind; priority: Priority } | undefined {
  const prefix = `${taskSubjectRoot(names)}.`;
  if (!subject.startsWith(prefix)) return undefined;
  const tokens = subject.slice(prefix.length).split('.');
  if (tokens.length !== 2) return undefined;
  const kind = taskKindFromSubjectToken(tokens[0] ?? '');
  const priority = priorityFromSubjectToken(tokens[1] ?? '');
  return kind && priority ? { kind, priority } : undefined;
}

/** Durable pull consumer of one kind and priority: `tq-<kind>-<priority>`. */
export function consumerName(kind: TaskKind, priority: Priority): string {
  return `tq-${KIND_SUBJECT_TOKEN[kind]}-${PRIORITY_SUBJECT_TOKEN[priority]}`;
}

export interface ConsumerBinding {
  kind: TaskKind;
  priority: Priority;
  name: string;
  filterSubject: string;
}

/** The consumers a stream carries: one per kind and priority (8 in all by default). */
export function consumerBindings(kinds: readonly TaskKind[] = TASK_KINDS, names: QueueNames = DEFAULT_QUEUE_NAMES): ConsumerBinding[] {
  return kinds.flatMap((kind) =>
    PRIORITIES.map((priority) => ({
      kind,
      priority,
      name: consumerName(kind, priority),
      filterSubject: taskSubject(kind, priority, names),
    })),
  );
}

/**
 * `Nats-Msg-Id` of a publish: the same attempt published twice within the
 * duplicate window is stored once, so a controller restart never double-queues.
 */
export function msgId(uid: string, attempt: number): string {
  return `${uid}:${attempt}`;
}
