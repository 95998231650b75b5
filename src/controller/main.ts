// Entry point of the controller: `node dist/controller/main.js` in the image,
// `npm run controller` from a checkout. Configuration comes from the
// environment (see config.ts and the chart's values).
import { createLogger, loadEnvOrExit } from '../common/index.ts';
import { ControllerEnvSchema, controllerConfigFromEnv } from './config.ts';
import { ControllerManager } from './manager.ts';

const env = loadEnvOrExit(ControllerEnvSchema, { component: 'task-queue-controller' });
const config = controllerConfigFromEnv(env);
const logger = createLogger({ name: 'controller', level: config.logLevel, base: { pod: config.identity } });

let exiting = false;
async function shutdown(code: number, why: string): Promise<void> {
  if (exiting) return;
  exiting = true;
  logger.info({ why }, 'Shutting down');
  const force = setTimeout(() => process.exit(code), 20_000);
  force.unref();
  await manager.stop().catch((err: unknown) => logger.error({ err }, 'Shutdown failed'));
  process.exit(code);
}

const manager = new ControllerManager({
  config,
  logger,
  // A replica that lost the Lease may hold stale beliefs; a restart is the simplest clean slate.
  onLostLeadership: () => void shutdown(1, 'lost leadership'),
});

process.on('SIGTERM', () => void shutdown(0, 'SIGTERM'));
process.on('SIGINT', () => void shutdown(0, 'SIGINT'));
process.on('unhandledRejection', (err) => logger.error({ err }, 'Unhandled rejection'));

await manager.start();
