// Child processes for the pipeline (ffprobe, ffmpeg, exec engines): argv
// only, never a shell, killed as a process group when the task is aborted,
// with the end of stderr kept for error messages.
import { spawn } from 'node:child_process';

export interface CommandOptions {
  signal: AbortSignal;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to stdin, then stdin is closed. */
  stdin?: string;
  /** Called with each complete stdout line; stdout is not kept when this is set. */
  onStdoutLine?: (line: string) => void;
  /** Time between SIGTERM and SIGKILL once the signal aborts. */
  killGraceMs?: number;
  /** How much of stderr to keep for the error message, in bytes. */
  stderrTailBytes?: number;
  /** Upper bound on kept stdout, in bytes; the rest is dropped. */
  stdoutMaxBytes?: number;
}

export interface CommandOutcome {
  /** Exit code, or null when a signal ended the process. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderrTail: string;
  /** The abort signal fired while the command ran (it was killed for that reason). */
  aborted: boolean;
}

/** The command could not be started at all (not found, not executable). */
export class CommandStartError extends Error {
  readonly command: string;
  constructor(command: string, cause: unknown) {
    super(`cannot start ${command}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'CommandStartError';
    this.command = command;
  }
}

const DEFAULT_KILL_GRACE_MS = 10_000;
const DEFAULT_STDERR_TAIL_BYTES = 4096;
const DEFAULT_STDOUT_MAX_BYTES = 16 * 1024 * 1024;
const EXIT_DRAIN_MS = 2000;

/**
 * Runs argv[0] with argv[1..] and resolves when it has exited, whatever the
 * exit code. Rejects only with CommandStartError. An abort sends SIGTERM to
 * the whole process group (engines often fork helpers that hold the GPU),
 * then SIGKILL after the grace period.
 */
export async function runCommand(argv: readonly string[], options: CommandOptions): Promise<CommandOutcome> {
  const [command, ...args] = argv;
  if (command === undefined || command === '') throw new CommandStartError('(empty command)', new Error('no command given'));
  const killGraceMs = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
  const stderrTailBytes = options.stderrTailBytes ?? DEFAULT_STDERR_TAIL_BYTES;
  const stdoutMaxBytes = options.stdoutMaxBytes ?? DEFAULT_STDOUT_MAX_BYTES;

  return new Promise<CommandOutcome>((resolve, reject) => {
    let child;
    try {
      child = spawn(command, args, {
        cwd: options.cwd,
        env: options.env ?? process.env,
        stdio: ['pipe', 'pipe', 'pipe'],
        detached: true,
      });
    } catch (err) {
      reject(new CommandStartError(command, err));
      return;
    }

    let stdout = '';
    let stdoutBytes = 0;
    let pendingLine = '';
    let stderrTail = Buffer.alloc(0);
    let aborted = false;
    let killTimer: NodeJS.Timeout | undefined;
    let settled = false;

    const killGroup = (sig: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        // The group is gone already; fall back to the direct child in case it never made one.
        try {
          child.kill(sig);
        } catch {
          // already exited
        }
      }
    };

    const onAbort = () => {
      aborted = true;
      killGroup('SIGTERM');
      killTimer = setTimeout(() => killGroup('SIGKILL'), killGraceMs);
      killTimer.unref();
    };

    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text: string) => {
      if (options.onStdoutLine) {
        pendingLine += text;
        let newline = pendingLine.indexOf('\n');
        while (newline >= 0) {
          const line = pendingLine.slice(0, newline).replace(/\r$/, '');
          pendingLine = pendingLine.slice(newline + 1);
          options.onStdoutLine(line);
          newline = pendingLine.indexOf('\n');
        }
        // A process that prints without newlines must not grow memory forever.
        if (pendingLine.length > 64 * 1024) pendingLine = pendingLine.slice(-64 * 1024);
        return;
      }
      if (stdoutBytes < stdoutMaxBytes) {
        stdout += text;
        stdoutBytes += Buffer.byteLength(text);
      }
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderrTail = Buffer.concat([stderrTail, chunk]);
      if (stderrTail.length > stderrTailBytes) stderrTail = stderrTail.subarray(stderrTail.length - stderrTailBytes);
    });
    // The process may exit without reading its input: that is its business, not an error here.
    child.stdin.on('error', () => undefined);
    if (options.stdin !== undefined) child.stdin.end(options.stdin);
    else child.stdin.end();

    child.once('error', (err) => {
      if (settled) return;
      settled = true;
      options.signal.removeEventListener('abort', onAbort);
      if (killTimer) clearTimeout(killTimer);
      reject(new CommandStartError(command, err));
    });
    const finish = (code: number | null, sig: NodeJS.Signals | null) => {
      if (settled) return;
      settled = true;
      options.signal.removeEventListener('abort', onAbort);
      if (killTimer) clearTimeout(killTimer);
      if (drainTimer) clearTimeout(drainTimer);
      if (options.onStdoutLine && pendingLine !== '') options.onStdoutLine(pendingLine.replace(/\r$/, ''));
      resolve({ code, signal: sig, stdout, stderrTail: stderrTail.toString('utf8'), aborted });
    };
    // 'close' waits for stdout and stderr to close too. A helper the command
    // left running may hold them open forever: once the command itself has
    // exited, its group gets a short while to finish, then is killed.
    let drainTimer: NodeJS.Timeout | undefined;
    child.once('exit', (code, sig) => {
      drainTimer = setTimeout(() => {
        killGroup('SIGKILL');
        finish(code, sig);
      }, EXIT_DRAIN_MS);
      drainTimer.unref();
    });
    child.once('close', finish);

    if (options.signal.aborted) onAbort();
    else options.signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** A one-line description of how a command ended, for error messages. */
export function describeExit(outcome: Pick<CommandOutcome, 'code' | 'signal'>): string {
  return outcome.signal !== null ? `was killed by ${outcome.signal}` : `exited with code ${outcome.code}`;
}

/** The last lines of stderr, trimmed, or '' when there was none. */
export function stderrSummary(stderrTail: string, maxLines = 20): string {
  const lines = stderrTail.trimEnd().split('\n');
  return lines.slice(-maxLines).join('\n').trim();
}
