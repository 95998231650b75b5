import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManagedProcess } from './process.ts';
import { freePort, waitFor } from './ports.ts';

export interface RedisServer {
  url: string;
  port: number;
  dir: string;
  process: ManagedProcess;
  stop(): Promise<void>;
  start(): Promise<void>;
  restart(): Promise<void>;
  kill(): Promise<void>;
  destroy(): Promise<void>;
}

export interface RedisOptions {
  dir?: string;
  detached?: boolean;
  /** Append-only file on, so a restart keeps the data. */
  appendOnly?: boolean;
  binary?: string;
}

async function ping(port: number): Promise<boolean> {
  return new Promise((resolvePing) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    socket.setTimeout(1000);
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) {
        socket.destroy();
        resolvePing(reply.startsWith('+PONG'));
      }
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolvePing(false);
    });
    socket.once('error', () => resolvePing(false));
  });
}

/** A redis-server on a free loopback port that never evicts (queue state must not vanish). */
export async function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'tq-redis-'));
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const proc = new ManagedProcess(
    'redis-server',
    options.binary ?? process.env.TQ_REDIS_SERVER_BIN ?? 'redis-server',
    [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--dir', dir,
      '--save', '',
      '--appendonly', options.appendOnly ? 'yes' : 'no',
      '--maxmemory-policy', 'noeviction',
      '--daemonize', 'no',
    ],
    { logFile: join(dir, 'redis-server.log'), detached: options.detached ?? false },
  );
  const start = async () => {
    proc.start();
    await waitFor('redis-server PING', async () => {
      if (!proc.running) throw new Error(`redis-server exited:\n${proc.logTail()}`);
      return ping(port);
    }, { timeoutMs: 30_000 });
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
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
