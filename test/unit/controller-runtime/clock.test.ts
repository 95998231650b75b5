import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock, flushAsync, sleep } from '../../../src/controller/runtime/clock.ts';

describe('FakeClock', () => {
  it('fires due timers in order, each seeing its own due time', () => {
    const clock = new FakeClock(1000);
    const fired: [string, number][] = [];
    clock.setTimeout(() => fired.push(['b', clock.now()]), 200);
    clock.setTimeout(() => fired.push(['a', clock.now()]), 100);
    clock.setTimeout(() => fired.push(['c', clock.now()]), 200);
    clock.advance(150);
    assert.deepEqual(fired, [['a', 1100]]);
    assert.equal(clock.now(), 1150);
    clock.advance(50);
    assert.deepEqual(fired, [['a', 1100], ['b', 1200], ['c', 1200]]);
  });

  it('fires timers set by callbacks when they fall due within the same advance', () => {
    const clock = new FakeClock(0);
    const fired: number[] = [];
    clock.setTimeout(() => {
      fired.push(clock.now());
      clock.setTimeout(() => fired.push(clock.now()), 10);
    }, 10);
    clock.advance(25);
    assert.deepEqual(fired, [10, 20]);
  });

  it('clearTimeout cancels', () => {
    const clock = new FakeClock();
    let fired = false;
    const handle = clock.setTimeout(() => (fired = true), 10);
    clock.clearTimeout(handle);
    clock.advance(100);
    assert.equal(fired, false);
    assert.equal(clock.pendingTimers(), 0);
  });

  it('advanceAsync lets async chains schedule their next timer in time', async () => {
    const clock = new FakeClock(0);
    const ticks: number[] = [];
    const loop = (async () => {
      for (let i = 0; i < 3; i++) {
        await sleep(clock, 100);
        await Promise.resolve();
        ticks.push(clock.now());
      }
    })();
    await clock.advanceAsync(300);
    await loop;
    assert.deepEqual(ticks, [100, 200, 300]);
  });
});

describe('sleep', () => {
  it('rejects with the abort reason and clears its timer', async () => {
    const clock = new FakeClock();
    const controller = new AbortController();
    const slept = sleep(clock, 1000, controller.signal);
    controller.abort(new Error('stop'));
    await assert.rejects(slept, /stop/);
    assert.equal(clock.pendingTimers(), 0);
    await assert.rejects(sleep(clock, 1, AbortSignal.abort(new Error('already'))), /already/);
  });

  it('resolves once the clock reaches the time', async () => {
    const clock = new FakeClock();
    let done = false;
    void sleep(clock, 50).then(() => (done = true));
    clock.advance(49);
    await flushAsync();
    assert.equal(done, false);
    clock.advance(1);
    await flushAsync();
    assert.equal(done, true);
  });
});
