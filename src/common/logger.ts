import { pino } from 'pino';
import type { DestinationStream, Level, Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = Level | 'silent';

export interface LoggerOptions {
  /** The component, e.g. `worker` or `controller`; every line carries it as `component`. */
  name: string;
  level?: LogLevel;
  /** Extra fields on every line (the pod name, say). */
  base?: Record<string, unknown>;
  /** Defaults to stdout; tests pass a stream to read the lines back. */
  destination?: DestinationStream;
}

/**
 * JSON lines on stdout, one object per event, RFC 3339 times and level names
 * (not pino's numbers) so any log pipeline can read them without a pino plugin.
 */
export function createLogger(options: LoggerOptions): Logger {
  const settings = {
    level: options.level ?? 'info',
    // Not pino's `name`: that key holds the object name in our reconcile and task logs.
    base: { component: options.name, ...options.base },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    serializers: { err: pino.stdSerializers.errWithCause },
  };
  return options.destination ? pino(settings, options.destination) : pino(settings);
}

export type { Logger };
