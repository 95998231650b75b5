// The scaling policy on its own: no servers, time moved by a FakeClock.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../../src/controller/runtime/clock.ts';
import {
  MAX_SAMPLES,
  decide,
  initialState,
  recommend,
  type ScalingBounds,
  type ScalingDecision,
  type ScalingState,
} from '../../src/controller/workerpool/policy.ts';

const SECOND = 1000;

function bounds(overrides: Partial<ScalingBounds> = {}): ScalingBounds {
  return { minReplicas: 0, maxReplicas: 4, tasksPerReplica: 1, scaleDownDelaySeconds: 60, ...overrides };
}

/**
 * A pool as the reconciler drives it: each pass feeds the policy what it
 * observes and applies the decision to its replicas, counting the writes.
 */
class SimulatedPool {
  readonly clock = new FakeClock();
  replicas: number;
  writes: { at: number; from: number; to: number }[] = [];
  state: ScalingState;
  last: ScalingDecision | undefined;
  bounds: ScalingBounds;
  activationBacklog: number | undefined;

  constructor(options: { bounds?: Partial<ScalingBounds>; replicas?: number; activationBacklog?: number } = {}) {
    this.bounds = bounds(options.bounds);
    this.replicas = options.replicas ?? 0;
    this.activationBacklog = options.activationBacklog;
    this.state = initialState(this.clock.now(), this.replicas);
  }

  pass(backlog: number, running = 0): ScalingDecision {
    const now = this.clock.now();
    const { decision, state } = decide(
      {
        now,
        bounds: this.bounds,
        backlog,
        running,
        current: this.replicas,
        ...(this.activationBacklog !== undefined ? { activationBacklog: this.activationBacklog } : {}),
      },
      this.state,
    );
    this.state = state;
    this.last = decision;
    if (decision.desired !== this.replicas) {
      this.writes.push({ at: now, from: this.replicas, to: decision.desired });
      this.replicas = decision.desired;
    }
    return decision;
  }

  advance(ms: number): void {
    this.clock.advance(ms);
  }
}

describe('recommend: the replicas the backlog calls for', () => {
  it('is ceil(backlog / tasksPerReplica) within minReplicas and maxReplicas', () => {
    const cases: [Partial<ScalingBounds>, number, number][] = [
      [{}, 0, 0],
      [{}, 1, 1],
      [{}, 3, 3],
      [{}, 10, 4],
      [{ tasksPerReplica: 3 }, 1, 1],
      [{ tasksPerReplica: 3 }, 3, 1],
      [{ tasksPerReplica: 3 }, 4, 2],
      [{ tasksPerReplica: 3, maxReplicas: 10 }, 29, 10],
      [{ minReplicas: 2 }, 0, 2],
      [{ minReplicas: 2 }, 1, 2],
      [{ minReplicas: 2 }, 3, 3],
    ];
    for (const [b, backlog, want] of cases) {
      const r = recommend({ bounds: bounds(b), backlog, running: 0, current: 0 });
      assert.equal(r.target, want, `bounds ${JSON.stringify(b)}, backlog ${backlog}`);
    }
  });

  it('says which bound cut the need', () => {
    assert.equal(recommend({ bounds: bounds(), backlog: 10, running: 0, current: 0 }).limited, 'max');
    assert.equal(recommend({ bounds: bounds(), backlog: 4, running: 0, current: 0 }).limited, undefined);
    assert.equal(recommend({ bounds: bounds({ minReplicas: 1 }), backlog: 0, running: 0, current: 0 }).limited, 'min');
    assert.equal(recommend({ bounds: bounds(), backlog: 0, running: 0, current: 0 }).limited, undefined);
  });

  it('keeps pods for running tasks but never grows the pool for them', () => {
    const held = recommend({ bounds: bounds(), backlog: 0, running: 3, current: 4 });
    assert.equal(held.target, 3);
    assert.equal(held.heldByRunning, true);
    const stale = recommend({ bounds: bounds(), backlog: 0, running: 3, current: 1 });
    assert.equal(stale.target, 1, 'a running count larger than the pool cannot make it grow');
  });

  it('activates from zero at the activation backlog, separately from the per-replica target', () => {
    const b = bounds({ tasksPerReplica: 5 });
    assert.equal(recommend({ bounds: b, backlog: 1, running: 0, current: 0 }).target, 1, 'one task for a 5-per-replica pool still wakes it');
    assert.equal(recommend({ bounds: b, backlog: 2, running: 0, current: 0, activationBacklog: 3 }).target, 0);
    assert.equal(recommend({ bounds: b, backlog: 3, running: 0, current: 0, activationBacklog: 3 }).target, 1);
    assert.equal(recommend({ bounds: b, backlog: 11, running: 0, current: 0, activationBacklog: 3 }).target, 3);
  });
});

describe('decide: when the replicas change', () => {
  it('scales up at once, to the maximum when the backlog exceeds it', () => {
    const pool = new SimulatedPool();
    const d = pool.pass(10);
    assert.equal(d.desired, 4);
    assert.equal(d.direction, 'up');
    assert.equal(d.limited, 'max');
    assert.deepEqual(pool.writes, [{ at: pool.clock.now(), from: 0, to: 4 }]);
  });

  it('wakes an empty pool with the first task', () => {
    const pool = new SimulatedPool({ bounds: { tasksPerReplica: 4 } });
    assert.equal(pool.pass(0).desired, 0);
    pool.advance(5 * SECOND);
    assert.equal(pool.pass(1).desired, 1);
  });

  it('scales down only after scaleDownDelaySeconds of lower need', () => {
    const pool = new SimulatedPool();
    pool.pass(10);
    pool.advance(SECOND);
    const drained = pool.clock.now();
    const held = pool.pass(0);
    assert.equal(held.desired, 4);
    assert.equal(held.direction, 'none');
    assert.equal(held.nextScaleDownAt, drained + 60 * SECOND, 'the reconciler is told when to come back');

    pool.advance(60 * SECOND - 1);
    assert.equal(pool.pass(0).desired, 4, 'one millisecond early');
    pool.advance(1);
    const down = pool.pass(0);
    assert.equal(down.desired, 0);
    assert.equal(down.direction, 'down');
    assert.equal(down.nextScaleDownAt, undefined);
    assert.deepEqual(
      pool.writes.map((w) => [w.from, w.to]),
      [
        [0, 4],
        [4, 0],
      ],
    );
  });

  it('restarts the delay whenever the need rises again', () => {
    const pool = new SimulatedPool();
    pool.pass(4);
    pool.advance(SECOND);
    pool.pass(0);
    pool.advance(30 * SECOND);
    pool.pass(4); // back up before the delay ran out
    pool.advance(SECOND);
    const lowAgain = pool.clock.now();
    assert.equal(pool.pass(0).nextScaleDownAt, lowAgain + 60 * SECOND);
    pool.advance(40 * SECOND); // 71 s after the first drain: the old clock would have fired
    assert.equal(pool.pass(0).desired, 4);
    pool.advance(20 * SECOND);
    assert.equal(pool.pass(0).desired, 0);
    assert.equal(pool.writes.length, 2);
  });

  it('comes down to the highest need of the last delay, step by step', () => {
    const pool = new SimulatedPool();
    pool.pass(4);
    pool.advance(SECOND);
    const t0 = pool.clock.now();
    pool.pass(3);
    pool.advance(10 * SECOND);
    pool.pass(1);
    pool.advance(50 * SECOND); // t0 + 60 s: 3 has been the most for a full delay
    const first = pool.pass(1);
    assert.equal(first.desired, 3);
    assert.equal(first.nextScaleDownAt, t0 + 70 * SECOND, 'next step when the 3 leaves the window');
    pool.advance(10 * SECOND);
    assert.equal(pool.pass(1).desired, 1);
    assert.deepEqual(
      pool.writes.map((w) => w.to),
      [4, 3, 1],
    );
  });

  it('never scales below the tasks running on the pool', () => {
    const pool = new SimulatedPool();
    pool.pass(4, 0);
    pool.advance(SECOND);
    pool.pass(0, 3);
    pool.advance(60 * SECOND);
    const held = pool.pass(0, 3);
    assert.equal(held.desired, 3);
    assert.equal(held.heldByRunning, true);
    pool.advance(120 * SECOND);
    assert.equal(pool.pass(0, 3).desired, 3, 'however long they run');
    pool.pass(0, 0); // they finished
    pool.advance(60 * SECOND);
    assert.equal(pool.pass(0, 0).desired, 0);
    assert.deepEqual(
      pool.writes.map((w) => w.to),
      [4, 3, 0],
    );
  });

  it('applies a lowered maxReplicas at once, except for pods with running tasks', () => {
    const pool = new SimulatedPool({ bounds: { maxReplicas: 8 } });
    pool.pass(8, 6);
    assert.equal(pool.replicas, 8);
    pool.bounds = bounds({ maxReplicas: 4 });
    pool.advance(SECOND);
    assert.equal(pool.pass(8, 6).desired, 6, 'six tasks keep six pods');
    pool.advance(SECOND);
    assert.equal(pool.pass(8, 5).desired, 5, 'above the maximum, every finished task frees its pod');
    pool.advance(SECOND);
    assert.equal(pool.pass(8, 0).desired, 4);
  });

  it('raises to a new minReplicas at once', () => {
    const pool = new SimulatedPool();
    pool.pass(0);
    pool.bounds = bounds({ minReplicas: 2 });
    const d = pool.pass(0);
    assert.equal(d.desired, 2);
    assert.equal(d.limited, 'min');
  });

  it('scales down at once with scaleDownDelaySeconds 0', () => {
    const pool = new SimulatedPool({ bounds: { scaleDownDelaySeconds: 0 } });
    pool.pass(4);
    pool.advance(1);
    assert.equal(pool.pass(1).desired, 1);
  });

  it('lets an idle pool below the activation backlog rest at zero after the delay', () => {
    const pool = new SimulatedPool({ activationBacklog: 3 });
    pool.pass(2);
    assert.equal(pool.replicas, 0, 'two tasks do not wake the pool');
    pool.pass(3);
    assert.equal(pool.replicas, 3);
    pool.advance(SECOND);
    pool.pass(2);
    pool.advance(60 * SECOND);
    assert.equal(pool.pass(2).desired, 0);
  });

  it('does not scale down right after a restart: the current replicas count as needed', () => {
    const clock = new FakeClock();
    const state = initialState(clock.now(), 4);
    const b = bounds();
    const first = decide({ now: clock.now(), bounds: b, backlog: 0, running: 0, current: 4 }, state);
    assert.equal(first.decision.desired, 4);
    clock.advance(60 * SECOND);
    const later = decide({ now: clock.now(), bounds: b, backlog: 0, running: 0, current: 4 }, first.state);
    assert.equal(later.decision.desired, 0);
  });
});

describe('decide: no flapping', () => {
  it('writes once under a backlog oscillating around a replica threshold', () => {
    const pool = new SimulatedPool();
    // 3 and 4 tasks in turn every half second for ten minutes: one scale-up, nothing after.
    for (let i = 0; i < 1200; i++) {
      pool.pass(i % 2 === 0 ? 4 : 3);
      pool.advance(500);
    }
    assert.deepEqual(
      pool.writes.map((w) => [w.from, w.to]),
      [[0, 4]],
    );
    // Once it settles at 3, one scale-down after the delay.
    pool.pass(3);
    pool.advance(60 * SECOND);
    pool.pass(3);
    assert.deepEqual(
      pool.writes.map((w) => w.to),
      [4, 3],
    );
  });

  it('writes once when tasksPerReplica makes the threshold fall between two backlogs', () => {
    const pool = new SimulatedPool({ bounds: { tasksPerReplica: 2, maxReplicas: 10 } });
    for (let i = 0; i < 600; i++) {
      pool.pass(i % 2 === 0 ? 5 : 4); // 3 replicas, then 2
      pool.advance(SECOND);
    }
    assert.equal(pool.writes.length, 1);
    assert.equal(pool.replicas, 3);
  });

  it('keeps a bounded memory under constant churn, erring towards holding replicas', () => {
    const pool = new SimulatedPool({ bounds: { maxReplicas: 1000, scaleDownDelaySeconds: 3600 } });
    pool.pass(900);
    for (let i = 0; i < 5000; i++) {
      pool.advance(100);
      pool.pass(i % 500);
    }
    assert.ok(pool.state.samples.length <= MAX_SAMPLES, `${pool.state.samples.length} samples kept`);
    assert.equal(pool.replicas, 900, 'an hour has not passed: nothing came down');
  });

  it('survives a clock stepping backwards without reordering its window', () => {
    const clock = new FakeClock();
    const b = bounds();
    let { state } = decide({ now: clock.now(), bounds: b, backlog: 4, running: 0, current: 0 }, initialState(clock.now(), 0));
    ({ state } = decide({ now: clock.now() - 5 * SECOND, bounds: b, backlog: 0, running: 0, current: 4 }, state));
    const times = state.samples.map((s) => s.at);
    assert.deepEqual(times, [...times].sort((x, y) => x - y));
  });
});
