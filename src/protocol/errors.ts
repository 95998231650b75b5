import type { z } from 'zod';

/**
 * Something read off the wire (a queue message, a report, a cancel) did not
 * match the protocol. `field` is the dotted path of the first bad field, so
 * a log line or a `failed` report can say what was wrong without a dump.
 */
export class ProtocolDecodeError extends Error {
  override name = 'ProtocolDecodeError';
  readonly field: string | undefined;
  /** The task uid, when the body carried a usable one despite the error. */
  readonly uid: string | undefined;

  constructor(message: string, options: { field?: string; uid?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.field = options.field;
    this.uid = options.uid;
  }
}

export function issuePath(issue: z.core.$ZodIssue): string {
  return issue.path.map(String).join('.');
}

/** `spec.audio.uri: must start with ...; attempt: too small` */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => {
      const path = issuePath(issue);
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join('; ');
}

export function decodeErrorFromZod(what: string, error: z.ZodError, uid?: string): ProtocolDecodeError {
  const first = error.issues[0];
  const field = first ? issuePath(first) || undefined : undefined;
  return new ProtocolDecodeError(`invalid ${what}: ${describeIssues(error.issues)}`, {
    ...(field !== undefined ? { field } : {}),
    ...(uid !== undefined ? { uid } : {}),
    cause: error,
  });
}
