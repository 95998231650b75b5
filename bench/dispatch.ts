// 1. Dispatch latency: from `create` of a task to its Queued status (as a
// watch sees it) and to the moment an idle worker starts it (the `startedAt`
// the worker writes), one task at a time, paced (see PAUSE_MS). Yardstick,
// interleaved with the tasks in the same run: the apiserver's own create →
// watch-event latency for a bare custom resource that nothing reconciles.
import { randomBytes } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import { BARE_KIND, BARE_REF } from './lib/env.ts';
import { BenchClient, TASK_REF, Waiters, nowMs, taskManifest, timedWatch, type TaskObject } from './lib/kube.ts';
import { ControllerProcess, WorkerProcess, stopAll } from './lib/processes.ts';
import { benchQueue } from './lib/queue.ts';
import { expectSome, type BenchContext, type BenchResult, type Benchmark } from './lib/report.ts';
import { fmt, fmtPercentilesMs, percentiles } from './lib/stats.ts';

const SIZES = { quick: { tasks: 50, warmup: 3 }, full: { tasks: 500, warmup: 10 } } as const;
/**
 * Pause between samples, so each task meets an idle controller and worker.
 * Idle includes the controller's client-side token bucket (TQ_KUBE_QPS 20 by
 * default): a task costs it about 5.5 API calls, so tasks back to back (one
 * every ~0.15 s) would drain it and measure its queue, not the dispatch path.
 * 400 ms keeps the spend under the refill rate. The throughput benchmark
 * measures what happens when it is drained.
 */
const PAUSE_MS = 400;

const round = (ms: number) => Math.round(ms * 10) / 10;

export const dispatch: Benchmark = {
  name: 'dispatch',
  title: 'Dispatch latency',
  async run(ctx: BenchContext): Promise<BenchResult> {
    const { env } = ctx;
    const { tasks, warmup } = SIZES[ctx.size];
    const namespace = await env.createNamespace('dispatch');
    const queue = await benchQueue(env, 'dsp');
    const client = new BenchClient(env.kc);
    let controller: ControllerProcess | undefined;
    let worker: WorkerProcess | undefined;
    const watches: { stop(): void }[] = [];
    try {
      controller = await ControllerProcess.start(ctx.settings, { ...queue, name: 'dispatch-controller', kubeconfigPath: env.kubeconfigPath, namespace });
      await controller.waitReady();
      worker = WorkerProcess.start(ctx.settings, { ...queue, name: 'dispatch-worker', env: { TQ_STUB_CHUNKS: '1', TQ_STUB_CHUNK_MS: '0' } });
      await worker.waitForLog('Worker started');

      const bareAdded = new Waiters<number>();
      const firstPhase = new Waiters<{ at: number; phase: string }>();
      const succeeded = new Waiters<number>();
      const seenPhase = new Set<string>();
      watches.push(
        await timedWatch<KubernetesObject>(env.kc, BARE_REF, namespace, (type, obj, at) => {
          if (type === 'ADDED') bareAdded.settle(obj.metadata?.name ?? '', at);
        }),
        await timedWatch<TaskObject>(env.kc, TASK_REF, namespace, (_type, obj, at) => {
          const name = obj.metadata?.name ?? '';
          const phase = obj.status?.phase;
          if (phase && !seenPhase.has(name)) {
            seenPhase.add(name);
            firstPhase.settle(name, { at, phase });
          }
          if (phase === 'Succeeded') succeeded.settle(name, at);
        }),
      );

      const raw: number[] = [];
      const queued: number[] = [];
      const started: number[] = [];
      const firstPhases: Record<string, number> = {};
      const id = randomBytes(2).toString('hex');
      for (let i = 0; i < warmup + tasks; i++) {
        ctx.signal.throwIfAborted();
        const counted = i >= warmup;

        const bareName = `bare-${id}-${i}`;
        const bareAt = nowMs();
        await client.create(BARE_REF, { apiVersion: `${BARE_REF.group}/${BARE_REF.version}`, kind: BARE_KIND, metadata: { name: bareName, namespace }, spec: { n: i } });
        const bareSeen = await bareAdded.wait(bareName, 10_000, `the ADDED event of ${bareName}`);
        if (counted) raw.push(bareSeen - bareAt);

        const name = `task-${id}-${i}`;
        const createdAt = nowMs();
        const task = await client.create(TASK_REF, taskManifest(namespace, name));
        const [first] = await Promise.all([
          firstPhase.wait(name, 30_000, `the first status of ${name}`),
          succeeded.wait(name, 30_000, `${name} to succeed`),
        ]);
        const startedAt = await queue.startedAt(task.metadata?.uid as string);
        if (startedAt === undefined) throw new Error(`${name} succeeded but its worker wrote no startedAt`);
        if (counted) {
          queued.push(first.at - createdAt);
          started.push(startedAt - createdAt);
          firstPhases[first.phase] = (firstPhases[first.phase] ?? 0) + 1;
        }
        await new Promise((r) => setTimeout(r, PAUSE_MS));
      }
      expectSome('raw watch samples', raw.length);
      expectSome('create→Queued samples', queued.length);
      expectSome('create→worker start samples', started.length);

      const rawP = percentiles(raw);
      const queuedP = percentiles(queued);
      const startedP = percentiles(started);
      const queuedBound = 3 * rawP.p99 + 50;
      ctx.log(`raw watch ${fmtPercentilesMs(rawP)}; create→Queued ${fmtPercentilesMs(queuedP)}; create→start ${fmtPercentilesMs(startedP)}`);
      return {
        rows: [
          {
            measurement: `1. dispatch create→Queued (n=${queuedP.n})`,
            value: fmtPercentilesMs(queuedP),
            yardstick: `raw create→watch ${fmtPercentilesMs(rawP)}`,
            ratio: `p99 ${fmt(queuedP.p99 / rawP.p99)}×`,
            goal: `p99 ≤ 3×raw p99 + 50 ms (= ${fmt(queuedBound)} ms)`,
            met: queuedP.p99 <= queuedBound,
            numbers: { p50: queuedP.p50, p95: queuedP.p95, p99: queuedP.p99, rawP50: rawP.p50, rawP95: rawP.p95, rawP99: rawP.p99, boundMs: queuedBound },
          },
          {
            measurement: `1. dispatch create→worker start (n=${startedP.n})`,
            value: fmtPercentilesMs(startedP),
            yardstick: `raw create→watch ${fmtPercentilesMs(rawP)}`,
            ratio: `p99 ${fmt(startedP.p99 / rawP.p99)}×`,
            goal: 'p99 < 250 ms',
            met: startedP.p99 < 250,
            numbers: { p50: startedP.p50, p95: startedP.p95, p99: startedP.p99, rawP99: rawP.p99 },
          },
        ],
        details: {
          namespace,
          tasks,
          warmup,
          pauseMs: PAUSE_MS,
          raw: rawP,
          queued: queuedP,
          started: startedP,
          firstPhaseSeen: firstPhases,
          samplesMs: { raw: raw.map(round), queued: queued.map(round), started: started.map(round) },
        },
      };
    } finally {
      for (const w of watches) w.stop();
      await stopAll([worker, controller]);
      await queue.close();
      client.close();
    }
  },
};
