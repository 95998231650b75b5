// Worker entry point: `node src/worker/main.ts`. Reads the environment, opens
// the probe and metrics ports, connects to NATS and Redis, runs tasks until
// SIGTERM or SIGINT, then shuts down gracefully and exits 0.
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Redis } from 'ioredis';
import { ConfigError, connectNats, connectRedis, createLogger, startOpsServer } from '../common/index.ts';
import type { Logger, OpsServer } from '../common/index.ts';
import { consumerName } from '../protocol/index.ts';
import { Priority } from '../api/index.ts';
import { loadWorkerConfig } from './config.ts';
import type { WorkerConfig } from './config.ts';
import { WorkerMetrics } from './metrics.ts';
import { runTask as runPipeline } from './pipeline/index.ts';
import { createStubPipeline } from './stub-pipeline.ts';
import type { RunTask } from './task-context.ts';
import { Worker } from './worker.ts';

function readConfig(): WorkerConfig {
  try {
    return loadWorkerConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`worker: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

function pipelineFor(config: WorkerConfig): RunTask {
  if (config.pipeline === 'stub') return createStubPipeline({ chunks: config.stubChunks, chunkMs: config.stubChunkMs });
  return (ctx) => runPipeline(ctx);
}

// The consumers belong to the controller; a worker whose TQ_ACK_WAIT_SECONDS
// is longer than theirs would send working() too late and lose its messages.
async function checkAckWait(nc: NatsConnection, config: WorkerConfig, logger: Logger): Promise<void> {
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.consumers.info(config.queue.stream, consumerName(config.taskKind, Priority.Normal));
    const consumerSeconds = (info.config.ack_wait ?? 0) / 1e9;
    if (consumerSeconds <= 0) return;
    if (consumerSeconds < config.ackWaitSeconds) {
      logger.warn(
        { consumerAckWaitSeconds: consumerSeconds, configuredSeconds: config.ackWaitSeconds },
        'Consumer ack wait is shorter than TQ_ACK_WAIT_SECONDS; using the shorter one',
      );
      config.ackWaitSeconds = Math.max(1, Math.floor(consumerSeconds));
    }
  } catch (err) {
    logger.debug({ err }, 'Could not read the consumer ack wait; using TQ_ACK_WAIT_SECONDS');
  }
}

async function main(): Promise<void> {
  const config = readConfig();
  const logger = createLogger({ name: 'worker', level: config.logLevel, base: { worker: config.workerName } });
  const metrics = new WorkerMetrics();

  let worker: Worker | undefined;
  let nc: NatsConnection | undefined;
  let redis: Redis | undefined;
  const servers: OpsServer[] = [];
  let shuttingDown: Promise<void> | undefined;

  const shutdown = (signal: string): Promise<void> => {
    if (shuttingDown) {
      logger.info({ signal }, 'Already shutting down');
      return shuttingDown;
    }
    logger.info({ signal, graceSeconds: config.shutdownGraceSeconds }, 'Shutting down');
    shuttingDown = (async () => {
      await worker?.stop();
      // drain() sends what is buffered (the last acks and naks) before closing.
      await nc?.drain().catch((err: unknown) => logger.warn({ err }, 'NATS drain failed'));
      await redis?.quit().catch(() => redis?.disconnect());
      await Promise.all(servers.map((s) => s.close()));
      logger.info('Shut down');
    })();
    return shuttingDown;
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      shutdown(signal).then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, 'Shutdown failed');
          process.exit(1);
        },
      );
    });
  }
  process.on('unhandledRejection', (err) => {
    logger.fatal({ err }, 'Unhandled promise rejection');
    process.exit(1);
  });

  const health = { ready: () => worker?.ready ?? false };
  if (config.healthPort === config.metricsPort && config.healthPort !== 0) {
    servers.push(await startOpsServer({ port: config.healthPort, health, metrics: metrics.registry, logger }));
  } else {
    servers.push(await startOpsServer({ port: config.healthPort, health, logger }));
    servers.push(await startOpsServer({ port: config.metricsPort, metrics: metrics.registry, logger }));
  }

  logger.info({ healthPort: servers[0]?.port, metricsPort: servers.at(-1)?.port }, 'Serving probes and metrics');

  [nc, redis] = await Promise.all([connectNats(config.nats, logger), connectRedis(config.redis, logger)]);
  if (shuttingDown) return;
  await checkAckWait(nc, config, logger);

  worker = new Worker({ config, nc, redis, logger, runTask: pipelineFor(config), metrics });
  worker.start();
}

main().catch((err: unknown) => {
  process.stderr.write(`worker: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
