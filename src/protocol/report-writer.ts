import type { Redis } from 'ioredis';
import { Phase } from '../api/index.ts';
import type { ResultSummary } from '../api/index.ts';
import { DEFAULT_KEY_PREFIX, DEFAULT_REPORTS_MAX_LENGTH } from './constants.ts';
import { redisKeys, reportsStreamKey } from './keys.ts';
import { ReportType } from './reports.ts';
import type { TaskState } from './reports.ts';

/** Who a report is about and which run of it. */
export interface ReportTarget {
  uid: string;
  namespace: string;
  name: string;
  kind: string;
  attempt: number;
  worker: string;
}

export interface ReportWriterOptions {
  redis: Redis;
  prefix?: string;
  /** Approximate cap of the reports stream (XADD MAXLEN ~). */
  maxStreamLength?: number;
  now?: () => Date;
}

export interface FinishOptions {
  /**
   * Expire the state hash this long after the outcome, so finished tasks do
   * not pile up in a Redis that must not evict. Left alone when absent.
   */
  stateTTLSeconds?: number;
}

export interface SucceededReport extends FinishOptions {
  summary: ResultSummary;
  /** The full result, stored as JSON under the task's result key. */
  result: unknown;
  resultTTLSeconds: number;
}

// Writes the state hash unless a later attempt already owns it: a worker that
// lost its message (and whose run JetStream handed to someone else) must not
// overwrite the newer run's state. Everything touched lives under the task's
// hash tag, so this is one slot on Redis Cluster.
//
// A release also counts itself against the message it hands back (by stream
// sequence), so that the next delivery can take it off its attempt number:
// a graceful hand-back is not a failed attempt.
//
// A heartbeat or progress report that finds no phase (Redis lost the hash
// while the run went on) puts `phase=Running` back, so the controller sees a
// running task rather than one that was never queued.
//
// KEYS: state, result
// ARGV: attempt, nDel, del..., resultJson|'', resultTtl|'', stateTtl|'', releasedSeq|'', restoreRunningAt|'', field, value, ...
const WRITE_STATE = `
local current = tonumber(redis.call('HGET', KEYS[1], 'attempt'))
local attempt = tonumber(ARGV[1])
if current and current > attempt then return 0 end
local n = tonumber(ARGV[2])
local i = 3
if n > 0 then redis.call('HDEL', KEYS[1], unpack(ARGV, i, i + n - 1)) end
i = i + n
local result = ARGV[i]
local resultTtl = tonumber(ARGV[i + 1])
local stateTtl = tonumber(ARGV[i + 2])
local releasedSeq = ARGV[i + 3]
local restoreRunningAt = ARGV[i + 4]
i = i + 5
if result ~= '' then redis.call('SET', KEYS[2], result, 'EX', resultTtl) end
if restoreRunningAt ~= '' and redis.call('HEXISTS', KEYS[1], 'phase') == 0 then
  redis.call('HSET', KEYS[1], 'phase', 'Running', 'startedAt', restoreRunningAt)
end
redis.call('HSET', KEYS[1], unpack(ARGV, i))
if releasedSeq ~= '' then
  if redis.call('HGET', KEYS[1], 'releasedSeq') == releasedSeq then
    redis.call('HINCRBY', KEYS[1], 'releases', 1)
  else
    redis.call('HSET', KEYS[1], 'releasedSeq', releasedSeq, 'releases', 1)
  end
end
if stateTtl and stateTtl > 0 then redis.call('EXPIRE', KEYS[1], stateTtl) end
return 1
`;

type StateFields = Partial<Record<keyof TaskState, string>>;

interface WritePlan {
  type: ReportType;
  state: StateFields;
  /** Fields of a previous run that would mislead once this report lands. */
  clear?: (keyof TaskState)[];
  /** Extra fields of the stream entry. */
  extra?: Record<string, string>;
  result?: { json: string; ttlSeconds: number };
  stateTTLSeconds?: number;
  /** Stream sequence of a message handed back (released). */
  releasedSeq?: number;
  /** A report only a running task sends: restore `phase=Running` if the hash lost it. */
  restoresRunning?: boolean;
}

// Counts a delivery handed back unrun against its message (see WRITE_STATE's
// releases), without touching the phase: the task runs elsewhere.
// KEYS: state; ARGV: streamSequence
const COUNT_HAND_BACK = `
if redis.call('HGET', KEYS[1], 'releasedSeq') == ARGV[1] then
  redis.call('HINCRBY', KEYS[1], 'releases', 1)
else
  redis.call('HSET', KEYS[1], 'releasedSeq', ARGV[1], 'releases', 1)
end
return 1
`;

/**
 * Writes worker reports as docs/protocol.md describes: the state hash first
 * (the level the controller reads), then one entry on the reports stream
 * (its wake-up call). Each method resolves true when the report was applied
 * and false when a later attempt of the task already owns the state.
 */
export class ReportWriter {
  readonly prefix: string;
  readonly streamKey: string;
  private readonly redis: Redis;
  private readonly maxStreamLength: number;
  private readonly now: () => Date;

  constructor(options: ReportWriterOptions) {
    this.redis = options.redis;
    this.prefix = options.prefix ?? DEFAULT_KEY_PREFIX;
    this.streamKey = reportsStreamKey(this.prefix);
    this.maxStreamLength = options.maxStreamLength ?? DEFAULT_REPORTS_MAX_LENGTH;
    this.now = options.now ?? (() => new Date());
  }

  /** The key a succeeded task's result is stored under (its `resultRef`). */
  resultKey(uid: string): string {
    return redisKeys(this.prefix, uid).result;
  }

  started(target: ReportTarget): Promise<boolean> {
    const at = this.now().toISOString();
    return this.write(target, at, {
      type: ReportType.Started,
      state: { phase: Phase.Running, startedAt: at, heartbeatAt: at, progress: '0' },
      clear: ['reason', 'message', 'nextAttemptAt', 'resultRef', 'summary'],
    });
  }

  progress(target: ReportTarget, percent: number): Promise<boolean> {
    const progress = String(clampPercent(percent));
    return this.write(target, this.now().toISOString(), {
      type: ReportType.Progress,
      state: { progress },
      extra: { progress },
      restoresRunning: true,
    });
  }

  heartbeat(target: ReportTarget): Promise<boolean> {
    const at = this.now().toISOString();
    return this.write(target, at, { type: ReportType.Heartbeat, state: { heartbeatAt: at }, restoresRunning: true });
  }

  retrying(target: ReportTarget, report: { reason: string; message: string; nextAttemptAt: Date }): Promise<boolean> {
    const nextAttemptAt = report.nextAttemptAt.toISOString();
    const fields = { reason: report.reason, message: report.message, nextAttemptAt };
    return this.write(target, this.now().toISOString(), {
      type: ReportType.Retrying,
      state: { phase: Phase.Retrying, ...fields },
      extra: fields,
    });
  }

  /**
   * A delivery this worker hands back without running it, because another
   * worker is visibly running the task: counted against the message like a
   * release, so it costs the task no attempt, and the phase is left alone.
   */
  async handedBack(uid: string, streamSequence: number): Promise<void> {
    await this.redis.eval(COUNT_HAND_BACK, 1, redisKeys(this.prefix, uid).state, String(streamSequence));
  }

  /**
   * Handed back on shutdown: the task waits in the queue again. With the
   * message's stream sequence, the hand-back is counted (`releases`) so the
   * next run of that message keeps this run's attempt number.
   */
  released(target: ReportTarget, report: { message: string; streamSequence?: number }): Promise<boolean> {
    return this.write(target, this.now().toISOString(), {
      type: ReportType.Released,
      state: { phase: Phase.Queued, message: report.message },
      clear: ['reason'],
      extra: { message: report.message },
      ...(report.streamSequence !== undefined ? { releasedSeq: report.streamSequence } : {}),
    });
  }

  succeeded(target: ReportTarget, report: SucceededReport): Promise<boolean> {
    const resultRef = this.resultKey(target.uid);
    return this.write(target, this.now().toISOString(), {
      type: ReportType.Succeeded,
      // The summary goes into the state too: the controller reads the level, not the stream.
      state: { phase: Phase.Succeeded, progress: '100', resultRef, summary: JSON.stringify(report.summary) },
      clear: ['reason', 'message', 'nextAttemptAt'],
      extra: { resultRef, summary: JSON.stringify(report.summary) },
      result: { json: JSON.stringify(report.result ?? null), ttlSeconds: report.resultTTLSeconds },
      ...(report.stateTTLSeconds !== undefined ? { stateTTLSeconds: report.stateTTLSeconds } : {}),
    });
  }

  failed(target: ReportTarget, report: { reason: string; message: string } & FinishOptions): Promise<boolean> {
    const fields = { reason: report.reason, message: report.message };
    return this.write(target, this.now().toISOString(), {
      type: ReportType.Failed,
      state: { phase: Phase.Failed, ...fields },
      clear: ['nextAttemptAt'],
      extra: fields,
      ...(report.stateTTLSeconds !== undefined ? { stateTTLSeconds: report.stateTTLSeconds } : {}),
    });
  }

  cancelled(target: ReportTarget, report: { message: string } & FinishOptions): Promise<boolean> {
    return this.write(target, this.now().toISOString(), {
      type: ReportType.Cancelled,
      state: { phase: Phase.Cancelled, message: report.message },
      clear: ['reason', 'nextAttemptAt'],
      extra: { message: report.message },
      ...(report.stateTTLSeconds !== undefined ? { stateTTLSeconds: report.stateTTLSeconds } : {}),
    });
  }

  private async write(target: ReportTarget, at: string, plan: WritePlan): Promise<boolean> {
    const keys = redisKeys(this.prefix, target.uid);
    const identity: StateFields = {
      uid: target.uid,
      namespace: target.namespace,
      name: target.name,
      kind: target.kind,
      attempt: String(target.attempt),
      worker: target.worker,
    };
    const state: StateFields = { ...identity, ...plan.state, updatedAt: at };
    const clear = plan.clear ?? [];
    const args: (string | number)[] = [target.attempt, clear.length, ...clear];
    args.push(plan.result?.json ?? '', plan.result?.ttlSeconds ?? '', plan.stateTTLSeconds ?? '', plan.releasedSeq ?? '', plan.restoresRunning ? at : '');
    for (const [field, value] of Object.entries(state)) {
      if (value !== undefined) args.push(field, value);
    }
    const applied = await this.redis.eval(WRITE_STATE, 2, keys.state, keys.result, ...args);
    if (applied !== 1) return false;

    const entry: string[] = [
      'uid', target.uid,
      'namespace', target.namespace,
      'name', target.name,
      'kind', target.kind,
      'type', plan.type,
      'attempt', String(target.attempt),
      'worker', target.worker,
      'at', at,
    ];
    for (const [field, value] of Object.entries(plan.extra ?? {})) entry.push(field, value);
    await this.redis.xadd(this.streamKey, 'MAXLEN', '~', this.maxStreamLength, '*', ...entry);
    return true;
  }
}

function clampPercent(percent: number): number {
  if (!Number.isFinite(percent)) return 0;
  return Math.min(100, Math.max(0, Math.floor(percent)));
}
