// ReportWriter against a real redis-server: each report writes the state
// hash the protocol table lists, then one stream entry that parses back;
// results expire after resultTTLSeconds; a stale attempt cannot overwrite a
// newer one.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import {
  ReportWriter,
  fieldsToRecord,
  parseReportEntry,
  parseTaskState,
  redisKeys,
  reportsStreamKey,
} from '../../../src/protocol/index.ts';
import type { Report, ReportTarget } from '../../../src/protocol/index.ts';
import { serverUrls, stopPrivateServers, uniqueName } from '../worker/support.ts';
import { uniqueKeyPrefix } from '../../harness/index.ts';

let redis: Redis;
const prefixes: string[] = [];
const NOW = new Date('2026-05-06T07:08:09.000Z');

function setup(maxStreamLength?: number) {
  const prefix = uniqueKeyPrefix();
  prefixes.push(prefix);
  const writer = new ReportWriter({ redis, prefix, now: () => NOW, ...(maxStreamLength ? { maxStreamLength } : {}) });
  const target: ReportTarget = {
    uid: uniqueName('uid'),
    namespace: 'media',
    name: 'talk',
    kind: 'TranscriptionTask',
    attempt: 1,
    worker: 'gpu-0',
  };
  const keys = redisKeys(prefix, target.uid);
  const state = async () => parseTaskState(await redis.hgetall(keys.state));
  const entries = async (): Promise<Report[]> =>
    (await redis.xrange(reportsStreamKey(prefix), '-', '+')).map(([, fields]) => parseReportEntry(fieldsToRecord(fields)));
  return { prefix, writer, target, keys, state, entries };
}

before(async () => {
  redis = new Redis((await serverUrls()).redisUrl, { maxRetriesPerRequest: null });
});

after(async () => {
  for (const prefix of prefixes) {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  redis.disconnect();
  await stopPrivateServers();
});

describe('ReportWriter', () => {
  it('walks a run through the state table, one stream entry per report', async () => {
    const { writer, target, state, entries } = setup();
    assert.equal(await writer.started(target), true);
    assert.deepEqual(await state(), {
      uid: target.uid,
      namespace: 'media',
      name: 'talk',
      kind: 'TranscriptionTask',
      attempt: 1,
      worker: 'gpu-0',
      phase: 'Running',
      progress: 0,
      startedAt: NOW.toISOString(),
      heartbeatAt: NOW.toISOString(),
      updatedAt: NOW.toISOString(),
    });
    await writer.progress(target, 41.7);
    assert.equal((await state())?.progress, 41);
    await writer.heartbeat(target);
    await writer.retrying(target, { reason: 'AudioUnavailable', message: '503', nextAttemptAt: new Date(NOW.getTime() + 30_000) });
    let s = await state();
    assert.equal(s?.phase, 'Retrying');
    assert.equal(s?.reason, 'AudioUnavailable');
    assert.equal(s?.nextAttemptAt, '2026-05-06T07:08:39.000Z');

    // The next attempt starts clean: no stale reason or retry time.
    const second = { ...target, attempt: 2 };
    await writer.started(second);
    s = await state();
    assert.equal(s?.phase, 'Running');
    assert.equal(s?.attempt, 2);
    assert.equal(s?.reason, undefined);
    assert.equal(s?.nextAttemptAt, undefined);

    const list = await entries();
    assert.deepEqual(list.map((e) => e.type), ['started', 'progress', 'heartbeat', 'retrying', 'started']);
    assert.ok(list.every((e) => e.uid === target.uid && e.worker === 'gpu-0' && e.at === NOW.toISOString()));
    const retrying = list[3]!;
    assert.equal(retrying.type === 'retrying' && retrying.nextAttemptAt, '2026-05-06T07:08:39.000Z');
  });

  it('stores the result for resultTTLSeconds and points resultRef at it', async () => {
    const { writer, target, keys, state, entries } = setup();
    await writer.started(target);
    await writer.succeeded(target, {
      summary: { language: 'de', durationSeconds: 61.5, segments: 12 },
      result: { segments: [{ start: 0, end: 1, text: 'hallo' }] },
      resultTTLSeconds: 120,
      stateTTLSeconds: 3600,
    });
    const s = await state();
    assert.equal(s?.phase, 'Succeeded');
    assert.equal(s?.progress, 100);
    assert.equal(s?.resultRef, keys.result);
    assert.deepEqual(JSON.parse((await redis.get(keys.result)) ?? 'null'), { segments: [{ start: 0, end: 1, text: 'hallo' }] });
    const resultTtl = await redis.ttl(keys.result);
    assert.ok(resultTtl > 110 && resultTtl <= 120, `result TTL ${resultTtl}`);
    const stateTtl = await redis.ttl(keys.state);
    assert.ok(stateTtl > 3500 && stateTtl <= 3600, `state TTL ${stateTtl}`);
    const last = (await entries()).at(-1)!;
    assert.equal(last.type, 'succeeded');
    assert.deepEqual(last.type === 'succeeded' && last.summary, { language: 'de', durationSeconds: 61.5, segments: 12 });
    assert.equal(last.type === 'succeeded' && last.resultRef, keys.result);
  });

  it('records failed, cancelled and released with their reason and message', async () => {
    const failed = setup();
    await failed.writer.failed(failed.target, { reason: 'InvalidInput', message: 'spec.audio.uri: bad' });
    assert.deepEqual(
      [(await failed.state())?.phase, (await failed.state())?.reason, (await failed.state())?.message],
      ['Failed', 'InvalidInput', 'spec.audio.uri: bad'],
    );

    const cancelled = setup();
    await cancelled.writer.cancelled(cancelled.target, { message: 'cancel requested' });
    assert.equal((await cancelled.state())?.phase, 'Cancelled');

    const released = setup();
    await released.writer.started(released.target);
    await released.writer.released(released.target, { message: 'worker shut down' });
    assert.equal((await released.state())?.phase, 'Queued');
    const entry = (await released.entries()).at(-1)!;
    assert.equal(entry.type === 'released' && entry.message, 'worker shut down');
  });

  it('counts hand-backs per message, starting over for another message', async () => {
    const { writer, target, state } = setup();
    await writer.started(target);
    await writer.released(target, { message: 'shutdown', streamSequence: 41 });
    await writer.started(target);
    await writer.released(target, { message: 'shutdown', streamSequence: 41 });
    let s = await state();
    assert.deepEqual([s?.releasedSeq, s?.releases], [41, 2]);
    await writer.released(target, { message: 'shutdown', streamSequence: 57 });
    s = await state();
    assert.deepEqual([s?.releasedSeq, s?.releases], [57, 1]);
  });

  it('ignores a report from an older attempt once a newer one owns the task', async () => {
    const { writer, target, state, entries } = setup();
    await writer.started({ ...target, attempt: 3 });
    assert.equal(await writer.succeeded({ ...target, attempt: 2 }, { summary: {}, result: 1, resultTTLSeconds: 60 }), false);
    assert.equal(await writer.heartbeat({ ...target, attempt: 2 }), false);
    const s = await state();
    assert.equal(s?.phase, 'Running');
    assert.equal(s?.attempt, 3);
    assert.deepEqual((await entries()).map((e) => e.type), ['started']);
  });

  it('leaves the controller\'s seq field alone', async () => {
    const { writer, target, keys, state } = setup();
    await redis.hset(keys.state, 'seq', '77');
    await writer.started(target);
    await writer.failed(target, { reason: 'AudioNotFound', message: '404' });
    assert.equal((await state())?.seq, 77);
  });

  it('keeps the reports stream near its cap', async () => {
    const { writer, target, prefix } = setup(100);
    for (let i = 0; i < 1000; i++) await writer.heartbeat(target);
    const length = await redis.xlen(reportsStreamKey(prefix));
    assert.ok(length < 1000 && length >= 100, `stream length ${length}`);
  });
});
