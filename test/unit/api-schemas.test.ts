import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  API_VERSION,
  KIND_SUBJECT_TOKEN,
  MAX_BACKOFF_SECONDS,
  PHASES,
  PRIORITIES,
  PRIORITY_SUBJECT_TOKEN,
  TASK_KINDS,
  DiarizationTaskSpecSchema,
  TaskSchema,
  TaskStatusSchema,
  TranscriptionTaskSpecSchema,
  WorkerPoolSpecSchema,
  applyTaskSpecDefaults,
  applyWorkerPoolSpecDefaults,
  isTerminalPhase,
  priorityFromSubjectToken,
  priorityRank,
  retryBackoffSeconds,
  taskKindFromSubjectToken,
} from '../../src/api/index.ts';

test('applyTaskSpecDefaults fills in what the CRD defaults, and nothing else', () => {
  const spec = applyTaskSpecDefaults('TranscriptionTask', { audio: { uri: 'file:///data/a.wav' } });
  assert.deepEqual(spec, {
    audio: { uri: 'file:///data/a.wav' },
    priority: 'Normal',
    timeoutSeconds: 3600,
    retryPolicy: { maxRetries: 3, backoffSeconds: 30 },
    resultTTLSeconds: 604800,
    cancel: false,
    model: 'large-v3',
  });
  assert.equal('language' in spec, false);
  assert.equal('ttlSecondsAfterFinished' in spec, false);

  const diarization = applyTaskSpecDefaults('DiarizationTask', { audio: { uri: 's3://b/k' }, minSpeakers: 2 });
  assert.equal(diarization.minSpeakers, 2);
  assert.equal('maxSpeakers' in diarization, false);
  assert.equal('model' in diarization, false);
});

test('applyTaskSpecDefaults keeps given values, and fills a partial retryPolicy', () => {
  const spec = applyTaskSpecDefaults('TranscriptionTask', {
    audio: { uri: 'https://example.com/a.mp3', secretRef: { name: 'creds' } },
    priority: 'Critical',
    retryPolicy: { maxRetries: 0 },
    cancel: true,
    language: 'de',
  });
  assert.equal(spec.priority, 'Critical');
  assert.deepEqual(spec.retryPolicy, { maxRetries: 0, backoffSeconds: 30 });
  assert.equal(spec.cancel, true);
  assert.equal(spec.language, 'de');
  assert.deepEqual(spec.audio.secretRef, { name: 'creds' });
});

test('applyWorkerPoolSpecDefaults fills the scale target and the scaling knobs', () => {
  assert.deepEqual(
    applyWorkerPoolSpecDefaults({ taskKind: 'DiarizationTask', scaleTargetRef: { name: 'w' }, maxReplicas: 2 }),
    {
      taskKind: 'DiarizationTask',
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'w' },
      minReplicas: 0,
      maxReplicas: 2,
      tasksPerReplica: 1,
      scaleDownDelaySeconds: 300,
    },
  );
});

test('task spec schemas reject what the CRD rejects, naming the field', () => {
  const cases: [string, unknown, string][] = [
    ['ftp scheme', { audio: { uri: 'ftp://x/a.wav' } }, 'audio.uri'],
    ['no scheme', { audio: { uri: '/data/a.wav' } }, 'audio.uri'],
    ['missing audio', {}, 'audio'],
    ['language with region', { audio: { uri: 'file:///a' }, language: 'en-US' }, 'language'],
    ['upper-case language', { audio: { uri: 'file:///a' }, language: 'EN' }, 'language'],
    ['unknown priority', { audio: { uri: 'file:///a' }, priority: 'Urgent' }, 'priority'],
    ['zero timeout', { audio: { uri: 'file:///a' }, timeoutSeconds: 0 }, 'timeoutSeconds'],
    ['too many retries', { audio: { uri: 'file:///a' }, retryPolicy: { maxRetries: 21 } }, 'retryPolicy.maxRetries'],
    ['fractional timeout', { audio: { uri: 'file:///a' }, timeoutSeconds: 1.5 }, 'timeoutSeconds'],
  ];
  for (const [name, spec, path] of cases) {
    const result = TranscriptionTaskSpecSchema.safeParse(spec);
    assert.equal(result.success, false, name);
    assert.ok(
      result.error.issues.some((issue) => issue.path.join('.') === path),
      `${name}: expected an issue at ${path}, got ${JSON.stringify(result.error.issues)}`,
    );
  }
});

test('diarization speakers: 1..64 each, and minSpeakers <= maxSpeakers only when both are set', () => {
  const uri = { audio: { uri: 'file:///a' } };
  assert.ok(DiarizationTaskSpecSchema.safeParse({ ...uri, minSpeakers: 2, maxSpeakers: 2 }).success);
  assert.ok(DiarizationTaskSpecSchema.safeParse({ ...uri, minSpeakers: 64 }).success);
  assert.ok(DiarizationTaskSpecSchema.safeParse({ ...uri, maxSpeakers: 1 }).success);
  for (const bad of [{ minSpeakers: 0 }, { maxSpeakers: 65 }]) {
    assert.equal(DiarizationTaskSpecSchema.safeParse({ ...uri, ...bad }).success, false, JSON.stringify(bad));
  }
  const crossed = DiarizationTaskSpecSchema.safeParse({ ...uri, minSpeakers: 5, maxSpeakers: 3 });
  assert.equal(crossed.success, false);
  assert.deepEqual(crossed.error.issues[0]?.path, ['minSpeakers']);
  assert.match(crossed.error.issues[0]?.message ?? '', /minSpeakers.*maxSpeakers/);
});

test('WorkerPool: minReplicas may be 0 but not above maxReplicas', () => {
  const base = { taskKind: 'TranscriptionTask', scaleTargetRef: { name: 'w' } };
  assert.ok(WorkerPoolSpecSchema.safeParse({ ...base, minReplicas: 0, maxReplicas: 1 }).success);
  const crossed = WorkerPoolSpecSchema.safeParse({ ...base, minReplicas: 3, maxReplicas: 2 });
  assert.equal(crossed.success, false);
  assert.deepEqual(crossed.error.issues[0]?.path, ['minReplicas']);
  assert.equal(WorkerPoolSpecSchema.safeParse({ ...base, maxReplicas: 0 }).success, false);
  assert.equal(WorkerPoolSpecSchema.safeParse({ ...base, maxReplicas: 2, taskKind: 'Job' }).success, false);
});

test('schemas strip unknown fields rather than fail, so an older worker reads a newer message', () => {
  const spec = TranscriptionTaskSpecSchema.parse({ audio: { uri: 'file:///a', checksum: 'x' }, futureField: 1 });
  assert.equal('futureField' in spec, false);
  assert.equal('checksum' in spec.audio, false);
});

test('status schema accepts what the controller writes', () => {
  const status = TaskStatusSchema.parse({
    phase: 'Succeeded',
    progress: 100,
    attempts: 2,
    queuedAt: '2024-05-06T10:00:00Z',
    startTime: '2024-05-06T10:00:05.123Z',
    completionTime: '2024-05-06T10:20:00+02:00',
    worker: 'transcription-worker-7d9f-abcde',
    reason: 'Completed',
    message: 'Transcribed 1203 s of audio',
    result: { ref: 'tq:{uid}:result', summary: { language: 'en', durationSeconds: 1203.4, segments: 310, speakers: 2 } },
    observedGeneration: 1,
    conditions: [
      { type: 'Ready', status: 'True', reason: 'Completed', message: '', lastTransitionTime: '2024-05-06T10:20:00Z', observedGeneration: 1 },
    ],
  });
  assert.equal(status.phase, 'Succeeded');
  assert.equal(TaskStatusSchema.safeParse({ progress: 101 }).success, false);
  assert.equal(TaskStatusSchema.safeParse({ phase: 'Done' }).success, false);
  assert.equal(TaskStatusSchema.safeParse({ queuedAt: 'yesterday' }).success, false);
  assert.equal(TaskStatusSchema.safeParse({ conditions: [{ type: 'Ready', status: 'Yes' }] }).success, false);
});

test('TaskSchema tells the two task kinds apart by kind', () => {
  const task = TaskSchema.parse({
    apiVersion: API_VERSION,
    kind: 'DiarizationTask',
    metadata: { name: 'm', namespace: 'ns', uid: 'u', generation: 1 },
    spec: { audio: { uri: 'file:///a' }, maxSpeakers: 3 },
  });
  assert.equal(task.kind, 'DiarizationTask');
  if (task.kind === 'DiarizationTask') assert.equal(task.spec.maxSpeakers, 3);
  assert.equal(task.metadata.name, 'm');
  assert.equal(
    TaskSchema.safeParse({ apiVersion: 'taskqueue.dev/v1', kind: 'DiarizationTask', metadata: {}, spec: { audio: { uri: 'file:///a' } } }).success,
    false,
  );
});

test('subject tokens: one per kind and priority, lower-case, and reversible', () => {
  assert.deepEqual(Object.values(PRIORITY_SUBJECT_TOKEN), ['low', 'normal', 'high', 'critical']);
  assert.deepEqual(Object.values(KIND_SUBJECT_TOKEN), ['transcription', 'diarization']);
  for (const priority of PRIORITIES) assert.equal(priorityFromSubjectToken(PRIORITY_SUBJECT_TOKEN[priority]), priority);
  for (const kind of TASK_KINDS) assert.equal(taskKindFromSubjectToken(KIND_SUBJECT_TOKEN[kind]), kind);
  assert.equal(priorityFromSubjectToken('urgent'), undefined);
  assert.equal(taskKindFromSubjectToken('TranscriptionTask'), undefined);
});

test('priorities are ordered from Low to Critical', () => {
  assert.deepEqual([...PRIORITIES].sort((a, b) => priorityRank(a) - priorityRank(b)), ['Low', 'Normal', 'High', 'Critical']);
  assert.ok(priorityRank('Critical') > priorityRank('High'));
});

test('phases: the contract list, three of them terminal', () => {
  assert.deepEqual(PHASES, ['Pending', 'Queued', 'Running', 'Retrying', 'Succeeded', 'Failed', 'Cancelled']);
  assert.deepEqual(PHASES.filter(isTerminalPhase), ['Succeeded', 'Failed', 'Cancelled']);
  assert.equal(isTerminalPhase(undefined), false);
});

test('retry backoff doubles from the base and is capped at one hour', () => {
  assert.deepEqual([1, 2, 3, 4].map((attempt) => retryBackoffSeconds(30, attempt)), [30, 60, 120, 240]);
  assert.equal(retryBackoffSeconds(30, 8), MAX_BACKOFF_SECONDS);
  assert.equal(retryBackoffSeconds(3600, 1), 3600);
  assert.equal(retryBackoffSeconds(1, 10_000), MAX_BACKOFF_SECONDS);
});
