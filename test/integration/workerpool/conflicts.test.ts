// Two writers of one /scale fight. A pool whose Deployment an HPA (or KEDA,
// through the HPA it creates) also scales, or that an older pool already
// scales, says so in its conditions and leaves the replicas alone.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AutoscalingV2Api, type KubernetesObject } from '@kubernetes/client-node';
import { API_VERSION, Kind } from '../../../src/api/index.ts';
import { WORKER_POOL_RESOURCE, type WorkerPoolObject } from '../../../src/controller/workerpool/index.ts';
import { sleep, testEnv, waitFor } from '../../harness/index.ts';
import { KIND, poolFixture } from './fixture.ts';

test('an HPA on the same Deployment: a condition, and no scale writes until it is gone', async () => {
  const f = await poolFixture({ start: false, hpaTtlMs: 0 });
  const hpas = testEnv().kc.makeApiClient(AutoscalingV2Api);
  try {
    await hpas.createNamespacedHorizontalPodAutoscaler({
      namespace: f.namespace,
      body: {
        apiVersion: 'autoscaling/v2',
        kind: 'HorizontalPodAutoscaler',
        metadata: { name: 'cpu', namespace: f.namespace },
        spec: {
          scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: f.deploymentName },
          minReplicas: 1,
          maxReplicas: 3,
          metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 80 } } }],
        },
      },
    });
    f.start();
    await f.publish(5);
    const status = await f.waitForStatus('the conflict in status, with the backlog of 5', (s) =>
      s.backlog === 5 && (s.conditions?.some((c) => c.type === 'ScalingActive' && c.reason === 'ConflictingAutoscaler') ?? false),
    );
    const active = status.conditions?.find((c) => c.type === 'ScalingActive');
    assert.equal(active?.status, 'False');
    assert.match(active?.message ?? '', /HorizontalPodAutoscaler cpu also scales Deployment asr-workers/);
    assert.equal(status.conditions?.find((c) => c.type === 'Ready')?.status, 'False');
    assert.equal(status.desiredReplicas, 4, 'what the pool would ask for is still shown');

    f.wake();
    await sleep(1000);
    assert.equal(f.scaleWrites(), 0, 'not one write to a Deployment an HPA owns');
    assert.equal(await f.specReplicas(), 0);
    assert.ok((await f.eventReasons()).includes('ConflictingAutoscaler'));

    await hpas.deleteNamespacedHorizontalPodAutoscaler({ namespace: f.namespace, name: 'cpu' });
    f.wake();
    await f.waitForReplicas('scaling once the HPA is gone', (r) => r === 4);
    await f.waitForStatus('Ready again', (s) => s.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false);
  } finally {
    await f.cleanup();
  }
});

test('a second WorkerPool on the same Deployment steps back; the older one scales', async () => {
  const f = await poolFixture();
  try {
    await waitFor('the first pool to be Ready', async () => (await f.poolStatus())?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false);
    await f.client.create(WORKER_POOL_RESOURCE, {
      apiVersion: API_VERSION,
      kind: Kind.WorkerPool,
      metadata: { name: 'asr-copy', namespace: f.namespace },
      spec: { taskKind: KIND, scaleTargetRef: { name: f.deploymentName }, maxReplicas: 1 },
    } as KubernetesObject);
    await f.publish(3);
    await f.waitForReplicas('the first pool scaling to 3', (r) => r === 3);
    let copy: WorkerPoolObject | undefined;
    await waitFor('the second pool to report the conflict', async () => {
      copy = await f.observer.get<WorkerPoolObject>(WORKER_POOL_RESOURCE, f.namespace, 'asr-copy');
      return copy.status?.conditions?.some((c) => c.type === 'ScalingActive' && c.reason === 'ConflictingAutoscaler') ?? false;
    });
    assert.match(copy?.status?.conditions?.find((c) => c.type === 'ScalingActive')?.message ?? '', /WorkerPool asr also scales/);
    await sleep(500);
    assert.equal(await f.specReplicas(), 3, 'the second pool (max 1) never pulled it down');
    assert.ok(f.scales.every((s) => s.name === 'asr'), 'only the first pool wrote /scale');
  } finally {
    await f.cleanup();
  }
});
