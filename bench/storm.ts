// 3. Status write amplification: one running task whose worker reports
// progress 100 times a second (every report a different percent: the worst
// case for coalescing), counted in apiserver writes from the audit log.
// Yardstick: the reports themselves; the ratio is writes per report.
import { AuditLog, countWrites, sumCategories } from './lib/audit.ts';
import { ProtocolWorker } from './lib/fake-worker.ts';
import { BenchClient, TASK_REF, nowMs, taskManifest, type TaskObject } from './lib/kube.ts';
import { ControllerProcess, stopAll } from './lib/processes.ts';
import { benchQueue } from './lib/queue.ts';
import { expectSome, type BenchContext, type BenchResult, type Benchmark } from './lib/report.ts';
import { fmt } from './lib/stats.ts';
import { poll } from './lib/wait.ts';

const SIZES = { quick: { seconds: 5 }, full: { seconds: 30 } } as const;
const REPORTS_PER_SECOND = 100;
/** The real worker's heartbeat interval (docs/protocol.md). */
const HEARTBEAT_MS = 5000;

export const storm: Benchmark = {
  name: 'storm',
  title: 'Status write amplification under a progress storm',
  async run(ctx: BenchContext): Promise<BenchResult> {
    const { env } = ctx;
    const { seconds } = SIZES[ctx.size];
    const namespace = await env.createNamespace('storm');
    const queue = await benchQueue(env, 'stm');
    const client = new BenchClient(env.kc);
    const audit = new AuditLog(env.auditLogPath);
    let controller: ControllerProcess | undefined;
    try {
      controller = await ControllerProcess.start(ctx.settings, { ...queue, name: 'storm-controller', kubeconfigPath: env.kubeconfigPath, namespace });
      await controller.waitReady();
      audit.mark();

      const name = 'storm-task';
      const createdAt = nowMs();
      await client.create(TASK_REF, taskManifest(namespace, name));
      const worker = new ProtocolWorker(queue, 'storm-worker');
      const taken = await worker.take();
      await worker.reports.started(taken.target);
      const stormFrom = nowMs();

      // Reports on a fixed 10 ms schedule; a late one is sent at once, never skipped.
      const total = seconds * REPORTS_PER_SECOND;
      let sent = 0;
      let lastHeartbeat = stormFrom;
      for (let i = 0; i < total; i++) {
        ctx.signal.throwIfAborted();
        const due = stormFrom + (i * 1000) / REPORTS_PER_SECOND;
        const wait = due - nowMs();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        await worker.reports.progress(taken.target, i % 100);
        sent++;
        if (nowMs() - lastHeartbeat >= HEARTBEAT_MS) {
          lastHeartbeat = nowMs();
          await worker.reports.heartbeat(taken.target);
        }
      }
      const stormTo = nowMs();
      await worker.succeed(taken);
      await poll(`${name} to succeed`, async () => (await client.get<TaskObject>(TASK_REF, namespace, name)).status?.phase === 'Succeeded', { timeoutMs: 15_000, intervalMs: 50, signal: ctx.signal });
      const finishedAt = nowMs();

      const events = await audit.events();
      const inNamespace = new Set([namespace]);
      const during = countWrites(events, { namespaces: inNamespace, fromMs: stormFrom, toMs: stormTo });
      const lifetime = countWrites(events, { namespaces: inNamespace, fromMs: createdAt - 50, toMs: finishedAt + 1500 });
      const stormSeconds = (stormTo - stormFrom) / 1000;
      const taskWrites = sumCategories(during, ['task status', 'task object', 'events']);
      const statusWrites = during.byCategory['task status'] ?? 0;
      const writesPerSecond = taskWrites / stormSeconds;
      const reportsPerSecond = sent / stormSeconds;
      expectSome('progress reports sent', sent);
      expectSome('status writes during the storm', statusWrites);
      ctx.log(`${sent} reports in ${fmt(stormSeconds)} s → ${taskWrites} writes (${statusWrites} status) = ${fmt(writesPerSecond)}/s`);
      return {
        rows: [
          {
            measurement: `3. progress storm, 1 task, ${seconds} s`,
            value: `${fmt(writesPerSecond)} writes/s (${taskWrites} writes: ${statusWrites} status, ${during.byCategory.events ?? 0} events)`,
            yardstick: `${fmt(reportsPerSecond)} reports/s sent (${sent})`,
            ratio: `${fmt(taskWrites / sent, 4)} writes/report`,
            goal: '≤ ~1 write/s per task (≤ 1.2)',
            met: writesPerSecond <= 1.2,
            numbers: { writesPerSecond, taskWrites, statusWrites, reports: sent, reportsPerSecond, stormSeconds },
          },
        ],
        details: { namespace, stormSeconds, reportsSent: sent, duringStorm: during, taskLifetime: lifetime },
      };
    } finally {
      await stopAll([controller]);
      await queue.close();
      client.close();
    }
  },
};
