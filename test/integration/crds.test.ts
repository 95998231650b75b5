// The CRDs against a real kube-apiserver: they install, the samples apply,
// kubectl prints the documented columns, defaults are filled in, invalid
// objects and forbidden updates are rejected with the field named, status
// is only writable through /status, and RBAC guards the tasks.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  ApiException,
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { createTestNamespace, deleteTestNamespace, kubectl, projectRoot, testEnv, uniqueName } from '../harness/index.ts';
import { API_VERSION, GROUP, KINDS, PLURALS, SHORT_NAMES, VERSION, crdName } from '../../src/api/index.ts';
import type { Kind } from '../../src/api/index.ts';

const { kc } = testEnv();
const customObjects = kc.makeApiClient(CustomObjectsApi);
const samplesDir = join(projectRoot, 'config', 'samples');
let ns: string;

before(async () => {
  ns = await createTestNamespace(kc, 'crds');
});

after(async () => {
  await deleteTestNamespace(kc, ns);
});

// ---------------------------------------------------------------------------
// Helpers

type Json = Record<string, unknown>;

function resource(kind: Kind) {
  return { group: GROUP, version: VERSION, plural: PLURALS[kind], namespace: ns };
}

function manifest(kind: Kind, name: string, spec: unknown, extra: Json = {}): Json {
  return { apiVersion: API_VERSION, kind, metadata: { name }, ...(spec === undefined ? {} : { spec }), ...extra };
}

async function create(kind: Kind, name: string, spec: unknown, extra: Json = {}): Promise<Json> {
  // Strict: an unknown field is an error, as with kubectl, instead of being pruned.
  return customObjects.createNamespacedCustomObject({ ...resource(kind), body: manifest(kind, name, spec, extra), fieldValidation: 'Strict' });
}

async function get(kind: Kind, name: string): Promise<Json> {
  return customObjects.getNamespacedCustomObject({ ...resource(kind), name });
}

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

async function patchSpec(kind: Kind, name: string, spec: Json): Promise<Json> {
  return customObjects.patchNamespacedCustomObject({ ...resource(kind), name, body: { spec }, fieldValidation: 'Strict' }, mergePatch);
}

async function patchStatus(kind: Kind, name: string, status: Json): Promise<Json> {
  return customObjects.patchNamespacedCustomObjectStatus({ ...resource(kind), name, body: { status }, fieldValidation: 'Strict' }, mergePatch);
}

interface Rejection {
  code: number;
  message: string;
  /** details.causes[].field, when the apiserver gives them (422). */
  fields: string[];
}

async function rejection(attempt: Promise<unknown>): Promise<Rejection> {
  try {
    await attempt;
  } catch (err) {
    if (!(err instanceof ApiException)) throw err;
    const body = (typeof err.body === 'string' ? JSON.parse(err.body) : err.body) as {
      message?: string;
      details?: { causes?: { field?: string }[] };
    };
    return {
      code: err.code,
      message: body.message ?? '',
      fields: (body.details?.causes ?? []).flatMap((c) => (c.field ? [c.field] : [])),
    };
  }
  assert.fail('the apiserver accepted the request');
}

/** Header cells of a kubectl table; "NAME" first. */
function headerOf(output: string): string[] {
  const header = output.split('\n').find((line) => line.startsWith('NAME'));
  assert.ok(header, `no header in:\n${output}`);
  return header.trim().split(/\s+/);
}

function rowOf(output: string, name: string): string[] {
  const row = output.split('\n').find((line) => line.split(/\s+/)[0]?.endsWith(name));
  assert.ok(row, `no row for ${name} in:\n${output}`);
  return row.trim().split(/\s+/);
}

function sampleFiles(): string[] {
  return readdirSync(samplesDir)
    .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
    .sort();
}

const uri = 'file:///data/samples/test.wav';
const validSpecs = {
  TranscriptionTask: { audio: { uri } },
  DiarizationTask: { audio: { uri } },
  WorkerPool: { taskKind: 'TranscriptionTask', scaleTargetRef: { name: 'worker' }, maxReplicas: 2 },
} as const satisfies Record<Kind, Json>;

// ---------------------------------------------------------------------------
// Installation

test('the three CRDs are Established, with their short names and category accepted', async () => {
  const api = kc.makeApiClient(ApiextensionsV1Api);
  for (const kind of KINDS) {
    const crd = await api.readCustomResourceDefinition({ name: crdName(kind) });
    const conditions = new Map((crd.status?.conditions ?? []).map((c) => [c.type, c.status]));
    assert.equal(conditions.get('Established'), 'True', `${kind} Established`);
    assert.equal(conditions.get('NamesAccepted'), 'True', `${kind} NamesAccepted`);
    assert.deepEqual(crd.status?.acceptedNames?.shortNames, [SHORT_NAMES[kind]]);
    assert.deepEqual(crd.status?.acceptedNames?.categories, ['taskqueue']);
    assert.deepEqual(crd.status?.storedVersions, [VERSION]);
  }
});

test('every sample applies with kubectl, and the kustomization applies them all', async () => {
  for (const file of sampleFiles()) {
    const result = await kubectl(['apply', '-n', ns, '-f', join(samplesDir, file)]);
    assert.equal(result.code, 0, `${file}: ${result.stderr}`);
    assert.match(result.stdout, /created|configured|unchanged/, file);
  }
  const all = await kubectl(['apply', '-n', ns, '-k', samplesDir]);
  assert.equal(all.code, 0, all.stderr);
  // Already there from the files: the kustomization holds the same objects.
  for (const line of all.stdout.trim().split('\n')) assert.match(line, / unchanged$/);
  assert.equal(all.stdout.trim().split('\n').length, sampleFiles().length);
});

// ---------------------------------------------------------------------------
// kubectl get

test('kubectl get taskqueue lists every kind with its columns', async () => {
  await create('TranscriptionTask', 'listed-tt', validSpecs.TranscriptionTask);
  await create('DiarizationTask', 'listed-dt', validSpecs.DiarizationTask);
  await create('WorkerPool', 'listed-wp', validSpecs.WorkerPool);
  const result = await kubectl(['get', 'taskqueue', '-n', ns]);
  assert.equal(result.code, 0, result.stderr);
  for (const name of ['transcriptiontask.taskqueue.dev/listed-tt', 'diarizationtask.taskqueue.dev/listed-dt', 'workerpool.taskqueue.dev/listed-wp']) {
    assert.ok(result.stdout.includes(name), `${name} missing from:\n${result.stdout}`);
  }
  const headers = result.stdout.split('\n').filter((line) => line.startsWith('NAME')).map((line) => line.trim().split(/\s+/));
  assert.deepEqual(headers, [
    ['NAME', 'PHASE', 'PROGRESS', 'ATTEMPTS', 'PRIORITY', 'AGE'],
    ['NAME', 'PHASE', 'PROGRESS', 'ATTEMPTS', 'PRIORITY', 'AGE'],
    ['NAME', 'KIND', 'TARGET', 'MIN', 'MAX', 'BACKLOG', 'DESIRED', 'REPLICAS', 'AGE'],
  ]);
});

test('kubectl get tt shows status and priority; -o wide adds Worker and Reason', async () => {
  const name = 'columns-tt';
  await create('TranscriptionTask', name, { ...validSpecs.TranscriptionTask, priority: 'High' });
  await patchStatus('TranscriptionTask', name, { phase: 'Running', progress: 42, attempts: 2, worker: 'transcription-worker-abc12', reason: 'Started' });

  const narrow = await kubectl(['get', 'tt', name, '-n', ns]);
  assert.equal(narrow.code, 0, narrow.stderr);
  assert.deepEqual(headerOf(narrow.stdout), ['NAME', 'PHASE', 'PROGRESS', 'ATTEMPTS', 'PRIORITY', 'AGE']);
  assert.deepEqual(rowOf(narrow.stdout, name).slice(0, 5), [name, 'Running', '42', '2', 'High']);

  const wide = await kubectl(['get', 'tt', name, '-n', ns, '-o', 'wide']);
  assert.equal(wide.code, 0, wide.stderr);
  assert.deepEqual(headerOf(wide.stdout), ['NAME', 'PHASE', 'PROGRESS', 'ATTEMPTS', 'PRIORITY', 'AGE', 'WORKER', 'REASON']);
  const row = rowOf(wide.stdout, name);
  assert.deepEqual([row[0], ...row.slice(1, 5), ...row.slice(-2)], [name, 'Running', '42', '2', 'High', 'transcription-worker-abc12', 'Started']);
});

test('kubectl get dt and wp by short name, with their columns', async () => {
  await create('DiarizationTask', 'columns-dt', validSpecs.DiarizationTask);
  const dt = await kubectl(['get', 'dt', '-n', ns, '-o', 'wide']);
  assert.equal(dt.code, 0, dt.stderr);
  assert.deepEqual(headerOf(dt.stdout), ['NAME', 'PHASE', 'PROGRESS', 'ATTEMPTS', 'PRIORITY', 'AGE', 'WORKER', 'REASON']);

  const name = 'columns-wp';
  await create('WorkerPool', name, { taskKind: 'DiarizationTask', scaleTargetRef: { name: 'diarization-worker' }, minReplicas: 1, maxReplicas: 6 });
  await patchStatus('WorkerPool', name, { backlog: 9, running: 2, desiredReplicas: 5, replicas: 3 });
  const wp = await kubectl(['get', 'wp', name, '-n', ns]);
  assert.equal(wp.code, 0, wp.stderr);
  assert.deepEqual(headerOf(wp.stdout), ['NAME', 'KIND', 'TARGET', 'MIN', 'MAX', 'BACKLOG', 'DESIRED', 'REPLICAS', 'AGE']);
  assert.deepEqual(rowOf(wp.stdout, name).slice(0, 8), [name, 'DiarizationTask', 'diarization-worker', '1', '6', '9', '5', '3']);
});

// ---------------------------------------------------------------------------
// Defaults

test('defaults are filled in on create, the same as the contract says', async () => {
  const tt = await create('TranscriptionTask', 'defaults-tt', validSpecs.TranscriptionTask);
  assert.deepEqual(tt.spec, {
    audio: { uri },
    priority: 'Normal',
    timeoutSeconds: 3600,
    retryPolicy: { maxRetries: 3, backoffSeconds: 30 },
    resultTTLSeconds: 604800,
    cancel: false,
    model: 'large-v3',
  });

  const dt = await create('DiarizationTask', 'defaults-dt', { audio: { uri }, retryPolicy: { maxRetries: 0 } });
  assert.deepEqual(dt.spec, {
    audio: { uri },
    priority: 'Normal',
    timeoutSeconds: 3600,
    // A partial retryPolicy gets the missing field defaulted.
    retryPolicy: { maxRetries: 0, backoffSeconds: 30 },
    resultTTLSeconds: 604800,
    cancel: false,
  });

  const wp = await create('WorkerPool', 'defaults-wp', validSpecs.WorkerPool);
  assert.deepEqual(wp.spec, {
    taskKind: 'TranscriptionTask',
    scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'worker' },
    minReplicas: 0,
    maxReplicas: 2,
    tasksPerReplica: 1,
    scaleDownDelaySeconds: 300,
  });
});

// ---------------------------------------------------------------------------
// Invalid objects

interface InvalidCreate {
  title: string;
  kind: Kind;
  spec: unknown;
  /** Path of the offending field, as the apiserver prints it. */
  field: string;
  /** More the message must say, beyond the field path. */
  mentions?: RegExp;
}

const tt = (spec: Json) => ({ audio: { uri }, ...spec });
const wp = (spec: Json) => ({ ...validSpecs.WorkerPool, ...spec });

const invalidCreates: InvalidCreate[] = [
  { title: 'no spec', kind: 'TranscriptionTask', spec: undefined, field: 'spec' },
  { title: 'no audio', kind: 'TranscriptionTask', spec: { priority: 'High' }, field: 'spec.audio' },
  { title: 'no audio.uri', kind: 'DiarizationTask', spec: { audio: {} }, field: 'spec.audio.uri' },
  { title: 'ftp:// audio', kind: 'TranscriptionTask', spec: { audio: { uri: 'ftp://example.com/a.wav' } }, field: 'spec.audio.uri', mentions: /https:\/\/, http:\/\/, s3:\/\/ or file:\/\// },
  { title: 'audio path without scheme', kind: 'DiarizationTask', spec: { audio: { uri: '/data/a.wav' } }, field: 'spec.audio.uri' },
  { title: 'audio URI with a blank', kind: 'TranscriptionTask', spec: { audio: { uri: 'https://example.com/my file.wav' } }, field: 'spec.audio.uri' },
  { title: 'audio URI too long', kind: 'TranscriptionTask', spec: { audio: { uri: `https://example.com/${'a'.repeat(2100)}` } }, field: 'spec.audio.uri' },
  { title: 'secretRef name not a DNS name', kind: 'TranscriptionTask', spec: { audio: { uri, secretRef: { name: 'My_Secret' } } }, field: 'spec.audio.secretRef.name' },
  { title: 'unknown priority', kind: 'TranscriptionTask', spec: tt({ priority: 'Urgent' }), field: 'spec.priority', mentions: /Critical/ },
  { title: 'lower-case priority', kind: 'DiarizationTask', spec: tt({ priority: 'high' }), field: 'spec.priority' },
  { title: 'timeout 0', kind: 'TranscriptionTask', spec: tt({ timeoutSeconds: 0 }), field: 'spec.timeoutSeconds' },
  { title: 'timeout above a day', kind: 'TranscriptionTask', spec: tt({ timeoutSeconds: 86401 }), field: 'spec.timeoutSeconds' },
  { title: 'timeout as a string', kind: 'TranscriptionTask', spec: tt({ timeoutSeconds: '1h' }), field: 'spec.timeoutSeconds' },
  { title: 'more than 20 retries', kind: 'TranscriptionTask', spec: tt({ retryPolicy: { maxRetries: 21 } }), field: 'spec.retryPolicy.maxRetries' },
  { title: 'negative retries', kind: 'DiarizationTask', spec: tt({ retryPolicy: { maxRetries: -1 } }), field: 'spec.retryPolicy.maxRetries' },
  { title: 'backoff 0', kind: 'TranscriptionTask', spec: tt({ retryPolicy: { backoffSeconds: 0 } }), field: 'spec.retryPolicy.backoffSeconds' },
  { title: 'negative ttlSecondsAfterFinished', kind: 'TranscriptionTask', spec: tt({ ttlSecondsAfterFinished: -1 }), field: 'spec.ttlSecondsAfterFinished' },
  { title: 'resultTTLSeconds 0', kind: 'DiarizationTask', spec: tt({ resultTTLSeconds: 0 }), field: 'spec.resultTTLSeconds' },
  { title: 'cancel as a string', kind: 'TranscriptionTask', spec: tt({ cancel: 'yes' }), field: 'spec.cancel' },
  { title: 'upper-case language', kind: 'TranscriptionTask', spec: tt({ language: 'EN' }), field: 'spec.language' },
  { title: 'three-letter language', kind: 'TranscriptionTask', spec: tt({ language: 'eng' }), field: 'spec.language' },
  { title: 'language with region', kind: 'TranscriptionTask', spec: tt({ language: 'en-US' }), field: 'spec.language' },
  { title: 'empty model', kind: 'TranscriptionTask', spec: tt({ model: '' }), field: 'spec.model' },
  { title: 'minSpeakers 0', kind: 'DiarizationTask', spec: tt({ minSpeakers: 0 }), field: 'spec.minSpeakers' },
  { title: 'maxSpeakers 65', kind: 'DiarizationTask', spec: tt({ maxSpeakers: 65 }), field: 'spec.maxSpeakers' },
  { title: 'minSpeakers > maxSpeakers', kind: 'DiarizationTask', spec: tt({ minSpeakers: 5, maxSpeakers: 3 }), field: 'spec.minSpeakers', mentions: /maxSpeakers/ },
  { title: 'WorkerPool without taskKind', kind: 'WorkerPool', spec: { scaleTargetRef: { name: 'w' }, maxReplicas: 1 }, field: 'spec.taskKind' },
  { title: 'WorkerPool for an unknown kind', kind: 'WorkerPool', spec: wp({ taskKind: 'Job' }), field: 'spec.taskKind' },
  { title: 'WorkerPool without a target name', kind: 'WorkerPool', spec: wp({ scaleTargetRef: { kind: 'Deployment' } }), field: 'spec.scaleTargetRef.name' },
  { title: 'WorkerPool without maxReplicas', kind: 'WorkerPool', spec: { taskKind: 'DiarizationTask', scaleTargetRef: { name: 'w' } }, field: 'spec.maxReplicas' },
  { title: 'WorkerPool maxReplicas 0', kind: 'WorkerPool', spec: wp({ maxReplicas: 0 }), field: 'spec.maxReplicas' },
  { title: 'WorkerPool negative minReplicas', kind: 'WorkerPool', spec: wp({ minReplicas: -1 }), field: 'spec.minReplicas' },
  { title: 'WorkerPool minReplicas > maxReplicas', kind: 'WorkerPool', spec: wp({ minReplicas: 5, maxReplicas: 3 }), field: 'spec.minReplicas', mentions: /maxReplicas/ },
  { title: 'WorkerPool tasksPerReplica 0', kind: 'WorkerPool', spec: wp({ tasksPerReplica: 0 }), field: 'spec.tasksPerReplica' },
  { title: 'WorkerPool negative scaleDownDelaySeconds', kind: 'WorkerPool', spec: wp({ scaleDownDelaySeconds: -5 }), field: 'spec.scaleDownDelaySeconds' },
];

test(`${invalidCreates.length} invalid objects are each rejected, naming the field`, async (t) => {
  for (const [i, c] of invalidCreates.entries()) {
    await t.test(`${c.kind}: ${c.title}`, async () => {
      const rejected = await rejection(create(c.kind, `invalid-${i}`, c.spec));
      assert.equal(rejected.code, 422, rejected.message);
      assert.ok(rejected.message.includes(`${c.field}:`), `message does not name ${c.field}: ${rejected.message}`);
      assert.ok(rejected.fields.includes(c.field), `causes ${JSON.stringify(rejected.fields)} lack ${c.field}`);
      if (c.mentions) assert.match(rejected.message, c.mentions);
    });
  }
});

const unknownFields: { kind: Kind; spec: Json; field: string }[] = [
  { kind: 'TranscriptionTask', spec: tt({ speed: 'fast' }), field: 'spec.speed' },
  { kind: 'TranscriptionTask', spec: { audio: { uri, format: 'wav' } }, field: 'spec.audio.format' },
  { kind: 'DiarizationTask', spec: tt({ retryPolicy: { maxRetries: 1, jitter: true } }), field: 'spec.retryPolicy.jitter' },
  { kind: 'WorkerPool', spec: wp({ scaleTargetRef: { name: 'w', namespace: 'other' } }), field: 'spec.scaleTargetRef.namespace' },
];

test('unknown fields are rejected by kubectl and by the API with strict field validation', async (t) => {
  for (const [i, c] of unknownFields.entries()) {
    await t.test(`${c.kind} ${c.field}`, async () => {
      const viaApi = await rejection(create(c.kind, `unknown-${i}`, c.spec));
      assert.equal(viaApi.code, 400);
      assert.ok(viaApi.message.includes(`unknown field "${c.field}"`), viaApi.message);

      // kubectl validates strictly unless told otherwise.
      const viaKubectl = await kubectl(['apply', '-n', ns, '-f', '-'], { input: JSON.stringify(manifest(c.kind, `unknown-${i}`, c.spec)) });
      assert.notEqual(viaKubectl.code, 0);
      assert.ok(viaKubectl.stderr.includes(`unknown field "${c.field}"`), viaKubectl.stderr);
    });
  }
});

test('without strict validation an unknown field is pruned, never stored', async () => {
  const name = 'pruned-tt';
  const result = await kubectl(['create', '-n', ns, '--validate=ignore', '-f', '-'], {
    input: JSON.stringify(manifest('TranscriptionTask', name, tt({ speed: 'fast' }))),
  });
  assert.equal(result.code, 0, result.stderr);
  const stored = await get('TranscriptionTask', name);
  assert.equal('speed' in (stored.spec as Json), false);
});

// ---------------------------------------------------------------------------
// Immutability

interface ForbiddenUpdate {
  title: string;
  kind: Kind;
  initial: Json;
  change: Json;
  field: string;
}

const forbiddenUpdates: ForbiddenUpdate[] = [
  { title: 'change audio.uri', kind: 'TranscriptionTask', initial: tt({}), change: { audio: { uri: 'file:///data/other.wav' } }, field: 'spec.audio' },
  { title: 'add audio.secretRef', kind: 'DiarizationTask', initial: tt({}), change: { audio: { secretRef: { name: 'creds' } } }, field: 'spec.audio' },
  { title: 'change model', kind: 'TranscriptionTask', initial: tt({}), change: { model: 'medium' }, field: 'spec.model' },
  { title: 'set language', kind: 'TranscriptionTask', initial: tt({}), change: { language: 'fr' }, field: 'spec.language' },
  { title: 'remove language', kind: 'TranscriptionTask', initial: tt({ language: 'fr' }), change: { language: null }, field: 'spec.language' },
  { title: 'change timeoutSeconds', kind: 'TranscriptionTask', initial: tt({}), change: { timeoutSeconds: 60 }, field: 'spec.timeoutSeconds' },
  { title: 'change retryPolicy', kind: 'DiarizationTask', initial: tt({}), change: { retryPolicy: { maxRetries: 10 } }, field: 'spec.retryPolicy' },
  { title: 'set ttlSecondsAfterFinished', kind: 'TranscriptionTask', initial: tt({}), change: { ttlSecondsAfterFinished: 60 }, field: 'spec.ttlSecondsAfterFinished' },
  { title: 'change resultTTLSeconds', kind: 'DiarizationTask', initial: tt({}), change: { resultTTLSeconds: 60 }, field: 'spec.resultTTLSeconds' },
  { title: 'change maxSpeakers', kind: 'DiarizationTask', initial: tt({ maxSpeakers: 4 }), change: { maxSpeakers: 5 }, field: 'spec.maxSpeakers' },
  { title: 'set minSpeakers', kind: 'DiarizationTask', initial: tt({}), change: { minSpeakers: 2 }, field: 'spec.minSpeakers' },
  { title: 'un-cancel', kind: 'TranscriptionTask', initial: tt({ cancel: true }), change: { cancel: false }, field: 'spec.cancel' },
  { title: 'un-cancel by removing the field', kind: 'DiarizationTask', initial: tt({ cancel: true }), change: { cancel: null }, field: 'spec.cancel' },
  { title: 'WorkerPool minReplicas above maxReplicas', kind: 'WorkerPool', initial: wp({}), change: { minReplicas: 3 }, field: 'spec.minReplicas' },
];

test('updates to immutable fields, and un-cancelling, are rejected naming the field', async (t) => {
  for (const [i, c] of forbiddenUpdates.entries()) {
    await t.test(`${c.kind}: ${c.title}`, async () => {
      const name = `update-${i}`;
      await create(c.kind, name, c.initial);
      const rejected = await rejection(patchSpec(c.kind, name, c.change));
      assert.equal(rejected.code, 422, rejected.message);
      assert.ok(rejected.message.includes(`${c.field}:`), `message does not name ${c.field}: ${rejected.message}`);
      assert.ok(rejected.fields.includes(c.field), `causes ${JSON.stringify(rejected.fields)} lack ${c.field}`);
    });
  }
});

test('priority may change and cancel may be set, also together and repeatedly', async () => {
  const name = 'mutable-tt';
  await create('TranscriptionTask', name, tt({ language: 'de', ttlSecondsAfterFinished: 30 }));
  let updated = await patchSpec('TranscriptionTask', name, { priority: 'Critical' });
  assert.equal((updated.spec as Json).priority, 'Critical');
  updated = await patchSpec('TranscriptionTask', name, { priority: 'Low', cancel: true });
  assert.deepEqual([(updated.spec as Json).priority, (updated.spec as Json).cancel], ['Low', true]);
  // Setting it again, and changing the priority of a cancelled task, is harmless.
  updated = await patchSpec('TranscriptionTask', name, { cancel: true, priority: 'High' });
  assert.equal((updated.spec as Json).cancel, true);
  // Metadata stays editable on a cancelled task.
  const labelled = await customObjects.patchNamespacedCustomObject(
    { ...resource('TranscriptionTask'), name, body: { metadata: { labels: { team: 'speech' } } } },
    mergePatch,
  );
  assert.deepEqual((labelled.metadata as Json).labels, { team: 'speech' });
});

test('a WorkerPool spec stays editable within its rules', async () => {
  const name = 'mutable-wp';
  await create('WorkerPool', name, wp({ maxReplicas: 4 }));
  const updated = await patchSpec('WorkerPool', name, { minReplicas: 2, maxReplicas: 10, tasksPerReplica: 3, scaleDownDelaySeconds: 0 });
  assert.deepEqual(
    [updated.spec].map((s) => [(s as Json).minReplicas, (s as Json).maxReplicas, (s as Json).tasksPerReplica, (s as Json).scaleDownDelaySeconds]),
    [[2, 10, 3, 0]],
  );
});

// ---------------------------------------------------------------------------
// Status subresource

test('status sent on create or through the main resource is ignored', async () => {
  const name = 'status-ignored';
  const created = await create('TranscriptionTask', name, tt({}), { status: { phase: 'Succeeded', progress: 100 } });
  assert.equal(created.status, undefined);
  assert.equal((await get('TranscriptionTask', name)).status, undefined);

  // A full update carrying status changes only what it may.
  const current = await get('TranscriptionTask', name);
  const replaced = await customObjects.replaceNamespacedCustomObject({
    ...resource('TranscriptionTask'),
    name,
    body: { ...current, spec: { ...(current.spec as Json), priority: 'High' }, status: { phase: 'Failed', reason: 'EngineError' } },
  });
  assert.equal((replaced.spec as Json).priority, 'High');
  assert.equal(replaced.status, undefined);

  await customObjects.patchNamespacedCustomObject({ ...resource('TranscriptionTask'), name, body: { status: { phase: 'Cancelled' } } }, mergePatch);
  assert.equal((await get('TranscriptionTask', name)).status, undefined);
});

test('the /status subresource writes status, validates it, and leaves spec and generation alone', async () => {
  const name = 'status-written';
  const created = await create('DiarizationTask', name, tt({}));
  const generation = (created.metadata as Json).generation;
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const status = {
    phase: 'Succeeded',
    progress: 100,
    attempts: 1,
    queuedAt: now,
    startTime: now,
    completionTime: now,
    lastReportTime: now,
    worker: 'diarization-worker-xyz',
    reason: 'Completed',
    message: 'Found 3 speakers',
    result: { ref: 'tq:{uid}:result', summary: { durationSeconds: 612.5, segments: 48, speakers: 3 } },
    observedGeneration: generation,
    conditions: [
      { type: 'Ready', status: 'True', reason: 'Completed', message: 'Task succeeded', lastTransitionTime: now, observedGeneration: generation },
      { type: 'Succeeded', status: 'True', reason: 'Completed', message: '', lastTransitionTime: now, observedGeneration: generation },
    ],
  };
  const written = await patchStatus('DiarizationTask', name, status);
  assert.deepEqual(written.status, status);
  assert.equal((written.metadata as Json).generation, generation);
  assert.deepEqual(written.spec, created.spec);

  // A spec sent to /status is ignored, as status is on the main resource.
  await customObjects.patchNamespacedCustomObjectStatus(
    { ...resource('DiarizationTask'), name, body: { spec: { priority: 'Critical' } } },
    mergePatch,
  );
  assert.equal(((await get('DiarizationTask', name)).spec as Json).priority, 'Normal');

  for (const [bad, field] of [
    [{ progress: 101 }, 'status.progress'],
    [{ phase: 'Done' }, 'status.phase'],
    [{ attempts: -1 }, 'status.attempts'],
    [{ startTime: 'yesterday' }, 'status.startTime'],
    [{ reason: 'not camel case' }, 'status.reason'],
    [{ result: { summary: { speakers: 2, words: 10 } } }, 'status.result.summary.words'],
  ] as const) {
    const rejected = await rejection(patchStatus('DiarizationTask', name, bad));
    assert.ok(rejected.message.includes(field), `${JSON.stringify(bad)}: ${rejected.message}`);
  }
});

test('conditions are a map keyed by type: a duplicate type is rejected', async () => {
  const name = 'conditions-map';
  await create('TranscriptionTask', name, tt({}));
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const condition = { type: 'Queued', status: 'True', reason: 'Published', message: '', lastTransitionTime: now };
  const rejected = await rejection(patchStatus('TranscriptionTask', name, { conditions: [condition, { ...condition, status: 'False' }] }));
  assert.equal(rejected.code, 422);
  assert.match(rejected.message, /status\.conditions\[1\].*Duplicate/);

  const missing = await rejection(patchStatus('TranscriptionTask', name, { conditions: [{ type: 'Queued', status: 'True' }] }));
  assert.match(missing.message, /status\.conditions\[0\]\.(reason|lastTransitionTime|message)/);
});

// ---------------------------------------------------------------------------
// RBAC

test('a ServiceAccount without RBAC cannot list tasks; the admin can', async () => {
  const core = kc.makeApiClient(CoreV1Api);
  const account = uniqueName('no-rbac');
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: account } } });
  const tokenRequest = await core.createNamespacedServiceAccountToken({
    name: account,
    namespace: ns,
    body: { spec: { audiences: [], expirationSeconds: 600 } },
  });
  const token = tokenRequest.status?.token;
  assert.ok(token, 'no token issued');

  const cluster = kc.getCurrentCluster();
  assert.ok(cluster, 'the admin kubeconfig has no current cluster');
  const asAccount = new KubeConfig();
  asAccount.loadFromOptions({
    clusters: [cluster],
    users: [{ name: account, token }],
    contexts: [{ name: account, cluster: cluster.name, user: account }],
    currentContext: account,
  });

  await create('TranscriptionTask', 'rbac-visible', tt({}));
  for (const kind of KINDS) {
    const denied = await rejection(asAccount.makeApiClient(CustomObjectsApi).listNamespacedCustomObject(resource(kind)));
    assert.equal(denied.code, 403, `${kind}: ${denied.message}`);
    assert.ok(denied.message.includes(`system:serviceaccount:${ns}:${account}`), denied.message);
    assert.ok(denied.message.includes(`"${PLURALS[kind]}"`), denied.message);
  }

  const asAdmin = (await customObjects.listNamespacedCustomObject(resource('TranscriptionTask'))) as { items: { metadata: { name: string } }[] };
  assert.ok(asAdmin.items.some((item) => item.metadata.name === 'rbac-visible'));
});
