// Bad inputs, each with the clear outcome a user or an operator can rely on:
// garbage on the queue, forged reports, audio that cannot be had, engines
// that fail in every way, a namespace deleted under a running task, a spec
// past the apiserver's limits, and the same task applied a thousand times.
//
// A private control plane with kube-controller-manager (namespace deletion
// needs it), the controller in-process watching every namespace of it, and
// two in-process workers running the real pipeline against an
// OpenAI-compatible engine steered by the task's model (steered-engine.ts).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, type KubernetesObject } from '@kubernetes/client-node';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { GROUP, PLURALS, VERSION, API_VERSION, type TaskKind, type TaskStatus } from '../../src/api/index.ts';
import type { ControllerConfig } from '../../src/controller/config.ts';
import { ControllerManager } from '../../src/controller/manager.ts';
import { KubeClient } from '../../src/controller/runtime/index.ts';
import {
  ReportWriter,
  encodeTaskMessage,
  queueNames,
  redisKeys,
  reportsStreamKey,
  taskSubject,
  type QueueNames,
} from '../../src/protocol/index.ts';
import type { WorkerConfig } from '../../src/worker/config.ts';
import { runTask } from '../../src/worker/pipeline/index.ts';
import { resolvePipelineSettings } from '../../src/worker/pipeline/settings.ts';
import { Worker } from '../../src/worker/worker.ts';
import { makeCorrupt, makeTone } from '../fixtures/audio.ts';
import { startAudioServer, type AudioServer } from '../fixtures/audio-server.ts';
import {
  kubectlBinary,
  run,
  sleep,
  startControlPlane,
  startNats,
  startRedis,
  uniqueKeyPrefix,
  uniqueName,
  uniqueStream,
  waitFor,
  type ControlPlane,
  type NatsServer,
  type RedisServer,
  projectRoot,
} from '../harness/index.ts';
import { startSteeredEngine, type SteeredEngine } from '../chaos/steered-engine.ts';

const external = process.env.TQ_TEST_EXTERNAL_CLUSTER === '1';
const quiet = pino({ level: process.env.TQ_TEST_LOG_LEVEL ?? 'silent' });

type Obj = KubernetesObject & { status?: TaskStatus; spec?: Record<string, unknown> };

interface World {
  cp: ControlPlane;
  privateNats?: NatsServer;
  privateRedis?: RedisServer;
  natsUrl: string;
  redisUrl: string;
  names: QueueNames;
  keyPrefix: string;
  client: KubeClient;
  custom: CustomObjectsApi;
  manager: ControllerManager;
  workers: Worker[];
  workerConnections: { nc: NatsConnection; redis: Redis }[];
  nc: NatsConnection;
  jsm: JetStreamManager;
  redis: Redis;
  audio: AudioServer;
  engine: SteeredEngine;
  dir: string;
}

let w: World;

const ref = (kind: TaskKind) => ({ group: GROUP, version: VERSION, plural: PLURALS[kind] });

async function createNamespace(name: string): Promise<string> {
  await w.cp.kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name } } });
  return name;
}

async function createTask(kind: TaskKind, namespace: string, name: string, spec: Record<string, unknown>): Promise<Obj> {
  return w.client.create<Obj>(ref(kind), { apiVersion: API_VERSION, kind, metadata: { name, namespace }, spec } as Obj);
}

async function waitForTask(kind: TaskKind, namespace: string, name: string, what: string, check: (s: TaskStatus) => boolean, timeoutMs = 30_000): Promise<TaskStatus> {
  let last: TaskStatus | undefined;
  try {
    await waitFor(`${namespace}/${name}: ${what}`, async () => {
      last = (await w.client.get<Obj>(ref(kind), namespace, name)).status;
      return last !== undefined && check(last);
    }, { timeoutMs, intervalMs: 100 });
  } catch (err) {
    throw new Error(`${(err as Error).message}; last status: ${JSON.stringify(last)}`);
  }
  return last as TaskStatus;
}

async function streamMessages(subject?: string): Promise<number> {
  const info = await w.jsm.streams.info(w.names.stream, subject ? { subjects_filter: subject } : undefined);
  if (!subject) return info.state.messages;
  return (info.state.subjects as Record<string, number> | undefined)?.[subject] ?? 0;
}

/** The apiserver's answer to a create, as status code and message (the client library hides 413 bodies). */
async function rawCreate(kind: TaskKind, namespace: string, body: object, query = ''): Promise<{ status: number; message: string }> {
  const url = new URL(`${w.cp.server}/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURALS[kind]}${query}`);
  const options: Record<string, unknown> = { method: 'POST', headers: { 'content-type': 'application/json' } };
  await w.cp.kc.applyToHTTPSOptions(options as never);
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, options, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (p: Buffer) => parts.push(p));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let message = text;
        try {
          message = (JSON.parse(text) as { message?: string }).message ?? text;
        } catch {
          // plain text answer
        }
        resolve({ status: res.statusCode ?? 0, message });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** A server-side apply of `body`, as `kubectl apply --server-side` sends it. */
async function serverSideApply(kind: TaskKind, namespace: string, name: string, body: object): Promise<{ status: number; uid?: string; generation?: number }> {
  const url = new URL(`${w.cp.server}/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURALS[kind]}/${name}?fieldManager=kubectl&force=true`);
  const options: Record<string, unknown> = { method: 'PATCH', headers: { 'content-type': 'application/apply-patch+yaml' } };
  await w.cp.kc.applyToHTTPSOptions(options as never);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, options, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (p: Buffer) => parts.push(p));
      res.on('end', () => {
        const obj = JSON.parse(Buffer.concat(parts).toString('utf8')) as Obj;
        resolve({ status: res.statusCode ?? 0, uid: obj.metadata?.uid, generation: obj.metadata?.generation });
      });
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

function workerConfig(name: string): WorkerConfig {
  return {
    ...resolvePipelineSettings({}, {}),
    engine: 'openai',
    engineOpenaiUrl: w.engine.url,
    engineTimeoutSeconds: 3,
    chunkSeconds: 2,
    audioDir: join(w.dir, 'work', name),
    audioMaxBytes: 500_000,
    audioFileRoots: [join(w.dir, 'audio')],
    audioFetchIdleTimeoutSeconds: 5,
    nats: { servers: [w.natsUrl] },
    redis: { url: w.redisUrl },
    queue: w.names,
    keyPrefix: w.keyPrefix,
    taskKind: 'TranscriptionTask',
    workerName: name,
    concurrency: 3,
    shutdownGraceSeconds: 1,
    ackWaitSeconds: 10,
    heartbeatSeconds: 1,
    healthPort: 0,
    metricsPort: 0,
    logLevel: 'silent',
    pipeline: 'standard',
    stubChunks: 1,
    stubChunkMs: 0,
    idlePollMs: 200,
  };
}

describe('bad inputs', { skip: external && 'needs the local control plane (namespace deletion needs its kube-controller-manager)', timeout: 240_000 }, () => {
  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tq-bad-input-'));
    const shared = process.env.TQ_TEST_NATS_URL && process.env.TQ_TEST_REDIS_URL;
    const [cp, privateNats, privateRedis] = await Promise.all([
      startControlPlane({ controllerManager: true }),
      shared ? undefined : startNats(),
      shared ? undefined : startRedis(),
    ]);
    const servers = {
      natsUrl: privateNats?.url ?? (process.env.TQ_TEST_NATS_URL as string),
      redisUrl: privateRedis?.url ?? (process.env.TQ_TEST_REDIS_URL as string),
    };
    const crds = await run(kubectlBinary, ['--kubeconfig', cp.kubeconfigPath, 'apply', '--server-side', '-f', join(projectRoot, 'crds')]);
    assert.equal(crds.code, 0, crds.stderr);
    const established = await run(kubectlBinary, ['--kubeconfig', cp.kubeconfigPath, 'wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s']);
    assert.equal(established.code, 0, established.stderr);

    const id = uniqueName('b').slice(2);
    const names = queueNames({ stream: uniqueStream('TQBAD'), subjectPrefix: `tqbad${id}` });
    const keyPrefix = uniqueKeyPrefix('tqbad');
    const nc = await connect({ servers: servers.natsUrl });
    const audio = await startAudioServer();
    const engine = await startSteeredEngine();
    w = {
      cp,
      ...(privateNats ? { privateNats } : {}),
      ...(privateRedis ? { privateRedis } : {}),
      natsUrl: servers.natsUrl,
      redisUrl: servers.redisUrl,
      names,
      keyPrefix,
      client: new KubeClient(cp.kc, { qps: 200, burst: 400 }),
      custom: cp.kc.makeApiClient(CustomObjectsApi),
      manager: undefined as unknown as ControllerManager,
      workers: [],
      workerConnections: [],
      nc,
      jsm: await jetstreamManager(nc),
      redis: new Redis(servers.redisUrl, { maxRetriesPerRequest: 3 }),
      audio,
      engine,
      dir,
    };
    mkdirSync(join(dir, 'audio'), { recursive: true });
    await makeTone(join(dir, 'audio', 'tone.wav'), 2, { rate: 16_000, channels: 1 });
    await makeTone(join(dir, 'audio', 'long.wav'), 12, { rate: 8000, channels: 1 });
    const big = await makeTone(join(dir, 'big.wav'), 20, { rate: 16_000, channels: 1 });
    audio.addFile('big.wav', readFileSync(big));
    audio.addFile('corrupt.wav', readFileSync(await makeCorrupt(join(dir, 'corrupt.wav'), 50_000)));
    audio.addFile('tone.wav', readFileSync(join(dir, 'audio', 'tone.wav')));

    const config: ControllerConfig = {
      nats: { servers: [w.natsUrl] },
      redis: { url: w.redisUrl },
      queue: names,
      streamReplicas: 1,
      keyPrefix,
      watchNamespace: undefined,
      identity: 'bad-input-controller',
      leaderElection: { enabled: false },
      metricsPort: 0,
      healthPort: 0,
      kubeQps: 200,
      kubeBurst: 400,
      progressIntervalMs: 500,
      concurrency: 8,
      heartbeatTimeoutMs: 10_000,
      ackWaitMs: 10_000,
      resyncMs: 0,
      logLevel: 'silent',
    };
    w.manager = new ControllerManager({ config, logger: quiet as never, kubeConfig: cp.kc, serveHttp: false });
    await w.manager.start();
    await waitFor('the controller to lead and open the queue', () => w.manager.isLeader() && w.manager.ready(), { timeoutMs: 60_000 });
    for (const name of ['bad-worker-a', 'bad-worker-b']) {
      const wnc = await connect({ servers: w.natsUrl });
      const wredis = new Redis(w.redisUrl, { maxRetriesPerRequest: null });
      const worker = new Worker({ config: workerConfig(name), nc: wnc, redis: wredis, logger: quiet as never, runTask: (ctx) => runTask(ctx) });
      worker.start();
      w.workers.push(worker);
      w.workerConnections.push({ nc: wnc, redis: wredis });
    }
  });

  after(async () => {
    if (!w) return;
    await Promise.allSettled(w.workers.map((x) => x.stop(0)));
    await w.manager?.stop().catch(() => undefined);
    for (const c of w.workerConnections) {
      await c.nc.close().catch(() => undefined);
      c.redis.disconnect();
    }
    await w.jsm.streams.delete(w.names.stream).catch(() => undefined);
    let cursor = '0';
    do {
      const [next, keys] = await w.redis.scan(cursor, 'MATCH', `${w.keyPrefix}*`, 'COUNT', 500);
      if (keys.length > 0) await w.redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    w.redis.disconnect();
    await w.nc.close().catch(() => undefined);
    await Promise.allSettled([w.audio.close(), w.engine.close()]);
    await Promise.allSettled([w.privateNats?.destroy(), w.privateRedis?.destroy()]);
    await w.cp.stop();
    rmSync(w.dir, { recursive: true, force: true });
  });

  it('malformed messages published straight to the stream are terminated, and the workers go on', async () => {
    const ns = await createNamespace('bad-messages');
    const subject = taskSubject('TranscriptionTask', 'Normal', w.names);
    const js = jetstream(w.nc);
    const salvageable = uniqueName('forged');
    const mismatched = uniqueName('mismatched');
    const bodies = [
      'this is not JSON {',
      JSON.stringify({ namespace: ns, name: 'no-uid' }),
      // A uid the worker can salvage, with an attempt that is not a number.
      JSON.stringify({ namespace: ns, name: 'bad-attempt', uid: salvageable, kind: 'TranscriptionTask', attempt: 'first', spec: {} }),
      // A diarization body on a transcription subject.
      new TextDecoder().decode(
        encodeTaskMessage({ namespace: ns, name: 'wrong-kind', uid: mismatched, kind: 'DiarizationTask', attempt: 1, spec: { audio: { uri: 'https://example.com/a.wav' } } } as never),
      ),
    ];
    for (const body of bodies) await js.publish(subject, new TextEncoder().encode(body));
    await waitFor('every malformed message to leave the stream (terminated)', async () => (await streamMessages(subject)) === 0, { timeoutMs: 20_000 });

    // The salvageable ones are reported failed under their own uid, which belongs to no object.
    for (const uid of [salvageable, mismatched]) {
      const state = await w.redis.hgetall(redisKeys(w.keyPrefix, uid).state);
      assert.equal(state.phase, 'Failed', `state of ${uid}: ${JSON.stringify(state)}`);
      assert.equal(state.reason, 'InvalidInput');
      assert.ok(state.message, 'the failure says what was wrong');
    }
    // The workers are unharmed: a real task still runs to the end.
    await createTask('TranscriptionTask', ns, 'after-garbage', { audio: { uri: `${w.audio.url}/files/tone.wav` }, model: 'whisper-1' });
    const done = await waitForTask('TranscriptionTask', ns, 'after-garbage', 'Succeeded', (s) => s.phase === 'Succeeded');
    assert.equal(done.attempts, 1);
  });

  it('a report in Redis for an unknown uid changes nothing and stops nothing', async () => {
    const ns = await createNamespace('bad-reports');
    // No diarization worker runs here, so this task waits in the queue.
    await createTask('DiarizationTask', ns, 'waiting', { audio: { uri: `${w.audio.url}/files/tone.wav` } });
    await waitForTask('DiarizationTask', ns, 'waiting', 'Queued', (s) => s.phase === 'Queued');
    const reports = new ReportWriter({ redis: w.redis, prefix: w.keyPrefix });
    const forgedUid = uniqueName('unknown');
    // Same namespace and name as a real task, another uid (what a deleted-and-recreated task would leave).
    await reports.started({ uid: forgedUid, namespace: ns, name: 'waiting', kind: 'DiarizationTask', attempt: 1, worker: 'impostor' });
    await reports.succeeded(
      { uid: forgedUid, namespace: ns, name: 'waiting', kind: 'DiarizationTask', attempt: 1, worker: 'impostor' },
      { summary: { segments: 9, speakers: 3 }, result: { forged: true }, resultTTLSeconds: 60 },
    );
    // A task nobody ever created, and an entry that is not a report at all.
    await reports.failed({ uid: uniqueName('ghost'), namespace: 'no-such-namespace', name: 'ghost', kind: 'TranscriptionTask', attempt: 3, worker: 'impostor' }, { reason: 'EngineError', message: 'boo' });
    await w.redis.xadd(reportsStreamKey(w.keyPrefix), '*', 'type', 'succeeded', 'uid', '{broken');
    await sleep(3000);

    const status = await waitForTask('DiarizationTask', ns, 'waiting', 'still Queued', (s) => s.phase === 'Queued');
    assert.equal(status.result, undefined, 'no result was taken from the forged report');
    assert.notEqual(status.worker, 'impostor');
    // The report feed is still alive: a real report right after is applied.
    await createTask('TranscriptionTask', ns, 'after-forgery', { audio: { uri: `${w.audio.url}/files/tone.wav` }, model: 'whisper-1' });
    await waitForTask('TranscriptionTask', ns, 'after-forgery', 'Succeeded', (s) => s.phase === 'Succeeded');
  });

  it('audio that cannot be had fails at once with a reason naming why', async () => {
    const ns = await createNamespace('bad-audio');
    const cases: [string, string, string][] = [
      ['not-found', `${w.audio.url}/status/404`, 'AudioNotFound'],
      ['corrupt', `${w.audio.url}/files/corrupt.wav`, 'InvalidAudio'],
      ['declared-too-large', `${w.audio.url}/declared-huge`, 'AudioTooLarge'],
      ['streamed-too-large', `${w.audio.url}/files/big.wav`, 'AudioTooLarge'],
      ['s3-scheme', 's3://bucket/recording.wav', 'UnsupportedScheme'],
      ['outside-roots', 'file:///etc/passwd', 'AudioForbidden'],
    ];
    for (const [name, uri] of cases) {
      await createTask('TranscriptionTask', ns, name, { audio: { uri }, model: 'whisper-1', retryPolicy: { maxRetries: 3, backoffSeconds: 1 } });
    }
    for (const [name, , reason] of cases) {
      const status = await waitForTask('TranscriptionTask', ns, name, `Failed ${reason}`, (s) => s.phase === 'Failed');
      assert.equal(status.reason, reason, `${name}: ${status.message}`);
      assert.equal(status.attempts, 1, `${name} is not retried: bad input never gets better`);
      assert.ok((status.message ?? '').length > 10, `${name} says why: ${status.message}`);
    }
    // A scheme outside the four never gets past admission.
    await assert.rejects(
      createTask('TranscriptionTask', ns, 'ftp-scheme', { audio: { uri: 'ftp://example.com/a.wav' } }),
      (err: Error) => /spec\.audio\.uri/.test(err.message),
    );
  });

  it('an engine that answers 500, answers garbage or hangs: retried, then failed with the cause', async () => {
    const ns = await createNamespace('bad-engine');
    const spec = (model: string, extra: Record<string, unknown> = {}) => ({
      audio: { uri: `${w.audio.url}/files/tone.wav` },
      model,
      retryPolicy: { maxRetries: 1, backoffSeconds: 1 },
      ...extra,
    });
    await createTask('TranscriptionTask', ns, 'answers-500', spec('bad-500'));
    await createTask('TranscriptionTask', ns, 'answers-garbage', spec('bad-garbage'));
    await createTask('TranscriptionTask', ns, 'hangs', spec('bad-hang'));
    await createTask('TranscriptionTask', ns, 'hangs-past-deadline', spec('bad-hang', { timeoutSeconds: 2, retryPolicy: { maxRetries: 3, backoffSeconds: 1 } }));

    const expectations: [string, string, RegExp, number][] = [
      ['answers-500', 'MaxRetriesExceeded', /EngineUnavailable/, 2],
      ['answers-garbage', 'MaxRetriesExceeded', /EngineBadResponse/, 2],
      ['hangs', 'MaxRetriesExceeded', /EngineUnavailable/, 2],
      ['hangs-past-deadline', 'DeadlineExceeded', /timeoutSeconds|deadline/i, 1],
    ];
    for (const [name, reason, cause, attempts] of expectations) {
      const status = await waitForTask('TranscriptionTask', ns, name, `Failed ${reason}`, (s) => s.phase === 'Failed', 45_000);
      assert.equal(status.reason, reason, `${name}: ${status.message}`);
      assert.match(status.message ?? '', cause, `${name}'s message names the cause`);
      assert.equal(status.attempts, attempts, `${name}: attempts`);
    }
    assert.equal(w.engine.requests.get('bad-500'), 2, 'one request per attempt');
    assert.ok(w.engine.abandoned >= 3, `hanging requests are abandoned, not left open (${w.engine.abandoned})`);
  });

  it('a namespace deleted under a running task: the run stops, the task and its keys go, the namespace goes', async () => {
    const ns = await createNamespace('doomed-namespace');
    const task = await createTask('TranscriptionTask', ns, 'long-run', {
      audio: { uri: `file://${join(w.dir, 'audio', 'long.wav')}` },
      model: 'slow-2000',
    });
    const uid = task.metadata?.uid as string;
    await waitForTask('TranscriptionTask', ns, 'long-run', 'Running', (s) => s.phase === 'Running');
    const deletedAt = Date.now();
    await w.cp.kc.makeApiClient(CoreV1Api).deleteNamespace({ name: ns });
    await waitFor('the namespace to be gone', async () => {
      try {
        await w.cp.kc.makeApiClient(CoreV1Api).readNamespace({ name: ns });
        return false;
      } catch (err) {
        return (err as { code?: number }).code === 404;
      }
    }, { timeoutMs: 60_000, intervalMs: 250 });
    const tookMs = Date.now() - deletedAt;
    assert.ok(tookMs < 30_000, `the namespace went in ${tookMs} ms`);
    await waitFor('the task to be off the workers', () => w.workers.every((x) => x.activeRuns === 0), { timeoutMs: 15_000 });
    // The run was stopped, not left to finish: 6 chunks of 2 s each would take 12 s.
    const requestsWhenGone = w.engine.requests.get('slow-2000') ?? 0;
    await sleep(4000);
    assert.equal(w.engine.requests.get('slow-2000') ?? 0, requestsWhenGone, 'no engine call after the namespace was gone');
    assert.ok(requestsWhenGone < 6, `the run stopped early (${requestsWhenGone} of 6 chunks were sent)`);
    const keys = redisKeys(w.keyPrefix, uid);
    assert.equal(await w.redis.exists(keys.result, keys.checkpoints), 0, 'no result or checkpoints left behind');
    assert.equal(await streamMessages(taskSubject('TranscriptionTask', 'Normal', w.names)), 0, 'no message left behind');
    const state = await w.redis.hgetall(keys.state);
    // The worker's last word (cancelled) may land after the controller's cleanup; it must then expire.
    if (Object.keys(state).length > 0) {
      assert.equal(state.phase, 'Cancelled', `a state left behind is the run's cancellation: ${JSON.stringify(state)}`);
      const ttl = await w.redis.ttl(keys.state);
      assert.ok(ttl > 0, `a state left behind expires (ttl ${ttl})`);
    }
  });

  it('a spec with a 1 MB field is refused by the apiserver with a message that says why', async () => {
    const ns = await createNamespace('bad-size');
    const megabyte = 'a'.repeat(1024 * 1024);
    const body = (spec: Record<string, unknown>, metadata: Record<string, unknown> = {}) => ({
      apiVersion: API_VERSION,
      kind: 'TranscriptionTask',
      metadata: { name: uniqueName('big'), namespace: ns, ...metadata },
      spec: { audio: { uri: `${w.audio.url}/files/tone.wav` }, ...spec },
    });
    const before = await streamMessages();

    const longUri = await rawCreate('TranscriptionTask', ns, body({ audio: { uri: `https://example.com/${megabyte}` } }));
    assert.equal(longUri.status, 422, longUri.message.slice(0, 300));
    assert.match(longUri.message, /spec\.audio\.uri.*(Too long|may not be more than|at most)/s);

    const annotation = await rawCreate('TranscriptionTask', ns, body({}, { annotations: { note: megabyte } }));
    assert.equal(annotation.status, 422, annotation.message.slice(0, 300));
    assert.match(annotation.message, /metadata\.annotations.*Too long/s);

    const unknownStrict = await rawCreate('TranscriptionTask', ns, body({ notes: megabyte }), '?fieldValidation=Strict');
    assert.ok(unknownStrict.status === 400 || unknownStrict.status === 422, `${unknownStrict.status} ${unknownStrict.message.slice(0, 300)}`);
    assert.match(unknownStrict.message, /unknown field "spec\.notes"/);

    const tooBig = await rawCreate('TranscriptionTask', ns, body({ audio: { uri: `https://example.com/${megabyte.repeat(4)}` } }));
    assert.equal(tooBig.status, 413, tooBig.message.slice(0, 300));
    assert.match(tooBig.message, /too large/i);

    const list = await w.client.list(ref('TranscriptionTask'), { namespace: ns });
    assert.equal(list.items.length, 0, 'nothing was stored');
    await sleep(500);
    assert.equal(await streamMessages(), before, 'nothing was queued');
  });

  it('1,000 identical applies of one task make one object and one message', async () => {
    const ns = await createNamespace('same-apply');
    const manifest = {
      apiVersion: API_VERSION,
      kind: 'DiarizationTask',
      metadata: { name: 'same', namespace: ns },
      spec: { audio: { uri: `${w.audio.url}/files/tone.wav` }, priority: 'Critical', minSpeakers: 1, maxSpeakers: 2 },
    };
    const uids = new Set<string>();
    const generations = new Set<number>();
    const statuses = new Map<number, number>();
    let next = 0;
    const applyMany = async () => {
      while (next < 1000) {
        next++;
        const r = await serverSideApply('DiarizationTask', ns, 'same', manifest);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.uid) uids.add(r.uid);
        if (r.generation !== undefined) generations.add(r.generation);
      }
    };
    await Promise.all(Array.from({ length: 8 }, applyMany));
    // And the way people do it by hand, a few times over.
    const file = join(w.dir, 'same.json');
    writeFileSync(file, JSON.stringify(manifest));
    for (let i = 0; i < 5; i++) {
      const r = await run(kubectlBinary, ['--kubeconfig', w.cp.kubeconfigPath, 'apply', '--server-side', '-f', file]);
      assert.equal(r.code, 0, r.stderr);
    }
    assert.deepEqual([...statuses.keys()].sort(), [200, 201].filter((s) => statuses.has(s)), `answers: ${JSON.stringify([...statuses])}`);
    assert.equal(statuses.get(201) ?? 0, 1, 'created once');
    assert.equal(uids.size, 1, 'one object throughout');
    assert.deepEqual([...generations], [1], 'no apply changed the spec');
    const status = await waitForTask('DiarizationTask', ns, 'same', 'Queued', (s) => s.phase === 'Queued');
    await sleep(1500);
    const list = await w.client.list(ref('DiarizationTask'), { namespace: ns });
    assert.equal(list.items.length, 1);
    assert.equal(await streamMessages(taskSubject('DiarizationTask', 'Critical', w.names)), 1, 'queued once');
    assert.equal(status.phase, 'Queued');
  });
});
