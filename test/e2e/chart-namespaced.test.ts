// The ci/namespaced-values.yaml scenario installed for real: the controller
// watches one namespace, its RBAC is a Role there instead of a ClusterRole,
// and with only that Role (plus the leader election Role) the controller,
// as a local process holding the ServiceAccount's token, reconciles the
// tasks of its namespace and never sees the others'.
//
// The scenario watches `speech`; this test installs into a fresh namespace
// of its own and watches that one instead (the chart requires the watched
// namespace to be the release namespace, where its WorkerPools go).
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CustomObjectsApi, type V1Deployment } from '@kubernetes/client-node';
import { join } from 'node:path';
import { GROUP, PLURALS, VERSION } from '../../src/api/index.ts';
import { createTestNamespace, deleteTestNamespace, testEnv, uniqueName } from '../harness/index.ts';
import {
  accessMismatches,
  chartDir,
  ciDir,
  createTask,
  deleteQueueData,
  getTask,
  helm,
  helmOk,
  manifestDeployment,
  parseManifests,
  readDeployment,
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
  type AccessCheck,
  type LoggedProcess,
  type Obj,
  type ServiceAccountCredentials,
} from './support.ts';

const { kc } = testEnv();
const release = uniqueName('e2e-ns');
const ids = uniqueQueueIds();
const values = valuesFile(testValues(ids));
let releaseNs: string;
let otherNs: string;
let manifest: Obj[] = [];
let controllerDeployment: V1Deployment;
let workerDeployment: V1Deployment;
let controllerSa: ServiceAccountCredentials;
const processes: LoggedProcess[] = [];

before(async () => {
  [releaseNs, otherNs] = await Promise.all([createTestNamespace(kc, 'e2e-watched'), createTestNamespace(kc, 'e2e-unwatched')]);
});

afterEach(async () => {
  await Promise.allSettled(processes.splice(0).map((p) => p.stop()));
});

after(async () => {
  await helm(['uninstall', release, '--namespace', releaseNs, '--ignore-not-found']);
  await Promise.allSettled([releaseNs, otherNs].map((ns) => deleteTestNamespace(kc, ns)));
  await deleteQueueData(ids);
});

describe('chart with one watched namespace (ci/namespaced-values.yaml, Role)', () => {
  test('helm install renders the controller RBAC as Roles in the watched namespace, nothing cluster-wide for it', async () => {
    await helmOk([
      'install', release, chartDir, '--namespace', releaseNs,
      '-f', join(ciDir, 'namespaced-values.yaml'), '-f', values,
      '--set', `controller.watchNamespace=${releaseNs}`,
    ]);
    manifest = parseManifests((await helmOk(['get', 'manifest', release, '--namespace', releaseNs])).stdout);
    assert.deepEqual(manifest.filter((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding').map((o) => o.metadata.name), []);
    const roles = manifest.filter((o) => o.kind === 'Role');
    assert.ok(roles.length >= 2, 'a Role for the controller and one for leader election');
    for (const role of roles) assert.equal(role.metadata.namespace, releaseNs);

    controllerDeployment = await readDeployment(kc, releaseNs, manifestDeployment(manifest, 'controller').metadata.name);
    workerDeployment = await readDeployment(kc, releaseNs, manifestDeployment(manifest, 'worker-transcription').metadata.name);
    const env = Object.fromEntries((controllerDeployment.spec?.template.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
    assert.equal(env['TQ_WATCH_NAMESPACE'], releaseNs);
    assert.equal(env['TQ_LEADER_ELECTION_NAMESPACE'], releaseNs);
  });

  test('its ServiceAccount may act in the watched namespace only', async () => {
    controllerSa = await serviceAccountCredentials(kc, releaseNs, controllerDeployment.spec!.template.spec!.serviceAccountName!);
    const tq = (resource: string, verb: string, namespace: string | undefined, allowed: boolean, subresource?: string): AccessCheck => ({
      group: GROUP, resource, verb, ...(namespace ? { namespace } : {}), ...(subresource ? { subresource } : {}), allowed,
    });
    const checks: AccessCheck[] = [
      ...['transcriptiontasks', 'diarizationtasks', 'workerpools'].flatMap((r) => [
        tq(r, 'watch', releaseNs, true),
        tq(r, 'patch', releaseNs, true, 'status'),
        tq(r, 'watch', otherNs, false),
        tq(r, 'list', undefined, false),
        tq(r, 'patch', otherNs, false, 'status'),
      ]),
      { group: 'apps', resource: 'deployments', subresource: 'scale', verb: 'patch', namespace: releaseNs, allowed: true },
      { group: 'apps', resource: 'deployments', subresource: 'scale', verb: 'patch', namespace: otherNs, allowed: false },
      { group: 'apps', resource: 'deployments', verb: 'list', allowed: false },
      { resource: 'events', verb: 'create', namespace: otherNs, allowed: false },
      { resource: 'secrets', verb: 'get', namespace: releaseNs, allowed: false },
      { resource: 'secrets', verb: 'list', namespace: otherNs, allowed: false },
      { resource: 'pods', verb: 'list', namespace: releaseNs, allowed: false },
      { group: 'rbac.authorization.k8s.io', resource: 'roles', verb: 'escalate', namespace: releaseNs, allowed: false },
      { group: 'rbac.authorization.k8s.io', resource: 'rolebindings', verb: 'create', namespace: releaseNs, allowed: false },
    ];
    assert.deepEqual(await accessMismatches(controllerSa.kc, checks), []);
    const asSa = controllerSa.kc.makeApiClient(CustomObjectsApi);
    assert.equal(await statusOfRejection(asSa.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURALS.TranscriptionTask, namespace: otherNs })), 403);
  });

  test('the controller, as that ServiceAccount, reconciles the tasks of its namespace and leaves the others alone', async () => {
    const controllerPod = uniqueName('controller');
    const controller = startController({ deployment: controllerDeployment, kubeconfigPath: controllerSa.kubeconfigPath, podName: controllerPod, podNamespace: releaseNs });
    processes.push(controller);
    const leaseName = controllerDeployment.spec?.template.spec?.containers[0]?.env?.find((e) => e.name === 'TQ_LEADER_ELECTION_ID')?.value;
    assert.ok(leaseName);
    await waitForLeader(kc, releaseNs, leaseName, controllerPod, controller);
    await waitForStream(ids.stream, controller);
    processes.push(startWorker({ deployment: workerDeployment, podName: uniqueName('worker'), podNamespace: releaseNs }));

    const spec = { audio: { uri: 'https://audio.example.com/standup.wav' } };
    const outside = uniqueName('outside');
    await createTask(kc, 'TranscriptionTask', otherNs, outside, spec);
    const inside = uniqueName('inside');
    await createTask(kc, 'TranscriptionTask', releaseNs, inside, spec);

    const done = await waitForPhase(kc, 'TranscriptionTask', releaseNs, inside, 'Succeeded', processes);
    assert.equal(done.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    // Created first, and still untouched: the controller neither sees nor queues it.
    const untouched = await getTask(kc, 'TranscriptionTask', otherNs, outside);
    assert.equal(untouched.status, undefined, `a task outside the watched namespace got a status: ${JSON.stringify(untouched.status)}`);
    assert.doesNotMatch(controller.log(), /forbidden/i, 'the controller was refused something');
  });
});
