import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync, existsSync } from 'node:fs';

const running = new Set<ChildProcess>();

// A test run that crashes or is interrupted must not leave servers behind.
process.once('exit', () => {
  for (const child of running) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

export interface ManagedProcessOptions {
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Outlives this Node process (for `make cluster-up`). */
  detached?: boolean;
}

/** A server process started by the harness: logs go to a file, stop() waits for exit. */
export class ManagedProcess {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly options: ManagedProcessOptions;
  private child: ChildProcess | undefined;
  private exitPromise: Promise<number | null> | undefined;

  constructor(name: string, command: string, args: readonly string[], options: ManagedProcessOptions) {
    this.name = name;
    this.command = command;
    this.args = args;
    this.options = options;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    const log = openSync(this.options.logFile, 'a');
    const child = spawn(this.command, [...this.args], {
      cwd: this.options.cwd,
      env: this.options.env ?? process.env,
      stdio: ['ignore', log, log],
      detached: this.options.detached ?? false,
    });
    closeSync(log);
    this.child = child;
    this.exitPromise = new Promise((resolveExit) => {
      child.once('exit', (code) => {
        running.delete(child);
        resolveExit(code);
      });
      child.once('error', () => {
        running.delete(child);
        resolveExit(null);
      });
    });
    if (this.options.detached) {
      child.unref();
    } else {
      running.add(child);
    }
  }

  /** Resolves with the exit code when the process ends. */
  async exited(): Promise<number | null> {
    return this.exitPromise ?? null;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await this.exitPromise;
    clearTimeout(timer);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    child.kill(signal);
    if (signal === 'SIGKILL' || signal === 'SIGTERM' || signal === 'SIGINT') await this.exitPromise;
  }

  /** Sends a signal without waiting (SIGSTOP / SIGCONT). */
  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  logTail(lines = 40): string {
    if (!existsSync(this.options.logFile)) return '';
    return readFileSync(this.options.logFile, 'utf8').split('\n').slice(-lines).join('\n');
  }
}

/** True when a process with this pid exists (and is not a zombie we own). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state field follows the parenthesised command name.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z';
  } catch {
    return false;
  }
}
