// 2. Throughput: N short tasks created as fast as the apiserver takes them,
// 4 worker processes with an instant stub pipeline; tasks per second from the
// first create to the last Succeeded (as a watch sees it), and the apiserver
// writes per task from the audit log, split by resource.
//
// Yardsticks, measured in the same run:
//   - raw status-patch writes/s of a plain keep-alive client loop, at the
//     controller's reconcile concurrency, on TranscriptionTask objects nothing
//     reconciles (measured before and after each pass; the mean is used), and
//     the kube-apiserver's CPU per such write;
//   - raw JetStream publish+consume rate (nats.js, a stream configured like
//     ours, messages of the size of a task message).
// The ratio is tasks/s × writes per task ÷ raw writes/s: the share of the
// apiserver's plain write rate that the pipeline turns into finished tasks.
//
// Run twice: with the client-side rate limit lifted (what the design can do)
// and at the chart's default TQ_KUBE_QPS/TQ_KUBE_BURST (what users get).
import { randomBytes } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/nats-core';
import { Kind, Priority, applyTaskSpecDefaults } from '../src/api/index.ts';
import { consumerName, encodeTaskMessage, ensureConsumers, ensureStream, msgId, queueNames, taskSubject } from '../src/protocol/index.ts';
import { AuditLog, countWrites, type WriteCount } from './lib/audit.ts';
import type { BenchEnv } from './lib/env.ts';
import { BenchClient, TASK_REF, inParallel, nowMs, taskManifest, timedWatch, type TaskObject } from './lib/kube.ts';
import { ControllerProcess, WorkerProcess, stopAll } from './lib/processes.ts';
import { CpuAccount } from './lib/proc.ts';
import { benchQueue } from './lib/queue.ts';
import { expectSome, type BenchContext, type BenchResult, type Benchmark, type Row } from './lib/report.ts';
import { fmt } from './lib/stats.ts';
import { aborted } from './lib/wait.ts';

const SIZES = {
  // The quick mode skips the pass at the default QPS: same code path, and the time is needed elsewhere.
  quick: { tasks: 200, defaultQpsTasks: 0, rawSeconds: 1, jsMessages: 500 },
  full: { tasks: 2000, defaultQpsTasks: 300, rawSeconds: 8, jsMessages: 5000 },
} as const;
const WORKERS = 4;
/** The controller's TQ_RECONCILE_CONCURRENCY default: the raw loop writes with as many calls in flight. */
const CONCURRENCY = 4;
/** Creates in flight: enough to keep the apiserver busy. */
const CREATE_CONCURRENCY = 8;
/** Lifts the controller's client-side token bucket well above what this apiserver can take. */
const UNLIMITED = { TQ_KUBE_QPS: '5000', TQ_KUBE_BURST: '10000' };
const RAW_OBJECTS = 32;

interface RawRate {
  writesPerSecond: number;
  writes: number;
  seconds: number;
  failed: number;
  /** CPU milliseconds per write, by process (kube-apiserver, etcd, the loop itself). */
  cpuMsPerWrite: Record<string, number>;
}

/** A plain client loop: `concurrency` lanes patching /status of TranscriptionTasks nothing reconciles. */
async function rawStatusWrites(env: BenchEnv, client: BenchClient, namespace: string, names: readonly string[], seconds: number, signal?: AbortSignal): Promise<RawRate> {
  const { 'kube-apiserver': apiserver, etcd } = env.serverPids();
  const cpu = new CpuAccount({ 'kube-apiserver': apiserver, etcd });
  let writes = 0;
  let failed = 0;
  let counter = 0;
  const started = nowMs();
  const until = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, lane) => {
      let i = lane;
      while (nowMs() < until && !signal?.aborted) {
        const name = names[i % names.length] as string;
        i += CONCURRENCY;
        const n = ++counter;
        try {
          // A real change every time: an unchanged object is not written to etcd.
          await client.patchStatus(TASK_REF, namespace, name, { progress: n % 100, message: `raw write ${n}` });
          writes++;
        } catch {
          failed++;
        }
      }
    }),
  );
  const elapsed = (nowMs() - started) / 1000;
  const cpuMsPerWrite = Object.fromEntries(Object.entries(cpu.read()).map(([k, v]) => [k, (v * 1000) / Math.max(1, writes)]));
  return { writesPerSecond: writes / elapsed, writes, seconds: elapsed, failed, cpuMsPerWrite };
}

interface JetStreamRate {
  messagesPerSecond: number;
  messages: number;
  messageBytes: number;
  seconds: number;
}

/** Publish+consume through a stream set up like ours: `CONCURRENCY` publishers, `WORKERS` consumers acking each message. */
async function rawJetStream(env: BenchEnv, messages: number, namespace: string, signal: AbortSignal): Promise<JetStreamRate> {
  const queue = await benchQueue(env, 'jsr');
  try {
    const names = queueNames({ stream: queue.stream, subjectPrefix: queue.subjectPrefix });
    const jsm = await jetstreamManager(queue.nc);
    await ensureStream(jsm, { names });
    await ensureConsumers(jsm, { names, ackWaitMs: 60_000 });
    const js = jetstream(queue.nc);
    const spec = applyTaskSpecDefaults(Kind.TranscriptionTask, { audio: { uri: `https://audio.bench.invalid/task-0000-0000.wav` }, language: 'en' });
    const subject = taskSubject(Kind.TranscriptionTask, Priority.Normal, names);
    const bodies = Array.from({ length: messages }, (_, i) =>
      encodeTaskMessage({ namespace, name: `task-${i}`, uid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, kind: Kind.TranscriptionTask, attempt: 1, spec }),
    );
    const consumer = await js.consumers.get(names.stream, consumerName(Kind.TranscriptionTask, Priority.Normal));
    let consumed = 0;
    const started = nowMs();
    let lastAck = started;
    const consuming = Promise.all(
      Array.from({ length: WORKERS }, async () => {
        while (consumed < messages && !signal.aborted) {
          const msg = await consumer.next({ expires: 1000 });
          if (!msg) continue;
          await msg.ackAck();
          consumed++;
          lastAck = nowMs();
        }
      }),
    );
    await inParallel(bodies, CONCURRENCY, async (body, i) => {
      const h = headers();
      h.set('Nats-Msg-Id', msgId(`bench-${i}`, 1));
      await js.publish(subject, body, { headers: h });
    }, signal);
    await consuming;
    const seconds = (lastAck - started) / 1000;
    return { messagesPerSecond: messages / seconds, messages, messageBytes: bodies[0]?.length ?? 0, seconds };
  } finally {
    await queue.close();
  }
}

interface RunResult {
  tasks: number;
  tasksPerSecond: number;
  seconds: number;
  createSeconds: number;
  writes: WriteCount;
  controllerWrites: number;
  creates: number;
  controllerEnv: Record<string, string>;
  /** CPU seconds per task, by process, from the first create to the last Succeeded. */
  cpuMsPerTask: Record<string, number>;
  /** Reconcile passes of the task controller per task, and their mean wall time. */
  reconcilesPerTask: number;
  reconcileMeanMs: number;
}

/** One pass: a controller, 4 workers, N tasks, until every one has Succeeded. */
async function runTasks(ctx: BenchContext, label: string, tasks: number, controllerEnv: Record<string, string>, timeoutMs: number): Promise<RunResult> {
  const { env } = ctx;
  const namespace = await env.createNamespace(`tput-${label}`);
  const queue = await benchQueue(env, `tp${label.slice(0, 3)}`);
  const client = new BenchClient(env.kc);
  const audit = new AuditLog(env.auditLogPath);
  let controller: ControllerProcess | undefined;
  const workers: WorkerProcess[] = [];
  let watch: { stop(): void } | undefined;
  try {
    controller = await ControllerProcess.start(ctx.settings, { ...queue, name: `throughput-${label}-controller`, kubeconfigPath: env.kubeconfigPath, namespace, env: controllerEnv });
    // Workers after the controller has made the stream, so none starts in a pull-error backoff.
    await controller.waitReady();
    for (let i = 0; i < WORKERS; i++) {
      workers.push(WorkerProcess.start(ctx.settings, { ...queue, name: `throughput-${label}-worker-${i}`, env: { TQ_STUB_CHUNKS: '1', TQ_STUB_CHUNK_MS: '0' } }));
    }
    await Promise.all(workers.map((w) => w.waitForLog('Worker started')));

    const done = new Set<string>();
    let lastSucceeded = 0;
    let allDone: () => void = () => {};
    const finished = new Promise<void>((resolve) => (allDone = resolve));
    watch = await timedWatch<TaskObject>(env.kc, TASK_REF, namespace, (_type, obj, at) => {
      const name = obj.metadata?.name ?? '';
      if (obj.status?.phase === 'Succeeded' && !done.has(name)) {
        done.add(name);
        lastSucceeded = at;
        if (done.size === tasks) allDone();
      }
    });
    audit.mark();
    const pids: Record<string, number | undefined> = { ...env.serverPids(), controller: controller.pid };
    workers.forEach((w, i) => (pids[`worker ${i}`] = w.process.pid));
    const cpu = new CpuAccount(pids);

    const id = randomBytes(2).toString('hex');
    const names = Array.from({ length: tasks }, (_, i) => `t-${id}-${i}`);
    const firstCreate = nowMs();
    await inParallel(names, CREATE_CONCURRENCY, async (name) => {
      await client.create(TASK_REF, taskManifest(namespace, name));
    }, ctx.signal);
    const createSeconds = (nowMs() - firstCreate) / 1000;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      finished,
      aborted(ctx.signal),
      new Promise<void>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${label}: only ${done.size} of ${tasks} tasks succeeded within ${timeoutMs / 1000} s`)), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
    const seconds = (lastSucceeded - firstCreate) / 1000;
    const cpuMsPerTask: Record<string, number> = {};
    let workerCpu = 0;
    for (const [name, s] of Object.entries(cpu.read())) {
      if (name.startsWith('worker ')) workerCpu += s;
      else cpuMsPerTask[name] = (s * 1000) / tasks;
    }
    cpuMsPerTask['workers (4)'] = (workerCpu * 1000) / tasks;
    const passes = await controller.metricSum('taskqueue_reconcile_duration_seconds_count', { controller: 'transcriptiontask' });
    const passSeconds = await controller.metricSum('taskqueue_reconcile_duration_seconds_sum', { controller: 'transcriptiontask' });
    const reconcilesPerTask = passes / tasks;
    const reconcileMeanMs = (passSeconds * 1000) / passes;

    // Writes that belong to these tasks may trail the last Succeeded (its Event): count them too.
    const events = await audit.events(3000);
    const writes = countWrites(events, { namespaces: new Set([namespace]), fromMs: firstCreate - 50 });
    const creates = writes.byCategory['task create'] ?? 0;
    const controllerWrites = writes.total - creates;
    ctx.log(`${label}: ${tasks} tasks in ${fmt(seconds)} s (${fmt(tasks / seconds)}/s; creates took ${fmt(createSeconds)} s), ${fmt(controllerWrites / tasks)} controller writes/task ${JSON.stringify(writes.byCategory)}`);
    ctx.log(`${label}: CPU ms per task ${Object.entries(cpuMsPerTask).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}`);
    ctx.log(`${label}: ${fmt(reconcilesPerTask)} reconcile passes per task, ${fmt(reconcileMeanMs)} ms each on average`);
    return { tasks, tasksPerSecond: tasks / seconds, seconds, createSeconds, writes, controllerWrites, creates, controllerEnv, cpuMsPerTask, reconcilesPerTask, reconcileMeanMs };
  } finally {
    watch?.stop();
    await stopAll([...workers, controller]);
    await queue.close();
    client.close();
  }
}

function split(writes: WriteCount, tasks: number): string {
  const per = (n: number | undefined) => fmt((n ?? 0) / tasks);
  const c = writes.byCategory;
  return `status ${per(c['task status'])}, object ${per(c['task object'])}, events ${per(c.events)}, leases ${per(c.leases)}`;
}

function rows(label: string, run: RunResult, rawRates: readonly RawRate[], js: JetStreamRate): Row[] {
  const raw = rawRates.reduce((sum, r) => sum + r.writesPerSecond, 0) / rawRates.length;
  const rawApiserverMs = rawRates.reduce((sum, r) => sum + (r.cpuMsPerWrite['kube-apiserver'] ?? 0), 0) / rawRates.length;
  const perTask = run.controllerWrites / run.tasks;
  const perTaskAll = run.writes.total / run.tasks;
  const used = (run.tasksPerSecond * perTaskAll) / raw;
  const apiserverMsPerWrite = (run.cpuMsPerTask['kube-apiserver'] ?? Number.NaN) / perTaskAll;
  const controllerMs = run.cpuMsPerTask.controller ?? Number.NaN;
  return [
    {
      measurement: `2. throughput ${label} (n=${run.tasks}, ${WORKERS} workers)`,
      value: `${fmt(run.tasksPerSecond)} tasks/s × ${fmt(perTaskAll)} writes/task (incl. create)`,
      yardstick: `raw status patches ${fmt(raw)} writes/s (${CONCURRENCY} in flight)`,
      ratio: fmt(used),
      goal: 'ratio ≥ 0.7',
      met: used >= 0.7,
      numbers: { tasksPerSecond: run.tasksPerSecond, writesPerTaskInclCreate: perTaskAll, rawWritesPerSecond: raw, ratio: used, seconds: run.seconds },
    },
    {
      measurement: `2. apiserver writes per short task ${label}`,
      value: `${fmt(perTask)} by the controller (${split(run.writes, run.tasks)}) + 1 create`,
      yardstick: `JetStream publish+consume ${fmt(js.messagesPerSecond)} msg/s (${js.messageBytes} B)`,
      ratio: `tasks/s ÷ JetStream ${fmt(run.tasksPerSecond / js.messagesPerSecond, 4)}`,
      goal: '≤ 4 writes per task',
      met: perTask <= 4,
      numbers: { controllerWritesPerTask: perTask, jetStreamMessagesPerSecond: js.messagesPerSecond, failedWrites: run.writes.failed },
    },
    {
      measurement: `2. CPU per task ${label}`,
      value: `kube-apiserver ${fmt(apiserverMsPerWrite)} ms per write (${fmt(run.cpuMsPerTask['kube-apiserver'] ?? Number.NaN)} ms/task); controller ${fmt(controllerMs)} ms/task`,
      yardstick: `kube-apiserver ${fmt(rawApiserverMs)} ms per raw status patch`,
      ratio: `${fmt(apiserverMsPerWrite / rawApiserverMs)}× per write`,
      goal: '—',
      met: null,
      numbers: { apiserverMsPerWrite, rawApiserverMsPerWrite: rawApiserverMs, ...run.cpuMsPerTask, reconcilesPerTask: run.reconcilesPerTask, reconcileMeanMs: run.reconcileMeanMs },
    },
  ];
}

export const throughput: Benchmark = {
  name: 'throughput',
  title: 'Throughput of short tasks',
  async run(ctx: BenchContext): Promise<BenchResult> {
    const { env } = ctx;
    const size = SIZES[ctx.size];
    const client = new BenchClient(env.kc);
    try {
      const rawNamespace = await env.createNamespace('tput-raw');
      const rawNames = Array.from({ length: RAW_OBJECTS }, (_, i) => `raw-${i}`);
      await inParallel(rawNames, CONCURRENCY, async (name) => {
        await client.create(TASK_REF, taskManifest(rawNamespace, name));
      }, ctx.signal);

      const rawBefore = await rawStatusWrites(env, client, rawNamespace, rawNames, size.rawSeconds, ctx.signal);
      const js = await rawJetStream(env, size.jsMessages, rawNamespace, ctx.signal);
      ctx.log(`raw status patches ${fmt(rawBefore.writesPerSecond)}/s (kube-apiserver ${fmt(rawBefore.cpuMsPerWrite['kube-apiserver'] ?? Number.NaN)} CPU ms per write); JetStream ${fmt(js.messagesPerSecond)} msg/s`);
      const unlimited = await runTasks(ctx, 'unlimited', size.tasks, UNLIMITED, ctx.size === 'quick' ? 40_000 : 600_000);
      const rawMiddle = await rawStatusWrites(env, client, rawNamespace, rawNames, size.rawSeconds, ctx.signal);
      expectSome('raw status writes', rawBefore.writes + rawMiddle.writes);
      expectSome('JetStream messages', js.messages);
      expectSome('tasks per second', unlimited.tasksPerSecond);
      const result: Row[] = rows('(client rate limit lifted)', unlimited, [rawBefore, rawMiddle], js);
      let defaults: RunResult | undefined;
      let rawAfter: RawRate | undefined;
      if (size.defaultQpsTasks > 0) {
        defaults = await runTasks(ctx, 'defaults', size.defaultQpsTasks, {}, 600_000);
        rawAfter = await rawStatusWrites(env, client, rawNamespace, rawNames, size.rawSeconds, ctx.signal);
        expectSome('tasks per second at the default QPS', defaults.tasksPerSecond);
        result.push(...rows('(chart default QPS 20/burst 40)', defaults, [rawMiddle, rawAfter], js));
      }
      return {
        rows: result,
        details: { rawBefore, rawMiddle, rawAfter, jetStream: js, unlimited, defaults, createConcurrency: CREATE_CONCURRENCY, rawConcurrency: CONCURRENCY, workers: WORKERS },
      };
    } finally {
      client.close();
    }
  },
};
