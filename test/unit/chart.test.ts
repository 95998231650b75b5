// The Helm chart, rendered the way a user would install it: every
// charts/task-queue/ci/*-values.yaml scenario is linted and templated with
// bin/helm, and the output is parsed and checked for what matters in a
// cluster (labels, immutable selectors, the restricted Pod Security profile,
// least-privilege RBAC, GPU placement, who owns the worker replicas) rather
// than compared with a snapshot.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMap, isScalar, parse, parseAllDocuments, parseDocument } from 'yaml';
import type { YAMLMap } from 'yaml';

const root = fileURLToPath(new URL('../..', import.meta.url));
const chartDir = join(root, 'charts', 'task-queue');
// TQ_HELM points at another helm binary, e.g. to try a newer Helm than bin/'s.
const helm = process.env['TQ_HELM'] ?? join(root, 'bin', 'helm');
const release = 'tq';
const fullname = 'tq-task-queue';
const gpuResource = 'nvidia.com/gpu';

type Obj = Record<string, any>;

interface HelmResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

function runHelm(args: readonly string[]): HelmResult {
  assert.ok(existsSync(helm), `${helm} is missing: run \`make install\` (it extracts helm into bin/)`);
  const result = spawnSync(helm, args, { encoding: 'utf8', env: { ...process.env, HELM_CACHE_HOME: join(tmpdir(), 'tq-helm-cache') } });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function templateArgs(namespace: string, valuesFiles: readonly string[], extra: readonly string[] = []): string[] {
  return ['template', release, chartDir, '--namespace', namespace, ...valuesFiles.flatMap((f) => ['-f', f]), ...extra];
}

function render(namespace: string, valuesFiles: readonly string[], extra: readonly string[] = []): Obj[] {
  const result = runHelm(templateArgs(namespace, valuesFiles, extra));
  assert.equal(result.status, 0, `helm template failed:\n${result.stderr}`);
  const objects: Obj[] = [];
  for (const doc of parseAllDocuments(result.stdout)) {
    assert.deepEqual(doc.errors, [], `helm template printed invalid YAML: ${doc.errors.join('; ')}`);
    const value = doc.toJS() as Obj | null;
    if (value) objects.push(value);
  }
  return objects;
}

function renderFails(args: readonly string[]): string {
  const result = runHelm(['template', release, chartDir, '--namespace', 'speech', ...args]);
  assert.notEqual(result.status, 0, `helm template ${args.join(' ')} should have failed but rendered`);
  return result.stderr;
}

const ofKind = (objects: Obj[], kind: string): Obj[] => objects.filter((o) => o['kind'] === kind);
const named = (objects: Obj[], kind: string, name: string): Obj | undefined =>
  objects.find((o) => o['kind'] === kind && o['metadata']?.['name'] === name);
const describeObj = (o: Obj): string => `${o['kind']} ${o['metadata']?.['name']}`;

// ---------------------------------------------------------------------------
// What each scenario should produce. Every ci/*-values.yaml file must appear
// here, so a new scenario comes with its expectations.

type GpuHolder = 'worker' | 'engine' | 'none';
interface Scenario {
  namespace: string;
  autoscaling: 'workerpool' | 'keda';
  /** Enabled workers, and the container that gets the GPU. */
  workers: Record<string, { taskKind: 'TranscriptionTask' | 'DiarizationTask'; gpu: GpuHolder }>;
  watchNamespace?: string;
  networkPolicy?: boolean;
  monitoring?: boolean;
}

const scenarios: Record<string, Scenario> = {
  'default-values.yaml': {
    namespace: 'task-queue',
    autoscaling: 'workerpool',
    workers: { transcription: { taskKind: 'TranscriptionTask', gpu: 'engine' } },
  },
  'keda-values.yaml': {
    namespace: 'task-queue',
    autoscaling: 'keda',
    workers: {
      transcription: { taskKind: 'TranscriptionTask', gpu: 'engine' },
      diarization: { taskKind: 'DiarizationTask', gpu: 'worker' },
    },
  },
  'networkpolicy-monitoring-values.yaml': {
    namespace: 'task-queue',
    autoscaling: 'workerpool',
    workers: { transcription: { taskKind: 'TranscriptionTask', gpu: 'engine' } },
    networkPolicy: true,
    monitoring: true,
  },
  'namespaced-values.yaml': {
    namespace: 'speech',
    autoscaling: 'workerpool',
    workers: { transcription: { taskKind: 'TranscriptionTask', gpu: 'engine' } },
    watchNamespace: 'speech',
  },
  'external-secrets-tls-values.yaml': {
    namespace: 'task-queue',
    autoscaling: 'workerpool',
    workers: { transcription: { taskKind: 'TranscriptionTask', gpu: 'none' } },
  },
  'sidecar-values.yaml': {
    namespace: 'task-queue',
    autoscaling: 'workerpool',
    workers: {
      transcription: { taskKind: 'TranscriptionTask', gpu: 'engine' },
      diarization: { taskKind: 'DiarizationTask', gpu: 'worker' },
    },
  },
  'kind-values.yaml': {
    namespace: 'task-queue',
    autoscaling: 'workerpool',
    workers: {
      transcription: { taskKind: 'TranscriptionTask', gpu: 'none' },
      diarization: { taskKind: 'DiarizationTask', gpu: 'none' },
    },
  },
};

// Environment variables the config modules read; anything else starting with
// TQ_ is a typo that would be silently ignored.
const sharedEnv = [
  'TQ_NATS_URL', 'TQ_NATS_USER', 'TQ_NATS_PASSWORD', 'TQ_NATS_TOKEN', 'TQ_NATS_CREDS_FILE',
  'TQ_NATS_TLS_CA_FILE', 'TQ_NATS_TLS_CERT_FILE', 'TQ_NATS_TLS_KEY_FILE',
  'TQ_REDIS_URL', 'TQ_REDIS_USERNAME', 'TQ_REDIS_PASSWORD', 'TQ_REDIS_TLS_CA_FILE', 'TQ_REDIS_TLS',
  'TQ_STREAM_NAME', 'TQ_SUBJECT_PREFIX', 'TQ_KEY_PREFIX', 'TQ_METRICS_PORT', 'TQ_HEALTH_PORT', 'TQ_LOG_LEVEL',
];
const controllerEnv = new Set([
  ...sharedEnv, 'TQ_STREAM_REPLICAS', 'TQ_WATCH_NAMESPACE', 'TQ_LEADER_ELECTION', 'TQ_LEADER_ELECTION_NAMESPACE',
  'TQ_LEADER_ELECTION_ID', 'TQ_KUBE_QPS', 'TQ_KUBE_BURST', 'TQ_STATUS_PROGRESS_INTERVAL_MS', 'TQ_RECONCILE_CONCURRENCY',
]);
const workerEnv = new Set([
  ...sharedEnv, 'TQ_TASK_KIND', 'TQ_WORKER_NAME', 'TQ_CONCURRENCY', 'TQ_ENGINE', 'TQ_ENGINE_OPENAI_URL',
  'TQ_ENGINE_OPENAI_MODEL', 'TQ_ENGINE_OPENAI_API_KEY', 'TQ_ENGINE_EXEC_COMMAND', 'TQ_AUDIO_DIR',
  'TQ_AUDIO_MAX_BYTES', 'TQ_AUDIO_FILE_ROOTS', 'TQ_SECRETS_DIR', 'TQ_SHUTDOWN_GRACE_SECONDS',
]);
const secretEnv = ['TQ_NATS_PASSWORD', 'TQ_NATS_TOKEN', 'TQ_REDIS_PASSWORD', 'TQ_ENGINE_OPENAI_API_KEY'];

// The controller's permissions, exactly. A change here is a security review.
const controllerRules: Record<string, string[]> = {
  'taskqueue.dev/transcriptiontasks': ['delete', 'get', 'list', 'patch', 'update', 'watch'],
  'taskqueue.dev/diarizationtasks': ['delete', 'get', 'list', 'patch', 'update', 'watch'],
  'taskqueue.dev/workerpools': ['get', 'list', 'patch', 'update', 'watch'],
  'taskqueue.dev/transcriptiontasks/status': ['get', 'patch', 'update'],
  'taskqueue.dev/diarizationtasks/status': ['get', 'patch', 'update'],
  'taskqueue.dev/workerpools/status': ['get', 'patch', 'update'],
  'taskqueue.dev/transcriptiontasks/finalizers': ['update'],
  'taskqueue.dev/diarizationtasks/finalizers': ['update'],
  'taskqueue.dev/workerpools/finalizers': ['update'],
  'apps/deployments': ['get', 'list', 'watch'],
  'apps/deployments/scale': ['get', 'patch', 'update'],
  'autoscaling/horizontalpodautoscalers': ['get', 'list', 'watch'],
  'core/events': ['create', 'patch'],
  'events.k8s.io/events': ['create', 'patch'],
};

function flattenRules(rules: Obj[]): Record<string, string[]> {
  const out: Record<string, Set<string>> = {};
  for (const rule of rules) {
    for (const group of rule['apiGroups'] as string[]) {
      for (const resource of rule['resources'] as string[]) {
        const key = `${group === '' ? 'core' : group}/${resource}`;
        out[key] ??= new Set();
        for (const verb of rule['verbs'] as string[]) out[key].add(verb);
      }
    }
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, [...v].sort()]));
}

// ---------------------------------------------------------------------------
// A small checker for the parts of a CRD's structural schema that the chart's
// WorkerPools exercise. Unknown fields are errors here: the apiserver would
// prune them silently.

function schemaErrors(schema: Obj, value: unknown, path: string): string[] {
  const errors: string[] = [];
  const type = schema['type'];
  if (type === 'object') {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return [`${path}: want an object`];
    const v = value as Obj;
    for (const key of (schema['required'] as string[] | undefined) ?? []) {
      if (!(key in v)) errors.push(`${path}.${key}: required`);
    }
    for (const [key, child] of Object.entries(v)) {
      const sub = (schema['properties'] as Obj | undefined)?.[key] ?? (typeof schema['additionalProperties'] === 'object' ? schema['additionalProperties'] : undefined);
      if (sub) errors.push(...schemaErrors(sub, child, `${path}.${key}`));
      else if (!schema['x-kubernetes-preserve-unknown-fields']) errors.push(`${path}.${key}: unknown field`);
    }
  } else if (type === 'array') {
    if (!Array.isArray(value)) return [`${path}: want an array`];
    value.forEach((item, i) => errors.push(...schemaErrors(schema['items'] as Obj, item, `${path}[${i}]`)));
  } else if (type === 'string') {
    if (typeof value !== 'string') return [`${path}: want a string, got ${JSON.stringify(value)}`];
    if (schema['enum'] && !(schema['enum'] as string[]).includes(value)) errors.push(`${path}: ${value} not in ${schema['enum']}`);
    if (schema['pattern'] && !new RegExp(schema['pattern'] as string).test(value)) errors.push(`${path}: ${value} does not match ${schema['pattern']}`);
    if (schema['maxLength'] !== undefined && value.length > schema['maxLength']) errors.push(`${path}: too long`);
    if (schema['minLength'] !== undefined && value.length < schema['minLength']) errors.push(`${path}: too short`);
  } else if (type === 'integer' || type === 'number') {
    if (typeof value !== 'number' || (type === 'integer' && !Number.isInteger(value))) return [`${path}: want ${type}, got ${JSON.stringify(value)}`];
    if (schema['minimum'] !== undefined && value < schema['minimum']) errors.push(`${path}: below ${schema['minimum']}`);
    if (schema['maximum'] !== undefined && value > schema['maximum']) errors.push(`${path}: above ${schema['maximum']}`);
  } else if (type === 'boolean') {
    if (typeof value !== 'boolean') return [`${path}: want a boolean`];
  }
  return errors;
}

// ---------------------------------------------------------------------------
// Pods.

interface PodSource {
  owner: Obj;
  spec: Obj;
  podLabels: Record<string, string>;
}

function podSources(objects: Obj[]): PodSource[] {
  return ofKind(objects, 'Deployment').map((d) => ({
    owner: d,
    spec: d['spec']['template']['spec'],
    podLabels: d['spec']['template']['metadata']['labels'],
  }));
}

function allContainers(pod: Obj): Obj[] {
  return [...((pod['initContainers'] as Obj[] | undefined) ?? []), ...(pod['containers'] as Obj[])];
}

function envOf(container: Obj): Map<string, Obj> {
  return new Map(((container['env'] as Obj[] | undefined) ?? []).map((e) => [e['name'] as string, e]));
}

function envValue(container: Obj, name: string): string | undefined {
  return envOf(container).get(name)?.['value'];
}

function assertRestricted(source: PodSource): void {
  const where = describeObj(source.owner);
  const pod = source.spec;
  const podSc = (pod['securityContext'] as Obj | undefined) ?? {};
  for (const hostField of ['hostNetwork', 'hostPID', 'hostIPC']) assert.notEqual(pod[hostField], true, `${where}: ${hostField}`);
  for (const volume of (pod['volumes'] as Obj[] | undefined) ?? []) {
    assert.equal(volume['hostPath'], undefined, `${where}: hostPath volume ${volume['name']}`);
  }
  const tmpVolumes = new Set(((pod['volumes'] as Obj[] | undefined) ?? []).filter((v) => v['emptyDir']).map((v) => v['name']));
  for (const container of allContainers(pod)) {
    const at = `${where} container ${container['name']}`;
    const sc = (container['securityContext'] as Obj | undefined) ?? {};
    const effective = (field: string): unknown => sc[field] ?? podSc[field];
    assert.equal(effective('runAsNonRoot'), true, `${at}: runAsNonRoot`);
    assert.equal(effective('runAsUser'), 65532, `${at}: runAsUser`);
    assert.equal((effective('seccompProfile') as Obj | undefined)?.['type'], 'RuntimeDefault', `${at}: seccompProfile`);
    assert.equal(sc['allowPrivilegeEscalation'], false, `${at}: allowPrivilegeEscalation`);
    assert.equal(sc['readOnlyRootFilesystem'], true, `${at}: readOnlyRootFilesystem`);
    assert.notEqual(sc['privileged'], true, `${at}: privileged`);
    assert.ok((sc['capabilities']?.['drop'] as string[] | undefined)?.includes('ALL'), `${at}: capabilities.drop ALL`);
    assert.equal(sc['capabilities']?.['add'], undefined, `${at}: capabilities.add`);
    const tmp = ((container['volumeMounts'] as Obj[] | undefined) ?? []).find((m) => m['mountPath'] === '/tmp');
    assert.ok(tmp && tmpVolumes.has(tmp['name']), `${at}: /tmp must be an emptyDir, the root filesystem is read-only`);
  }
}

function mountedPaths(container: Obj): string[] {
  return ((container['volumeMounts'] as Obj[] | undefined) ?? []).map((m) => m['mountPath'] as string);
}

// ---------------------------------------------------------------------------

const ciDir = join(chartDir, 'ci');
const ciFiles = readdirSync(ciDir).filter((f) => f.endsWith('-values.yaml')).sort();

test('every ci scenario has expectations in this test', () => {
  assert.deepEqual(ciFiles, Object.keys(scenarios).sort());
});

test('chart crds/ holds exactly the top-level crds/, byte for byte', () => {
  const topDir = join(root, 'crds');
  const chartCrdDir = join(chartDir, 'crds');
  const top = readdirSync(topDir).filter((f) => f.endsWith('.yaml')).sort();
  assert.ok(top.length >= 3, 'crds/ should hold one CRD per kind');
  const inChart = existsSync(chartCrdDir) ? readdirSync(chartCrdDir).sort() : [];
  assert.deepEqual(inChart, top, 'charts/task-queue/crds/ differs from crds/: run `make sync-chart-crds`');
  for (const file of top) {
    assert.ok(
      readFileSync(join(topDir, file)).equals(readFileSync(join(chartCrdDir, file))),
      `charts/task-queue/crds/${file} differs from crds/${file}: run \`make sync-chart-crds\``,
    );
  }
});

test('Chart.yaml: apiVersion v2 and appVersion 0.1.0', () => {
  const chart = parse(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as Obj;
  assert.equal(chart['apiVersion'], 'v2');
  assert.equal(chart['name'], 'task-queue');
  assert.equal(chart['appVersion'], '0.1.0');
});

test('values.yaml documents every value with a `# --` comment', () => {
  const doc = parseDocument(readFileSync(join(chartDir, 'values.yaml'), 'utf8'));
  const undocumented: string[] = [];
  const documented = (comment: string | null | undefined): boolean =>
    (comment ?? '').split('\n').some((line) => line.trimStart().startsWith('-- '));
  const walk = (map: YAMLMap, path: string, inherited: string | null | undefined): void => {
    map.items.forEach((pair, i) => {
      assert.ok(isScalar(pair.key));
      const key = String(pair.key.value);
      const keyPath = path ? `${path}.${key}` : key;
      assert.match(key, /^[a-z][A-Za-z0-9]*$/, `${keyPath}: values are camelCase`);
      // The comment above a map's first key is attached to the map itself.
      const comment = [i === 0 ? inherited : undefined, pair.key.commentBefore].filter(Boolean).join('\n');
      if (documented(comment)) return;
      if (isMap(pair.value) && pair.value.items.length > 0) walk(pair.value, keyPath, pair.value.commentBefore);
      else undocumented.push(keyPath);
    });
  };
  assert.ok(isMap(doc.contents));
  walk(doc.contents, '', doc.contents.commentBefore ?? doc.commentBefore);
  assert.deepEqual(undocumented, [], `values without a \`# --\` comment: ${undocumented.join(', ')}`);
});

describe('values.schema.json', () => {
  const schema = JSON.parse(readFileSync(join(chartDir, 'values.schema.json'), 'utf8')) as Obj;

  test('is draft-07 and closes every object it defines', () => {
    assert.equal(schema['$schema'], 'http://json-schema.org/draft-07/schema#');
    const open: string[] = [];
    const visit = (node: unknown, path: string): void => {
      if (Array.isArray(node)) return node.forEach((n, i) => visit(n, `${path}[${i}]`));
      if (typeof node !== 'object' || node === null) return;
      const n = node as Obj;
      if (n['type'] === 'object' && n['properties'] && n['additionalProperties'] !== false) open.push(path);
      for (const [k, v] of Object.entries(n)) visit(v, `${path}/${k}`);
    };
    visit(schema, '#');
    assert.deepEqual(open, [], 'objects with properties must set additionalProperties: false');
  });

  test('rejects a wrong type, naming the value', () => {
    const stderr = renderFails(['--set', 'controller.replicaCount=two']);
    assert.match(stderr, /controller\/replicaCount/);
    assert.match(stderr, /want integer/);
    const nested = renderFails(['--set', 'workers.transcription.gpu.count=one']);
    assert.match(nested, /workers\/transcription\/gpu\/count/);
  });

  test('rejects an unknown key, naming it', () => {
    assert.match(renderFails(['--set', 'controller.replicas=2']), /'replicas' not allowed/);
    assert.match(renderFails(['--set', 'workers.transcription.gpus=1']), /workers\/transcription.*'gpus' not allowed/);
    assert.match(renderFails(['--set', 'metrics.serviceMonitor.enable=true']), /'enable' not allowed/);
  });

  test('rejects a value outside its enum, listing the choices', () => {
    assert.match(renderFails(['--set', 'autoscaling.mode=hpa']), /autoscaling\/mode.*'workerpool', 'keda'/);
    assert.match(renderFails(['--set', 'workers.transcription.engine.type=whisper']), /engine\/type/);
  });

  test('rejects a worker name that cannot name a Deployment', () => {
    assert.match(renderFails(['--set', 'workers.Fast_GPU.taskKind=TranscriptionTask']), /Fast_GPU/);
  });
});

describe('cross-field rules fail with a message naming the values to fix', () => {
  const cases: [string, string[], RegExp][] = [
    ['NATS TLS without a Secret', ['--set', 'nats.tls.enabled=true'], /nats\.tls\.existingSecret is required/],
    ['a NATS key without a Secret', ['--set', 'nats.auth.passwordKey=password'], /nats\.auth\.existingSecret is required/],
    ['two NATS authentication methods', ['--set', 'nats.auth.existingSecret=s,nats.auth.tokenKey=t,nats.auth.credsKey=c'], /choose one way to authenticate/],
    ['a NATS user without a password', ['--set', 'nats.auth.user=tq'], /passwordKey must be set together/],
    ['a client certificate without its key', ['--set', 'nats.tls.enabled=true,nats.tls.existingSecret=s,nats.tls.certKey=tls.crt'], /certKey and nats\.tls\.keyKey/],
    ['two controllers without leader election', ['--set', 'controller.leaderElection.enabled=false'], /leaderElection\.enabled/],
    ['KEDA without the monitoring endpoint', ['--set', 'autoscaling.mode=keda'], /natsServerMonitoringEndpoint is required/],
    ['a shutdown grace longer than the pod grace', ['--set', 'workers.transcription.shutdownGraceSeconds=120'], /shutdownGraceSeconds \(120\) must be lower/],
    ['the exec engine without a command', ['--set', 'workers.diarization.enabled=true'], /workers\.diarization\.engine\.exec\.command is required/],
    ['the sidecar URL without the sidecar', ['--set', 'workers.transcription.sidecar.enabled=false'], /points at the pod itself/],
    ['a new worker without a task kind', ['--set', 'workers.extra.concurrency=2'], /workers\/extra.*taskKind/],
    ['a watched namespace that is not the release namespace', ['--set', 'controller.watchNamespace=elsewhere'], /would not watch/],
  ];
  for (const [name, args, message] of cases) {
    test(name, () => assert.match(renderFails(args), message));
  }
});

for (const file of ciFiles) {
  const scenario = scenarios[file];
  const valuesFile = join(ciDir, file);

  describe(`scenario ${file}`, () => {
    test('helm lint --strict passes', () => {
      const result = runHelm(['lint', chartDir, '--strict', '--namespace', scenario?.namespace ?? 'default', '-f', valuesFile]);
      assert.equal(result.status, 0, `helm lint failed:\n${result.stdout}\n${result.stderr}`);
    });

    if (!scenario) return;
    const objects = render(scenario.namespace, [valuesFile]);
    const clusterScoped = new Set(['ClusterRole', 'ClusterRoleBinding']);

    test('every object carries the app.kubernetes.io labels and the right namespace', () => {
      assert.ok(objects.length > 0);
      for (const o of objects) {
        const labels = (o['metadata']['labels'] ?? {}) as Record<string, string>;
        const at = describeObj(o);
        assert.equal(labels['app.kubernetes.io/name'], 'task-queue', `${at}: name label`);
        assert.equal(labels['app.kubernetes.io/instance'], release, `${at}: instance label`);
        assert.equal(labels['app.kubernetes.io/managed-by'], 'Helm', `${at}: managed-by label`);
        assert.equal(labels['app.kubernetes.io/version'], '0.1.0', `${at}: version label`);
        assert.equal(labels['app.kubernetes.io/part-of'], 'task-queue', `${at}: part-of label`);
        assert.match(labels['helm.sh/chart'] ?? '', /^task-queue-/, `${at}: chart label`);
        if (clusterScoped.has(o['kind'])) assert.equal(o['metadata']['namespace'], undefined, `${at}: cluster-scoped`);
        else assert.ok(o['metadata']['namespace'], `${at}: namespace set explicitly`);
      }
    });

    test('selectors hold only name, instance and component, and no two Deployments overlap', () => {
      const allowed = new Set(['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/component']);
      const checkSelector = (selector: Record<string, string> | undefined, at: string): void => {
        assert.ok(selector, `${at}: has a selector`);
        for (const key of Object.keys(selector)) assert.ok(allowed.has(key), `${at}: selector label ${key} would make the selector mutable`);
        assert.equal(selector['app.kubernetes.io/name'], 'task-queue', `${at}: selector name`);
        assert.equal(selector['app.kubernetes.io/instance'], release, `${at}: selector instance`);
      };
      const deployments = ofKind(objects, 'Deployment');
      for (const d of deployments) {
        const selector = d['spec']['selector']['matchLabels'] as Record<string, string>;
        checkSelector(selector, describeObj(d));
        assert.ok(selector['app.kubernetes.io/component'], `${describeObj(d)}: selector has a component`);
        assert.equal(d['metadata']['labels']['app.kubernetes.io/component'], selector['app.kubernetes.io/component']);
        for (const other of deployments) {
          const podLabels = other['spec']['template']['metadata']['labels'] as Record<string, string>;
          const matches = Object.entries(selector).every(([k, v]) => podLabels[k] === v);
          assert.equal(matches, other === d, `${describeObj(d)} selects the pods of ${describeObj(other)}: ${matches}`);
        }
      }
      for (const s of ofKind(objects, 'Service')) checkSelector(s['spec']['selector'], describeObj(s));
      for (const p of ofKind(objects, 'PodDisruptionBudget')) checkSelector(p['spec']['selector']['matchLabels'], describeObj(p));
      for (const n of ofKind(objects, 'NetworkPolicy')) checkSelector(n['spec']['podSelector']['matchLabels'], describeObj(n));
      for (const m of ofKind(objects, 'ServiceMonitor')) checkSelector(m['spec']['selector']['matchLabels'], describeObj(m));
    });

    test('every container meets the Pod Security Standards "restricted" profile', () => {
      const sources = podSources(objects);
      assert.ok(sources.length >= 1 + Object.keys(scenario.workers).length);
      for (const source of sources) assertRestricted(source);
    });

    test('RBAC: least privilege, no wildcard, nothing on Secrets', () => {
      const roles = [...ofKind(objects, 'ClusterRole'), ...ofKind(objects, 'Role')];
      for (const role of roles) {
        for (const rule of role['rules'] as Obj[]) {
          for (const field of ['apiGroups', 'resources', 'verbs']) {
            assert.ok(!(rule[field] as string[]).includes('*'), `${describeObj(role)}: wildcard in ${field}`);
          }
          assert.ok(!(rule['resources'] as string[]).some((r) => r === 'secrets' || r.startsWith('secrets/')), `${describeObj(role)}: grants Secrets`);
          assert.equal(rule['nonResourceURLs'], undefined, `${describeObj(role)}: nonResourceURLs`);
        }
      }
      const watch = scenario.watchNamespace;
      const controllerRole = named(objects, watch ? 'Role' : 'ClusterRole', `${fullname}-controller`);
      assert.ok(controllerRole, 'the controller has its role');
      if (watch) {
        assert.equal(controllerRole['metadata']['namespace'], watch);
        assert.equal(named(objects, 'ClusterRole', `${fullname}-controller`), undefined, 'no ClusterRole when one namespace is watched');
        assert.equal(ofKind(objects, 'ClusterRoleBinding').length, 0, 'no cluster-wide binding when one namespace is watched');
      }
      assert.deepEqual(flattenRules(controllerRole['rules']), controllerRules);

      // Leases only in the leader election namespace, through a Role.
      for (const role of roles) {
        const grantsLeases = (role['rules'] as Obj[]).some((r) => (r['resources'] as string[]).includes('leases'));
        if (grantsLeases) {
          assert.equal(role['kind'], 'Role', `${describeObj(role)}: Leases cluster-wide`);
          assert.equal(role['metadata']['namespace'], scenario.namespace);
          assert.deepEqual(flattenRules(role['rules']), { 'coordination.k8s.io/leases': ['create', 'get', 'update'] });
        }
      }

      // The bindings give the controller's roles to the controller's ServiceAccount only.
      const bindings = [...ofKind(objects, 'ClusterRoleBinding'), ...ofKind(objects, 'RoleBinding')];
      assert.ok(bindings.length >= 2);
      for (const binding of bindings) {
        assert.deepEqual(binding['subjects'], [{ kind: 'ServiceAccount', name: `${fullname}-controller`, namespace: scenario.namespace }]);
      }
    });

    test('controller: leader-elected replicas, probes, ports, PodDisruptionBudget, spread', () => {
      const deployment = named(objects, 'Deployment', `${fullname}-controller`);
      assert.ok(deployment);
      const pod = deployment['spec']['template']['spec'] as Obj;
      const container = (pod['containers'] as Obj[]).find((c) => c['name'] === 'controller');
      assert.ok(container);
      assert.deepEqual([...container['command'], ...container['args']], ['node', 'dist/controller/main.js']);
      assert.match(container['image'], /^ghcr\.io\/task-queue\/task-queue[:@]/);
      assert.deepEqual(
        (container['ports'] as Obj[]).map((p) => [p['name'], p['containerPort']]).sort(),
        [['health', 8081], ['metrics', 8080]],
      );
      assert.equal(container['livenessProbe']['httpGet']['path'], '/healthz');
      assert.equal(container['readinessProbe']['httpGet']['path'], '/readyz');
      assert.equal(container['livenessProbe']['httpGet']['port'], 'health');
      assert.ok(container['resources']['requests'] && container['resources']['limits']);

      const env = envOf(container);
      for (const name of env.keys()) if (name.startsWith('TQ_')) assert.ok(controllerEnv.has(name), `controller: unknown env ${name}`);
      for (const name of ['TQ_NATS_URL', 'TQ_REDIS_URL', 'TQ_STREAM_NAME', 'TQ_SUBJECT_PREFIX', 'TQ_STREAM_REPLICAS', 'TQ_KEY_PREFIX', 'TQ_LEADER_ELECTION', 'TQ_LEADER_ELECTION_NAMESPACE', 'TQ_LEADER_ELECTION_ID', 'TQ_METRICS_PORT', 'TQ_HEALTH_PORT', 'TQ_KUBE_QPS', 'TQ_KUBE_BURST', 'TQ_STATUS_PROGRESS_INTERVAL_MS', 'TQ_RECONCILE_CONCURRENCY', 'TQ_LOG_LEVEL']) {
        assert.ok(env.has(name), `controller: ${name} is set`);
      }
      assert.equal(env.get('POD_NAME')?.['valueFrom']?.['fieldRef']?.['fieldPath'], 'metadata.name');
      assert.equal(env.get('POD_NAMESPACE')?.['valueFrom']?.['fieldRef']?.['fieldPath'], 'metadata.namespace');
      assert.equal(envValue(container, 'TQ_LEADER_ELECTION_NAMESPACE'), scenario.namespace);
      assert.equal(envValue(container, 'TQ_WATCH_NAMESPACE'), scenario.watchNamespace);
      assert.equal(envValue(container, 'TQ_METRICS_PORT'), '8080');
      assert.equal(envValue(container, 'TQ_HEALTH_PORT'), '8081');

      const replicas = deployment['spec']['replicas'] as number;
      const pdb = named(objects, 'PodDisruptionBudget', `${fullname}-controller`);
      if (replicas > 1) {
        assert.equal(envValue(container, 'TQ_LEADER_ELECTION'), 'true');
        assert.ok(pdb, 'several controllers get a PodDisruptionBudget');
        assert.equal(pdb['spec']['minAvailable'], 1);
        assert.ok(pod['affinity']?.['podAntiAffinity'] || pod['topologySpreadConstraints'], 'replicas are spread over nodes');
      } else {
        assert.equal(pdb, undefined, 'a single controller must not get a PodDisruptionBudget that blocks drains');
      }
      assert.ok(named(objects, 'Service', `${fullname}-controller`), 'metrics Service');
    });

    test('workers: one GPU Deployment per worker, no API access, starting at minReplicas', () => {
      const workerSa = named(objects, 'ServiceAccount', `${fullname}-worker`);
      assert.ok(workerSa);
      assert.equal(workerSa['automountServiceAccountToken'], false);
      const workerDeployments = ofKind(objects, 'Deployment').filter((d) => d['metadata']['name'] !== `${fullname}-controller`);
      assert.deepEqual(
        workerDeployments.map((d) => d['metadata']['name']).sort(),
        Object.keys(scenario.workers).map((w) => `${fullname}-worker-${w}`).sort(),
      );
      for (const [workerName, expected] of Object.entries(scenario.workers)) {
        const name = `${fullname}-worker-${workerName}`;
        const deployment = named(objects, 'Deployment', name);
        assert.ok(deployment);
        assert.equal(deployment['metadata']['labels']['app.kubernetes.io/component'], `worker-${workerName}`);
        // Rendered without a cluster, replicas is the pool's floor: no GPU pod starts before the pool has looked.
        const pool = ofKind(objects, 'WorkerPool').find((p) => p['spec']['scaleTargetRef']['name'] === name);
        const scaled = ofKind(objects, 'ScaledObject').find((p) => p['spec']['scaleTargetRef']['name'] === name);
        const floor = pool ? pool['spec']['minReplicas'] : scaled?.['spec']['minReplicaCount'];
        assert.equal(typeof floor, 'number', `${name}: a WorkerPool or ScaledObject sets its floor`);
        assert.equal(deployment['spec']['replicas'], floor, `${name}: starts at minReplicas`);
        const pod = deployment['spec']['template']['spec'] as Obj;
        assert.equal(pod['serviceAccountName'], `${fullname}-worker`);
        assert.equal(pod['automountServiceAccountToken'], false, `${name}: no ServiceAccount token`);

        const containers = allContainers(pod);
        const worker = containers.find((c) => c['name'] === 'worker');
        assert.ok(worker);
        assert.deepEqual(worker['command'], ['node', 'dist/worker/main.js']);
        const gpuHolders = containers.filter((c) => c['resources']?.['limits']?.[gpuResource] !== undefined).map((c) => c['name']);
        assert.deepEqual(gpuHolders, expected.gpu === 'none' ? [] : [expected.gpu], `${name}: GPU goes to ${expected.gpu}`);
        for (const c of containers) if (gpuHolders.includes(c['name'])) assert.equal(c['resources']['limits'][gpuResource], 1);
        if (expected.gpu !== 'none') {
          assert.ok(
            (pod['tolerations'] as Obj[] | undefined)?.some((t) => t['key'] === gpuResource && t['effect'] === 'NoSchedule'),
            `${name}: tolerates GPU nodes`,
          );
        }

        const env = envOf(worker);
        for (const envName of env.keys()) if (envName.startsWith('TQ_')) assert.ok(workerEnv.has(envName), `${name}: unknown env ${envName}`);
        assert.equal(envValue(worker, 'TQ_TASK_KIND'), expected.taskKind);
        assert.equal(env.get('TQ_WORKER_NAME')?.['valueFrom']?.['fieldRef']?.['fieldPath'], 'metadata.name');
        assert.match(envValue(worker, 'TQ_ENGINE') ?? '', /^(openai|exec|fake)$/);
        assert.match(envValue(worker, 'TQ_AUDIO_MAX_BYTES') ?? '', /^[0-9]+$/, 'a byte count, not 2.1e+09');
        assert.equal(envValue(worker, 'TQ_METRICS_PORT'), '9090');
        assert.equal(envValue(worker, 'TQ_HEALTH_PORT'), '8081');
        if (envValue(worker, 'TQ_ENGINE') === 'exec') {
          const command = JSON.parse(envValue(worker, 'TQ_ENGINE_EXEC_COMMAND') ?? 'null') as unknown;
          assert.ok(Array.isArray(command) && command.length > 0, `${name}: exec command is a JSON array`);
        }
        const grace = Number(envValue(worker, 'TQ_SHUTDOWN_GRACE_SECONDS'));
        assert.ok(grace > 0 && grace < pod['terminationGracePeriodSeconds'], `${name}: the task is handed back before the pod is killed`);
        assert.ok(pod['terminationGracePeriodSeconds'] >= 60, `${name}: a long grace period`);

        // Audio lands on a size-limited emptyDir.
        const audioDir = envValue(worker, 'TQ_AUDIO_DIR');
        const audioMount = (worker['volumeMounts'] as Obj[]).find((m) => m['mountPath'] === audioDir);
        assert.ok(audioMount, `${name}: TQ_AUDIO_DIR is mounted`);
        const audioVolume = (pod['volumes'] as Obj[]).find((v) => v['name'] === audioMount['name']);
        assert.ok(audioVolume?.['emptyDir']?.['sizeLimit'], `${name}: audio emptyDir has a sizeLimit`);
      }
    });

    test('files named by env vars are mounted, and secrets come from Secrets', () => {
      for (const source of podSources(objects)) {
        for (const container of allContainers(source.spec)) {
          const env = envOf(container);
          const mounts = mountedPaths(container);
          for (const [name, entry] of env) {
            if (name.endsWith('_FILE')) {
              const path = entry['value'] as string;
              assert.ok(mounts.some((m) => path.startsWith(`${m}/`)), `${describeObj(source.owner)}: ${name}=${path} is not on a mounted volume`);
            }
            if (name === 'TQ_AUDIO_FILE_ROOTS') {
              for (const dir of (entry['value'] as string).split(',')) {
                assert.ok(mounts.some((m) => dir === m || dir.startsWith(`${m}/`)), `${describeObj(source.owner)}: file root ${dir} is not mounted`);
              }
            }
            if (secretEnv.includes(name)) {
              assert.equal(entry['value'], undefined, `${describeObj(source.owner)}: ${name} must not be a literal`);
              assert.ok(entry['valueFrom']?.['secretKeyRef']?.['name'], `${describeObj(source.owner)}: ${name} from a Secret`);
            }
          }
          const secretsDir = env.get('TQ_SECRETS_DIR')?.['value'] as string | undefined;
          if (secretsDir) {
            const secretMounts = ((container['volumeMounts'] as Obj[] | undefined) ?? []).filter((m) => (m['mountPath'] as string).startsWith(`${secretsDir}/`));
            for (const m of secretMounts) {
              const volume = (source.spec['volumes'] as Obj[]).find((v) => v['name'] === m['name']);
              assert.equal(`${secretsDir}/${volume?.['secret']?.['secretName']}`, m['mountPath'], 'audio Secrets mount at <TQ_SECRETS_DIR>/<name>');
              assert.equal(m['readOnly'], true);
            }
          }
        }
      }
    });

    if (scenario.autoscaling === 'workerpool') {
      test('a WorkerPool per worker, valid against the WorkerPool CRD, and no ScaledObject', () => {
        const crd = parse(readFileSync(join(root, 'crds', 'taskqueue.dev_workerpools.yaml'), 'utf8')) as Obj;
        const specSchema = crd['spec']['versions'][0]['schema']['openAPIV3Schema']['properties']['spec'] as Obj;
        const pools = ofKind(objects, 'WorkerPool');
        assert.equal(pools.length, Object.keys(scenario.workers).length);
        for (const [workerName, expected] of Object.entries(scenario.workers)) {
          const name = `${fullname}-worker-${workerName}`;
          const pool = named(objects, 'WorkerPool', name);
          assert.ok(pool, `WorkerPool ${name}`);
          assert.equal(pool['apiVersion'], 'taskqueue.dev/v1alpha1');
          assert.equal(pool['spec']['taskKind'], expected.taskKind);
          assert.deepEqual(pool['spec']['scaleTargetRef'], { apiVersion: 'apps/v1', kind: 'Deployment', name });
          assert.ok(pool['spec']['minReplicas'] <= pool['spec']['maxReplicas']);
          assert.deepEqual(schemaErrors(specSchema, pool['spec'], 'spec'), []);
        }
        assert.equal(ofKind(objects, 'ScaledObject').length, 0);
      });
    } else {
      test('a KEDA ScaledObject per worker with one nats-jetstream trigger per priority, and no WorkerPool', () => {
        assert.equal(ofKind(objects, 'WorkerPool').length, 0);
        const scaled = ofKind(objects, 'ScaledObject');
        assert.equal(scaled.length, Object.keys(scenario.workers).length);
        for (const [workerName, expected] of Object.entries(scenario.workers)) {
          const name = `${fullname}-worker-${workerName}`;
          const so = named(objects, 'ScaledObject', name);
          assert.ok(so, `ScaledObject ${name}`);
          assert.equal(so['apiVersion'], 'keda.sh/v1alpha1');
          assert.equal(so['spec']['scaleTargetRef']['name'], name);
          const token = expected.taskKind === 'TranscriptionTask' ? 'transcription' : 'diarization';
          const triggers = so['spec']['triggers'] as Obj[];
          assert.deepEqual(
            triggers.map((t) => t['metadata']['consumer']),
            ['low', 'normal', 'high', 'critical'].map((p) => `tq-${token}-${p}`),
          );
          for (const t of triggers) {
            assert.equal(t['type'], 'nats-jetstream');
            assert.equal(t['metadata']['stream'], 'TASKQUEUE');
            assert.equal(t['metadata']['account'], '$G');
            assert.ok(t['metadata']['natsServerMonitoringEndpoint']);
            for (const key of ['lagThreshold', 'activationLagThreshold']) assert.match(t['metadata'][key], /^[0-9]+$/, 'KEDA metadata values are strings');
          }
          const formula = so['spec']['advanced']?.['scalingModifiers']?.['formula'] as string | undefined;
          if (formula) for (const t of triggers) assert.ok(formula.includes(t['name']), `formula sums trigger ${t['name']}`);
        }
      });
    }

    if (scenario.networkPolicy) {
      test('NetworkPolicies: default deny, metrics ingress only, workers never reach the API server', () => {
        const policies = ofKind(objects, 'NetworkPolicy');
        assert.equal(policies.length, 1 + Object.keys(scenario.workers).length);
        for (const policy of policies) {
          assert.deepEqual(policy['spec']['policyTypes'], ['Ingress', 'Egress']);
          const ingress = policy['spec']['ingress'] as Obj[];
          assert.equal(ingress.length, 1);
          assert.ok(ingress[0]?.['from']?.[0]?.['namespaceSelector'], 'metrics only from the monitoring namespaces');
          const egress = policy['spec']['egress'] as Obj[];
          assert.ok(egress.some((r) => (r['ports'] as Obj[]).some((p) => p['port'] === 53 && p['protocol'] === 'UDP')), 'DNS');
          assert.ok(egress.some((r) => (r['ports'] as Obj[]).some((p) => p['port'] === 4222)), 'NATS');
          assert.ok(egress.some((r) => (r['ports'] as Obj[]).some((p) => p['port'] === 6379)), 'Redis');
        }
        const controller = named(objects, 'NetworkPolicy', `${fullname}-controller`);
        assert.ok(controller);
        const apiRule = (controller['spec']['egress'] as Obj[]).find((r) => r['to']?.some((p: Obj) => p['ipBlock']?.['cidr'] === '10.0.0.1/32'));
        assert.ok(apiRule, 'controller reaches the API server');
        for (const [workerName] of Object.entries(scenario.workers)) {
          const worker = named(objects, 'NetworkPolicy', `${fullname}-worker-${workerName}`);
          assert.ok(worker);
          assert.ok(!JSON.stringify(worker['spec']['egress']).includes('10.0.0.1/32'), 'workers do not reach the API server');
          assert.equal(worker['spec']['ingress'][0]['ports'][0]['port'], 9090);
        }
      });
    }

    if (scenario.monitoring) {
      test('ServiceMonitors scrape the controller and the workers', () => {
        const controllerSm = named(objects, 'ServiceMonitor', `${fullname}-controller`);
        assert.ok(controllerSm);
        assert.equal(controllerSm['spec']['endpoints'][0]['port'], 'metrics');
        assert.equal(controllerSm['metadata']['labels']['release'], 'kube-prometheus-stack');
        const workersSm = named(objects, 'ServiceMonitor', `${fullname}-workers`);
        assert.ok(workersSm);
        const components = workersSm['spec']['selector']['matchExpressions'][0]['values'] as string[];
        assert.deepEqual(components.sort(), Object.keys(scenario.workers).map((w) => `worker-${w}`).sort());
        for (const c of components) {
          const service = ofKind(objects, 'Service').find((s) => s['spec']['selector']['app.kubernetes.io/component'] === c);
          assert.ok(service?.['spec']['ports'].some((p: Obj) => p['name'] === 'metrics'), `a metrics Service for ${c}`);
        }
      });

      test('PrometheusRule: the five alerts on the right metrics', () => {
        const rule = named(objects, 'PrometheusRule', fullname);
        assert.ok(rule);
        const rules = (rule['spec']['groups'] as Obj[]).flatMap((g) => g['rules'] as Obj[]);
        const byName = new Map(rules.map((r) => [r['alert'] as string, r]));
        const expect = (alert: string, patterns: RegExp[], duration?: string): void => {
          const r = byName.get(alert);
          assert.ok(r, `alert ${alert}`);
          for (const p of patterns) assert.match(r['expr'], p, `${alert} expr`);
          if (duration) assert.equal(r['for'], duration, `${alert} for`);
          assert.ok(r['labels']['severity'], `${alert} severity`);
          assert.equal(r['labels']['team'], 'speech', `${alert} alertLabels`);
          assert.ok(r['annotations']['summary'] && r['annotations']['description'], `${alert} annotations`);
          assert.equal(r['annotations']['runbook_url'], `https://runbooks.example.com/task-queue/${alert}`);
        };
        expect('TaskQueueBacklogWithoutWorkers', [/taskqueue_workerpool_backlog\{[^}]*\}\) > 0/, /taskqueue_workerpool_replicas\{[^}]*\}\) == 0/], '5m');
        expect('TaskQueueHighFailureRatio', [/rate\(taskqueue_tasks_failed_total/, /rate\(taskqueue_tasks_finished_total/, /> 0\.2\s*$/]);
        expect('TaskQueueTasksPastDeadline', [/taskqueue_tasks_past_deadline\{[^}]*\}\) > 0/]);
        expect('TaskQueueControllerNoLeader', [/max\(taskqueue_leader_is_leader\{[^}]*\}\) == 0/], '2m');
        expect('TaskQueueDeadLetters', [/increase\(taskqueue_dead_letters_total\{[^}]*\}\[15m\]\)\) > 0/]);
        // Prometheus templating survives Helm's: the summaries still hold {{ $labels... }}.
        assert.match(byName.get('TaskQueueBacklogWithoutWorkers')?.['annotations']['summary'], /\{\{ \$labels\.workerpool \}\}/);
      });

      test('Grafana dashboard ConfigMap covers phases, queues, latency, outcomes, pools and reconciles', () => {
        const cm = named(objects, 'ConfigMap', `${fullname}-dashboard`);
        assert.ok(cm);
        assert.equal(cm['metadata']['labels']['grafana_dashboard'], '1');
        assert.equal(cm['metadata']['namespace'], 'monitoring');
        const dashboard = JSON.parse(cm['data']['task-queue.json']) as Obj;
        const exprs = (dashboard['panels'] as Obj[]).flatMap((p) => ((p['targets'] as Obj[] | undefined) ?? []).map((t) => t['expr'] as string));
        for (const metric of [
          'taskqueue_tasks', 'taskqueue_queue_depth', 'taskqueue_task_duration_seconds_bucket', 'taskqueue_tasks_succeeded_total',
          'taskqueue_tasks_failed_total', 'taskqueue_tasks_in_progress', 'taskqueue_workerpool_backlog',
          'taskqueue_workerpool_desired_replicas', 'taskqueue_workerpool_replicas', 'taskqueue_reconcile_duration_seconds_bucket',
          'taskqueue_reconcile_errors_total', 'taskqueue_leader_is_leader',
        ]) {
          assert.ok(exprs.some((e) => new RegExp(`\\b${metric}\\b`).test(e)), `a panel queries ${metric}`);
        }
        assert.ok(exprs.some((e) => e.includes('histogram_quantile(0.95') && e.includes('taskqueue_task_duration_seconds_bucket')), 'p95 processing time');
        assert.ok(exprs.some((e) => e.includes('histogram_quantile(0.5') && e.includes('taskqueue_task_duration_seconds_bucket')), 'p50 processing time');
      });
    }
  });
}

describe('rendering details', () => {
  test('NATS creds and token: mounted file and Secret reference', () => {
    const objects = render('task-queue', [], ['--set', 'nats.auth.existingSecret=nats-creds,nats.auth.credsKey=user.creds']);
    for (const source of podSources(objects)) {
      const main = (source.spec['containers'] as Obj[])[0] as Obj;
      assert.equal(envValue(main, 'TQ_NATS_CREDS_FILE'), '/etc/task-queue/nats-creds/nats.creds');
      const volume = (source.spec['volumes'] as Obj[]).find((v) => v['name'] === 'nats-creds');
      assert.deepEqual(volume?.['secret']?.['items'], [{ key: 'user.creds', path: 'nats.creds' }]);
    }
    const withToken = render('task-queue', [], ['--set', 'nats.auth.existingSecret=nats,nats.auth.tokenKey=token']);
    const controller = named(withToken, 'Deployment', `${fullname}-controller`)?.['spec']['template']['spec']['containers'][0] as Obj;
    assert.deepEqual(envOf(controller).get('TQ_NATS_TOKEN')?.['valueFrom'], { secretKeyRef: { name: 'nats', key: 'token' } });
  });

  test('the chart default install renders workers without replicas and a two-replica controller', () => {
    const objects = render('task-queue', []);
    assert.equal(named(objects, 'Deployment', `${fullname}-controller`)?.['spec']['replicas'], 2);
    const sidecar = named(objects, 'Deployment', `${fullname}-worker-transcription`)?.['spec']['template']['spec']['initContainers']?.[0] as Obj;
    assert.equal(sidecar?.['restartPolicy'], 'Always', 'the engine is a native sidecar: it outlives the worker at shutdown');
  });

  test('an image digest wins over the tag', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const objects = render('task-queue', [], ['--set', `image.digest=${digest},image.tag=9.9.9`]);
    for (const source of podSources(objects)) {
      assert.equal(((source.spec['containers'] as Obj[])[0] as Obj)['image'], `ghcr.io/task-queue/task-queue@${digest}`);
    }
  });

  test('a values file with a typo is rejected as a whole', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tq-chart-'));
    try {
      const file = join(dir, 'values.yaml');
      writeFileSync(file, 'workers:\n  transcription:\n    scaling:\n      maxReplica: 3\n');
      const stderr = renderFails(['-f', file]);
      assert.match(stderr, /workers\/transcription\/scaling.*'maxReplica' not allowed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('NOTES tell the user what to run next', () => {
    const result = runHelm(['install', release, chartDir, '--namespace', 'speech', '--dry-run=client']);
    assert.equal(result.status, 0, result.stderr);
    const notes = result.stdout.slice(result.stdout.indexOf('NOTES:'));
    assert.match(notes, /kubectl get taskqueue -A/);
    assert.match(notes, /kubectl -n speech apply -f -/);
    assert.match(notes, /pod-security\.kubernetes\.io\/enforce=restricted/);
    // The sample in the NOTES is a valid TranscriptionTask.
    const sample = notes.slice(notes.indexOf("<<'YAML'\n") + 8, notes.indexOf('\nYAML\n'));
    const task = parse(sample) as Obj;
    assert.equal(task['kind'], 'TranscriptionTask');
    assert.match(task['spec']['audio']['uri'], /^https:\/\//);
  });
});

