// ensureStream / ensureConsumers against a real nats-server: created as the
// protocol says, idempotent, brought back in line when changed, and
// duplicate publishes of one attempt stored once.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { jetstream, jetstreamManager, RetentionPolicy, StorageType, AckPolicy } from '@nats-io/jetstream';
import type { JetStreamManager } from '@nats-io/jetstream';
import { headers, nanos } from '@nats-io/nats-core';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { Kind, Priority } from '../../../src/api/index.ts';
import {
  StreamConfigConflictError,
  ensureConsumers,
  ensureStream,
  msgId,
  queueNames,
  taskSubject,
} from '../../../src/protocol/index.ts';
import type { QueueNames } from '../../../src/protocol/index.ts';
import { serverUrls, stopPrivateServers, uniqueName } from '../worker/support.ts';
import { uniqueStream } from '../../harness/index.ts';

let nc: NatsConnection;
let jsm: JetStreamManager;
const created: string[] = [];

function names(): QueueNames {
  const queue = queueNames({ stream: uniqueStream('TQ'), subjectPrefix: uniqueName('tq').replace('-', '_') });
  created.push(queue.stream);
  return queue;
}

before(async () => {
  nc = await connect({ servers: (await serverUrls()).natsUrl });
  jsm = await jetstreamManager(nc);
});

after(async () => {
  for (const stream of created) await jsm.streams.delete(stream).catch(() => undefined);
  await nc.close();
  await stopPrivateServers();
});

describe('ensureStream', () => {
  it('creates a WorkQueue file stream on the task subjects with a 1 h duplicate window', async () => {
    const queue = names();
    const info = await ensureStream(jsm, { names: queue });
    assert.equal(info.config.name, queue.stream);
    assert.deepEqual(info.config.subjects, [`${queue.subjectPrefix}.tasks.>`]);
    assert.equal(info.config.retention, RetentionPolicy.Workqueue);
    assert.equal(info.config.storage, StorageType.File);
    assert.equal(info.config.num_replicas, 1);
    assert.equal(info.config.duplicate_window, nanos(3_600_000));
  });

  it('is idempotent and repairs a changed duplicate window', async () => {
    const queue = names();
    const first = await ensureStream(jsm, { names: queue });
    const again = await ensureStream(jsm, { names: queue });
    assert.equal(again.created, first.created);
    await jsm.streams.update(queue.stream, { ...first.config, duplicate_window: nanos(60_000) });
    const repaired = await ensureStream(jsm, { names: queue });
    assert.equal(repaired.config.duplicate_window, nanos(3_600_000));
  });

  it('refuses a same-named stream with another retention, saying why', async () => {
    const queue = names();
    await jsm.streams.add({
      name: queue.stream,
      subjects: [`${queue.subjectPrefix}.tasks.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
    });
    await assert.rejects(ensureStream(jsm, { names: queue }), StreamConfigConflictError);
  });

  it('stores one message per Nats-Msg-Id <uid>:<attempt>', async () => {
    const queue = names();
    await ensureStream(jsm, { names: queue });
    const js = jetstream(nc);
    const subject = taskSubject(Kind.TranscriptionTask, Priority.Normal, queue);
    const publish = async (attempt: number) => {
      const h = headers();
      h.set('Nats-Msg-Id', msgId('uid-x', attempt));
      return js.publish(subject, '{}', { headers: h });
    };
    const a = await publish(1);
    const b = await publish(1);
    const c = await publish(2);
    assert.equal(a.duplicate, false);
    assert.equal(b.duplicate, true);
    assert.equal(c.duplicate, false);
    assert.equal((await jsm.streams.info(queue.stream)).state.messages, 2);
  });
});

describe('ensureConsumers', () => {
  it('creates the 8 durable pull consumers with explicit ack and unlimited deliveries', async () => {
    const queue = names();
    await ensureStream(jsm, { names: queue });
    const infos = await ensureConsumers(jsm, { names: queue, ackWaitMs: 60_000 });
    assert.equal(infos.length, 8);
    const byName = new Map(infos.map((i) => [i.name, i.config]));
    const high = byName.get('tq-transcription-high');
    assert.ok(high);
    assert.equal(high.durable_name, 'tq-transcription-high');
    assert.equal(high.filter_subject, `${queue.subjectPrefix}.tasks.transcription.high`);
    assert.equal(high.ack_policy, AckPolicy.Explicit);
    assert.equal(high.ack_wait, nanos(60_000));
    assert.equal(high.max_deliver, -1);
    assert.ok(byName.has('tq-diarization-low'));
    const listed = await jsm.consumers.list(queue.stream).next();
    assert.equal(listed.length, 8);
  });

  it('is idempotent and updates the ack wait in place', async () => {
    const queue = names();
    await ensureStream(jsm, { names: queue });
    const first = await ensureConsumers(jsm, { names: queue, ackWaitMs: 60_000 });
    const again = await ensureConsumers(jsm, { names: queue, ackWaitMs: 60_000 });
    assert.deepEqual(again.map((i) => i.created), first.map((i) => i.created));
    const changed = await ensureConsumers(jsm, { names: queue, ackWaitMs: 5_000 });
    assert.ok(changed.every((i) => i.config.ack_wait === nanos(5_000)));
    assert.equal((await jsm.consumers.info(queue.stream, 'tq-diarization-critical')).config.ack_wait, nanos(5_000));
  });

  it('works for two installations side by side on one server', async () => {
    const a = names();
    const b = names();
    await ensureStream(jsm, { names: a });
    await ensureStream(jsm, { names: b });
    await ensureConsumers(jsm, { names: a });
    await ensureConsumers(jsm, { names: b });
    const js = jetstream(nc);
    await js.publish(taskSubject(Kind.DiarizationTask, Priority.High, a), '{}');
    assert.equal((await jsm.consumers.info(a.stream, 'tq-diarization-high')).num_pending, 1);
    assert.equal((await jsm.consumers.info(b.stream, 'tq-diarization-high')).num_pending, 0);
  });
});
