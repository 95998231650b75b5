// The chart's whole life against a real apiserver, with the default values
// (the controller's RBAC is a ClusterRole):
//
//   helm install   → every object of the manifest exists; the Deployments
//                    exist (no pod runs: the local control plane has no kubelet).
//   RBAC           → the controller's ServiceAccount may do what the
//                    controller does, in every namespace, and nothing else:
//                    no Secrets anywhere, no Pods, no escalation. The
//                    controller then runs as a local process whose only
//                    credentials are that ServiceAccount's token, with the
//                    environment the chart gives its pod, and reconciles a
//                    task to Succeeded with a worker process: the chart's
//                    RBAC is enough.
//   helm upgrade   → changed values change the objects; the worker replicas
//                    stay with the WorkerPool.
//   helm uninstall → the chart's objects go; the CRDs, the users' tasks and
//                    their results stay.
//
// One difference from the pod: the controller watches the release namespace
// only (TQ_WATCH_NAMESPACE), not every namespace. Watching every namespace
// it would take over the tasks of whatever else runs on the cluster at the
// same time: the other test files of `npm test` (each with a controller of
// its own), or a real installation on a kind cluster. What a cluster-wide
// controller needs beyond that, listing and watching tasks in every
// namespace, is checked by listing and watching as the ServiceAccount.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, type V1Deployment } from '@kubernetes/client-node';
import { GROUP, PLURALS, VERSION } from '../../src/api/index.ts';
import { createTestNamespace, deleteTestNamespace, testEnv, uniqueName, waitFor } from '../harness/index.ts';
import {
  accessMismatches,
  auditEventsOf,
  chartDir,
  createTask,
  deleteQueueData,
  getTask,
  helm,
  helmOk,
  kubectlRun,
  manifestDeployment,
  parseManifests,
  readDeployment,
  redisKeyExists,
  scaleDeployment,
  serviceAccountCredentials,
  startController,
  startWorker,
  statusOfRejection,
  testValues,
  uniqueQueueIds,
  valuesFile,
  waitForLeader,
  waitForPhase,
  waitForStream,
  watchUntil,
  whoAmI,
  type AccessCheck,
  type LoggedProcess,
  type Obj,
  type ServiceAccountCredentials,
  type TaskObject,
} from './support.ts';

const { kc } = testEnv();
const core = kc.makeApiClient(CoreV1Api);
const customObjects = kc.makeApiClient(CustomObjectsApi);

const release = uniqueName('e2e');
const ids = uniqueQueueIds();
const values = valuesFile(testValues(ids));
let releaseNs: string;
let userNs: string;
let otherNs: string;
let manifest: Obj[] = [];
let controllerDeployment: V1Deployment;
let workerDeployment: V1Deployment;
let controllerSa: ServiceAccountCredentials;
let task: TaskObject | undefined;
const processes: LoggedProcess[] = [];

const ofKind = (kind: string): Obj[] => manifest.filter((o) => o.kind === kind);

before(async () => {
  [releaseNs, userNs, otherNs] = await Promise.all([createTestNamespace(kc, 'e2e-rel'), createTestNamespace(kc, 'e2e-user'), createTestNamespace(kc, 'e2e-other')]);
});

// The controller and the worker live for one test, passed or failed: the
// next tests change the installation and must not have them react.
afterEach(async () => {
  await Promise.allSettled(processes.splice(0).map((p) => p.stop()));
});

after(async () => {
  await helm(['uninstall', release, '--namespace', releaseNs, '--ignore-not-found']);
  await Promise.allSettled([releaseNs, userNs, otherNs].map((ns) => deleteTestNamespace(kc, ns)));
  await deleteQueueData(ids);
});

describe('chart lifecycle with the default values (ClusterRole)', () => {
  test('helm install creates every object of the manifest; the Deployments exist', async () => {
    const install = await helmOk(['install', release, chartDir, '--namespace', releaseNs, '-f', values]);
    assert.match(install.stdout, /STATUS: deployed/);
    const manifestYaml = (await helmOk(['get', 'manifest', release, '--namespace', releaseNs])).stdout;
    manifest = parseManifests(manifestYaml);

    const kinds = new Set(manifest.map((o) => o.kind));
    for (const kind of ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'Deployment', 'Service', 'PodDisruptionBudget', 'WorkerPool']) {
      assert.ok(kinds.has(kind), `the default installation renders a ${kind}`);
    }
    // Every object of the manifest is in the cluster, as the chart rendered it (kubectl get -f fails on a missing one).
    const got = await kubectlRun(['get', '-f', '-', '-o', 'name'], { input: manifestYaml });
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout.trim().split('\n').length, manifest.length, got.stdout);

    controllerDeployment = await readDeployment(kc, releaseNs, manifestDeployment(manifest, 'controller').metadata.name);
    workerDeployment = await readDeployment(kc, releaseNs, manifestDeployment(manifest, 'worker-transcription').metadata.name);
    assert.equal(controllerDeployment.spec?.replicas, 2, 'two controller replicas, one leading');
    // Their Pods are created, and stay unscheduled (testValues: no node
    // matches), here and on kind: the test's process plays the controller.
    await waitFor('the controller Pods to be created', async () => {
      const pods = await core.listNamespacedPod({ namespace: releaseNs, labelSelector: `app.kubernetes.io/instance=${release},app.kubernetes.io/component=controller` });
      assert.ok(pods.items.every((p) => !p.spec?.nodeName), 'no controller Pod is scheduled');
      return pods.items.length === 2;
    }, { timeoutMs: 30_000, intervalMs: 200 });

    const pool = ofKind('WorkerPool')[0];
    assert.equal(pool?.spec?.scaleTargetRef?.name, workerDeployment.metadata?.name, 'the WorkerPool scales the worker Deployment');
    const crds = await kubectlRun(['get', 'crd', ...['transcriptiontasks', 'diarizationtasks', 'workerpools'].map((p) => `${p}.${GROUP}`), '-o', 'name']);
    assert.equal(crds.code, 0, `the CRDs are installed: ${crds.stderr}`);
  });

  test("the controller's ServiceAccount may do what the controller does, and not read Secrets, touch Pods or escalate", async () => {
    const saName = controllerDeployment.spec?.template.spec?.serviceAccountName;
    assert.ok(saName, 'the controller pod names its ServiceAccount');
    controllerSa = await serviceAccountCredentials(kc, releaseNs, saName);
    assert.equal(await whoAmI(controllerSa.kc), controllerSa.username, 'the kubeconfig authenticates as the ServiceAccount and nothing else');

    const tq = (resource: string, verb: string, namespace: string | undefined, allowed: boolean, subresource?: string): AccessCheck => ({
      group: GROUP, resource, verb, ...(namespace ? { namespace } : {}), ...(subresource ? { subresource } : {}), allowed,
    });
    const checks: AccessCheck[] = [
      // What the controller does: watch tasks and pools everywhere, write their status, delete finished tasks (TTL)…
      ...['transcriptiontasks', 'diarizationtasks', 'workerpools'].flatMap((r) => [tq(r, 'list', undefined, true), tq(r, 'watch', undefined, true), tq(r, 'patch', userNs, true, 'status')]),
      tq('transcriptiontasks', 'delete', userNs, true),
      // …scale worker Deployments through /scale, record Events, hold the Lease in the release namespace.
      { group: 'apps', resource: 'deployments', verb: 'watch', allowed: true },
      { group: 'apps', resource: 'deployments', subresource: 'scale', verb: 'patch', namespace: releaseNs, allowed: true },
      { resource: 'events', verb: 'create', namespace: userNs, allowed: true },
      { group: 'coordination.k8s.io', resource: 'leases', verb: 'update', namespace: releaseNs, allowed: true },
      // Not what users do: create tasks, delete pools.
      tq('transcriptiontasks', 'create', userNs, false),
      tq('workerpools', 'delete', releaseNs, false),
      // No Secrets: not in other namespaces, not in its own, not cluster-wide.
      { resource: 'secrets', verb: 'get', namespace: userNs, allowed: false },
      { resource: 'secrets', verb: 'list', namespace: otherNs, allowed: false },
      { resource: 'secrets', verb: 'get', namespace: releaseNs, allowed: false },
      { resource: 'secrets', verb: 'list', allowed: false },
      { resource: 'secrets', verb: 'watch', allowed: false },
      { resource: 'configmaps', verb: 'get', namespace: releaseNs, allowed: false },
      // No Pods: it never lists, creates or execs into them.
      { resource: 'pods', verb: 'list', allowed: false },
      { resource: 'pods', verb: 'list', namespace: releaseNs, allowed: false },
      { resource: 'pods', verb: 'create', namespace: releaseNs, allowed: false },
      { resource: 'pods', subresource: 'exec', verb: 'create', namespace: releaseNs, allowed: false },
      // Deployments only through /scale: no edits of their pod templates.
      { group: 'apps', resource: 'deployments', verb: 'update', namespace: releaseNs, allowed: false },
      { group: 'apps', resource: 'deployments', verb: 'patch', namespace: releaseNs, allowed: false },
      { group: 'apps', resource: 'deployments', verb: 'create', namespace: releaseNs, allowed: false },
      // The Lease only in the release namespace.
      { group: 'coordination.k8s.io', resource: 'leases', verb: 'update', namespace: userNs, allowed: false },
      { group: 'coordination.k8s.io', resource: 'leases', verb: 'create', namespace: otherNs, allowed: false },
      // No way to more rights (RBAC, impersonation, tokens), and nothing cluster-wide it does not need.
      { group: 'rbac.authorization.k8s.io', resource: 'clusterroles', verb: 'escalate', allowed: false },
      { group: 'rbac.authorization.k8s.io', resource: 'clusterroles', verb: 'bind', allowed: false },
      { group: 'rbac.authorization.k8s.io', resource: 'clusterrolebindings', verb: 'create', allowed: false },
      { group: 'rbac.authorization.k8s.io', resource: 'rolebindings', verb: 'create', namespace: releaseNs, allowed: false },
      { group: 'rbac.authorization.k8s.io', resource: 'roles', verb: 'update', namespace: releaseNs, allowed: false },
      { resource: 'users', verb: 'impersonate', allowed: false },
      { resource: 'serviceaccounts', verb: 'impersonate', namespace: releaseNs, allowed: false },
      { resource: 'serviceaccounts', subresource: 'token', verb: 'create', namespace: releaseNs, allowed: false },
      { group: 'apiextensions.k8s.io', resource: 'customresourcedefinitions', verb: 'update', allowed: false },
      { resource: 'nodes', verb: 'list', allowed: false },
      { resource: 'namespaces', verb: 'delete', allowed: false },
    ];
    assert.deepEqual(await accessMismatches(controllerSa.kc, checks), []);

    // Cluster-wide reads work: a task in a namespace the chart knows nothing about is listed and watched.
    const elsewhere = uniqueName('elsewhere');
    await createTask(kc, 'TranscriptionTask', userNs, elsewhere, { audio: { uri: 'https://audio.example.com/elsewhere.wav' } });
    const listed = (await controllerSa.kc.makeApiClient(CustomObjectsApi).listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURALS.TranscriptionTask })) as { items: Obj[] };
    assert.ok(listed.items.some((t) => t.metadata.namespace === userNs && t.metadata.name === elsewhere), 'the ServiceAccount lists tasks in every namespace');
    await watchUntil(controllerSa.kc, `/apis/${GROUP}/${VERSION}/${PLURALS.TranscriptionTask}`, (phase, obj) => phase === 'ADDED' && obj.metadata?.name === elsewhere);

    // And the calls themselves: a Secret that exists, in its own namespace and in a user's, is 403.
    await Promise.all(
      [releaseNs, userNs].map((namespace) => core.createNamespacedSecret({ namespace, body: { metadata: { name: 'audio-credentials' }, stringData: { token: 'not-for-the-controller' } } })),
    );
    const asSa = controllerSa.kc.makeApiClient(CoreV1Api);
    assert.equal(await statusOfRejection(asSa.readNamespacedSecret({ name: 'audio-credentials', namespace: userNs })), 403);
    assert.equal(await statusOfRejection(asSa.readNamespacedSecret({ name: 'audio-credentials', namespace: releaseNs })), 403);
    assert.equal(await statusOfRejection(asSa.listNamespacedSecret({ namespace: otherNs })), 403);
    assert.equal(await statusOfRejection(asSa.listPodForAllNamespaces()), 403);

    // The workers' ServiceAccount has no role at all.
    const workerSaName = workerDeployment.spec?.template.spec?.serviceAccountName;
    assert.ok(workerSaName);
    assert.equal(workerDeployment.spec?.template.spec?.automountServiceAccountToken, false, 'no token is mounted into workers');
    const workerSa = await serviceAccountCredentials(kc, releaseNs, workerSaName);
    assert.deepEqual(
      await accessMismatches(workerSa.kc, [tq('transcriptiontasks', 'list', userNs, false), { resource: 'secrets', verb: 'get', namespace: releaseNs, allowed: false }]),
      [],
    );
  });

  test("as that ServiceAccount, the controller reconciles a task to Succeeded with a worker: the chart's RBAC is enough", async () => {
    const controllerEnv = Object.fromEntries((controllerDeployment.spec?.template.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
    assert.equal(controllerEnv['TQ_WATCH_NAMESPACE'], undefined, 'the default controller watches every namespace');
    assert.equal(controllerEnv['TQ_LEADER_ELECTION'], 'true');
    assert.equal(controllerEnv['TQ_LEADER_ELECTION_NAMESPACE'], releaseNs, 'the Lease lives in the release namespace');
    const leaseName = controllerEnv['TQ_LEADER_ELECTION_ID'];
    assert.ok(leaseName);

    // An idle pool, as minReplicas 0 leaves it: the task's backlog must make the controller scale it up.
    const workerName = workerDeployment.metadata!.name!;
    await scaleDeployment(releaseNs, workerName, 0);

    const controllerPod = uniqueName('controller');
    const controller = startController({
      deployment: controllerDeployment,
      kubeconfigPath: controllerSa.kubeconfigPath,
      podName: controllerPod,
      podNamespace: releaseNs,
      // See the top of this file.
      extraEnv: { TQ_WATCH_NAMESPACE: releaseNs },
    });
    processes.push(controller);
    await waitForLeader(kc, releaseNs, leaseName, controllerPod, controller);
    await waitForStream(ids.stream, controller);
    const workerPod = uniqueName('worker');
    processes.push(startWorker({ deployment: workerDeployment, podName: workerPod, podNamespace: releaseNs }));

    const name = uniqueName('interview');
    await createTask(kc, 'TranscriptionTask', releaseNs, name, { audio: { uri: 'https://audio.example.com/interview.wav' }, language: 'en' });
    task = await waitForPhase(kc, 'TranscriptionTask', releaseNs, name, 'Succeeded', processes);
    const status = task.status!;
    assert.equal(status.progress, 100);
    assert.equal(status.attempts, 1);
    assert.equal(status.worker, workerPod);
    assert.ok(status.result?.ref, 'the result is referenced');
    assert.equal(status.conditions?.find((c) => c.type === 'Ready')?.status, 'True');

    // The pool scaled up through /scale, the task's Events, the WorkerPool's status: all written with the chart's RBAC.
    const scaled = await readDeployment(kc, releaseNs, workerName);
    assert.equal(scaled.spec?.replicas, 1, 'the controller scaled the worker Deployment for the backlog');
    await waitFor('an Event for the task', async () => {
      const events = await core.listNamespacedEvent({ namespace: releaseNs, fieldSelector: `involvedObject.name=${name}` });
      return events.items.some((e) => e.reason === 'Succeeded');
    }, { timeoutMs: 15_000, intervalMs: 200 });
    const poolName = manifest.find((o) => o.kind === 'WorkerPool')!.metadata.name as string;
    let pool: Obj | undefined;
    await waitFor('the WorkerPool to be Ready and record its scale-up', async () => {
      pool = (await customObjects.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURALS.WorkerPool, namespace: releaseNs, name: poolName })) as Obj;
      return pool.status?.conditions?.some((c: Obj) => c.type === 'Ready' && c.status === 'True') === true && pool.status?.lastScaleTime !== undefined;
    }, { timeoutMs: 15_000, intervalMs: 200 }).catch((err: Error) => {
      throw new Error(`${err.message}; status: ${JSON.stringify(pool?.status)}\n${controller.logTail()}`);
    });

    // Nothing the controller tried was refused.
    assert.doesNotMatch(controller.log(), /forbidden/i, 'the controller was refused something');
    if (auditEventsOf(controllerSa.username) !== undefined) {
      // Local control plane only: the apiserver's own record of the controller's writes (flushed about every second).
      const wrote = (resource: string, subresource: string) =>
        auditEventsOf(controllerSa.username)!.some((e) => e.objectRef?.resource === resource && e.objectRef.subresource === subresource && e.responseStatus?.code === 200);
      await waitFor('the audit log to show the task status and the scale written as the ServiceAccount', () => wrote('transcriptiontasks', 'status') && wrote('deployments', 'scale'), {
        timeoutMs: 10_000,
        intervalMs: 250,
      });
      const refused = auditEventsOf(controllerSa.username)!.filter((e) => e.responseStatus?.code === 403);
      assert.deepEqual(refused.map((e) => `${e.verb} ${e.objectRef?.resource}/${e.objectRef?.subresource ?? ''}`), [], 'writes refused by RBAC');
    }
  });

  test('helm upgrade with changed values changes the objects and leaves the worker replicas to the WorkerPool', async () => {
    const workerName = workerDeployment.metadata!.name!;
    // What the WorkerPool would have done: scale the pool through /scale.
    await scaleDeployment(releaseNs, workerName, 3);
    const before = await readDeployment(kc, releaseNs, controllerDeployment.metadata!.name!);

    await helmOk([
      'upgrade', release, chartDir, '--namespace', releaseNs, '-f', values,
      '--set', 'workers.transcription.scaling.maxReplicas=7',
      '--set', 'controller.logLevel=debug',
    ]);
    const status = JSON.parse((await helmOk(['status', release, '--namespace', releaseNs, '-o', 'json'])).stdout) as Obj;
    assert.equal(status.version, 2);
    assert.equal(status.info?.status, 'deployed');

    const poolName = manifest.find((o) => o.kind === 'WorkerPool')!.metadata.name as string;
    const pool = (await customObjects.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURALS.WorkerPool, namespace: releaseNs, name: poolName })) as Obj;
    assert.equal(pool.spec.maxReplicas, 7);

    const controllerAfter = await readDeployment(kc, releaseNs, controllerDeployment.metadata!.name!);
    const logLevel = controllerAfter.spec?.template.spec?.containers[0]?.env?.find((e) => e.name === 'TQ_LOG_LEVEL')?.value;
    assert.equal(logLevel, 'debug');
    assert.ok((controllerAfter.metadata?.generation ?? 0) > (before.metadata?.generation ?? 0), 'the pod template changed: a rollout');

    const worker = await readDeployment(kc, releaseNs, workerName);
    assert.equal(worker.spec?.replicas, 3, 'helm upgrade leaves the replicas the WorkerPool set');

    const stillThere = await getTask(kc, 'TranscriptionTask', task!.metadata.namespace, task!.metadata.name);
    assert.equal(stillThere.status?.phase, 'Succeeded');
  });

  test('helm uninstall removes what the chart installed, and leaves the CRDs, the tasks and their results', async () => {
    const finalManifest = (await helmOk(['get', 'manifest', release, '--namespace', releaseNs])).stdout;
    await helmOk(['uninstall', release, '--namespace', releaseNs]);

    await waitFor('every object of the release to be gone', async () => {
      const left = await kubectlRun(['get', '-f', '-', '--ignore-not-found', '-o', 'name'], { input: finalManifest });
      return left.code === 0 && left.stdout.trim() === '';
    }, { timeoutMs: 30_000, intervalMs: 250 });
    // The garbage collector takes the ReplicaSets and Pods the Deployments made.
    await waitFor('the release\'s ReplicaSets and Pods to be gone', async () => {
      const left = await kubectlRun(['get', 'replicasets,pods', '--namespace', releaseNs, '-l', `app.kubernetes.io/instance=${release}`, '-o', 'name']);
      return left.code === 0 && left.stdout.trim() === '';
    }, { timeoutMs: 60_000, intervalMs: 500 });
    const list = JSON.parse((await helmOk(['list', '--namespace', releaseNs, '-o', 'json'])).stdout) as Obj[];
    assert.deepEqual(list.map((r) => r.name), []);

    // Helm never deletes the CRDs of crds/, so the users' tasks survive, and so do their results.
    const crds = await kubectlRun(['get', 'crd', ...['transcriptiontasks', 'diarizationtasks', 'workerpools'].map((p) => `${p}.${GROUP}`), '-o', 'name']);
    assert.equal(crds.code, 0, crds.stderr);
    const kept = await getTask(kc, 'TranscriptionTask', task!.metadata.namespace, task!.metadata.name);
    assert.equal(kept.status?.phase, 'Succeeded');
    assert.equal(kept.metadata.uid, task!.metadata.uid);
    assert.ok(await redisKeyExists(kept.status!.result!.ref!), 'the result stays in Redis for resultTTLSeconds');
    // The Lease is the controller's, not the chart's: it stays until the namespace goes.
    const leaseName = controllerDeployment.spec?.template.spec?.containers[0]?.env?.find((e) => e.name === 'TQ_LEADER_ELECTION_ID')?.value;
    await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: leaseName!, namespace: releaseNs });
  });
});
