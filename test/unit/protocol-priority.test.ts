import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PRIORITIES, Priority } from '../../src/api/index.ts';
import { PRIORITY_CYCLE, priorityOrder } from '../../src/protocol/index.ts';

/** Simulates `pulls` pulls over backlogs, as a worker does: first non-empty priority in priorityOrder. */
function simulate(backlog: Partial<Record<Priority, number>>, pulls: number, refill: Priority[] = []): Priority[] {
  const left: Record<string, number> = { Low: 0, Normal: 0, High: 0, Critical: 0, ...backlog };
  const taken: Priority[] = [];
  for (let n = 0; taken.length < pulls; n++) {
    for (const p of refill) left[p] = (left[p] ?? 0) + 1;
    const pick = priorityOrder(taken.length).find((p) => (left[p] ?? 0) > 0);
    if (!pick) break;
    left[pick] = (left[pick] as number) - 1;
    taken.push(pick);
  }
  return taken;
}

describe('priority order', () => {
  it('weights the 15-slot cycle 8/4/2/1', () => {
    assert.equal(PRIORITY_CYCLE.length, 15);
    const counts = Object.fromEntries(PRIORITIES.map((p) => [p, PRIORITY_CYCLE.filter((s) => s === p).length]));
    assert.deepEqual(counts, { Low: 1, Normal: 2, High: 4, Critical: 8 });
  });

  it('tries the slot first, then the rest from the highest down', () => {
    for (let n = 0; n < 30; n++) {
      const order = priorityOrder(n);
      assert.equal(order[0], PRIORITY_CYCLE[n % 15]);
      assert.equal(new Set(order).size, 4);
      const rest = order.slice(1);
      const expected = [Priority.Critical, Priority.High, Priority.Normal, Priority.Low].filter((p) => p !== order[0]);
      assert.deepEqual(rest, expected);
    }
    assert.deepEqual(priorityOrder(15), priorityOrder(0));
  });

  it('never lets Low wait more than 15 pulls under a full backlog of everything', () => {
    const taken = simulate({}, 3000, [Priority.Low, Priority.Normal, Priority.High, Priority.Critical]);
    const lowAt = taken.flatMap((p, i) => (p === Priority.Low ? [i] : []));
    assert.equal(lowAt.length, 200);
    assert.ok(lowAt[0]! < 15);
    for (let i = 1; i < lowAt.length; i++) assert.ok(lowAt[i]! - lowAt[i - 1]! <= 15);
    // Each window of 15 is exactly the weights.
    for (let start = 0; start + 15 <= taken.length; start += 15) {
      const window = taken.slice(start, start + 15);
      assert.equal(window.filter((p) => p === Priority.Critical).length, 8);
      assert.equal(window.filter((p) => p === Priority.Low).length, 1);
    }
  });

  it('keeps Low moving under an endless stream of High', () => {
    const taken = simulate({ Low: 10 }, 200, [Priority.High]);
    const lowAt = taken.flatMap((p, i) => (p === Priority.Low ? [i] : []));
    assert.equal(lowAt.length, 10);
    assert.ok(lowAt.at(-1)! < 150);
  });

  it('gives Low every pull when nothing else waits', () => {
    assert.deepEqual(simulate({ Low: 20 }, 20), new Array(20).fill(Priority.Low));
  });

  it('serves Critical first when it is the only busy priority besides a trickle', () => {
    const taken = simulate({ Critical: 15, Low: 15 }, 30);
    assert.equal(taken.slice(0, 15).filter((p) => p === Priority.Critical).length, 14);
  });
});
