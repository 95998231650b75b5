// What the controller reads and writes of a task's Redis keys. Workers own
// the state hash; the controller adds the stream sequence of the queued
// message, raises the cancel flag, and removes the keys when the object goes.
import type { Redis } from 'ioredis';
import { ResultSummarySchema, type ResultSummary, type TaskKind } from '../../api/index.ts';
import { CANCEL_FLAG_TTL_SECONDS, parseTaskState, redisKeys, type TaskState } from '../../protocol/index.ts';

export interface StoredTask {
  state: TaskState | undefined;
  summary: ResultSummary | undefined;
}

export class TaskStore {
  private readonly redis: Redis;
  readonly prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.redis = redis;
    this.prefix = prefix;
  }

  async read(uid: string): Promise<StoredTask> {
    const hash = await this.redis.hgetall(redisKeys(this.prefix, uid).state);
    const state = parseTaskState(hash);
    let summary: ResultSummary | undefined;
    if (state?.summary) {
      try {
        const parsed = ResultSummarySchema.safeParse(JSON.parse(state.summary));
        if (parsed.success) summary = parsed.data;
      } catch {
        // A summary that does not parse is left out; the result itself is intact.
      }
    }
    return { state, summary };
  }

  /** Records where the queued message is, so that cancel and delete can remove it. */
  async recordPublished(task: { uid: string; namespace: string; name: string; kind: TaskKind }, seq: number): Promise<void> {
    await this.redis.hset(redisKeys(this.prefix, task.uid).state, {
      uid: task.uid,
      namespace: task.namespace,
      name: task.name,
      kind: task.kind,
      seq: String(seq),
    });
  }

  async raiseCancelFlag(uid: string): Promise<void> {
    await this.redis.set(redisKeys(this.prefix, uid).cancel, new Date().toISOString(), 'EX', CANCEL_FLAG_TTL_SECONDS);
  }

  /** Removes the task's state, result and checkpoints; the cancel flag is left to expire so a late worker still sees it. */
  async remove(uid: string): Promise<void> {
    const keys = redisKeys(this.prefix, uid);
    await this.redis.del(keys.state, keys.result, keys.checkpoints);
  }
}
