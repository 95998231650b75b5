import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ProgressThrottle } from '../../src/worker/progress.ts';
import type { ProgressClock } from '../../src/worker/progress.ts';

/** A clock the test moves by hand; timers fire only when it is advanced. */
class ManualClock implements ProgressClock {
  time = 0;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private nextId = 1;

  now(): number {
    return this.time;
  }

  setTimer(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.push({ at: this.time + ms, fn, id });
    return id;
  }

  clearTimer(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }

  advance(ms: number): void {
    this.time += ms;
    const due = this.timers.filter((t) => t.at <= this.time);
    this.timers = this.timers.filter((t) => t.at > this.time);
    for (const t of due) t.fn();
  }

  get pendingTimers(): number {
    return this.timers.length;
  }
}

/** Lets queued writes run (they are chained on promises). */
const settle = () => new Promise((resolve) => setImmediate(resolve));

function setup() {
  const clock = new ManualClock();
  const written: number[] = [];
  const throttle = new ProgressThrottle({
    minIntervalMs: 250,
    clock,
    write: async (percent) => {
      written.push(percent);
    },
  });
  return { clock, written, throttle };
}

describe('progress throttle', () => {
  it('writes the first value at once and only integer changes after', async () => {
    const { written, throttle } = setup();
    throttle.report(0.4);
    throttle.report(0.9);
    await throttle.close();
    assert.deepEqual(written, [0]);
  });

  it('coalesces a burst into one write per interval, keeping the latest', async () => {
    const { clock, written, throttle } = setup();
    for (let i = 1; i <= 1000; i++) throttle.report(i / 100);
    await settle();
    assert.deepEqual(written, [0]);
    clock.advance(250);
    await settle();
    assert.deepEqual(written, [0, 10]);
    assert.equal(clock.pendingTimers, 0);
    clock.advance(1000);
    throttle.report(50);
    await throttle.close();
    assert.deepEqual(written, [0, 10, 50]);
  });

  it('clamps to 0..100 and ignores junk', async () => {
    const { clock, written, throttle } = setup();
    throttle.report(-5);
    clock.advance(300);
    throttle.report(250);
    clock.advance(300);
    throttle.report(Number.NaN);
    await throttle.close();
    assert.deepEqual(written, [0, 100]);
  });

  it('drops a waiting value on close unless asked to flush it', async () => {
    const dropped = setup();
    dropped.throttle.report(1);
    dropped.throttle.report(2);
    await dropped.throttle.close();
    assert.deepEqual(dropped.written, [1]);
    assert.equal(dropped.clock.pendingTimers, 0);

    const flushed = setup();
    flushed.throttle.report(1);
    flushed.throttle.report(2);
    await flushed.throttle.close(true);
    assert.deepEqual(flushed.written, [1, 2]);
  });

  it('takes nothing after close', async () => {
    const { written, throttle } = setup();
    await throttle.close();
    throttle.report(5);
    assert.deepEqual(written, []);
  });

  it('keeps writes in order and survives a failing one', async () => {
    const clock = new ManualClock();
    const written: number[] = [];
    const errors: unknown[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const throttle = new ProgressThrottle({
      minIntervalMs: 10,
      clock,
      onError: (err) => errors.push(err),
      write: async (percent) => {
        if (percent === 1) {
          await gate;
          throw new Error('redis away');
        }
        written.push(percent);
      },
    });
    throttle.report(1);
    clock.advance(10);
    throttle.report(2);
    release();
    await throttle.close();
    assert.deepEqual(written, [2]);
    assert.equal(errors.length, 1);
  });
});
