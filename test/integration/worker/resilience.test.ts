// The worker rides out its servers going away: a Redis restart in the middle
// of a run delays the reports but loses none, and a NATS restart does not
// stop the worker from taking new messages afterwards.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { Kind, Priority } from '../../../src/api/index.ts';
import { connectNats, connectRedis } from '../../../src/common/index.ts';
import {
  encodeTaskMessage,
  ensureConsumers,
  ensureStream,
  parseTaskState,
  queueNames,
  redisKeys,
  taskSubject,
} from '../../../src/protocol/index.ts';
import { Worker } from '../../../src/worker/worker.ts';
import { startNats, startRedis, uniqueKeyPrefix } from '../../harness/index.ts';
import type { NatsServer, RedisServer } from '../../harness/index.ts';
import { abortableSleep, ok, taskMessage, testLogger, waitFor, workerConfig } from './support.ts';
import type { QueueFixture } from './support.ts';

const servers: (NatsServer | RedisServer)[] = [];

after(async () => {
  await Promise.allSettled(servers.map((s) => s.destroy()));
});

async function privateSetup() {
  const [nats, redisServer] = await Promise.all([startNats(), startRedis({ appendOnly: true })]);
  servers.push(nats, redisServer);
  const queue = queueNames({ stream: 'TASKQUEUE' });
  const keyPrefix = uniqueKeyPrefix();
  const admin = await connect({ servers: nats.url });
  const jsm = await jetstreamManager(admin);
  await ensureStream(jsm, { names: queue });
  await ensureConsumers(jsm, { names: queue, ackWaitMs: 30_000 });
  await admin.close();
  // The worker's own connections, made the way main.ts makes them.
  const logger = testLogger();
  const nc = await connectNats({ servers: [nats.url] }, logger);
  const redis = await connectRedis({ url: redisServer.url }, logger);
  const fx = { natsUrl: nats.url, redisUrl: redisServer.url, queue, keyPrefix } as QueueFixture;
  return { nats, redisServer, queue, keyPrefix, nc, redis, fx, logger };
}

async function publish(natsUrl: string, queue: ReturnType<typeof queueNames>) {
  const nc = await connect({ servers: natsUrl });
  const input = taskMessage({ spec: { priority: Priority.High } });
  await jetstream(nc).publish(taskSubject(Kind.TranscriptionTask, Priority.High, queue), encodeTaskMessage(input));
  await nc.close();
  return input.uid;
}

describe('worker resilience', () => {
  it('a Redis restart mid-run delays the outcome but does not lose it', { timeout: 60_000 }, async () => {
    const env = await privateSetup();
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const worker = new Worker({
      config: workerConfig(env.fx),
      nc: env.nc,
      redis: env.redis,
      logger: env.logger,
      runTask: async (ctx) => {
        started();
        await abortableSleep(1000, ctx.signal);
        return ok;
      },
    });
    worker.start();
    const uid = await publish(env.nats.url, env.queue);
    await running;
    await env.redisServer.restart();
    const reader = new Redis(env.redisServer.url, { maxRetriesPerRequest: null });
    await waitFor(
      'the outcome to reach Redis after its restart',
      async () => parseTaskState(await reader.hgetall(redisKeys(env.keyPrefix, uid).state))?.phase === 'Succeeded',
      { timeoutMs: 20_000 },
    );
    reader.disconnect();
    await worker.stop(0);
    await env.nc.close();
    env.redis.disconnect();
  });

  it('takes new messages after NATS restarts', { timeout: 60_000 }, async () => {
    const env = await privateSetup();
    const ran: string[] = [];
    const worker = new Worker({
      config: workerConfig(env.fx),
      nc: env.nc,
      redis: env.redis,
      logger: env.logger,
      runTask: async (ctx) => {
        ran.push(ctx.message.uid);
        return ok;
      },
    });
    worker.start();
    const first = await publish(env.nats.url, env.queue);
    await waitFor('the first task to run', () => ran.includes(first));
    await env.nats.restart();
    const second = await publish(env.nats.url, env.queue);
    await waitFor('the task published after the restart to run', () => ran.includes(second), { timeoutMs: 20_000 });
    assert.deepEqual(ran, [first, second]);
    await worker.stop(0);
    await env.nc.close();
    env.redis.disconnect();
  });
});
