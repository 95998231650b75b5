// 5. Controller cost: resident memory and CPU seconds of the controller
// process (read from /proc) with N1 and then N2 tasks in its namespace, and
// the time a restarted controller takes to reach a synced, correct state.
//
// Most tasks in a real cluster are finished, so most are seeded finished:
// created with the controller's finalizer and given the Succeeded status the
// controller itself writes (built with its own statusFromDecision and
// conditions), while no controller runs. A few are created while it runs and
// queued by it for real, so a restart has messages it must not queue twice.
//
// Synced = leading, /readyz 200, at least as many reconcile passes as tasks
// (taskqueue_reconcile_duration_seconds_count) and no more passes for a
// second after that. Correct = every status and
// resourceVersion as before the restart, no apiserver write to a task, and
// exactly one stream message per queued task.
//
// Yardsticks, same run: the JSON size of the objects the cache holds (for
// memory), and the wall time and CPU a plain client takes to list them all
// (for start-up CPU and the restart).
import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { Phase, Reason, type TaskStatus } from '../src/api/index.ts';
import { conditionsForPhase, setCondition } from '../src/controller/tasks/conditions.ts';
import { statusFromDecision, type Decision } from '../src/controller/tasks/decide.ts';
import { TASK_FINALIZER } from '../src/controller/tasks/task-reconciler.ts';
import { decodeTaskMessage } from '../src/protocol/index.ts';
import { AuditLog, countWrites } from './lib/audit.ts';
import { BenchClient, TASK_REF, inParallel, nowMs, taskManifest, type TaskObject } from './lib/kube.ts';
import { ControllerProcess, sumMetric, stopAll, type BenchSettings, type ControllerProcessOptions } from './lib/processes.ts';
import { MB } from './lib/proc.ts';
import { benchQueue, type BenchQueue } from './lib/queue.ts';
import { expectSome, type BenchContext, type BenchResult, type Benchmark } from './lib/report.ts';
import { fmt } from './lib/stats.ts';
import { poll } from './lib/wait.ts';

const SIZES = {
  quick: { levels: [200, 1000], queued: 20, idleSeconds: 1, settleMs: 1000 },
  full: { levels: [1000, 10_000], queued: 100, idleSeconds: 10, settleMs: 3000 },
} as const;
const SEED_CONCURRENCY = 16;
const RSS_GOAL_MB = 250;

/**
 * The V8 heap Node sizes for itself inside the chart's controller pod
 * (resources.limits.memory 512Mi): Node hands V8 the cgroup limit as the
 * machine's memory, and V8 takes a quarter of it, times two on 64-bit, for
 * the old generation (Heap::HeapSizeFromPhysicalMemory), and for an old
 * generation that small the minimum semi-space
 * (YoungGenerationSizeFromOldGenerationSize). Set by hand here because this
 * machine runs no memory cgroup for the controller; on a 24 GB machine V8
 * would otherwise give it a 4 GB heap with 32 MB semi-spaces.
 */
const POD_HEAP_FLAGS = ['--max-old-space-size=256', '--max-semi-space-size=1'];
const RESTART_GOAL_S = 10;

/** The status the controller writes when a worker reports success, built with the controller's own functions. */
function succeededStatus(uid: string, i: number, now: Date): TaskStatus {
  const at = (agoMs: number) => new Date(now.getTime() - agoMs).toISOString();
  const decision: Decision = {
    phase: Phase.Succeeded,
    reason: Reason.Completed,
    message: 'The task completed',
    progress: 100,
    attempts: 1,
    worker: `asr-workers-6f7c9d8b5-${(i % 97).toString(36).padStart(5, 'x')}`,
    queuedAt: at(600_000),
    startTime: at(590_000),
    completionTime: at(1_000),
    lastReportTime: at(1_000),
    result: { ref: `tq:{${uid}}:result`, summary: { language: 'en', durationSeconds: 1800 + (i % 600), segments: 400 + (i % 50) } },
    actions: [],
  };
  const status = statusFromDecision(undefined, decision);
  let conditions = status.conditions;
  for (const c of conditionsForPhase(decision.phase, decision.reason, decision.message)) conditions = setCondition(conditions, c, now, 1);
  status.conditions = conditions;
  status.observedGeneration = 1;
  return status;
}

async function seedFinished(client: BenchClient, namespace: string, from: number, to: number, signal: AbortSignal): Promise<void> {
  const id = randomBytes(2).toString('hex');
  const indexes = Array.from({ length: to - from }, (_, k) => from + k);
  const now = new Date();
  await inParallel(indexes, SEED_CONCURRENCY, async (i) => {
    const name = `done-${id}-${i}`;
    const created = await client.create(TASK_REF, taskManifest(namespace, name, { finalizers: [TASK_FINALIZER] }));
    await client.patchStatus(TASK_REF, namespace, name, succeededStatus(created.metadata?.uid as string, i, now) as Record<string, unknown>);
  }, signal);
}

interface CostReading {
  tasks: number;
  readyMs: number;
  syncedMs: number;
  rssMB: number;
  peakRssMB: number;
  cpuSecondsToSync: number;
  cpuSecondsAfterSettle: number;
  idleCpuPercent: number;
  heapUsedMB: number;
  heapTotalMB: number;
  externalMB: number;
}

/** Reconcile passes of the TranscriptionTask controller so far. */
async function reconciles(controller: ControllerProcess): Promise<number> {
  return controller.metricSum('taskqueue_reconcile_duration_seconds_count', { controller: 'transcriptiontask' });
}

async function startAndMeasure(
  ctx: BenchContext,
  settings: BenchSettings,
  options: ControllerProcessOptions,
  tasks: number,
  idleSeconds: number,
  settleMs: number,
  before?: () => Promise<void>,
): Promise<{ controller: ControllerProcess; reading: CostReading }> {
  const controller = await ControllerProcess.start(settings, options);
  const readyMs = await controller.waitReady(120_000);
  await before?.();
  // Synced: every task reconciled, and no pass since for a second (a task
  // reconciled again after a failed first pass counts once it settles). The
  // moment is the first look that saw the final count. Every /metrics scrape
  // walks the task cache (the taskqueue_tasks gauge), so look five times a second.
  let count = -1;
  let syncedAt = 0;
  let cpuSecondsToSync = 0;
  await poll(`${options.name} to reconcile ${tasks} tasks`, async () => {
    const now = await reconciles(controller);
    if (now !== count) {
      count = now;
      syncedAt = performance.now();
      cpuSecondsToSync = controller.cpuSeconds();
      return false;
    }
    return count >= tasks && performance.now() - syncedAt >= 1000;
  }, { timeoutMs: 600_000, intervalMs: 200, signal: ctx.signal });
  const syncedMs = syncedAt - controller.startedAt;
  // Let late events pass before reading memory.
  await new Promise((r) => setTimeout(r, settleMs));
  const cpuSecondsAfterSettle = controller.cpuSeconds();
  const idleFrom = controller.cpuSeconds();
  await new Promise((r) => setTimeout(r, idleSeconds * 1000));
  const idleCpuPercent = ((controller.cpuSeconds() - idleFrom) / idleSeconds) * 100;
  const memory = controller.memory();
  const metrics = await controller.metricsText();
  const reading: CostReading = {
    tasks,
    readyMs,
    syncedMs,
    rssMB: memory.rssBytes / MB,
    peakRssMB: memory.peakRssBytes / MB,
    cpuSecondsToSync,
    cpuSecondsAfterSettle,
    idleCpuPercent,
    heapUsedMB: sumMetric(metrics, 'taskqueue_controller_nodejs_heap_size_used_bytes') / MB,
    heapTotalMB: sumMetric(metrics, 'taskqueue_controller_nodejs_heap_size_total_bytes') / MB,
    externalMB: sumMetric(metrics, 'taskqueue_controller_nodejs_external_memory_bytes') / MB,
  };
  ctx.log(
    `${tasks} tasks: ready ${fmt(readyMs)} ms, synced ${fmt(syncedMs)} ms, RSS ${fmt(reading.rssMB)} MB (peak ${fmt(reading.peakRssMB)}), heap used ${fmt(reading.heapUsedMB)} MB, CPU ${fmt(cpuSecondsToSync)} s to sync, idle ${fmt(idleCpuPercent)}%`,
  );
  return { controller, reading };
}

/** uid of every message in the stream, in order. */
async function queuedUids(queue: BenchQueue): Promise<string[]> {
  const jsm = await jetstreamManager(queue.nc);
  const info = await jsm.streams.info(queue.stream);
  const uids: string[] = [];
  if (info.state.messages === 0) return uids;
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const msg = await jsm.streams.getMessage(queue.stream, { seq });
    if (msg) uids.push(decodeTaskMessage(msg.data).uid);
  }
  return uids;
}

function stable(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b))) : v,
  );
}

export const controllerCost: Benchmark = {
  name: 'cost',
  title: 'Controller cost and restart',
  async run(ctx: BenchContext): Promise<BenchResult> {
    const { env } = ctx;
    const { levels, queued, idleSeconds, settleMs } = SIZES[ctx.size];
    const [small, large] = levels;
    const namespace = await env.createNamespace('cost');
    const queue = await benchQueue(env, 'cst');
    const client = new BenchClient(env.kc);
    const audit = new AuditLog(env.auditLogPath);
    const base = { ...queue, kubeconfigPath: env.kubeconfigPath, namespace };
    const running: ControllerProcess[] = [];
    try {
      // N1: finished tasks seeded, a few queued through the controller.
      let seedFrom = nowMs();
      await seedFinished(client, namespace, 0, small - queued, ctx.signal);
      ctx.log(`seeded ${small - queued} finished tasks in ${fmt((nowMs() - seedFrom) / 1000)} s`);
      const first = await startAndMeasure(ctx, ctx.settings, { ...base, name: 'cost-controller-a' }, small, idleSeconds, settleMs, async () => {
        const id = randomBytes(2).toString('hex');
        await inParallel(Array.from({ length: queued }, (_, i) => `queued-${id}-${i}`), 4, async (name) => {
          await client.create(TASK_REF, taskManifest(namespace, name));
        }, ctx.signal);
        await poll(`${queued} tasks to be Queued`, async () => {
          const { items } = await client.listAll<TaskObject>(TASK_REF, namespace);
          return items.filter((t) => t.status?.phase === Phase.Queued).length === queued;
        }, { timeoutMs: 120_000, intervalMs: 500, signal: ctx.signal });
      });
      running.push(first.controller);
      await first.controller.stop();

      // N2: more finished tasks, seeded while no controller runs; then a cold start.
      seedFrom = nowMs();
      await seedFinished(client, namespace, small - queued, large - queued, ctx.signal);
      ctx.log(`seeded ${large - small} more finished tasks in ${fmt((nowMs() - seedFrom) / 1000)} s`);
      const second = await startAndMeasure(ctx, ctx.settings, { ...base, name: 'cost-controller-b' }, large, idleSeconds, settleMs);
      running.push(second.controller);

      // Yardstick: a plain client listing everything the cache holds.
      const cpuBefore = process.cpuUsage();
      const listFrom = nowMs();
      const listed = await client.listAll<TaskObject>(TASK_REF, namespace);
      const listSeconds = (nowMs() - listFrom) / 1000;
      const cpu = process.cpuUsage(cpuBefore);
      const listCpuSeconds = (cpu.user + cpu.system) / 1e6;
      const jsonMB = listed.jsonBytes / MB;
      // How much of that is metadata.managedFields, which the controller never reads.
      const managedFieldsMB =
        listed.items.reduce((sum, t) => sum + Buffer.byteLength(JSON.stringify(t.metadata?.managedFields ?? [])), 0) / MB;
      expectSome('listed tasks', listed.items.length);

      // Restart: the state before, a graceful stop, a new process, the state after.
      const statusBefore = new Map(listed.items.map((t) => [t.metadata?.name as string, { status: stable(t.status), rv: t.metadata?.resourceVersion }]));
      const uidsBefore = await queuedUids(queue);
      audit.mark();
      const stopFrom = nowMs();
      await second.controller.stop();
      const stopSeconds = (nowMs() - stopFrom) / 1000;
      const restartFrom = nowMs();
      // The restarted controller runs with the heap its pod would give it.
      const podSettings = { ...ctx.settings, controllerNodeArgs: [...POD_HEAP_FLAGS, ...ctx.settings.controllerNodeArgs] };
      const third = await startAndMeasure(ctx, podSettings, { ...base, name: 'cost-controller-c' }, large, idleSeconds, settleMs);
      running.push(third.controller);
      const restartSyncedAt = restartFrom + third.reading.syncedMs;

      const after = await client.listAll<TaskObject>(TASK_REF, namespace);
      let statusChanged = 0;
      let versionChanged = 0;
      for (const t of after.items) {
        const was = statusBefore.get(t.metadata?.name as string);
        if (!was || was.status !== stable(t.status)) statusChanged++;
        if (!was || was.rv !== t.metadata?.resourceVersion) versionChanged++;
      }
      const uidsAfter = await queuedUids(queue);
      const duplicates = uidsAfter.length - new Set(uidsAfter).size;
      const lost = [...new Set(uidsBefore)].filter((uid) => !uidsAfter.includes(uid)).length;
      const writes = countWrites(await audit.events(), { namespaces: new Set([namespace]), fromMs: restartFrom, toMs: restartSyncedAt + settleMs });
      const taskWrites = writes.total - (writes.byCategory.leases ?? 0);
      const correct = statusChanged === 0 && versionChanged === 0 && duplicates === 0 && lost === 0 && taskWrites === 0 && uidsAfter.length === queued;
      ctx.log(`restart: synced ${fmt(third.reading.syncedMs / 1000)} s after spawn (stop took ${fmt(stopSeconds)} s); statuses changed ${statusChanged}, rv changed ${versionChanged}, messages ${uidsAfter.length} (duplicates ${duplicates}, lost ${lost}), writes ${JSON.stringify(writes.byCategory)}`);

      const a = first.reading;
      const b = second.reading;
      const c = third.reading;
      const perTaskKB = ((b.rssMB - a.rssMB) * 1024) / (large - small);
      const full = ctx.size === 'full';
      return {
        rows: [
          {
            measurement: `5. controller RSS, ${small} tasks, Node's default heap`,
            value: `${fmt(a.rssMB)} MB (V8 heap ${fmt(a.heapUsedMB)} used / ${fmt(a.heapTotalMB)} MB)`,
            yardstick: `objects as JSON ${fmt((jsonMB * small) / large)} MB (scaled from the list)`,
            ratio: `${fmt(a.rssMB / ((jsonMB * small) / large))}× JSON`,
            goal: '—',
            met: null,
            numbers: { ...a },
          },
          {
            measurement: `5. controller RSS, ${large} tasks, Node's default heap (no memory limit)`,
            value: `${fmt(b.rssMB)} MB (V8 heap ${fmt(b.heapUsedMB)} used / ${fmt(b.heapTotalMB)} MB; +${fmt(perTaskKB)} KB/task)`,
            yardstick: `objects as JSON ${fmt(jsonMB)} MB (${fmt(listed.jsonBytes / listed.items.length / 1024)} KB/task, ${fmt((managedFieldsMB / jsonMB) * 100)}% managedFields)`,
            ratio: `${fmt(b.rssMB / jsonMB)}× JSON`,
            goal: `< ${RSS_GOAL_MB} MB at 10,000 tasks`,
            met: full ? b.rssMB < RSS_GOAL_MB : null,
            numbers: { ...b, jsonMB, managedFieldsMB, perTaskKB },
          },
          {
            measurement: `5. controller RSS, ${large} tasks, heap sized as in its 512Mi pod`,
            value: `${fmt(c.rssMB)} MB (V8 heap ${fmt(c.heapUsedMB)} used / ${fmt(c.heapTotalMB)} MB; ${POD_HEAP_FLAGS.join(' ')})`,
            yardstick: `objects as JSON ${fmt(jsonMB)} MB`,
            ratio: `${fmt(c.rssMB / jsonMB)}× JSON`,
            goal: `< ${RSS_GOAL_MB} MB at 10,000 tasks`,
            met: full ? c.rssMB < RSS_GOAL_MB : null,
            numbers: { ...c, jsonMB },
          },
          {
            measurement: `5. controller CPU to start and sync ${large} tasks`,
            value: `${fmt(b.cpuSecondsToSync)} CPU s (pod-sized heap ${fmt(c.cpuSecondsToSync)} s; ${small} tasks ${fmt(a.cpuSecondsToSync)} s); idle ${fmt(b.idleCpuPercent)}% of a core`,
            yardstick: `plain list of ${listed.items.length}: ${fmt(listCpuSeconds)} CPU s, ${fmt(listSeconds)} s`,
            ratio: `${fmt(b.cpuSecondsToSync / listCpuSeconds)}× list CPU`,
            goal: '—',
            met: null,
            numbers: { cpuSecondsToSync: b.cpuSecondsToSync, smallCpuSecondsToSync: a.cpuSecondsToSync, idleCpuPercent: b.idleCpuPercent, listCpuSeconds, listSeconds },
          },
          {
            measurement: `5. restart to synced, ${large} tasks (pod-sized heap)`,
            value: `${fmt(c.syncedMs / 1000)} s (ready ${fmt(c.readyMs / 1000)} s); ${correct ? 'correct' : 'NOT correct'}: ${statusChanged} statuses changed, ${taskWrites} writes, ${duplicates} duplicate messages`,
            yardstick: `plain list ${fmt(listSeconds)} s`,
            ratio: `${fmt(c.syncedMs / 1000 / listSeconds)}× list`,
            goal: `< ${RESTART_GOAL_S} s, statuses unchanged, no duplicates`,
            met: full ? c.syncedMs / 1000 < RESTART_GOAL_S && correct : correct ? null : false,
            numbers: { syncedSeconds: c.syncedMs / 1000, readySeconds: c.readyMs / 1000, stopSeconds, statusChanged, versionChanged, duplicates, lost, taskWrites, messages: uidsAfter.length },
          },
        ],
        details: { namespace, levels, queued, readings: { first: a, second: b, restarted: c }, list: { items: listed.items.length, jsonMB, managedFieldsMB, listSeconds, listCpuSeconds }, restartWrites: writes, stopSeconds },
      };
    } finally {
      await stopAll(running);
      await queue.close();
      client.close();
    }
  },
};
