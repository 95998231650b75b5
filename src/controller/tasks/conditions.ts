import { ConditionStatus, ConditionType, Phase, type Condition } from '../../api/index.ts';

export interface ConditionInput {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
}

/**
 * Returns `conditions` with `next` set. `lastTransitionTime` moves only when
 * the status flips, as the API conventions ask, so a progress update never
 * looks like a transition.
 */
export function setCondition(conditions: readonly Condition[] | undefined, next: ConditionInput, now: Date, observedGeneration: number | undefined): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === next.type);
  const previous = index >= 0 ? list[index] : undefined;
  const condition: Condition = {
    type: next.type,
    status: next.status,
    reason: next.reason,
    message: next.message,
    lastTransitionTime: previous && previous.status === next.status ? previous.lastTransitionTime : now.toISOString(),
    ...(observedGeneration !== undefined ? { observedGeneration } : {}),
  };
  if (index >= 0) list[index] = condition;
  else list.push(condition);
  return list;
}

const T = ConditionStatus.True;
const F = ConditionStatus.False;

/**
 * The conditions DESIGN.md lists, derived from the phase. `Ready` follows
 * kstatus: True only once the task has succeeded, so Argo CD and Flux see a
 * task in progress as progressing and a failed one as not ready.
 */
export function conditionsForPhase(phase: Phase, reason: string, message: string): ConditionInput[] {
  const is = (p: Phase) => phase === p;
  const queued = is(Phase.Queued) || is(Phase.Retrying);
  return [
    { type: ConditionType.Ready, status: is(Phase.Succeeded) ? T : F, reason, message },
    { type: ConditionType.Queued, status: queued ? T : F, reason, message },
    { type: ConditionType.Running, status: is(Phase.Running) ? T : F, reason, message },
    { type: ConditionType.Succeeded, status: is(Phase.Succeeded) ? T : F, reason, message },
    { type: ConditionType.Failed, status: is(Phase.Failed) ? T : F, reason, message },
  ];
}
