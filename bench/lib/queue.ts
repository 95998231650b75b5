// A queue of its own for each benchmark (stream, subject prefix, Redis key
// prefix) and the bench's own connections to NATS and Redis.
import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { queueNames, redisKeys, type QueueNames } from '../../src/protocol/index.ts';
import type { BenchEnv } from './env.ts';
import type { QueueSettings } from './processes.ts';

export interface BenchQueue extends QueueSettings {
  names: QueueNames;
  nc: NatsConnection;
  redis: Redis;
  /** startedAt of a task's state hash (ms since the epoch), as its worker wrote it. */
  startedAt(uid: string): Promise<number | undefined>;
  close(): Promise<void>;
}

export async function benchQueue(env: BenchEnv, tag: string): Promise<BenchQueue> {
  const id = `${tag}${randomBytes(3).toString('hex')}`.toLowerCase();
  const names = queueNames({ stream: `BENCH_${id.toUpperCase()}`, subjectPrefix: `b${id}` });
  const keyPrefix = `b${id}:`;
  const nc = await connect({ servers: env.natsUrl, maxReconnectAttempts: -1 });
  const redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
  // A benchmark cut short may still hold this connection when the servers stop.
  redis.on('error', () => undefined);
  return {
    natsUrl: env.natsUrl,
    redisUrl: env.redisUrl,
    stream: names.stream,
    subjectPrefix: names.subjectPrefix,
    keyPrefix,
    names,
    nc,
    redis,
    async startedAt(uid) {
      const value = await redis.hget(redisKeys(keyPrefix, uid).state, 'startedAt');
      return value ? Date.parse(value) : undefined;
    },
    async close() {
      const jsm = await jetstreamManager(nc).catch(() => undefined);
      await jsm?.streams.delete(names.stream).catch(() => undefined);
      await nc.close().catch(() => undefined);
      redis.disconnect();
    },
  };
}
