// The run's history, read back from where each side wrote it:
//   - the engine's side: engine.sh's S/E lines, one interval per engine call
//     (one chunk of one run), grouped into runs by (uid, attempt, worker);
//   - the worker's side: the worker processes' JSON logs, one record per
//     delivery that got as far as a decision (Started, Succeeded, Retrying,
//     Released, Failed, Cancelled, Skipped, superseded).
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';

export interface EngineCall {
  uid: string;
  attempt: number;
  worker: string;
  chunk: number;
  count: number;
  pid: number;
  name: string;
  start: number;
  /** Undefined when the call never wrote its end (killed with its worker). */
  end?: number;
  outcome?: 'ok' | 'fail' | 'reject' | 'term';
}

export function parseEngineHistory(text: string): EngineCall[] {
  const open = new Map<string, EngineCall>();
  const calls: EngineCall[] = [];
  for (const line of text.split('\n')) {
    const parts = line.trim().split(' ');
    if (parts.length < 9) continue;
    const [type, at, uid, attempt, worker, chunk, count, pid, last] = parts as [string, string, string, string, string, string, string, string, string];
    const key = `${pid}:${uid}:${chunk}`;
    if (type === 'S') {
      const call: EngineCall = {
        uid,
        attempt: Number(attempt),
        worker,
        chunk: Number(chunk),
        count: Number(count),
        pid: Number(pid),
        name: last,
        start: Number(at),
      };
      open.set(key, call);
      calls.push(call);
    } else if (type === 'E') {
      const call = open.get(key);
      if (!call) continue;
      open.delete(key);
      call.end = Number(at);
      call.outcome = last as EngineCall['outcome'];
    }
  }
  return calls;
}

/** The engine calls of one run: one worker, one attempt of one task. */
export interface EngineRun {
  uid: string;
  attempt: number;
  worker: string;
  calls: EngineCall[];
  start: number;
  /** End of its last call (for a killed call: when its worker was killed). */
  end: number;
  /** It ran the last chunk to an ok end: this run completed the task's engine work. */
  completed: boolean;
}

export function engineRuns(calls: readonly EngineCall[], endOfOpenCall: (call: EngineCall) => number): Map<string, EngineRun[]> {
  const byRun = new Map<string, EngineRun>();
  for (const call of calls) {
    const key = `${call.uid}|${call.attempt}|${call.worker}`;
    let run = byRun.get(key);
    if (!run) {
      run = { uid: call.uid, attempt: call.attempt, worker: call.worker, calls: [], start: call.start, end: call.start, completed: false };
      byRun.set(key, run);
    }
    run.calls.push(call);
    run.start = Math.min(run.start, call.start);
    run.end = Math.max(run.end, call.end ?? endOfOpenCall(call));
    if (call.outcome === 'ok' && call.chunk === call.count - 1) run.completed = true;
  }
  const byUid = new Map<string, EngineRun[]>();
  for (const run of byRun.values()) {
    const list = byUid.get(run.uid) ?? [];
    list.push(run);
    byUid.set(run.uid, list);
  }
  for (const list of byUid.values()) list.sort((a, b) => a.start - b.start);
  return byUid;
}

/** What a worker decided about one delivery, from its log. */
export type WorkerEventType =
  | 'started'
  | 'succeeded'
  | 'retrying'
  | 'released'
  | 'failed'
  | 'failed-no-attempts'
  | 'cancelled'
  | 'cancelled-before-start'
  | 'skipped-finished'
  | 'superseded'
  | 'report-failed'
  | 'malformed';

export interface WorkerEvent {
  type: WorkerEventType;
  uid: string;
  attempt: number;
  worker: string;
  at: number;
  reason?: string;
}

const MESSAGES: [RegExp, WorkerEventType][] = [
  [/^Started /, 'started'],
  [/^Succeeded /, 'succeeded'],
  [/^Retrying .* after a failed attempt$/, 'retrying'],
  [/^Released .* for another worker$/, 'released'],
  [/^Failed .*: no attempts left$/, 'failed-no-attempts'],
  [/^Failed /, 'failed'],
  [/^Cancelled .* before it started$/, 'cancelled-before-start'],
  [/^Cancelled /, 'cancelled'],
  [/^Skipped finished /, 'skipped-finished'],
  [/^A later attempt of this .* has already started/, 'superseded'],
  [/^Could not record the outcome/, 'report-failed'],
  [/^Terminated malformed message$/, 'malformed'],
];

export function parseWorkerLog(text: string, worker: string): WorkerEvent[] {
  const events: WorkerEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue; // a line cut short by SIGKILL
    }
    const msg = String(entry.msg ?? '');
    const match = MESSAGES.find(([re]) => re.test(msg));
    if (!match || typeof entry.uid !== 'string') continue;
    events.push({
      type: match[1],
      uid: entry.uid,
      attempt: Number(entry.attempt ?? 0),
      worker,
      at: Date.parse(String(entry.time)),
      ...(typeof entry.reason === 'string' ? { reason: entry.reason } : {}),
    });
  }
  return events;
}

/** Follows the engine history while the run goes on: which workers are inside an engine call right now. */
export class HistoryTail {
  private readonly path: string;
  private offset = 0;
  private partial = '';
  private readonly open = new Map<string, { worker: string; uid: string; since: number }>();

  constructor(path: string) {
    this.path = path;
  }

  poll(): void {
    if (!existsSync(this.path)) return;
    const size = statSync(this.path).size;
    if (size <= this.offset) return;
    const fd = openSync(this.path, 'r');
    try {
      const buffer = Buffer.alloc(size - this.offset);
      readSync(fd, buffer, 0, buffer.length, this.offset);
      this.offset = size;
      const text = this.partial + buffer.toString('utf8');
      const lines = text.split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) {
        const [type, at, uid, , worker, chunk, , pid] = line.split(' ');
        if (!type || !pid) continue;
        const key = `${pid}:${uid}:${chunk}`;
        if (type === 'S') this.open.set(key, { worker: worker as string, uid: uid as string, since: Number(at) });
        else this.open.delete(key);
      }
    } finally {
      closeSync(fd);
    }
  }

  /** Workers with an engine call under way (started in the last `maxAgeMs`, to skip calls of killed workers). */
  busy(maxAgeMs = 30_000): Map<string, string> {
    this.poll();
    const now = Date.now();
    const out = new Map<string, string>();
    for (const { worker, uid, since } of this.open.values()) if (now - since < maxAgeMs) out.set(worker, uid);
    return out;
  }

  /** Forgets the calls of a worker that was killed (they will never end). */
  forget(worker: string): void {
    for (const [key, value] of this.open) if (value.worker === worker) this.open.delete(key);
  }
}

export function readText(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}

/** A controller's publish of a task, from its log. */
export interface PublishEvent {
  at: number;
  controller: string;
  name: string;
  attempt: number;
  seq: number;
  duplicate: boolean;
  /** "Queued … again: its message was gone" rather than a first publish. */
  again: boolean;
}

export function parseControllerLog(text: string): PublishEvent[] {
  const events: PublishEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{') || !/"msg":"(Published|Queued) /.test(line)) continue;
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    const msg = String(entry.msg ?? '');
    const again = /^Queued .* again/.test(msg);
    if (!/^Published /.test(msg) && !again) continue;
    events.push({
      at: Date.parse(String(entry.time)),
      controller: String(entry.pod ?? ''),
      name: String(entry.name ?? ''),
      attempt: Number(entry.attempt ?? 0),
      seq: Number(entry.seq ?? 0),
      duplicate: entry.duplicate === true,
      again,
    });
  }
  return events;
}
