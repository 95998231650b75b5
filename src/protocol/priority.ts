import { PRIORITIES, Priority } from '../api/index.ts';

/**
 * One turn of the weighted cycle: Critical 8 slots, High 4, Normal 2, Low 1,
 * spread out (smooth weighted round robin) so no priority waits a whole
 * block of another's slots. Low holds one slot in 15, which bounds its wait
 * under a full backlog of everything else.
 */
export const PRIORITY_CYCLE: readonly Priority[] = [
  Priority.Critical,
  Priority.High,
  Priority.Critical,
  Priority.Normal,
  Priority.Critical,
  Priority.High,
  Priority.Critical,
  Priority.Low,
  Priority.Critical,
  Priority.High,
  Priority.Critical,
  Priority.Normal,
  Priority.Critical,
  Priority.High,
  Priority.Critical,
];

const HIGHEST_FIRST: readonly Priority[] = [...PRIORITIES].reverse();

/**
 * The order in which to try the four consumers on pull number `pullCount`
 * (counting from 0): the slot's priority first, then the rest from the
 * highest down. An empty consumer is skipped, so when only Low is waiting it
 * gets every pull.
 */
export function priorityOrder(pullCount: number): Priority[] {
  const index = ((Math.trunc(pullCount) % PRIORITY_CYCLE.length) + PRIORITY_CYCLE.length) % PRIORITY_CYCLE.length;
  const slot = PRIORITY_CYCLE[index] as Priority;
  return [slot, ...HIGHEST_FIRST.filter((p) => p !== slot)];
}
