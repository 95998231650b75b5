// 4. Scale reaction: a WorkerPool at 0 replicas, a task created for it, and
// the time until the Deployment's spec.replicas changes (timeToReplicas, a
// watch on the Deployment); then the task finishes (a protocol worker
// reports success and acks, so the backlog drains) and the time until
// replicas are back at 0, minus scaleDownDelaySeconds.
//
// "Backlog appeared" is the task's status.queuedAt, the controller's own
// stamp taken just before it publishes; the create→replicas time is reported
// too. The yardstick is stated, not measured: KEDA cannot run here. Its
// default path is a 30 s pollingInterval (activation from zero) plus the
// HPA's 15 s sync (every step above one), ~15-45 s, ~30 s typical.
import { AppsV1Api, type KubernetesObject, type V1Deployment } from '@kubernetes/client-node';
import { API_VERSION, Kind } from '../src/api/index.ts';
import { timeToReplicas } from '../src/controller/workerpool/latency.ts';
import { ProtocolWorker } from './lib/fake-worker.ts';
import { BenchClient, POOL_REF, TASK_REF, nowMs, taskManifest, type TaskObject } from './lib/kube.ts';
import { ControllerProcess, stopAll } from './lib/processes.ts';
import { benchQueue } from './lib/queue.ts';
import { expectSome, type BenchContext, type BenchResult, type Benchmark } from './lib/report.ts';
import { fmt, percentiles } from './lib/stats.ts';
import { poll } from './lib/wait.ts';

const SIZES = { quick: { cycles: 2 }, full: { cycles: 10 } } as const;
const SCALE_DOWN_DELAY_SECONDS = 2;
const KEDA_TYPICAL_MS = 30_000;
const DEPLOYMENT = 'asr-workers';
const POOL = 'asr';

function deployment(namespace: string): V1Deployment {
  const labels = { 'app.kubernetes.io/name': DEPLOYMENT };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: DEPLOYMENT, namespace, labels },
    spec: {
      replicas: 0,
      selector: { matchLabels: labels },
      // Nothing schedules pods here: the autoscaler only needs spec.replicas.
      template: { metadata: { labels }, spec: { containers: [{ name: 'worker', image: 'registry.k8s.io/pause:3.10' }] } },
    },
  };
}

export const scaleReaction: Benchmark = {
  name: 'scale',
  title: 'Scale reaction of a WorkerPool',
  async run(ctx: BenchContext): Promise<BenchResult> {
    const { env } = ctx;
    const { cycles } = SIZES[ctx.size];
    const namespace = await env.createNamespace('scale');
    const queue = await benchQueue(env, 'scl');
    const client = new BenchClient(env.kc);
    let controller: ControllerProcess | undefined;
    try {
      await env.kc.makeApiClient(AppsV1Api).createNamespacedDeployment({ namespace, body: deployment(namespace) });
      await client.create(POOL_REF, {
        apiVersion: API_VERSION,
        kind: Kind.WorkerPool,
        metadata: { name: POOL, namespace },
        spec: {
          taskKind: Kind.TranscriptionTask,
          scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: DEPLOYMENT },
          minReplicas: 0,
          maxReplicas: 4,
          tasksPerReplica: 1,
          scaleDownDelaySeconds: SCALE_DOWN_DELAY_SECONDS,
        },
      } as KubernetesObject);
      controller = await ControllerProcess.start(ctx.settings, { ...queue, name: 'scale-controller', kubeconfigPath: env.kubeconfigPath, namespace });
      await controller.waitReady();
      // How long after the controller is ready the pool can scale at all (a finding of this benchmark: see README).
      const readyAt = nowMs();
      await poll('the WorkerPool to report Ready', async () => {
        const pool = await client.get<KubernetesObject & { status?: { conditions?: { type: string; status: string }[] } }>(POOL_REF, namespace, POOL);
        return pool.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
      }, { timeoutMs: 30_000, intervalMs: 100, signal: ctx.signal });
      const poolReadyMs = nowMs() - readyAt;
      ctx.log(`the WorkerPool reported Ready ${fmt(poolReadyMs)} ms after the controller was ready`);

      const worker = new ProtocolWorker(queue, 'scale-worker');
      const upFromCreate: number[] = [];
      const upFromQueued: number[] = [];
      const downLag: number[] = [];
      for (let cycle = 0; cycle < cycles; cycle++) {
        ctx.signal.throwIfAborted();
        const name = `scale-task-${cycle}`;
        let createdAt = 0;
        const up = await timeToReplicas({
          kubeConfig: env.kc,
          namespace,
          deployment: DEPLOYMENT,
          until: (r) => r >= 1,
          trigger: async () => {
            createdAt = nowMs();
            await client.create(TASK_REF, taskManifest(namespace, name));
          },
          timeoutMs: 30_000,
          signal: ctx.signal,
        });
        const scaledAt = createdAt + up.ms;
        const task = await client.get<TaskObject>(TASK_REF, namespace, name);
        const queuedAt = Date.parse(task.status?.queuedAt ?? '');
        upFromCreate.push(up.ms);
        if (Number.isFinite(queuedAt)) upFromQueued.push(scaledAt - queuedAt);

        const down = await timeToReplicas({
          kubeConfig: env.kc,
          namespace,
          deployment: DEPLOYMENT,
          until: (r) => r === 0,
          trigger: async () => {
            const taken = await worker.take();
            await worker.reports.started(taken.target);
            await worker.succeed(taken);
          },
          timeoutMs: 60_000,
          signal: ctx.signal,
        });
        // From the moment the queue was empty (the ack confirmed) to the scale-down, less the configured delay.
        downLag.push(down.ms - down.triggerMs - SCALE_DOWN_DELAY_SECONDS * 1000);
        ctx.log(`cycle ${cycle + 1}/${cycles}: up ${fmt(up.ms)} ms after create (${fmt(scaledAt - queuedAt)} ms after queuedAt), down ${fmt(downLag.at(-1) as number)} ms after drain + delay`);
      }
      expectSome('scale-ups', upFromCreate.length);
      expectSome('scale-downs', downLag.length);

      const upQ = percentiles(upFromQueued.length > 0 ? upFromQueued : upFromCreate);
      const upC = percentiles(upFromCreate);
      const down = percentiles(downLag);
      const keda = `KEDA+HPA defaults ~${KEDA_TYPICAL_MS / 1000} s (15-45 s; stated, not run)`;
      return {
        rows: [
          {
            measurement: `4. scale-up: backlog (queuedAt) → replicas 0→1 (n=${upQ.n})`,
            value: `p50 ${fmt(upQ.p50)} / max ${fmt(upQ.max)} ms (from create: p50 ${fmt(upC.p50)} ms)`,
            yardstick: keda,
            ratio: `${fmt(KEDA_TYPICAL_MS / upQ.p50)}× faster`,
            goal: 'p50 < 1 s (30× better than KEDA)',
            met: upQ.p50 < 1000,
            numbers: { p50: upQ.p50, max: upQ.max, fromCreateP50: upC.p50, fromCreateMax: upC.max, kedaMs: KEDA_TYPICAL_MS },
          },
          {
            measurement: `4. scale-down: drain → replicas 0, minus ${SCALE_DOWN_DELAY_SECONDS} s delay (n=${down.n})`,
            value: `p50 ${fmt(down.p50)} / max ${fmt(down.max)} ms`,
            yardstick: keda,
            ratio: `${fmt(KEDA_TYPICAL_MS / down.p50)}× faster`,
            goal: 'p50 < 1 s',
            met: down.p50 < 1000,
            numbers: { p50: down.p50, max: down.max, delaySeconds: SCALE_DOWN_DELAY_SECONDS },
          },
        ],
        details: { namespace, cycles, poolReadyAfterControllerReadyMs: poolReadyMs, scaleDownDelaySeconds: SCALE_DOWN_DELAY_SECONDS, upFromQueuedMs: upFromQueued, upFromCreateMs: upFromCreate, downLagMs: downLag },
      };
    } finally {
      await stopAll([controller]);
      await queue.close();
      client.close();
    }
  },
};
