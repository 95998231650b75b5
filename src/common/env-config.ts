import { z } from 'zod';

export interface ConfigIssue {
  /** The environment variable at fault (or the first of several that disagree). */
  variable: string;
  message: string;
}

/** Every problem with the configuration at once, each naming its variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    super(`invalid configuration:\n${issues.map((i) => `  ${i.variable}: ${i.message}`).join('\n')}`);
    this.issues = issues;
  }
}

/**
 * Parses the environment with a schema whose keys are variable names. Throws
 * ConfigError listing every issue, not just the first.
 */
export function parseEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.output<S> {
  // Blank variables count as unset: a Helm template renders absent values as "".
  const cleaned: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && value.trim() !== '') cleaned[key] = value;
  }
  const parsed = schema.safeParse(cleaned);
  if (parsed.success) return parsed.data;
  throw new ConfigError(
    parsed.error.issues.map((issue) => ({
      variable: issue.path.length > 0 ? String(issue.path[0]) : '(environment)',
      message: isMissing(issue, cleaned) ? 'is required' : issue.message,
    })),
  );
}

// An unset variable fails its type or enum check; say so plainly rather than
// with zod's "expected string, received undefined".
function isMissing(issue: z.core.$ZodIssue, env: Record<string, string>): boolean {
  const variable = issue.path[0];
  return (
    (issue.code === 'invalid_type' || issue.code === 'invalid_value') &&
    issue.path.length === 1 &&
    typeof variable === 'string' &&
    env[variable] === undefined
  );
}

/**
 * parseEnv for a program's entry point: on error it prints every issue to
 * stderr and exits non-zero, before anything else has started.
 */
export function loadEnvOrExit<S extends z.ZodType>(
  schema: S,
  options: { component: string; env?: NodeJS.ProcessEnv; exit?: (code: number) => never; stderr?: (text: string) => void },
): z.output<S> {
  try {
    return parseEnv(schema, options.env ?? process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const write = options.stderr ?? ((text: string) => process.stderr.write(text));
    write(`${options.component}: ${err.message}\n`);
    return (options.exit ?? ((code: number) => process.exit(code)))(1);
  }
}

// Field builders for environment schemas. Each reads a string and says in
// its message what it expected, so an operator can fix the value from the
// log line alone.
export const envVar = {
  string: () => z.string().min(1),

  int: (bounds: { min?: number; max?: number } = {}) =>
    z
      .string()
      .regex(/^\s*-?\d+\s*$/, { message: 'must be an integer' })
      .transform((v) => Number(v.trim()))
      .pipe(z.int().min(bounds.min ?? Number.MIN_SAFE_INTEGER).max(bounds.max ?? Number.MAX_SAFE_INTEGER)),

  port: () =>
    z
      .string()
      .regex(/^\s*\d+\s*$/, { message: 'must be a port number' })
      .transform((v) => Number(v.trim()))
      // 0 asks the system for a free port (tests running several processes).
      .pipe(z.int().min(0).max(65535, { message: 'must be a port number (0-65535)' })),

  bool: () =>
    z
      .string()
      .transform((v) => v.trim().toLowerCase())
      .pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' }))
      .transform((v) => v === 'true' || v === '1' || v === 'yes'),

  /** Comma-separated, blanks dropped. */
  list: () =>
    z
      .string()
      .transform((v) => v.split(',').map((item) => item.trim()).filter((item) => item !== ''))
      .pipe(z.array(z.string()).min(1, { message: 'must list at least one value' })),

  json: <T extends z.ZodType>(schema: T, example: string) =>
    z
      .string()
      .transform((text, ctx) => {
        try {
          return JSON.parse(text) as unknown;
        } catch {
          ctx.addIssue({ code: 'custom', message: `must be JSON, e.g. ${example}` });
          return z.NEVER;
        }
      })
      .pipe(schema),

  enum: <const T extends readonly [string, ...string[]]>(values: T) =>
    z.enum(values, { message: `must be one of ${values.join(', ')}` }),

  url: (protocols: readonly string[]) =>
    z.string().refine(
      (value) => {
        try {
          return protocols.includes(new URL(value).protocol.replace(/:$/, ''));
        } catch {
          return false;
        }
      },
      { message: `must be a URL with scheme ${protocols.join(' or ')}` },
    ),
};
