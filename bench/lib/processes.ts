// The product as its users run it: `node dist/controller/main.js` and
// `node dist/worker/main.js` (built by build.ts) as separate processes, configured through the
// environment like the Helm chart does, with logs in files. The benchmarks
// read the controller's /readyz and /metrics and the kernel's /proc, never
// its insides.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ManagedProcess, freePort, projectRoot, waitFor } from '../../test/harness/index.ts';
import { readCpuSeconds, readMemory, type MemoryReading } from './proc.ts';

export interface BenchSettings {
  /** Where logs and profiles go. */
  workDir: string;
  /** Holds `dist/`, the compiled product (see build.ts). */
  productDir: string;
  /** Run the controller with --cpu-prof into `<workDir>/profiles`. */
  profile: boolean;
  /** TQ_* overrides for every controller (--controller-env), for what-if runs; empty normally. */
  controllerEnv: Record<string, string>;
  /** Extra node flags for every controller (--controller-node-args), e.g. an --import of an experiment; empty normally. */
  controllerNodeArgs: string[];
}

export interface QueueSettings {
  natsUrl: string;
  redisUrl: string;
  stream: string;
  subjectPrefix: string;
  keyPrefix: string;
}

export interface ControllerProcessOptions extends QueueSettings {
  name: string;
  kubeconfigPath: string;
  /** The controller watches this namespace only, and keeps its Lease there. */
  namespace: string;
  /** Extra TQ_* variables (QPS, concurrency, ...); the chart's defaults otherwise. */
  env?: Record<string, string>;
}

export class ControllerProcess {
  readonly name: string;
  readonly process: ManagedProcess;
  readonly metricsPort: number;
  readonly healthPort: number;
  /** performance.now() when the process was spawned. */
  readonly startedAt: number;

  private constructor(name: string, proc: ManagedProcess, metricsPort: number, healthPort: number) {
    this.name = name;
    this.process = proc;
    this.metricsPort = metricsPort;
    this.healthPort = healthPort;
    this.startedAt = performance.now();
  }

  /**
   * Spawns the controller and waits until its probe port answers. A port
   * that was free a moment ago can be taken by another process on a shared
   * machine before the controller binds it: then it starts again on others.
   */
  static async start(settings: BenchSettings, options: ControllerProcessOptions): Promise<ControllerProcess> {
    for (let attempt = 1; ; attempt++) {
      const controller = await ControllerProcess.spawn(settings, options);
      let portTaken = false;
      await waitFor(`${options.name} /healthz`, async () => {
        if (!controller.process.running) {
          portTaken = controller.logTail(60).includes('EADDRINUSE');
          if (portTaken) return true;
          throw new Error(`${options.name} exited:\n${controller.logTail()}`);
        }
        const res = await fetch(`http://127.0.0.1:${controller.healthPort}/healthz`).catch(() => undefined);
        await res?.body?.cancel();
        return res !== undefined;
      }, { timeoutMs: 60_000, intervalMs: 25 });
      if (!portTaken) return controller;
      if (attempt >= 5) throw new Error(`${options.name}: its ports were taken ${attempt} times`);
    }
  }

  private static async spawn(settings: BenchSettings, options: ControllerProcessOptions): Promise<ControllerProcess> {
    const metricsPort = await freePort();
    const healthPort = await freePort();
    const logDir = join(settings.workDir, 'logs');
    mkdirSync(logDir, { recursive: true });
    const nodeArgs: string[] = [...settings.controllerNodeArgs];
    if (settings.profile) {
      const profileDir = join(settings.workDir, 'profiles');
      mkdirSync(profileDir, { recursive: true });
      nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${options.name}.cpuprofile`);
    }
    const proc = new ManagedProcess(options.name, process.execPath, [...nodeArgs, join(settings.productDir, 'dist', 'controller', 'main.js')], {
      logFile: join(logDir, `${options.name}.log`),
      cwd: projectRoot,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        KUBECONFIG: options.kubeconfigPath,
        POD_NAME: options.name,
        POD_NAMESPACE: options.namespace,
        TQ_NATS_URL: options.natsUrl,
        TQ_REDIS_URL: options.redisUrl,
        TQ_STREAM_NAME: options.stream,
        TQ_SUBJECT_PREFIX: options.subjectPrefix,
        TQ_KEY_PREFIX: options.keyPrefix,
        TQ_WATCH_NAMESPACE: options.namespace,
        TQ_LEADER_ELECTION: 'true',
        TQ_LEADER_ELECTION_NAMESPACE: options.namespace,
        TQ_METRICS_PORT: String(metricsPort),
        TQ_HEALTH_PORT: String(healthPort),
        TQ_LOG_LEVEL: 'info',
        ...options.env,
        ...settings.controllerEnv,
      },
    });
    proc.start();
    return new ControllerProcess(options.name, proc, metricsPort, healthPort);
  }

  get pid(): number {
    const pid = this.process.pid;
    if (pid === undefined) throw new Error(`${this.name} has no pid`);
    return pid;
  }

  async ready(): Promise<boolean> {
    const res = await fetch(`http://127.0.0.1:${this.healthPort}/readyz`).catch(() => undefined);
    await res?.body?.cancel();
    return res?.status === 200;
  }

  /** Holds the Lease (taskqueue_leader_is_leader is 1). */
  async leading(): Promise<boolean> {
    const text = await this.metricsText().catch(() => '');
    return sumMetric(text, 'taskqueue_leader_is_leader') === 1;
  }

  /**
   * Resolves when the process leads and /readyz answers 200: caches synced,
   * Redis and JetStream reachable. (/readyz alone says 200 on a replica that
   * has synced but does not lead yet.) Returns the milliseconds since spawn.
   */
  async waitReady(timeoutMs = 60_000): Promise<number> {
    // /readyz first: it is cheap, while every /metrics scrape walks the task cache.
    await waitFor(`${this.name} to lead and be ready`, async () => {
      if (!this.process.running) throw new Error(`${this.name} exited:\n${this.process.logTail()}`);
      return (await this.ready()) && (await this.leading()) && (await this.ready());
    }, { timeoutMs, intervalMs: 50 });
    return performance.now() - this.startedAt;
  }

  async metricsText(): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`);
    if (!res.ok) throw new Error(`${this.name} /metrics answered ${res.status}`);
    return res.text();
  }

  /** Sum of the samples of one metric whose labels contain every given label. */
  async metricSum(name: string, labels: Record<string, string> = {}): Promise<number> {
    return sumMetric(await this.metricsText(), name, labels);
  }

  memory(): MemoryReading {
    return readMemory(this.pid);
  }

  cpuSeconds(): number {
    return readCpuSeconds(this.pid);
  }

  logTail(lines = 40): string {
    return this.process.logTail(lines);
  }

  /** SIGTERM and wait (a graceful stop releases the Lease); SIGKILL after the grace. */
  async stop(graceMs = 25_000): Promise<void> {
    await this.process.stop(graceMs);
  }
}

/** Adds up the samples of a Prometheus text exposition that match a name and labels. */
export function sumMetric(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    if (!Object.entries(labels).every(([k, v]) => rest.includes(`${k}="${v}"`))) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) total += value;
  }
  return total;
}

export interface WorkerProcessOptions extends QueueSettings {
  name: string;
  /** Extra TQ_* variables: pipeline, engine, chunking. */
  env?: Record<string, string>;
}

export class WorkerProcess {
  readonly name: string;
  readonly process: ManagedProcess;

  private constructor(name: string, proc: ManagedProcess) {
    this.name = name;
    this.process = proc;
  }

  static start(settings: BenchSettings, options: WorkerProcessOptions): WorkerProcess {
    const logDir = join(settings.workDir, 'logs');
    mkdirSync(logDir, { recursive: true });
    const proc = new ManagedProcess(options.name, process.execPath, [join(settings.productDir, 'dist', 'worker', 'main.js')], {
      logFile: join(logDir, `${options.name}.log`),
      cwd: projectRoot,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        TQ_NATS_URL: options.natsUrl,
        TQ_REDIS_URL: options.redisUrl,
        TQ_STREAM_NAME: options.stream,
        TQ_SUBJECT_PREFIX: options.subjectPrefix,
        TQ_KEY_PREFIX: options.keyPrefix,
        TQ_TASK_KIND: 'TranscriptionTask',
        TQ_WORKER_NAME: options.name,
        TQ_HEALTH_PORT: '0',
        TQ_METRICS_PORT: '0',
        TQ_LOG_LEVEL: 'info',
        TQ_ENGINE: 'fake',
        TQ_PIPELINE: 'stub',
        ...options.env,
      },
    });
    proc.start();
    return new WorkerProcess(options.name, proc);
  }

  /** The worker's JSON log lines so far. */
  logs(): Record<string, unknown>[] {
    return this.process
      .logTail(1_000_000)
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  }

  async waitForLog(msg: string, timeoutMs = 30_000): Promise<void> {
    await waitFor(`${this.name} log "${msg}"`, () => {
      if (!this.process.running) throw new Error(`${this.name} exited:\n${this.process.logTail()}`);
      return this.process.logTail(200).includes(`"msg":"${msg}"`);
    }, { timeoutMs, intervalMs: 50 });
  }

  async stop(graceMs = 10_000): Promise<void> {
    await this.process.stop(graceMs);
  }
}

/** Stops every process given, whatever state it is in; never throws. */
export async function stopAll(processes: ReadonlyArray<{ stop(): Promise<void> } | undefined>): Promise<void> {
  await Promise.allSettled(processes.map((p) => p?.stop()));
}
