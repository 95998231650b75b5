import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManagedProcess } from './process.ts';
import { freePort, waitFor } from './ports.ts';

export interface NatsServer {
  url: string;
  port: number;
  monitorUrl: string;
  storeDir: string;
  process: ManagedProcess;
  /** Graceful stop; the JetStream store is kept for a later start(). */
  stop(): Promise<void>;
  start(): Promise<void>;
  restart(): Promise<void>;
  kill(): Promise<void>;
  /** Stops and removes the store. */
  destroy(): Promise<void>;
}

export interface NatsOptions {
  dir?: string;
  detached?: boolean;
  binary?: string;
}

/** A nats-server with JetStream on free loopback ports and a private store. */
export async function startNats(options: NatsOptions = {}): Promise<NatsServer> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'tq-nats-'));
  const storeDir = join(dir, 'jetstream');
  mkdirSync(storeDir, { recursive: true });
  const port = await freePort();
  const monitorPort = await freePort();
  const monitorUrl = `http://127.0.0.1:${monitorPort}`;
  const proc = new ManagedProcess(
    'nats-server',
    options.binary ?? process.env.TQ_NATS_SERVER_BIN ?? 'nats-server',
    ['-a', '127.0.0.1', '-p', String(port), '-m', String(monitorPort), '-js', '-sd', storeDir, '-n', `tq-test-${port}`],
    { logFile: join(dir, 'nats-server.log'), detached: options.detached ?? false },
  );
  const start = async () => {
    proc.start();
    await waitFor('nats-server /healthz', async () => {
      if (!proc.running) throw new Error(`nats-server exited:\n${proc.logTail()}`);
      const res = await fetch(`${monitorUrl}/healthz?js-enabled-only=true`).catch(() => undefined);
      return res?.ok ?? false;
    }, { timeoutMs: 30_000 });
  };
  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    monitorUrl,
    storeDir,
    process: proc,
    stop: () => proc.stop(),
    start,
    async restart() {
      await proc.stop();
      await start();
    },
    kill: () => proc.kill('SIGKILL'),
    async destroy() {
      await proc.stop();
      if (!options.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
