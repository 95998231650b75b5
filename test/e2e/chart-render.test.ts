// Every ci/*-values.yaml scenario against the real apiserver: `helm lint
// --strict` passes, and everything `helm template` renders, the chart's CRDs
// included, is accepted by the apiserver in a server-side dry run: schema
// validation (built-in kinds and our CRDs' OpenAPI and CEL rules), defaulting
// and admission, without changing anything.
//
// ServiceMonitor, PrometheusRule (Prometheus Operator) and ScaledObject
// (KEDA) come from CRDs the cluster may not have. Where one is missing, a
// stand-in CRD of the same group, version, names and scope with an open
// schema is installed for the run (and removed afterwards): the dry run then
// covers those objects' names, namespaces and admission, but not the fields
// of their spec, which only the real CRDs know.
//
// A scenario that watches a namespace (namespaced-values.yaml: `speech`) is
// rendered into that namespace, as test/unit/chart.test.ts does; the others
// into a fresh namespace. Namespaces the test needs and the cluster lacks
// are created for the run and deleted afterwards.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestNamespace, deleteTestNamespace, testEnv, uniqueName } from '../harness/index.ts';
import {
  apiWarnings,
  chartDir,
  ciScenarios,
  describeObject,
  ensureNamespaces,
  ensureStandInCrds,
  helm,
  kubectlRun,
  renderChart,
  type Cleanup,
  type Obj,
} from './support.ts';

const { kc } = testEnv();
const cleanups: Cleanup[] = [];
const freshNamespaces: string[] = [];
let standIns = new Set<string>();

before(async () => {
  const installed = await ensureStandInCrds(kc);
  standIns = new Set(installed.kinds);
  cleanups.push(installed.cleanup);
});

after(async () => {
  await Promise.allSettled(freshNamespaces.map((ns) => deleteTestNamespace(kc, ns)));
  await Promise.allSettled(cleanups.map((cleanup) => cleanup()));
});

/** Server-side apply in a dry run, as Helm 4 applies: the apiserver's verdict on every object. */
async function dryRunApply(objects: readonly Obj[]): Promise<{ code: number; accepted: string[]; stderr: string }> {
  const result = await kubectlRun(
    ['apply', '--server-side', '--force-conflicts', '--field-manager=task-queue-e2e', '--dry-run=server', '-o', 'name', '-f', '-'],
    { input: objects.map((o) => JSON.stringify(o)).join('\n') },
  );
  return { code: result.code, accepted: result.stdout.split('\n').filter((line) => line.trim() !== ''), stderr: result.stderr };
}

const scenarios = ciScenarios();

test('there are ci scenarios to check', () => {
  assert.ok(scenarios.length >= 5, `only ${scenarios.length} ci/*-values.yaml files`);
});

for (const scenario of scenarios) {
  describe(`scenario ${scenario.file}`, () => {
    test('helm lint --strict passes', async () => {
      const result = await helm(['lint', chartDir, '--strict', '--namespace', scenario.requiredNamespace ?? 'task-queue', '-f', scenario.path]);
      assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
      assert.match(result.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    });

    test('helm template output, CRDs included, is accepted by a server-side dry run', async (t) => {
      let namespace = scenario.requiredNamespace;
      if (!namespace) {
        namespace = await createTestNamespace(kc, 'e2e-render');
        freshNamespaces.push(namespace);
      }
      const { objects } = await renderChart({ release: uniqueName('dry'), namespace, valuesFiles: [scenario.path], includeCrds: true });
      assert.ok(objects.length > 0);
      // Namespaces named by the objects (the release's, the dashboard's) must exist for admission to accept them.
      const namespaces = objects.map((o) => o.metadata?.namespace).filter((ns): ns is string => typeof ns === 'string');
      cleanups.push(await ensureNamespaces(kc, [namespace, ...namespaces]));

      const { code, accepted, stderr } = await dryRunApply(objects);
      assert.equal(code, 0, `the apiserver refused objects of ${scenario.file}:\n${stderr}`);
      assert.equal(accepted.length, objects.length, `every object is accepted:\n${accepted.join('\n')}\nrendered:\n${objects.map(describeObject).join('\n')}`);
      // No deprecated API, no Pod Security warning, no unknown field.
      assert.deepEqual(apiWarnings(stderr), []);
      const covered = objects.filter((o) => standIns.has(o.kind)).map(describeObject);
      if (covered.length > 0) t.diagnostic(`checked against stand-in CRDs (open schema): ${covered.join(', ')}`);
    });
  });
}

test('the dry run checks what it is given: an object the CRD schema forbids is refused', async () => {
  const namespace = await createTestNamespace(kc, 'e2e-render');
  freshNamespaces.push(namespace);
  const { objects } = await renderChart({ release: uniqueName('dry'), namespace });
  const pool = objects.find((o) => o.kind === 'WorkerPool');
  assert.ok(pool, 'the default values render a WorkerPool');
  pool.spec.taskKind = 'KaraokeTask';
  const { code, stderr } = await dryRunApply([pool]);
  assert.notEqual(code, 0);
  assert.match(stderr, /spec\.taskKind/);
});
