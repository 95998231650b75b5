// A running GPU task must not lose its pod: delivered-but-unacknowledged
// messages count as backlog, and the Running tasks of the pool are a floor
// that no scale-down crosses, however long the backlog stays empty.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jetstream, type JsMsg } from '@nats-io/jetstream';
import { Priority } from '../../../src/api/index.ts';
import { consumerName } from '../../../src/protocol/index.ts';
import { sleep } from '../../harness/index.ts';
import { KIND, poolFixture } from './fixture.ts';

test('scale-down keeps the pods of delivered messages and of Running tasks', async () => {
  const f = await poolFixture();
  try {
    const seqs = await f.publish(4);
    await f.waitForReplicas('4 replicas for 4 tasks', (r) => r === 4);

    // Three workers take a message each and keep working on it; the fourth
    // task is cancelled (its message removed).
    const consumer = await jetstream(f.nc).consumers.get(f.names.stream, consumerName(KIND, Priority.Normal));
    const taken: JsMsg[] = [];
    const batch = await consumer.fetch({ max_messages: 3, expires: 5000 });
    for await (const msg of batch) {
      taken.push(msg);
      if (taken.length === 3) break;
    }
    assert.equal(taken.length, 3);
    await f.remove([seqs[3] as number]);
    const three = await f.waitForStatus('backlog 3: the delivered messages still count', (s) => s.backlog === 3);
    assert.equal(three.desiredReplicas, 4, 'held through the delay');
    await f.waitForReplicas('4 → 3 after the delay', (r) => r === 3);

    // The tasks' CRs say Running; the workers acknowledge early (the queue
    // empties) but the runs go on. The pool must keep their three pods.
    f.running.count = 3;
    for (const msg of taken) msg.ack();
    await f.nc.flush();
    f.wake();
    await f.waitForStatus('backlog 0 with 3 running', (s) => s.backlog === 0 && s.running === 3);
    await sleep(3500); // well past scaleDownDelaySeconds (2 s), with a pass every wake-up and requeue
    f.wake();
    await sleep(300);
    assert.equal(await f.specReplicas(), 3, 'never below the Running count');
    const held = await f.waitForStatus('the hold in status', (s) =>
      s.conditions?.some((c) => c.type === 'ScalingActive' && c.reason === 'HeldByRunningTasks') ?? false,
    );
    assert.equal(held.desiredReplicas, 3);

    // The runs finish: after the delay, the pool empties.
    f.running.count = 0;
    f.wake();
    await f.waitForReplicas('0 once nothing runs', (r) => r === 0);
    assert.deepEqual(
      f.scales.filter((s) => s.direction === 'down').map((s) => [s.from, s.to]),
      [
        [4, 3],
        [3, 0],
      ],
    );
  } finally {
    await f.cleanup();
  }
});
