// A backlog oscillating around a replica threshold faster than the
// scale-down delay must not move the Deployment back and forth: the scale
// writes are counted, as the apiserver receives them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sleep } from '../../harness/index.ts';
import { poolFixture } from './fixture.ts';

test('no flapping under a backlog oscillating between 2 and 3', async () => {
  const f = await poolFixture();
  try {
    await f.publish(2);
    let extra = await f.publish(1);
    await f.waitForReplicas('3 replicas', (r) => r === 3);
    await f.waitForStatus('backlog 3 in status', (s) => s.backlog === 3);
    const writesBefore = f.scaleWrites();

    // 2, 3, 2, 3, ... tasks, a change every 150 ms for about 3.5 s: longer
    // than the 2 s delay, but the need for 3 never stays away for all of it.
    // Counted in cycles, not wall time, so a slow machine makes the same changes.
    let changes = 0;
    for (let cycle = 0; cycle < 12; cycle++) {
      await f.remove(extra);
      await sleep(150);
      extra = await f.publish(1);
      await sleep(150);
      changes += 2;
    }
    assert.ok(changes >= 20, `${changes} backlog changes`);
    assert.equal(f.scaleWrites(), writesBefore, `no scale write during ${changes} backlog changes`);
    assert.equal(await f.specReplicas(), 3);

    // Settled at 2: exactly one scale-down, after the delay.
    await f.remove(extra);
    const settledAt = performance.now();
    await f.waitForReplicas('one step down to 2', (r) => r === 2);
    assert.ok(performance.now() - settledAt >= 2000);
    await sleep(2500);
    assert.equal(f.scaleWrites(), writesBefore + 1, 'one write for the whole episode');
    assert.equal(await f.specReplicas(), 2);
  } finally {
    await f.cleanup();
  }
});
