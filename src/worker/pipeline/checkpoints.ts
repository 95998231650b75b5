// Finished chunks, kept in Redis so that the next attempt of a task resumes
// after the last finished chunk instead of starting over.
//
// One hash per task, `redisKeys(prefix, uid).checkpoints`:
//   plan     the fingerprint of the run the chunks belong to (JSON)
//   <index>  the engine's output for chunk <index> (JSON, chunk-relative times)
// The hash expires after the task's resultTTLSeconds, counted from the last
// chunk written, and is deleted once the task's result is built.
//
// The fingerprint covers everything that changes what a chunk's output
// would be: the audio (size and duration), the cut (chunk length, format),
// the engine and its model, the task's options. A retry whose fingerprint
// differs throws the old chunks away rather than stitching together two
// different runs.
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { redisKeys } from '../../protocol/keys.ts';

const PLAN_FIELD = 'plan';

// EXEC reports a failed command inside its reply instead of rejecting.
function execOrThrow(replies: Array<[Error | null, unknown]> | null): void {
  if (replies === null) throw new Error('Redis transaction was aborted');
  for (const [err] of replies) if (err) throw err;
}

export class ChunkCheckpoints {
  readonly key: string;
  private readonly redis: Redis;
  private readonly ttlSeconds: number;
  private readonly logger: Logger;

  constructor(options: { redis: Redis; keyPrefix: string; uid: string; ttlSeconds: number; logger: Logger }) {
    this.redis = options.redis;
    this.key = redisKeys(options.keyPrefix, options.uid).checkpoints;
    this.ttlSeconds = Math.max(1, Math.floor(options.ttlSeconds));
    this.logger = options.logger;
  }

  /**
   * The raw outputs saved for this fingerprint, by chunk index. Anything saved
   * under another fingerprint is deleted and the new one recorded.
   */
  async load(fingerprint: string): Promise<Map<number, unknown>> {
    const saved = new Map<number, unknown>();
    const fields = await this.redis.hgetall(this.key);
    if (fields[PLAN_FIELD] === fingerprint) {
      for (const [field, value] of Object.entries(fields)) {
        if (!/^\d+$/.test(field)) continue;
        try {
          saved.set(Number(field), JSON.parse(value) as unknown);
        } catch {
          this.logger.warn({ key: this.key, field }, 'Ignoring unreadable chunk checkpoint');
        }
      }
      return saved;
    }
    if (Object.keys(fields).length > 0) {
      this.logger.info({ key: this.key }, 'Discarding chunk checkpoints of a different run');
    }
    execOrThrow(await this.redis.multi().del(this.key).hset(this.key, PLAN_FIELD, fingerprint).expire(this.key, this.ttlSeconds).exec());
    return saved;
  }

  async save(index: number, output: unknown): Promise<void> {
    execOrThrow(await this.redis.multi().hset(this.key, String(index), JSON.stringify(output)).expire(this.key, this.ttlSeconds).exec());
  }

  async clear(): Promise<void> {
    await this.redis.del(this.key);
  }
}
