// Every pod the chart can make passes the Pod Security Standards "restricted"
// profile, as the apiserver's PodSecurity admission judges it in a namespace
// labelled pod-security.kubernetes.io/enforce=restricted.
//
// PodSecurity enforces on Pods only; for Deployments it merely warns. So the
// test looks at both: the warnings a Deployment draws, and Pods themselves:
// the ones the ReplicaSets of a real installation create, and, for every
// ci/ scenario, a Pod made from each Deployment's pod template (server-side
// dry run). A deliberately non-compliant pod shows that the check can fail.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api } from '@kubernetes/client-node';
import { testEnv, uniqueName, waitFor } from '../harness/index.ts';
import {
  apiWarnings,
  chartDir,
  ciScenarios,
  ensurePriorityClasses,
  helm,
  helmOk,
  kubectlRun,
  parseManifests,
  renderChart,
  testValues,
  valuesFile,
  type Cleanup,
  type Obj,
} from './support.ts';

const { kc } = testEnv();
const core = kc.makeApiClient(CoreV1Api);
const namespace = uniqueName('e2e-restricted');
const release = uniqueName('psa');
const cleanups: Cleanup[] = [];

const psaViolation = /violates PodSecurity|would violate PodSecurity/;

before(async () => {
  await core.createNamespace({
    body: {
      metadata: {
        name: namespace,
        labels: {
          'taskqueue.dev/test': 'true',
          'pod-security.kubernetes.io/enforce': 'restricted',
          'pod-security.kubernetes.io/enforce-version': 'latest',
          'pod-security.kubernetes.io/warn': 'restricted',
          'pod-security.kubernetes.io/warn-version': 'latest',
        },
      },
    },
  });
});

after(async () => {
  await helm(['uninstall', release, '--namespace', namespace, '--ignore-not-found']);
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  await Promise.allSettled(cleanups.map((cleanup) => cleanup()));
});

/** The objects that carry a pod template. */
const workloads = (objects: readonly Obj[]): Obj[] => objects.filter((o) => o.spec?.template?.spec?.containers);

/** A Pod made from a workload's pod template, as its controller would make it. */
function podFrom(workload: Obj, name = `${workload.metadata.name}-e2e`): Obj {
  const template = workload.spec.template;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: template.metadata?.labels ?? {}, annotations: template.metadata?.annotations ?? {} },
    spec: template.spec,
  };
}

/** Creates the objects in a server-side dry run; each one is judged by admission on its own. */
async function dryRunCreate(objects: readonly Obj[]): Promise<{ code: number; created: string[]; stderr: string }> {
  const result = await kubectlRun(['create', '--dry-run=server', '-o', 'name', '-f', '-'], { input: objects.map((o) => JSON.stringify(o)).join('\n') });
  return { code: result.code, created: result.stdout.split('\n').filter((line) => line.trim() !== ''), stderr: result.stderr };
}

/**
 * What a pod template needs from the namespace to be admitted at all: its
 * ServiceAccount (kind's ServiceAccount admission checks it) and its
 * PriorityClass (Priority admission resolves it).
 */
async function prepareFor(templates: readonly Obj[]): Promise<void> {
  for (const name of new Set(templates.map((t) => t.spec.serviceAccountName).filter(Boolean))) {
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } }).catch((err: { code?: number }) => {
      if (err.code !== 409) throw err;
    });
  }
  cleanups.push(await ensurePriorityClasses(kc, templates.map((t) => t.spec.priorityClassName).filter(Boolean)));
}

describe('the restricted Pod Security profile', () => {
  test('helm install into a restricted namespace draws no warning, and the ReplicaSets create their Pods', async () => {
    // testValues(): the pods are created, and admitted, but never scheduled.
    // A worker floor of 1 makes the worker Deployment create a Pod too (it starts at minReplicas).
    const values = { ...testValues(), workers: { transcription: { scaling: { minReplicas: 1 } } } };
    const install = await helmOk(['install', release, chartDir, '--namespace', namespace, '-f', valuesFile(values)]);
    assert.doesNotMatch(install.stderr, psaViolation);
    const manifest = parseManifests((await helmOk(['get', 'manifest', release, '--namespace', namespace])).stdout);
    const deployments = manifest.filter((o) => o.kind === 'Deployment');
    assert.ok(deployments.length >= 2, 'a controller and a worker Deployment');

    // The ReplicaSets' Pods are where PodSecurity enforces; a refused Pod would
    // never appear (FailedCreate) and the ReplicaSet would say why.
    let last = '';
    await waitFor(
      'every Deployment of the release to have its Pods created',
      async () => {
        const pods = await core.listNamespacedPod({ namespace, labelSelector: `app.kubernetes.io/instance=${release}` });
        const failures = (await core.listNamespacedEvent({ namespace })).items.filter((e) => e.reason === 'FailedCreate').map((e) => e.message);
        if (failures.some((m) => m && psaViolation.test(m))) throw new Error(`PodSecurity refused a Pod: ${failures.join('; ')}`);
        const byComponent = new Map<string, number>();
        for (const pod of pods.items) {
          const component = pod.metadata?.labels?.['app.kubernetes.io/component'] ?? '';
          byComponent.set(component, (byComponent.get(component) ?? 0) + 1);
        }
        last = JSON.stringify(Object.fromEntries(byComponent));
        return deployments.every((d) => (byComponent.get(d.metadata.labels['app.kubernetes.io/component']) ?? 0) >= Math.max(1, d.spec.replicas ?? 1));
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}; pods by component: ${last}`);
    });
  });

  for (const scenario of ciScenarios()) {
    test(`${scenario.file}: every pod template is admitted as a Pod, and no workload draws a warning`, async () => {
      // Rendered into the restricted namespace; a scenario that watches a
      // namespace watches this one instead (the chart requires them to match).
      const { objects } = await renderChart({
        release: uniqueName('psa'),
        namespace,
        valuesFiles: [scenario.path],
        extraArgs: scenario.requiredNamespace ? ['--set', `controller.watchNamespace=${namespace}`] : [],
      });
      const rendered = workloads(objects);
      assert.ok(rendered.length > 0, 'the scenario renders workloads');
      await prepareFor(rendered.map((w) => w.spec.template));

      const asWorkloads = await kubectlRun(['apply', '--server-side', '--dry-run=server', '--field-manager=task-queue-e2e', '-o', 'name', '-f', '-'], {
        input: rendered.map((o) => JSON.stringify(o)).join('\n'),
      });
      assert.equal(asWorkloads.code, 0, asWorkloads.stderr);
      assert.deepEqual(apiWarnings(asWorkloads.stderr), [], 'PodSecurity warnings on the workloads');

      const pods = await dryRunCreate(rendered.map((w) => podFrom(w)));
      assert.equal(pods.code, 0, `Pods refused:\n${pods.stderr}`);
      assert.equal(pods.created.length, rendered.length, pods.created.join('\n'));
    });
  }

  test('the check can fail: a pod template without its security contexts is refused as a Pod and warned about as a Deployment', async () => {
    const { objects } = await renderChart({ release: uniqueName('psa'), namespace });
    const controller = objects.find((o) => o.kind === 'Deployment' && o.metadata.labels['app.kubernetes.io/component'] === 'controller');
    assert.ok(controller);
    await prepareFor([controller.spec.template]);
    delete controller.spec.template.spec.securityContext;
    for (const container of controller.spec.template.spec.containers) delete container.securityContext;

    const pod = await dryRunCreate([podFrom(controller)]);
    assert.notEqual(pod.code, 0);
    assert.match(pod.stderr, /violates PodSecurity "restricted:latest"/);
    assert.match(pod.stderr, /allowPrivilegeEscalation != false/);

    const deployment = await kubectlRun(['apply', '--server-side', '--dry-run=server', '--field-manager=task-queue-e2e', '-f', '-'], { input: JSON.stringify(controller) });
    assert.equal(deployment.code, 0, 'a Deployment is only warned about');
    assert.match(deployment.stderr, /Warning: would violate PodSecurity "restricted:latest"/);
  });
});
