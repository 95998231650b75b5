// What the kernel says a process costs: resident memory from
// /proc/<pid>/status and CPU time from /proc/<pid>/stat. Measured from the
// outside, so the process under test does nothing extra to be measured.
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ; 100 on every Linux we run on). */
const CLOCK_TICKS = 100;

export interface MemoryReading {
  /** Resident set size now. */
  rssBytes: number;
  /** Peak resident set size so far (VmHWM). */
  peakRssBytes: number;
}

export function readMemory(pid: number): MemoryReading {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!match) throw new Error(`/proc/${pid}/status has no ${name}`);
    return Number(match[1]) * 1024;
  };
  return { rssBytes: field('VmRSS'), peakRssBytes: field('VmHWM') };
}

/** User plus system CPU seconds the process has used since it started. */
export function readCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`cannot parse /proc/${pid}/stat`);
  return (utime + stime) / CLOCK_TICKS;
}

export const MB = 1024 * 1024;

/** CPU seconds of named processes between two moments: who paid for a run. */
export class CpuAccount {
  private readonly pids: Map<string, number>;
  private readonly start = new Map<string, number>();
  private readonly selfStart: NodeJS.CpuUsage;

  constructor(pids: Record<string, number | undefined>) {
    this.pids = new Map(Object.entries(pids).filter((e): e is [string, number] => e[1] !== undefined));
    for (const [name, pid] of this.pids) this.start.set(name, safeCpu(pid));
    this.selfStart = process.cpuUsage();
  }

  /** CPU seconds each process used since the account was opened, with the benchmark process itself as "bench (load + watch)". */
  read(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, pid] of this.pids) out[name] = safeCpu(pid) - (this.start.get(name) ?? 0);
    const self = process.cpuUsage(this.selfStart);
    out['bench (load + watch)'] = (self.user + self.system) / 1e6;
    return out;
  }
}

function safeCpu(pid: number): number {
  try {
    return readCpuSeconds(pid);
  } catch {
    return Number.NaN;
  }
}
