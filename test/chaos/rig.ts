// Everything the chaos run breaks, started as real processes: a private
// control plane (etcd, kube-apiserver, kube-controller-manager), nats-server
// with its file store, redis-server, two controller replicas with leader
// election, and worker processes running the real pipeline with the chaos
// engine (engine.sh). Controllers and workers reach NATS and Redis through
// cut proxies (proxy.ts), so the network to either can be cut while the
// server keeps running.
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoordinationV1Api, CoreV1Api } from '@kubernetes/client-node';
import { Redis } from 'ioredis';
import {
  ManagedProcess,
  freePort,
  isListening,
  kubectlBinary,
  pidAlive,
  projectRoot,
  run,
  sleep,
  startControlPlane,
  startNats,
  waitFor,
  type ControlPlane,
  type NatsServer,
} from '../harness/index.ts';
import { startCutProxy, type CutProxy } from './proxy.ts';

export const CHAOS_NAMESPACE = 'chaos';
export const LEASE_NAME = 'task-queue-controller';

export interface RigSettings {
  dir: string;
  /** Consumer ack wait and the controller's heartbeat timeout, seconds (both at their minimum of 5 allowed; 10 here). */
  ackWaitSeconds: number;
  heartbeatTimeoutSeconds: number;
  workerHeartbeatSeconds: number;
  shutdownGraceSeconds: number;
  /** Worker processes per kind; the first transcription worker runs two tasks at once. */
  transcriptionWorkers: number;
  diarizationWorkers: number;
  chunkSeconds: number;
  engine: { chunkSeconds: number; longSeconds: number; slowSeconds: number };
  /** Where the task audio lives (file:// root). */
  audioDir: string;
}

export interface WorkerSlot {
  slot: string;
  /** Taken down on purpose by a fault; the supervisor leaves it alone. */
  down?: boolean;
  kind: 'TranscriptionTask' | 'DiarizationTask';
  concurrency: number;
  incarnation: number;
  /** The current incarnation's name (TQ_WORKER_NAME and the history's worker column). */
  name: string;
  process: ManagedProcess;
  /** Names of every incarnation so far, with when each started and ended. */
  lives: WorkerLife[];
}

export interface WorkerLife {
  name: string;
  slot: string;
  logFile: string;
  startedAt: number;
  endedAt?: number;
  /** How it ended: killed (SIGKILL, with its engine), terminated (SIGTERM), exited on its own, or still running at the end. */
  end?: 'killed' | 'terminated' | 'exited' | 'stopped';
}

export interface ControllerSlot {
  identity: string;
  process: ManagedProcess;
  logFile: string;
  down?: boolean;
}

/** A process that exited without a fault asking it to, and was started again (as the kubelet would). */
export interface SelfExit {
  at: number;
  who: string;
  code: number | null;
}

/** The processes a pid has started, and theirs, found through /proc (before the parent dies and they are reparented). */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(fields[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

function signalAll(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** redis-server with its data directory kept across restarts; AOF on or off per start. */
export class RedisRig {
  readonly port: number;
  readonly dir: string;
  private proc: ManagedProcess | undefined;
  appendOnly = true;

  private constructor(port: number, dir: string) {
    this.port = port;
    this.dir = dir;
  }

  static async start(dir: string): Promise<RedisRig> {
    mkdirSync(dir, { recursive: true });
    const rig = new RedisRig(await freePort(), dir);
    await rig.start(true);
    return rig;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(appendOnly: boolean): Promise<void> {
    this.appendOnly = appendOnly;
    this.proc = new ManagedProcess(
      'redis-server',
      process.env.TQ_REDIS_SERVER_BIN ?? 'redis-server',
      [
        '--port', String(this.port),
        '--bind', '127.0.0.1',
        '--dir', this.dir,
        '--save', '',
        '--appendonly', appendOnly ? 'yes' : 'no',
        '--appendfsync', 'everysec',
        '--maxmemory-policy', 'noeviction',
        '--daemonize', 'no',
      ],
      { logFile: join(this.dir, 'redis-server.log') },
    );
    this.proc.start();
    const client = new Redis({ port: this.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined);
    try {
      await waitFor('redis-server to load its data', async () => {
        if (!this.proc?.running) throw new Error(`redis-server exited:\n${this.proc?.logTail()}`);
        if (client.status !== 'ready') await client.connect().catch(() => undefined);
        if (client.status !== 'ready') return false;
        const info = await client.info('persistence');
        return /loading:0/.test(info);
      }, { timeoutMs: 60_000, intervalMs: 100 });
    } finally {
      client.disconnect();
    }
  }

  /** Graceful (SIGTERM): with AOF on, redis flushes it before exiting. */
  async stop(): Promise<void> {
    await this.proc?.stop(20_000);
  }

  async kill(): Promise<void> {
    await this.proc?.kill('SIGKILL');
  }

  /** Turns AOF on in the running server and waits until the rewrite that creates it is done. */
  async enableAppendOnly(): Promise<void> {
    const client = new Redis({ port: this.port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
    try {
      await client.config('SET', 'appendonly', 'yes');
      await waitFor('the AOF rewrite to finish', async () => {
        const info = await client.info('persistence');
        return /aof_enabled:1/.test(info) && /aof_rewrite_in_progress:0/.test(info) && !/aof_rewrite_scheduled:1/.test(info);
      }, { timeoutMs: 60_000, intervalMs: 100 });
      this.appendOnly = true;
    } finally {
      client.disconnect();
    }
  }
}

export class Rig {
  readonly settings: RigSettings;
  cp!: ControlPlane;
  nats!: NatsServer;
  redis!: RedisRig;
  natsProxy!: CutProxy;
  redisProxy!: CutProxy;
  readonly controllers: ControllerSlot[] = [];
  readonly workers: WorkerSlot[] = [];
  readonly historyFile: string;
  readonly selfExits: SelfExit[] = [];
  private stopped = false;
  private supervisor: NodeJS.Timeout | undefined;

  constructor(settings: RigSettings) {
    this.settings = settings;
    this.historyFile = join(settings.dir, 'engine-history.log');
  }

  async start(log: (line: string) => void): Promise<void> {
    const { dir } = this.settings;
    mkdirSync(join(dir, 'logs'), { recursive: true });
    const started = Date.now();
    [this.cp, this.nats, this.redis] = await Promise.all([
      startControlPlane({ dir: join(dir, 'cluster'), controllerManager: true }),
      startNats({ dir: join(dir, 'nats') }),
      RedisRig.start(join(dir, 'redis')),
    ]);
    this.natsProxy = await startCutProxy({ targetPort: this.nats.port, scheme: 'nats' });
    this.redisProxy = await startCutProxy({ targetPort: this.redis.port, scheme: 'redis' });
    const kubeconfig = this.cp.kubeconfigPath;
    const apply = await run(kubectlBinary, ['--kubeconfig', kubeconfig, 'apply', '--server-side', '--force-conflicts', '-f', join(projectRoot, 'crds')]);
    if (apply.code !== 0) throw new Error(`installing the CRDs failed:\n${apply.stderr}`);
    const established = await run(kubectlBinary, ['--kubeconfig', kubeconfig, 'wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
    if (established.code !== 0) throw new Error(`the CRDs did not become Established:\n${established.stderr}`);
    await this.cp.kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: CHAOS_NAMESPACE } } });
    log(`servers up in ${Date.now() - started} ms: apiserver ${this.cp.server}, nats ${this.nats.url} (proxy ${this.natsProxy.port}), redis ${this.redis.url} (proxy ${this.redisProxy.port})`);

    for (const identity of ['ctl-a', 'ctl-b']) await this.startController(identity);
    await waitFor('a controller to lead', async () => (await this.leader()) !== undefined, { timeoutMs: 60_000, intervalMs: 250 });
    // The leader creates the stream and consumers; workers check the ack wait against them.
    await sleep(1000);

    const { transcriptionWorkers, diarizationWorkers } = this.settings;
    for (let i = 0; i < transcriptionWorkers; i++) {
      this.workers.push(this.newSlot(`wt${i}`, 'TranscriptionTask', i === 0 ? 2 : 1));
    }
    for (let i = 0; i < diarizationWorkers; i++) this.workers.push(this.newSlot(`wd${i}`, 'DiarizationTask', 1));
    for (const w of this.workers) this.startWorker(w);
    await Promise.all(this.workers.map((w) => this.waitWorkerReady(w)));
    log(`controllers ${this.controllers.map((c) => c.identity).join(', ')} (leader ${await this.leader()}); workers ${this.workers.map((w) => `${w.name}×${w.concurrency}`).join(', ')}`);
    this.supervise(log);
  }

  /** restartPolicy: Always. A process that exits on its own (a controller that lost its Lease, a crashed worker) is started again. */
  private supervise(log: (line: string) => void): void {
    let busy = false;
    this.supervisor = setInterval(() => {
      if (busy || this.stopped) return;
      busy = true;
      void (async () => {
        for (const c of this.controllers) {
          if (c.down || c.process.running) continue;
          const code = await c.process.exited();
          this.selfExits.push({ at: Date.now(), who: c.identity, code });
          log(`controller ${c.identity} exited on its own (code ${code}); starting it again`);
          await this.startController(c.identity);
        }
        for (const w of this.workers) {
          if (w.down || w.process.running) continue;
          const code = await w.process.exited();
          this.endLife(w, 'exited');
          this.selfExits.push({ at: Date.now(), who: w.name, code });
          log(`worker ${w.name} exited on its own (code ${code}); starting it again`);
          this.startWorker(w);
        }
      })().finally(() => {
        busy = false;
      });
    }, 1000);
  }

  private newSlot(slot: string, kind: WorkerSlot['kind'], concurrency: number): WorkerSlot {
    return { slot, kind, concurrency, incarnation: 0, name: '', process: undefined as unknown as ManagedProcess, lives: [] };
  }

  async startController(identity: string): Promise<void> {
    const existing = this.controllers.find((c) => c.identity === identity);
    const logFile = join(this.settings.dir, 'logs', `controller-${identity}.log`);
    const proc = new ManagedProcess(`controller ${identity}`, process.execPath, [join(projectRoot, 'src', 'controller', 'main.ts')], {
      logFile,
      cwd: projectRoot,
      env: {
        PATH: process.env.PATH,
        KUBECONFIG: this.cp.kubeconfigPath,
        TQ_NATS_URL: this.natsProxy.url,
        TQ_REDIS_URL: this.redisProxy.url,
        TQ_WATCH_NAMESPACE: CHAOS_NAMESPACE,
        TQ_LEADER_ELECTION_NAMESPACE: CHAOS_NAMESPACE,
        TQ_LEASE_DURATION_SECONDS: '6',
        TQ_RENEW_DEADLINE_SECONDS: '4',
        TQ_RETRY_PERIOD_SECONDS: '1',
        POD_NAME: identity,
        TQ_HEARTBEAT_TIMEOUT_SECONDS: String(this.settings.heartbeatTimeoutSeconds),
        TQ_ACK_WAIT_SECONDS: String(this.settings.ackWaitSeconds),
        TQ_METRICS_PORT: String(await freePort()),
        TQ_HEALTH_PORT: String(await freePort()),
        TQ_KUBE_QPS: '100',
        TQ_KUBE_BURST: '200',
        TQ_LOG_LEVEL: 'info',
      },
    });
    proc.start();
    if (existing) {
      existing.process = proc;
      existing.down = false;
    } else {
      this.controllers.push({ identity, process: proc, logFile });
    }
  }

  startWorker(w: WorkerSlot): void {
    w.down = false;
    w.incarnation++;
    w.name = `${w.slot}-${w.incarnation}`;
    const logFile = join(this.settings.dir, 'logs', `worker-${w.name}.log`);
    const { engine } = this.settings;
    w.process = new ManagedProcess(`worker ${w.name}`, process.execPath, [join(projectRoot, 'src', 'worker', 'main.ts')], {
      logFile,
      cwd: projectRoot,
      env: {
        PATH: process.env.PATH,
        TQ_NATS_URL: this.natsProxy.url,
        TQ_REDIS_URL: this.redisProxy.url,
        TQ_TASK_KIND: w.kind,
        TQ_WORKER_NAME: w.name,
        TQ_CONCURRENCY: String(w.concurrency),
        TQ_PIPELINE: 'standard',
        TQ_ENGINE: 'exec',
        TQ_ENGINE_EXEC_COMMAND: JSON.stringify(['/bin/sh', join(projectRoot, 'test', 'chaos', 'engine.sh')]),
        TQ_ENGINE_TIMEOUT_SECONDS: '60',
        TQ_ENGINE_KILL_GRACE_SECONDS: '2',
        TQ_CHUNK_SECONDS: String(this.settings.chunkSeconds),
        TQ_AUDIO_FILE_ROOTS: this.settings.audioDir,
        TQ_AUDIO_DIR: join(this.settings.dir, 'work', w.slot),
        TQ_SHUTDOWN_GRACE_SECONDS: String(this.settings.shutdownGraceSeconds),
        TQ_ACK_WAIT_SECONDS: String(this.settings.ackWaitSeconds),
        TQ_HEARTBEAT_SECONDS: String(this.settings.workerHeartbeatSeconds),
        TQ_IDLE_POLL_MS: '250',
        TQ_HEALTH_PORT: '0',
        TQ_METRICS_PORT: '0',
        TQ_LOG_LEVEL: 'info',
        // Not TQ_*: these reach the engine (the exec engine strips the worker's own settings).
        CHAOS_HISTORY: this.historyFile,
        CHAOS_WORKER: w.name,
        CHAOS_CHUNK_SECONDS: String(engine.chunkSeconds),
        CHAOS_LONG_SECONDS: String(engine.longSeconds),
        CHAOS_SLOW_SECONDS: String(engine.slowSeconds),
      },
    });
    w.process.start();
    w.lives.push({ name: w.name, slot: w.slot, logFile, startedAt: Date.now() });
  }

  async waitWorkerReady(w: WorkerSlot): Promise<void> {
    const logFile = w.lives.at(-1)?.logFile as string;
    await waitFor(`worker ${w.name} to start`, () => {
      if (!w.process.running) throw new Error(`worker ${w.name} exited:\n${w.process.logTail()}`);
      try {
        return readFileSync(logFile, 'utf8').includes('"Worker started"');
      } catch {
        return false;
      }
    }, { timeoutMs: 60_000, intervalMs: 100 });
  }

  /** SIGKILL of a worker and everything it started, as when a container dies. */
  async killWorker(w: WorkerSlot): Promise<void> {
    w.down = true;
    const pid = w.process.pid;
    if (pid === undefined) return;
    const tree = descendants(pid);
    signalAll([pid, ...tree], 'SIGKILL');
    await w.process.exited();
    this.endLife(w, 'killed');
  }

  /** SIGTERM (what the kubelet sends), then wait for the graceful shutdown. */
  async terminateWorker(w: WorkerSlot): Promise<void> {
    w.down = true;
    await w.process.stop((this.settings.shutdownGraceSeconds + 20) * 1000);
    // Engines still running past the worker's exit would be killed with the container.
    this.endLife(w, 'terminated');
  }

  /** SIGSTOP of a worker and its engine processes (a frozen container); returns the pids to continue. */
  pauseWorker(w: WorkerSlot): number[] {
    const pid = w.process.pid;
    if (pid === undefined) return [];
    const pids = [pid, ...descendants(pid)];
    signalAll(pids, 'SIGSTOP');
    return pids;
  }

  resumeWorker(pids: number[]): void {
    // Processes started while it was stopped are its children too.
    const all = new Set(pids);
    for (const pid of pids) for (const d of pidAlive(pid) ? descendants(pid) : []) all.add(d);
    signalAll([...all], 'SIGCONT');
  }

  private endLife(w: WorkerSlot, end: WorkerLife['end']): void {
    const life = w.lives.at(-1);
    if (life && life.endedAt === undefined) {
      life.endedAt = Date.now();
      life.end = end;
    }
  }

  async leader(): Promise<string | undefined> {
    try {
      const lease = await this.cp.kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: LEASE_NAME, namespace: CHAOS_NAMESPACE });
      const holder = lease.spec?.holderIdentity;
      const renew = lease.spec?.renewTime ? new Date(lease.spec.renewTime as unknown as string).getTime() : 0;
      const duration = (lease.spec?.leaseDurationSeconds ?? 0) * 1000;
      if (!holder || Date.now() > renew + duration) return undefined;
      return holder;
    } catch {
      return undefined;
    }
  }

  /** Ends every process; the logs and the history stay in `dir`. */
  /** SIGKILL of a controller replica; the caller starts it again. */
  async killController(c: ControllerSlot): Promise<void> {
    c.down = true;
    await c.process.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.supervisor);
    await Promise.allSettled(
      this.workers.map(async (w) => {
        if (!w.process?.running) return;
        await this.killWorker(w);
        const life = w.lives.at(-1);
        if (life) life.end = 'stopped';
      }),
    );
    await Promise.allSettled(this.controllers.map((c) => c.process.kill('SIGKILL')));
    await Promise.allSettled([this.natsProxy?.close(), this.redisProxy?.close()]);
    await Promise.allSettled([this.nats?.stop(), this.redis?.stop()]);
    await this.cp?.stop().catch(() => undefined);
  }

  async natsUp(): Promise<boolean> {
    return isListening(this.nats.port);
  }
}
