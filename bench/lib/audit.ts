// Counts apiserver writes from the apiserver's own audit log (JSON lines,
// level Metadata, verbs create/update/patch/delete; see
// test/harness/control-plane.ts), not from anything our code counts.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { sleep } from '../../test/harness/index.ts';

export interface AuditEvent {
  stage?: string;
  verb?: string;
  requestReceivedTimestamp?: string;
  objectRef?: { resource?: string; namespace?: string; name?: string; subresource?: string; apiGroup?: string };
  responseStatus?: { code?: number };
  user?: { username?: string };
}

/** Where writes are sorted: what they touched, in the words of the benchmark tables. */
export type WriteCategory =
  | 'task create'
  | 'task object'
  | 'task status'
  | 'task delete'
  | 'events'
  | 'leases'
  | 'deployment scale'
  | 'workerpool status'
  | 'workerpool object'
  | 'other';

export const TASK_RESOURCES = new Set(['transcriptiontasks', 'diarizationtasks']);

export function categorize(event: AuditEvent): WriteCategory {
  const ref = event.objectRef ?? {};
  const resource = ref.resource ?? '';
  if (TASK_RESOURCES.has(resource)) {
    if (ref.subresource === 'status') return 'task status';
    if (event.verb === 'create') return 'task create';
    if (event.verb === 'delete' || event.verb === 'deletecollection') return 'task delete';
    return 'task object';
  }
  if (resource === 'events') return 'events';
  if (resource === 'leases') return 'leases';
  if (resource === 'deployments' && ref.subresource === 'scale') return 'deployment scale';
  if (resource === 'workerpools') return ref.subresource === 'status' ? 'workerpool status' : 'workerpool object';
  return 'other';
}

export interface WriteCount {
  /** Writes the apiserver completed (any status code). */
  total: number;
  /** Of those, answered with a 4xx/5xx (conflicts, not found, ...). */
  failed: number;
  byCategory: Partial<Record<WriteCategory, number>>;
  /** Failed writes by category and code, e.g. "task status 409". */
  failures: Record<string, number>;
}

export interface AuditFilter {
  namespaces: ReadonlySet<string>;
  /** Epoch milliseconds, inclusive; by the time the apiserver received the request. */
  fromMs?: number;
  toMs?: number;
  /** Further filter, e.g. on the object's name. */
  where?: (event: AuditEvent) => boolean;
}

/** Milliseconds since the epoch of an RFC 3339 timestamp with up to nanosecond digits. */
export function parseAuditTime(ts: string | undefined): number {
  if (!ts) return Number.NaN;
  const match = /^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(ts);
  if (!match) return Date.parse(ts);
  const fraction = (match[2] ?? '.0').slice(0, 4).padEnd(4, '0');
  return Date.parse(`${match[1]}${fraction}${match[3]}`);
}

/** A reader that remembers where it stopped, so each benchmark reads only its own part of the log. */
export class AuditLog {
  readonly path: string;
  private offset: number;

  constructor(path: string) {
    this.path = path;
    this.offset = 0;
  }

  /** Skips everything written so far. */
  mark(): void {
    this.offset = fileSize(this.path);
  }

  /**
   * Reads the events since the mark. The apiserver flushes the log in
   * batches (at most 1 s apart), so callers wait `settleMs` for the last
   * ones to land.
   */
  async events(settleMs = 2500): Promise<AuditEvent[]> {
    await sleep(settleMs);
    const end = fileSize(this.path);
    if (end <= this.offset) return [];
    const fd = openSync(this.path, 'r');
    const events: AuditEvent[] = [];
    try {
      const chunkSize = 8 * 1024 * 1024;
      const buffer = Buffer.alloc(chunkSize);
      let position = this.offset;
      let carry = '';
      while (position < end) {
        const n = readSync(fd, buffer, 0, Math.min(chunkSize, end - position), position);
        if (n <= 0) break;
        position += n;
        const text = carry + buffer.toString('utf8', 0, n);
        const lines = text.split('\n');
        carry = lines.pop() ?? '';
        for (const line of lines) pushEvent(events, line);
      }
      pushEvent(events, carry);
    } finally {
      closeSync(fd);
    }
    return events;
  }
}

function pushEvent(events: AuditEvent[], line: string): void {
  if (!line.startsWith('{')) return;
  try {
    events.push(JSON.parse(line) as AuditEvent);
  } catch {
    // a line cut by a concurrent flush; the next read of this region has it whole
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

export function countWrites(events: readonly AuditEvent[], filter: AuditFilter): WriteCount {
  const count: WriteCount = { total: 0, failed: 0, byCategory: {}, failures: {} };
  for (const event of events) {
    if (event.stage !== 'ResponseComplete') continue;
    const verb = event.verb ?? '';
    if (!['create', 'update', 'patch', 'delete', 'deletecollection'].includes(verb)) continue;
    if (!filter.namespaces.has(event.objectRef?.namespace ?? '')) continue;
    const at = parseAuditTime(event.requestReceivedTimestamp);
    if (filter.fromMs !== undefined && at < filter.fromMs) continue;
    if (filter.toMs !== undefined && at > filter.toMs) continue;
    if (filter.where && !filter.where(event)) continue;
    const category = categorize(event);
    count.total++;
    count.byCategory[category] = (count.byCategory[category] ?? 0) + 1;
    const code = event.responseStatus?.code ?? 0;
    if (code >= 400) {
      count.failed++;
      const key = `${category} ${code}`;
      count.failures[key] = (count.failures[key] ?? 0) + 1;
    }
  }
  return count;
}

/** Writes of some categories, added up. */
export function sumCategories(count: WriteCount, categories: readonly WriteCategory[]): number {
  return categories.reduce((sum, c) => sum + (count.byCategory[c] ?? 0), 0);
}
