// Shared pieces of the end-to-end tests of the Helm chart: bin/helm and
// bin/kubectl against the test cluster (the local control plane, or the
// cluster of the user's KUBECONFIG, e.g. kind), the ci/ scenarios, stand-in
// CRDs for the monitoring and KEDA kinds, a kubeconfig that carries only a
// ServiceAccount's token, and the controller and a worker run as local
// processes with the environment the chart gives their pods.
//
// Nothing here depends on the local control plane: whatever only it has
// (the audit log) is read by the tests behind `testEnv().externalCluster`.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiException,
  ApiextensionsV1Api,
  AppsV1Api,
  AuthenticationV1Api,
  AuthorizationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  SchedulingV1Api,
  Watch,
  type V1Deployment,
  type V1ResourceAttributes,
} from '@kubernetes/client-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { API_VERSION, GROUP, PLURALS, VERSION, type TaskKind, type TaskStatus } from '../../src/api/index.ts';
import {
  ManagedProcess,
  helmBinary,
  kubectlBinary,
  projectRoot,
  run,
  testEnv,
  uniqueName,
  waitFor,
  type CommandResult,
} from '../harness/index.ts';

export type Obj = Record<string, any>;

export const chartDir = join(projectRoot, 'charts', 'task-queue');
export const ciDir = join(chartDir, 'ci');

// ---------------------------------------------------------------------------
// Scratch space, removed when the test process exits.

const scratchRoot = mkdtempSync(join(tmpdir(), 'tq-e2e-'));
process.once('exit', () => rmSync(scratchRoot, { recursive: true, force: true }));

/** A fresh directory under this test file's scratch space. */
export function scratchDir(prefix: string): string {
  const dir = join(scratchRoot, uniqueName(prefix));
  mkdirSync(dir, { recursive: true });
  return dir;
}

// Helm keeps its cache, config and data here instead of the user's home, so a
// test run neither reads their repositories nor leaves anything behind.
const helmHome = scratchDir('helm-home');
const helmEnv: NodeJS.ProcessEnv = {
  ...process.env,
  HELM_CACHE_HOME: join(helmHome, 'cache'),
  HELM_CONFIG_HOME: join(helmHome, 'config'),
  HELM_DATA_HOME: join(helmHome, 'data'),
};

// ---------------------------------------------------------------------------
// helm and kubectl

/** bin/helm against the test cluster. */
export async function helm(args: readonly string[], options: { input?: string } = {}): Promise<CommandResult> {
  return run(helmBinary, [...args, '--kubeconfig', testEnv().kubeconfigPath], { env: helmEnv, timeoutMs: 120_000, ...options });
}

/** bin/helm that must succeed; the error carries helm's stderr. */
export async function helmOk(args: readonly string[]): Promise<CommandResult> {
  const result = await helm(args);
  if (result.code !== 0) throw new Error(`helm ${args.join(' ')} failed (exit ${result.code}):\n${result.stderr}`);
  return result;
}

/** bin/kubectl against the test cluster, or the given kubeconfig. */
export async function kubectlRun(args: readonly string[], options: { input?: string; kubeconfig?: string } = {}): Promise<CommandResult> {
  return run(kubectlBinary, ['--kubeconfig', options.kubeconfig ?? testEnv().kubeconfigPath, ...args], { input: options.input, timeoutMs: 120_000 });
}

/** API warnings (deprecations, Pod Security) that kubectl or helm printed. */
export function apiWarnings(stderr: string): string[] {
  return stderr.split('\n').filter((line) => /Warning:/.test(line));
}

/** The YAML documents of a stream, without the empty ones. */
export function parseManifests(text: string): Obj[] {
  const objects: Obj[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`invalid YAML: ${doc.errors.join('; ')}`);
    const value = doc.toJS() as Obj | null;
    if (value) objects.push(value);
  }
  return objects;
}

export const describeObject = (o: Obj): string => `${o.kind} ${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name}`;

// ---------------------------------------------------------------------------
// The ci/*-values.yaml scenarios

export interface CiScenario {
  file: string;
  path: string;
  values: Obj;
  /** The namespace the scenario must be installed into (its watched namespace), if any. */
  requiredNamespace: string | undefined;
}

export function ciScenarios(): CiScenario[] {
  return readdirSync(ciDir)
    .filter((f) => f.endsWith('-values.yaml'))
    .sort()
    .map((file) => {
      const path = join(ciDir, file);
      const values = (parse(readFileSync(path, 'utf8')) ?? {}) as Obj;
      const watch = values.controller?.watchNamespace;
      return { file, path, values, requiredNamespace: typeof watch === 'string' && watch !== '' ? watch : undefined };
    });
}

/** `helm template` of the chart; throws with helm's stderr when it fails. */
export async function renderChart(options: {
  release: string;
  namespace: string;
  valuesFiles?: readonly string[];
  extraArgs?: readonly string[];
  includeCrds?: boolean;
}): Promise<{ yaml: string; objects: Obj[] }> {
  const args = [
    'template',
    options.release,
    chartDir,
    '--namespace',
    options.namespace,
    ...(options.valuesFiles ?? []).flatMap((f) => ['-f', f]),
    ...(options.includeCrds ? ['--include-crds'] : []),
    ...(options.extraArgs ?? []),
  ];
  const result = await helmOk(args);
  return { yaml: result.stdout, objects: parseManifests(result.stdout) };
}

/** Writes values to a file for `helm -f`, which keeps lists and odd characters out of `--set`. */
export function valuesFile(values: Obj, dir = scratchDir('values')): string {
  const path = join(dir, 'values.yaml');
  writeFileSync(path, stringify(values));
  return path;
}

// ---------------------------------------------------------------------------
// Objects the tests need in the cluster, created only when missing and
// removed afterwards only if the test created them: on a shared cluster
// (kind) whatever the user already has is left alone.

export type Cleanup = () => Promise<void>;

function isStatus(err: unknown, code: number): boolean {
  return err instanceof ApiException && err.code === code;
}

/** Creates the namespaces that do not exist yet; the cleanup deletes only those. */
export async function ensureNamespaces(kc: KubeConfig, names: Iterable<string>, labels: Record<string, string> = {}): Promise<Cleanup> {
  const core = kc.makeApiClient(CoreV1Api);
  const created: string[] = [];
  for (const name of new Set(names)) {
    try {
      await core.readNamespace({ name });
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
      await core.createNamespace({ body: { metadata: { name, labels: { 'taskqueue.dev/test': 'true', ...labels } } } });
      created.push(name);
    }
  }
  return async () => {
    await Promise.all(created.map((name) => core.deleteNamespace({ name }).catch(() => undefined)));
  };
}

/** Creates the PriorityClasses that do not exist yet (Pods naming a missing one are rejected); the cleanup deletes only those. */
export async function ensurePriorityClasses(kc: KubeConfig, names: Iterable<string>): Promise<Cleanup> {
  const scheduling = kc.makeApiClient(SchedulingV1Api);
  const created: string[] = [];
  for (const name of new Set(names)) {
    try {
      await scheduling.readPriorityClass({ name });
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
      await scheduling.createPriorityClass({
        body: { metadata: { name, labels: { 'taskqueue.dev/test': 'true' } }, value: 0, description: 'Stand-in created by the task-queue e2e tests.' },
      });
      created.push(name);
    }
  }
  return async () => {
    await Promise.all(created.map((name) => scheduling.deletePriorityClass({ name }).catch(() => undefined)));
  };
}

/**
 * The kinds the chart renders from other projects' APIs, as minimal CRDs of
 * the same group, version, names and scope as upstream's, with an open
 * schema: the apiserver then accepts the chart's objects of these kinds in a
 * dry run. They check what an apiserver checks without the real CRD's schema
 * (names, namespace, admission), not the fields of spec.
 */
export const standInCrds: readonly { group: string; version: string; kind: string; plural: string; singular: string; shortNames?: string[] }[] = [
  { group: 'monitoring.coreos.com', version: 'v1', kind: 'ServiceMonitor', plural: 'servicemonitors', singular: 'servicemonitor', shortNames: ['smon'] },
  { group: 'monitoring.coreos.com', version: 'v1', kind: 'PrometheusRule', plural: 'prometheusrules', singular: 'prometheusrule', shortNames: ['promrule'] },
  { group: 'keda.sh', version: 'v1alpha1', kind: 'ScaledObject', plural: 'scaledobjects', singular: 'scaledobject', shortNames: ['so'] },
];

/**
 * Installs the stand-in CRDs that are missing (a real one, e.g. on kind with
 * Prometheus Operator, is used as it is); returns the kinds it stood in for.
 */
export async function ensureStandInCrds(kc: KubeConfig): Promise<{ kinds: string[]; cleanup: Cleanup }> {
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  const created: string[] = [];
  const kinds: string[] = [];
  for (const crd of standInCrds) {
    const name = `${crd.plural}.${crd.group}`;
    try {
      await ext.readCustomResourceDefinition({ name });
      continue;
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
    }
    // kubectl, so the schema goes to the apiserver exactly as written here.
    const crdObject = {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name, labels: { 'taskqueue.dev/test': 'true', 'taskqueue.dev/e2e-stand-in': 'true' } },
      spec: {
        group: crd.group,
        scope: 'Namespaced',
        names: { kind: crd.kind, listKind: `${crd.kind}List`, plural: crd.plural, singular: crd.singular, ...(crd.shortNames ? { shortNames: crd.shortNames } : {}) },
        versions: [
          {
            name: crd.version,
            served: true,
            storage: true,
            schema: {
              openAPIV3Schema: {
                type: 'object',
                required: ['spec'],
                properties: {
                  apiVersion: { type: 'string' },
                  kind: { type: 'string' },
                  metadata: { type: 'object' },
                  spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
                  status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
                },
              },
            },
          },
        ],
      },
    };
    const createdCrd = await kubectlRun(['create', '-f', '-'], { input: JSON.stringify(crdObject) });
    if (createdCrd.code !== 0) throw new Error(`creating the stand-in CRD ${name} failed:\n${createdCrd.stderr}`);
    created.push(name);
    kinds.push(crd.kind);
  }
  await waitFor(
    'the stand-in CRDs to be Established',
    async () => {
      for (const name of created) {
        const crd = await ext.readCustomResourceDefinition({ name });
        if (!crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) return false;
      }
      return true;
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  return {
    kinds,
    cleanup: async () => {
      await Promise.all(created.map((name) => ext.deleteCustomResourceDefinition({ name }).catch(() => undefined)));
    },
  };
}

// ---------------------------------------------------------------------------
// A ServiceAccount's identity

export interface ServiceAccountCredentials {
  /** `system:serviceaccount:<namespace>:<name>` */
  username: string;
  kc: KubeConfig;
  /** A kubeconfig file with the cluster's server and CA and the token, nothing else. */
  kubeconfigPath: string;
}

/**
 * A short-lived token of the ServiceAccount (TokenRequest API, as the
 * kubelet gets for a pod) in a kubeconfig of its own: the same server and
 * CA as the admin's, no client certificate, no other user.
 */
export async function serviceAccountCredentials(admin: KubeConfig, namespace: string, name: string): Promise<ServiceAccountCredentials> {
  const request = await admin.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const token = request.status?.token;
  if (!token) throw new Error(`no token issued for ServiceAccount ${namespace}/${name}`);
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error('the test kubeconfig has no current cluster');
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name, token }],
    contexts: [{ name, cluster: cluster.name, user: name, namespace }],
    currentContext: name,
  });
  const kubeconfigPath = join(scratchDir('sa-kubeconfig'), 'kubeconfig');
  writeFileSync(kubeconfigPath, kc.exportConfig(), { mode: 0o600 });
  return { username: `system:serviceaccount:${namespace}:${name}`, kc, kubeconfigPath };
}

/** Who the apiserver says these credentials are (SelfSubjectReview). */
export async function whoAmI(kc: KubeConfig): Promise<string | undefined> {
  const review = await kc.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
  });
  return review.status?.userInfo?.username;
}

export interface AccessCheck extends V1ResourceAttributes {
  allowed: boolean;
}

const describeAccess = (c: V1ResourceAttributes): string =>
  `${c.verb} ${c.group ? `${c.group}/` : ''}${c.resource}${c.subresource ? `/${c.subresource}` : ''}${c.name ? ` ${c.name}` : ''} ${c.namespace ? `in ${c.namespace}` : 'cluster-wide'}`;

/**
 * Asks the apiserver, as the credentials' owner, whether each action is
 * allowed (SelfSubjectAccessReview); returns the checks whose answer differs
 * from the expectation, described, so one assertion lists them all.
 */
export async function accessMismatches(kc: KubeConfig, checks: readonly AccessCheck[]): Promise<string[]> {
  const authz = kc.makeApiClient(AuthorizationV1Api);
  const answers = await Promise.all(
    checks.map(async ({ allowed, ...resourceAttributes }) => {
      const review = await authz.createSelfSubjectAccessReview({
        body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes } },
      });
      const got = review.status?.allowed ?? false;
      return got === allowed ? undefined : `${describeAccess(resourceAttributes)}: expected ${allowed ? 'allowed' : 'denied'}, got ${got ? 'allowed' : 'denied'}`;
    }),
  );
  return answers.filter((a): a is string => a !== undefined);
}

/** Opens a watch on `path` with these credentials and resolves at the first event that matches; rejects if the watch fails. */
export async function watchUntil(kc: KubeConfig, path: string, match: (phase: string, obj: Obj) => boolean, timeoutMs = 10_000): Promise<void> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`no matching event from a watch on ${path} within ${timeoutMs} ms`)), timeoutMs);
  try {
    await new Promise<void>((resolve, reject) => {
      controller.signal.addEventListener('abort', () => reject(controller.signal.reason as Error), { once: true });
      new Watch(kc)
        .watch(
          path,
          {},
          (phase, obj: Obj) => {
            if (match(phase, obj)) resolve();
          },
          (err: unknown) => {
            if (err) reject(err instanceof Error ? err : new Error(String(err)));
            else reject(new Error(`the watch on ${path} ended before a matching event`));
          },
        )
        .then((request) => {
          if (controller.signal.aborted) request.abort();
          else controller.signal.addEventListener('abort', () => request.abort(), { once: true });
        }, reject);
    });
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

/** The HTTP status a call failed with; fails when it succeeded. */
export async function statusOfRejection(call: Promise<unknown>): Promise<number> {
  try {
    await call;
  } catch (err) {
    if (err instanceof ApiException) return err.code;
    throw err;
  }
  throw new Error('the call succeeded but should have been rejected');
}

// ---------------------------------------------------------------------------
// The controller and a worker as local processes, configured like the pods

/**
 * The environment a container of the Deployment gets, as the kubelet would
 * build it: literal values as they are, downward API fields from `fieldRefs`.
 * Anything else (Secrets, ConfigMaps, envFrom) is not expected in the
 * installation these tests make, and fails loudly rather than being skipped.
 */
export function containerEnv(deployment: V1Deployment, containerName: string, fieldRefs: Record<string, string>): Record<string, string> {
  const container = deployment.spec?.template.spec?.containers.find((c) => c.name === containerName);
  if (!container) throw new Error(`Deployment ${deployment.metadata?.name} has no container ${containerName}`);
  if (container.envFrom?.length) throw new Error(`container ${containerName} uses envFrom, which these tests do not resolve`);
  const env: Record<string, string> = {};
  for (const variable of container.env ?? []) {
    if (variable.value !== undefined) {
      env[variable.name] = variable.value;
      continue;
    }
    const fieldPath = variable.valueFrom?.fieldRef?.fieldPath;
    const resolved = fieldPath !== undefined ? fieldRefs[fieldPath] : undefined;
    if (resolved === undefined) throw new Error(`cannot resolve ${variable.name} of container ${containerName}: ${JSON.stringify(variable.valueFrom)}`);
    env[variable.name] = resolved;
  }
  return env;
}

/** A process whose pino JSON log goes to a file. */
export class LoggedProcess {
  readonly process: ManagedProcess;
  readonly logFile: string;

  constructor(name: string, script: string, env: NodeJS.ProcessEnv) {
    this.logFile = join(scratchDir(name), `${name}.log`);
    // Node 24 from node_modules runs the TypeScript entry points directly.
    this.process = new ManagedProcess(name, process.execPath, [join(projectRoot, script)], { logFile: this.logFile, env, cwd: projectRoot });
    this.process.start();
  }

  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  logTail(lines = 40): string {
    return this.process.logTail(lines);
  }

  async stop(): Promise<void> {
    await this.process.stop(10_000);
  }
}

/** The least a Node process needs from the test's environment: no KUBECONFIG, no credentials. */
function baseEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: scratchDir('home') };
}

/**
 * Runs the controller as the chart's controller pod would run: the installed
 * Deployment's environment (namespaces, leader election, queue names, log
 * level: whatever the chart set), the ServiceAccount's kubeconfig as the
 * only credentials, and free ports instead of the pod's.
 */
export function startController(options: {
  deployment: V1Deployment;
  kubeconfigPath: string;
  podName: string;
  podNamespace: string;
  /** Variables set on top of the chart's, where a test must differ (and says why). */
  extraEnv?: Record<string, string>;
}): LoggedProcess {
  const env = containerEnv(options.deployment, 'controller', { 'metadata.name': options.podName, 'metadata.namespace': options.podNamespace });
  return new LoggedProcess(options.podName, 'src/controller/main.ts', {
    ...baseEnv(),
    ...env,
    KUBECONFIG: options.kubeconfigPath,
    TQ_METRICS_PORT: '0',
    TQ_HEALTH_PORT: '0',
    ...options.extraEnv,
  });
}

/**
 * Runs a worker as the chart's worker pod would run, with the fake engine and
 * the stub pipeline instead of a GPU model, and local directories for the
 * paths the pod mounts. It gets no kubeconfig: workers never call the API.
 */
export function startWorker(options: { deployment: V1Deployment; podName: string; podNamespace: string }): LoggedProcess {
  const env = containerEnv(options.deployment, 'worker', { 'metadata.name': options.podName, 'metadata.namespace': options.podNamespace });
  const dir = scratchDir('worker-data');
  return new LoggedProcess(options.podName, 'src/worker/main.ts', {
    ...baseEnv(),
    ...env,
    TQ_ENGINE: 'fake',
    TQ_PIPELINE: 'stub',
    TQ_STUB_CHUNKS: '4',
    TQ_STUB_CHUNK_MS: '100',
    TQ_IDLE_POLL_MS: '200',
    TQ_HEALTH_PORT: '0',
    TQ_METRICS_PORT: '0',
    TQ_AUDIO_DIR: join(dir, 'audio'),
    TQ_SECRETS_DIR: join(dir, 'secrets'),
  });
}

/** Waits until the Lease names the holder; fails early, with its log, if the controller exits. */
export async function waitForLeader(kc: KubeConfig, namespace: string, lease: string, holder: string, controller: LoggedProcess): Promise<void> {
  const coordination = kc.makeApiClient(CoordinationV1Api);
  await waitFor(
    `${holder} to hold Lease ${namespace}/${lease}`,
    async () => {
      if (!controller.process.running) throw new Error(`the controller exited:\n${controller.logTail()}`);
      const current = await coordination.readNamespacedLease({ name: lease, namespace });
      return current.spec?.holderIdentity === holder;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
}

// ---------------------------------------------------------------------------
// Tasks

export type TaskObject = Obj & { status?: TaskStatus };

export async function createTask(kc: KubeConfig, kind: TaskKind, namespace: string, name: string, spec: Obj): Promise<TaskObject> {
  return kc.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    plural: PLURALS[kind],
    namespace,
    body: { apiVersion: API_VERSION, kind, metadata: { name, namespace }, spec },
  }) as Promise<TaskObject>;
}

export async function getTask(kc: KubeConfig, kind: TaskKind, namespace: string, name: string): Promise<TaskObject> {
  return kc.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURALS[kind], namespace, name }) as Promise<TaskObject>;
}

/** Waits for a task's phase; the error shows the last status and the processes' logs. */
export async function waitForPhase(
  kc: KubeConfig,
  kind: TaskKind,
  namespace: string,
  name: string,
  phase: string,
  processes: readonly LoggedProcess[],
  timeoutMs = 45_000,
): Promise<TaskObject> {
  let last: TaskObject | undefined;
  try {
    await waitFor(
      `${kind} ${namespace}/${name} to reach ${phase}`,
      async () => {
        last = await getTask(kc, kind, namespace, name);
        return last.status?.phase === phase;
      },
      { timeoutMs, intervalMs: 200 },
    );
  } catch (err) {
    const logs = processes.map((p) => `--- ${p.process.name} (${p.process.running ? 'running' : 'exited'}):\n${p.logTail(30)}`).join('\n');
    throw new Error(`${(err as Error).message}\nlast status: ${JSON.stringify(last?.status)}\n${logs}`);
  }
  return last as TaskObject;
}

/** The Deployment of a component (`controller`, `worker-<name>`) in a release's manifest. */
export function manifestDeployment(manifest: readonly Obj[], component: string): Obj {
  const found = manifest.find((o) => o.kind === 'Deployment' && o.metadata?.labels?.['app.kubernetes.io/component'] === component);
  if (!found) throw new Error(`the manifest has no Deployment of component ${component}`);
  return found;
}

/** Sets a Deployment's replicas through /scale, as the WorkerPool does. */
export async function scaleDeployment(namespace: string, name: string, replicas: number): Promise<void> {
  const result = await kubectlRun(['scale', 'deployment', name, '--namespace', namespace, `--replicas=${replicas}`]);
  if (result.code !== 0) throw new Error(`kubectl scale failed:\n${result.stderr}`);
}

export async function readDeployment(kc: KubeConfig, namespace: string, name: string): Promise<V1Deployment> {
  return kc.makeApiClient(AppsV1Api).readNamespacedDeployment({ name, namespace });
}

// ---------------------------------------------------------------------------
// Queue and report data of one test

export interface QueueIds {
  stream: string;
  subjectPrefix: string;
  keyPrefix: string;
}

/** A stream, subject prefix and Redis key prefix no other test uses on the shared servers. */
export function uniqueQueueIds(): QueueIds {
  const id = uniqueName('e').slice(2);
  return { stream: `E2E_${id.toUpperCase()}`, subjectPrefix: `tqe2e${id}`, keyPrefix: `tq-e2e-${id}:` };
}

/** A node label no node has: the releases' pods are created (and admitted) but never scheduled. */
export const unschedulable = { 'taskqueue.dev/e2e-unschedulable': 'true' };

/**
 * The values every installation of these tests adds to its scenario:
 *
 * - pods that are never scheduled, so that on a cluster with nodes (kind)
 *   no image is pulled and no controller pod competes with the test's
 *   controller process for the Lease or the tasks;
 * - with `ids`, the test run's nats-server and redis-server, on a stream,
 *   subjects and keys of the test's own.
 */
export function testValues(ids?: QueueIds): Obj {
  if (!ids) return { controller: { nodeSelector: unschedulable }, workerDefaults: { nodeSelector: unschedulable } };
  const { natsUrl, redisUrl } = testEnv();
  return {
    nats: { servers: [natsUrl] },
    redis: { url: redisUrl },
    queue: { streamName: ids.stream, subjectPrefix: ids.subjectPrefix, keyPrefix: ids.keyPrefix },
    controller: { nodeSelector: unschedulable },
    workerDefaults: { nodeSelector: unschedulable },
  };
}

/**
 * Waits for the controller to have made the stream. A worker started before
 * it exists retries after its own pull timeout; starting it after saves the
 * test those seconds.
 */
export async function waitForStream(stream: string, controller: LoggedProcess): Promise<void> {
  const nc = await connect({ servers: testEnv().natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    await waitFor(
      `the controller to create stream ${stream}`,
      async () => {
        if (!controller.process.running) throw new Error(`the controller exited:\n${controller.logTail()}`);
        return (await jsm.streams.info(stream).catch(() => undefined)) !== undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- controller log:\n${controller.logTail()}`);
  } finally {
    await nc.close();
  }
}

/** Deletes the test's stream and Redis keys; never fails, never hangs. */
export async function deleteQueueData(ids: QueueIds): Promise<void> {
  const { natsUrl, redisUrl } = testEnv();
  const timeBoxed = <T>(p: Promise<T>): Promise<T | undefined> =>
    Promise.race([p.catch(() => undefined), new Promise<undefined>((r) => setTimeout(() => r(undefined), 3000).unref())]);
  const nc = await timeBoxed(connect({ servers: natsUrl, timeout: 2000 }));
  if (nc) {
    const jsm = await timeBoxed(jetstreamManager(nc, { timeout: 2000 }));
    await timeBoxed(jsm?.streams.delete(ids.stream) ?? Promise.resolve(false));
    await timeBoxed(nc.close());
  }
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true });
  await timeBoxed(redis.connect());
  const keys = (await timeBoxed(redis.keys(`${ids.keyPrefix}*`))) ?? [];
  if (keys.length > 0) await timeBoxed(redis.del(...keys));
  redis.disconnect();
}

/** Whether a Redis key exists (a task's result, after the chart is gone). */
export async function redisKeyExists(key: string): Promise<boolean> {
  const redis = new Redis(testEnv().redisUrl, { maxRetriesPerRequest: 1 });
  try {
    return (await redis.exists(key)) === 1;
  } finally {
    redis.disconnect();
  }
}

// ---------------------------------------------------------------------------
// The local control plane's audit log (not available on an external cluster)

export interface AuditEvent {
  verb: string;
  user: { username: string };
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string; apiGroup?: string };
  responseStatus?: { code?: number };
}

/** Audit events (writes only, per the harness's policy) of one user; undefined on an external cluster. */
export function auditEventsOf(username: string): AuditEvent[] | undefined {
  const { externalCluster, clusterDir } = testEnv();
  if (externalCluster || !clusterDir) return undefined;
  let text = '';
  try {
    text = readFileSync(join(clusterDir, 'audit.log'), 'utf8');
  } catch {
    return [];
  }
  const events: AuditEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes(username)) continue;
    try {
      const event = JSON.parse(line) as AuditEvent;
      if (event.user?.username === username) events.push(event);
    } catch {
      // The last line of a batch still being written.
    }
  }
  return events;
}
