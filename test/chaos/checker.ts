// Checks a chaos run's history against what must always hold, and counts
// what may happen under at-least-once delivery. Pure: it reads RunData
// (written to <dir>/run-data.json by chaos.ts) plus the history and log
// files it names, so a run can be checked again offline with check.ts.
//
// Must hold (each counted; the run fails on any):
//   lost        an accepted task whose object vanished without the driver deleting it
//   stuck       a task not in a terminal phase (or, deleted, not gone) when the settle time ran out
//   noReason    a terminal phase without a reason
//   flipped     a terminal phase that later changed (to another phase or reason)
//   overlaps    two runs of one task on the engine at the same time
//   results     a Succeeded task without its result, or with another task's
//   attempts    status.attempts lower than an attempt the engine ran
// Counted and explained (at-least-once allows them):
//   duplicate completions, re-run chunks, attempt numbers no run used (gaps),
//   outcomes other than the task's flavour asked for.
import { readFileSync } from 'node:fs';
import { isTerminalPhase, type Phase, type TaskStatus } from '../../src/api/index.ts';
import { engineRuns, parseControllerLog, parseEngineHistory, parseWorkerLog, readText, type EngineCall, type EngineRun, type PublishEvent, type WorkerEvent } from './history.ts';
import type { FaultKind, FaultRecord } from './faults.ts';
import type { SelfExit, WorkerLife } from './rig.ts';
import type { Flavour, TaskRecord } from './workload.ts';

export interface RunData {
  options: Record<string, unknown>;
  dir: string;
  runStart: number;
  faultsEndedAt: number;
  creationsEndedAt: number;
  settleDeadline: number;
  settledAt: number;
  records: TaskRecord[];
  faults: FaultRecord[];
  workerLives: WorkerLife[];
  selfExits?: SelfExit[];
  controllerLogs: string[];
  historyFile: string;
  finalObjects: Record<string, { name: string; kind: string; status?: TaskStatus; spec?: Record<string, unknown> }>;
  results: Record<string, string>;
  states: Record<string, Record<string, string>>;
  streamMessages: number | undefined;
  createErrors: number;
  createRate: number;
}

export interface Finding {
  task: string;
  uid: string;
  detail: string;
}

export interface CheckReport {
  ok: boolean;
  figures: {
    tasksPlanned: number;
    tasksAccepted: number;
    createErrors: number;
    byKind: Record<string, number>;
    byFlavour: Record<string, number>;
    finalPhases: Record<string, number>;
    finalReasons: Record<string, number>;
    faults: Record<string, number>;
    faultsTotal: number;
    selfExits: Record<string, number>;
    engineCalls: number;
    engineRuns: number;
    workerStarts: number;
    lost: number;
    stuck: number;
    noReason: number;
    flipped: number;
    overlaps: number;
    overlapCauses: Record<string, number>;
    staleRuns: number;
    resultViolations: number;
    resultsLostWithRedis: number;
    attemptsUnderReported: number;
    attemptsMismatched: number;
    attemptGaps: number;
    attemptGapsUnexplained: number;
    duplicateCompletions: number;
    duplicateCompletionCauses: Record<string, number>;
    rerunChunks: number;
    rerunChunkCauses: Record<string, number>;
    outcomeOther: number;
    deletedRunsAfterGone: number;
    runsAfterTerminal: number;
    deletedKeysLeft: number;
    streamMessagesLeft: number | undefined;
    settleSeconds: number;
    lastSettledSeconds: number;
    runSeconds: number;
  };
  violations: Record<string, Finding[]>;
  notes: Record<string, Finding[]>;
}

const CAUSE_WINDOW_MS = 2000;

function count<T>(items: Iterable<T>, key: (item: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of items) out[key(item)] = (out[key(item)] ?? 0) + 1;
  return out;
}

function expectedOutcome(flavour: Flavour): { phase: string; reasons?: string[] } | undefined {
  switch (flavour) {
    case 'ok':
    case 'flaky1':
    case 'flaky2':
      return { phase: 'Succeeded' };
    case 'doomed':
      return { phase: 'Failed', reasons: ['MaxRetriesExceeded'] };
    case 'reject':
      return { phase: 'Failed', reasons: ['EngineRejected'] };
    case 'slow':
      return { phase: 'Failed', reasons: ['DeadlineExceeded'] };
    case 'cancel':
      return { phase: 'Cancelled' };
    case 'delete':
      return undefined;
  }
}

export function checkRun(data: RunData): CheckReport {
  const violations: Record<string, Finding[]> = {
    lost: [],
    stuck: [],
    noReason: [],
    flipped: [],
    overlaps: [],
    results: [],
    attemptsUnderReported: [],
  };
  const notes: Record<string, Finding[]> = {
    attemptsMismatched: [],
    attemptGapsUnexplained: [],
    duplicateCompletions: [],
    rerunChunks: [],
    outcomeOther: [],
    resultsLostWithRedis: [],
    deletedRunsAfterGone: [],
    deletedKeysLeft: [],
    engineWithoutStart: [],
    staleRuns: [],
    runsAfterTerminal: [],
  };
  const lives = new Map(data.workerLives.map((l) => [l.name, l]));
  const faultsOn = (worker: string) => data.faults.filter((f) => f.target === worker);
  const wipes = data.faults.filter((f) => f.kind === 'redis-restart-no-aof');

  // --- the engine's side -------------------------------------------------------
  const calls = parseEngineHistory(readText(data.historyFile));
  const endOfOpenCall = (call: EngineCall): number => {
    const life = lives.get(call.worker);
    return life?.endedAt ?? data.settledAt;
  };
  const runsByUid = engineRuns(calls, endOfOpenCall);

  // --- the workers' side -------------------------------------------------------
  const eventsByUid = new Map<string, WorkerEvent[]>();
  let workerStarts = 0;
  for (const life of data.workerLives) {
    for (const event of parseWorkerLog(readText(life.logFile), life.name)) {
      const list = eventsByUid.get(event.uid) ?? [];
      list.push(event);
      eventsByUid.set(event.uid, list);
      if (event.type === 'started') workerStarts++;
    }
  }
  for (const list of eventsByUid.values()) list.sort((a, b) => a.at - b.at);

  // --- the controllers' side: every publish, by task name --------------------
  const publishesByName = new Map<string, PublishEvent[]>();
  for (const file of data.controllerLogs) {
    for (const event of parseControllerLog(readText(file))) {
      const list = publishesByName.get(event.name) ?? [];
      list.push(event);
      publishesByName.set(event.name, list);
    }
  }

  const accepted = data.records.filter((r) => r.uid !== undefined);
  let attemptGaps = 0;
  let resultsLostWithRedis = 0;
  let deletedRunsAfterGone = 0;
  const duplicateCauses: Record<string, number> = {};
  const overlapCauses: Record<string, number> = {};
  const rerunCauses: Record<string, number> = {};
  let duplicateCompletions = 0;
  let rerunChunks = 0;

  /** Why a run that had already finished (or a chunk already done) ran again. */
  const causeOfRerun = (first: EngineRun, second: EngineRun, name: string): string => {
    const life = lives.get(first.worker);
    const between = (t: number) => t >= first.start - CAUSE_WINDOW_MS && t <= second.start;
    const onFirst = faultsOn(first.worker).filter((f) => between(f.start));
    if (onFirst.some((f) => f.kind === 'worker-pause')) return 'its worker was paused past the ack wait';
    const republished = (publishesByName.get(name) ?? []).find((p) => !p.duplicate && p.attempt === second.attempt && between(p.at));
    if (republished) return 'the controller queued the task again, as a new message, after a Redis restart without AOF';
    if (onFirst.some((f) => f.kind === 'worker-sigkill')) return 'its worker was killed (SIGKILL) before the outcome was recorded';
    if (onFirst.some((f) => f.kind === 'worker-sigterm')) return 'its worker was stopped (SIGTERM) and handed the task back';
    if (life?.endedAt !== undefined && between(life.endedAt)) return `its worker ended (${life.end})`;
    if (wipes.some((f) => between(f.start))) return 'Redis restarted without AOF: state and checkpoints lost';
    const natsRestart = data.faults.find((f) => f.kind === 'nats-restart' && f.start >= first.start - CAUSE_WINDOW_MS && f.start <= second.start);
    if (natsRestart) return 'JetStream delivered the message again right after a nats-server restart, while the first run went on';
    const other = data.faults.filter((f) => f.start <= second.start && f.end + CAUSE_WINDOW_MS >= first.start);
    if (other.length > 0) return `during ${[...new Set(other.map((f) => f.kind))].join(', ')}`;
    return 'unexplained';
  };

  for (const record of accepted) {
    const uid = record.uid as string;
    const plan = record.plan;
    const final = data.finalObjects[uid];
    const status = final?.status;
    const runs = runsByUid.get(uid) ?? [];
    const events = eventsByUid.get(uid) ?? [];
    const label = plan.name;
    const finding = (detail: string): Finding => ({ task: label, uid, detail });

    // Deleted tasks: gone, and nothing runs after.
    if (plan.flavour === 'delete' && record.deleteRequestedAt !== undefined) {
      if (final) violations.stuck?.push(finding(`deleted at ${iso(record.deleteRequestedAt)} but still there, phase ${status?.phase}`));
      const goneAt = record.goneAt ?? record.deleteRequestedAt;
      const late = runs.flatMap((r) => r.calls).filter((c) => c.start > goneAt + CAUSE_WINDOW_MS);
      if (late.length > 0) {
        deletedRunsAfterGone++;
        notes.deletedRunsAfterGone?.push(finding(`${late.length} engine calls started after the object was gone (first ${iso(late[0]!.start)}, gone ${iso(goneAt)})`));
      }
      if (data.states[uid] || data.results[uid]) {
        notes.deletedKeysLeft?.push(finding(`Redis keys left after deletion: ${data.states[uid] ? `state (phase ${data.states[uid]?.phase})` : ''} ${data.results[uid] ? 'result' : ''}`.trim()));
      }
      checkOverlaps(runs, finding, violations, notes, data, lives, (a, b) => causeOfRerun(a, b, label), overlapCauses);
      continue;
    }

    if (!final) {
      violations.lost?.push(finding(`the object is gone, though the driver never deleted it; last phase seen ${record.lastStatus?.phase}`));
      continue;
    }
    const phase = status?.phase;
    if (!isTerminalPhase(phase)) {
      violations.stuck?.push(finding(`phase ${phase ?? '(none)'} reason ${status?.reason} at the end: ${status?.message ?? ''}`));
    } else if (!status?.reason) {
      violations.noReason?.push(finding(`phase ${phase} without a reason`));
    }
    // Exactly one terminal phase: once terminal, the (phase, reason) never changes.
    const firstTerminal = record.transitions.findIndex((t) => isTerminalPhase(t.phase as Phase));
    if (firstTerminal >= 0) {
      const t0 = record.transitions[firstTerminal]!;
      const later = record.transitions.slice(firstTerminal + 1);
      const changed = later.find((t) => t.phase !== t0.phase || t.reason !== t0.reason);
      if (changed) violations.flipped?.push(finding(`${t0.phase}/${t0.reason} at ${iso(t0.at)}, then ${changed.phase}/${changed.reason} at ${iso(changed.at)}`));
      if (phase !== t0.phase && !changed) violations.flipped?.push(finding(`${t0.phase} seen, final ${phase}`));
    }

    // The outcome the flavour asked for.
    const expected = expectedOutcome(plan.flavour);
    if (expected && isTerminalPhase(phase)) {
      let fine = phase === expected.phase && (!expected.reasons || expected.reasons.includes(status?.reason ?? ''));
      // A cancel that arrived after the run had ended leaves its outcome: the
      // completion time is the worker's report, which may reach the status later.
      const endedAt = Date.parse(status?.completionTime ?? '');
      if (!fine && plan.flavour === 'cancel' && record.cancelledAt !== undefined && Number.isFinite(endedAt) && endedAt <= record.cancelledAt) fine = true;
      if (!fine) notes.outcomeOther?.push(finding(`${phase}/${status?.reason} (attempts ${status?.attempts}): ${status?.message ?? ''}`));
    }

    // Results.
    if (phase === 'Succeeded') {
      const expectedRef = `tq:{${uid}}:result`;
      const ref = status?.result?.ref;
      const summary = status?.result?.summary as { durationSeconds?: number } | undefined;
      const raw = data.results[uid];
      const completedAt = Date.parse(status?.completionTime ?? '') || record.terminalAt || 0;
      if (ref !== expectedRef) violations.results?.push(finding(`status.result.ref is ${ref}, expected ${expectedRef}`));
      if (summary?.durationSeconds !== plan.durationMs / 1000) {
        violations.results?.push(finding(`status.result.summary.durationSeconds ${summary?.durationSeconds}, its audio is ${plan.durationMs / 1000}s`));
      }
      if (raw === undefined) {
        const wiped = wipes.find((f) => f.start >= completedAt - CAUSE_WINDOW_MS);
        if (wiped) {
          resultsLostWithRedis++;
          notes.resultsLostWithRedis?.push(finding(`result gone: completed ${iso(completedAt)}, Redis restarted without AOF at ${iso(wiped.start)}`));
        } else {
          violations.results?.push(finding(`no result at ${expectedRef}`));
        }
      } else {
        const problem = resultProblem(raw, uid, plan.kind, plan.durationMs / 1000);
        if (problem) violations.results?.push(finding(problem));
      }
    }

    // Nothing runs a task once its status is terminal (a stray message would).
    if (record.terminalAt !== undefined) {
      const late = runs.flatMap((r) => r.calls).filter((c) => c.start > (record.terminalAt as number) + CAUSE_WINDOW_MS);
      if (late.length > 0) {
        notes.runsAfterTerminal?.push(finding(`${late.length} engine calls (attempt ${[...new Set(late.map((c) => c.attempt))].join(', ')}) started after the status was ${record.transitions.find((t) => isTerminalPhase(t.phase as Phase))?.phase} at ${iso(record.terminalAt)}`));
      }
    }

    // Overlaps.
    checkOverlaps(runs, finding, violations, notes, data, lives, (a, b) => causeOfRerun(a, b, label), overlapCauses);

    // Attempts.
    const attempts = status?.attempts ?? 0;
    const maxEngine = Math.max(0, ...runs.map((r) => r.attempt));
    if (maxEngine > attempts) {
      violations.attemptsUnderReported?.push(finding(`status.attempts ${attempts}, but the engine ran attempt ${maxEngine}`));
    }
    const started = events.filter((e) => e.type === 'started');
    const maxStarted = Math.max(0, ...started.map((e) => e.attempt));
    if (attempts !== maxStarted) {
      const decided = events.filter((e) => e.type === 'failed-no-attempts' || e.type === 'cancelled-before-start');
      const explained =
        decided.some((e) => e.attempt === attempts || (e.type === 'failed-no-attempts' && attempts === plan.maxRetries + 1)) ||
        (attempts === 0 && started.length === 0);
      if (!explained) {
        notes.attemptsMismatched?.push(finding(`status.attempts ${attempts}, highest attempt a worker started ${maxStarted}; worker events: ${describeEvents(events)}`));
      }
    }
    // Attempt numbers below the last that no worker started: deliveries that ended before the run began.
    const startedSet = new Set(started.map((e) => e.attempt));
    for (let a = 1; a < Math.max(attempts, maxStarted); a++) {
      if (startedSet.has(a)) continue;
      attemptGaps++;
      const before = started.filter((e) => e.attempt < a).map((e) => e.at);
      const after = started.filter((e) => e.attempt > a).map((e) => e.at);
      const from = before.length ? Math.max(...before) : (record.createdAt ?? data.runStart);
      const to = after.length ? Math.min(...after) : data.settledAt;
      const during = data.faults.filter((f) => f.start <= to && f.end + CAUSE_WINDOW_MS >= from);
      if (during.length === 0) {
        notes.attemptGapsUnexplained?.push(finding(`attempt ${a} of ${attempts} never started, and no fault fell between ${iso(from)} and ${iso(to)}; events: ${describeEvents(events)}`));
      }
    }
    for (const run of runs) {
      if (!started.some((e) => e.attempt === run.attempt && e.worker === run.worker)) {
        notes.engineWithoutStart?.push(finding(`engine ran attempt ${run.attempt} on ${run.worker} with no Started in its log`));
      }
    }

    // Duplicate completions: more than one run finished the engine work.
    const completed = runs.filter((r) => r.completed);
    if (completed.length > 1) {
      duplicateCompletions++;
      const causes = completed.slice(1).map((r, i) => causeOfRerun(completed[i] as EngineRun, r, label));
      for (const cause of causes) duplicateCauses[cause] = (duplicateCauses[cause] ?? 0) + 1;
      notes.duplicateCompletions?.push(finding(`${completed.length} runs completed (${completed.map((r) => `attempt ${r.attempt} on ${r.worker}`).join(', ')}): ${causes.join('; ')}`));
    }
    // Chunks done twice: work a checkpoint should have saved.
    const doneChunks = new Map<number, EngineRun>();
    for (const run of runs) {
      for (const call of run.calls) {
        if (call.outcome !== 'ok') continue;
        const earlier = doneChunks.get(call.chunk);
        if (earlier && earlier !== run) {
          rerunChunks++;
          const cause = causeOfRerun(earlier, run, label);
          rerunCauses[cause] = (rerunCauses[cause] ?? 0) + 1;
          if (cause === 'unexplained') notes.rerunChunks?.push(finding(`chunk ${call.chunk} ran again in attempt ${run.attempt} on ${run.worker} after attempt ${earlier.attempt} on ${earlier.worker}`));
        } else if (!earlier) {
          doneChunks.set(call.chunk, run);
        }
      }
    }
  }

  const finalList = accepted.map((r) => data.finalObjects[r.uid as string]).filter((o) => o !== undefined);
  const attemptsGapsUnexplained = notes.attemptGapsUnexplained?.length ?? 0;
  const figures: CheckReport['figures'] = {
    tasksPlanned: data.records.length,
    tasksAccepted: accepted.length,
    createErrors: data.createErrors,
    byKind: count(accepted, (r) => r.plan.kind),
    byFlavour: count(accepted, (r) => r.plan.flavour),
    finalPhases: count(accepted, (r) => data.finalObjects[r.uid as string]?.status?.phase ?? (r.plan.flavour === 'delete' ? 'deleted' : 'missing')),
    finalReasons: count(finalList, (o) => `${o.status?.phase}/${o.status?.reason}`),
    faults: count(data.faults, (f) => f.kind),
    faultsTotal: data.faults.length,
    selfExits: count(data.selfExits ?? [], (e) => (e.who.startsWith('ctl-') ? 'controller' : 'worker')),
    engineCalls: calls.length,
    engineRuns: [...runsByUid.values()].reduce((n, l) => n + l.length, 0),
    workerStarts,
    lost: violations.lost?.length ?? 0,
    stuck: violations.stuck?.length ?? 0,
    noReason: violations.noReason?.length ?? 0,
    flipped: violations.flipped?.length ?? 0,
    overlaps: violations.overlaps?.length ?? 0,
    overlapCauses,
    staleRuns: notes.staleRuns?.length ?? 0,
    resultViolations: violations.results?.length ?? 0,
    resultsLostWithRedis,
    attemptsUnderReported: violations.attemptsUnderReported?.length ?? 0,
    attemptsMismatched: notes.attemptsMismatched?.length ?? 0,
    attemptGaps,
    attemptGapsUnexplained: attemptsGapsUnexplained,
    duplicateCompletions,
    duplicateCompletionCauses: duplicateCauses,
    rerunChunks,
    rerunChunkCauses: rerunCauses,
    outcomeOther: notes.outcomeOther?.length ?? 0,
    deletedRunsAfterGone,
    runsAfterTerminal: notes.runsAfterTerminal?.length ?? 0,
    deletedKeysLeft: notes.deletedKeysLeft?.length ?? 0,
    streamMessagesLeft: data.streamMessages,
    settleSeconds: Math.round((data.settledAt - Math.max(data.faultsEndedAt, data.creationsEndedAt)) / 100) / 10,
    lastSettledSeconds: lastSettled(data),
    runSeconds: Math.round((data.settledAt - data.runStart) / 1000),
  };
  const ok = Object.values(violations).every((list) => list.length === 0);
  return { ok, figures, violations, notes };
}

/**
 * A frozen engine call that ends this soon after SIGCONT ended on waking
 * (stopped by its worker, or it was in its last instruction when frozen):
 * a process wakes before anything can stop it.
 */
const ENDED_ON_WAKING_MS = 1000;

function stoppedOnResume(call: EngineCall, resumedAt: number): boolean {
  return call.start < resumedAt && call.end !== undefined && call.end <= resumedAt + ENDED_ON_WAKING_MS;
}

/**
 * [start, end] less the windows in which the worker was frozen (SIGSTOP):
 * when it really ran. A run whose only activity after SIGCONT is a frozen
 * call that ended within ENDED_ON_WAKING_MS ends at the SIGCONT.
 */
function runningSpans(run: EngineRun, data: RunData): [number, number][] {
  let spans: [number, number][] = [[run.start, run.end]];
  for (const f of data.faults) {
    if (f.kind !== 'worker-pause' || f.target !== run.worker) continue;
    const after = run.calls.filter((c) => (c.end ?? Number.POSITIVE_INFINITY) > f.end);
    const cutTo = after.length > 0 && after.every((c) => stoppedOnResume(c, f.end)) ? run.end : f.end;
    spans = spans.flatMap(([a, b]): [number, number][] => {
      if (cutTo <= a || f.start >= b) return [[a, b]];
      const out: [number, number][] = [];
      if (f.start > a) out.push([a, f.start]);
      if (cutTo < b) out.push([cutTo, b]);
      return out;
    });
  }
  return spans;
}

function intersection(a: [number, number][], b: [number, number][]): number {
  let total = 0;
  for (const [a0, a1] of a) for (const [b0, b1] of b) total += Math.max(0, Math.min(a1, b1) - Math.max(a0, b0));
  return total;
}

/**
 * Two runs of one task on the engine at the same time. Time a worker spent
 * frozen does not count (it ran nothing); what a resumed worker does after
 * another attempt took the task over is reported as a stale run, whether or
 * not it overlapped.
 */
/** Seconds from the end of the faults and creations to the last task that did settle. */
function lastSettled(data: RunData): number {
  const from = Math.max(data.faultsEndedAt, data.creationsEndedAt);
  const times = data.records.map((r) => (r.plan.flavour === 'delete' && r.deleteRequestedAt !== undefined ? r.goneAt : r.terminalAt)).filter((t): t is number => t !== undefined);
  return Math.max(0, Math.round((Math.max(from, ...times) - from) / 100) / 10);
}

function checkOverlaps(
  runs: EngineRun[],
  finding: (detail: string) => Finding,
  violations: Record<string, Finding[]>,
  notes: Record<string, Finding[]>,
  data: RunData,
  lives: Map<string, WorkerLife>,
  causeOf: (first: EngineRun, second: EngineRun) => string,
  causes: Record<string, number>,
): void {
  for (let i = 0; i < runs.length; i++) {
    for (let j = i + 1; j < runs.length; j++) {
      const a = runs[i] as EngineRun;
      const b = runs[j] as EngineRun;
      const overlap = intersection(runningSpans(a, data), runningSpans(b, data));
      if (overlap <= 0) continue;
      const open = (r: EngineRun) => (r.calls.some((c) => c.end === undefined) ? ` (${r.worker} ${lives.get(r.worker)?.end ?? 'open'})` : '');
      const cause = causeOf(a, b);
      causes[cause] = (causes[cause] ?? 0) + 1;
      violations.overlaps?.push(
        finding(
          `attempt ${a.attempt} on ${a.worker}${open(a)} [${iso(a.start)}..${iso(a.end)}] and attempt ${b.attempt} on ${b.worker}${open(b)} [${iso(b.start)}..${iso(b.end)}] ran together for ${overlap} ms: ${cause}`,
        ),
      );
    }
  }
  // Stale runs: engine calls a resumed worker started for an attempt that a later attempt had already replaced.
  for (const run of runs) {
    const pause = data.faults.find((f) => f.kind === 'worker-pause' && f.target === run.worker && f.start < run.end && f.end > run.start);
    if (!pause) continue;
    const newer = runs.filter((r) => r.attempt > run.attempt && r.start < pause.end);
    if (newer.length === 0) continue;
    const after = run.calls.filter((c) => c.start >= pause.end);
    const finishedAfter = run.calls.filter((c) => c.start < pause.end && (c.end ?? 0) > pause.end && !stoppedOnResume(c, pause.end));
    if (after.length + finishedAfter.length === 0) continue;
    notes.staleRuns?.push(
      finding(
        `${run.worker} was paused ${iso(pause.start)}..${iso(pause.end)} during attempt ${run.attempt}; attempt ${newer.map((r) => `${r.attempt} on ${r.worker}`).join(', ')} took over, yet after SIGCONT it finished ${finishedAfter.length} engine call(s) and started ${after.length} more (last ending ${iso(run.end)}${run.completed ? ', completing the task' : ''})`,
      ),
    );
  }
}

function resultProblem(raw: string, uid: string, kind: string, durationSeconds: number): string | undefined {
  let result: { durationSeconds?: number; text?: string; segments?: { text?: string; speaker?: string }[]; speakers?: number };
  try {
    result = JSON.parse(raw) as typeof result;
  } catch {
    return 'the result is not JSON';
  }
  if (result.durationSeconds !== durationSeconds) return `result.durationSeconds ${result.durationSeconds}, its audio is ${durationSeconds}s (another task's result?)`;
  const segments = result.segments ?? [];
  if (segments.length === 0) return 'the result has no segments';
  if (kind === 'TranscriptionTask') {
    const foreign = segments.find((s) => !(s.text ?? '').includes(`uid=${uid} `));
    if (foreign) return `a segment of the result belongs to another task: ${JSON.stringify(foreign.text)}`;
  } else if (!segments.every((s) => typeof s.speaker === 'string')) {
    return 'a diarization segment has no speaker';
  }
  return undefined;
}

function describeEvents(events: WorkerEvent[]): string {
  return events.map((e) => `${e.type}#${e.attempt}@${e.worker}`).join(' ') || '(none)';
}

function iso(ms: number): string {
  return new Date(ms).toISOString().slice(11, 23);
}

/** The figures as a Markdown table, for README.md and the console. */
export function formatReport(report: CheckReport, data: Pick<RunData, 'options'>): string {
  const f = report.figures;
  const faults = Object.entries(f.faults)
    .sort()
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  const causes = (c: Record<string, number>) =>
    Object.entries(c)
      .map(([k, n]) => `${n}× ${k}`)
      .join('; ') || 'none';
  const rows: [string, string][] = [
    ['verdict', report.ok ? 'PASS' : 'FAIL'],
    ['tasks accepted / planned', `${f.tasksAccepted} / ${f.tasksPlanned} (${Object.entries(f.byKind).map(([k, n]) => `${k} ${n}`).join(', ')})`],
    ['task mix', Object.entries(f.byFlavour).map(([k, n]) => `${k} ${n}`).join(', ')],
    ['final phases', Object.entries(f.finalPhases).map(([k, n]) => `${k} ${n}`).join(', ')],
    ['faults injected', `${f.faultsTotal}: ${faults}`],
    ['processes that exited on their own (restarted)', Object.entries(f.selfExits).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'],
    ['engine calls / runs / worker starts', `${f.engineCalls} / ${f.engineRuns} / ${f.workerStarts}`],
    ['lost (goal 0)', String(f.lost)],
    ['stuck (goal 0)', String(f.stuck)],
    ['terminal phase without reason / changed after terminal', `${f.noReason} / ${f.flipped}`],
    ['overlapping runs (goal 0)', `${f.overlaps}: ${causes(f.overlapCauses)}`],
    ['stale runs: a resumed worker went on with a task another attempt had taken', String(f.staleRuns)],
    ['result violations (missing, foreign, wrong ref)', String(f.resultViolations)],
    ['results lost with a Redis restart without AOF', String(f.resultsLostWithRedis)],
    ['status.attempts below an attempt that ran', String(f.attemptsUnderReported)],
    ['status.attempts ≠ last attempt started (unexplained)', String(f.attemptsMismatched)],
    ['attempt numbers no run used (unexplained by a fault)', `${f.attemptGaps} (${f.attemptGapsUnexplained})`],
    ['duplicate completions', `${f.duplicateCompletions}: ${causes(f.duplicateCompletionCauses)}`],
    ['chunks run again', `${f.rerunChunks}: ${causes(f.rerunChunkCauses)}`],
    ['outcome other than the flavour asked for', String(f.outcomeOther)],
    ['tasks run again after their status was terminal', String(f.runsAfterTerminal)],
    ['deleted tasks: runs after gone / Redis keys left', `${f.deletedRunsAfterGone} / ${f.deletedKeysLeft}`],
    ['messages left in the stream', String(f.streamMessagesLeft ?? 'unknown')],
    ['after the faults and creations ended: last task settled / wait ended', `${f.lastSettledSeconds} s / ${f.settleSeconds} s`],
    ['run length', `${f.runSeconds} s`],
  ];
  const table = ['| figure | value |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
  const details: string[] = [];
  for (const [group, list] of [...Object.entries(report.violations), ...Object.entries(report.notes)]) {
    if (list.length === 0) continue;
    details.push(`\n${group} (${list.length}):`);
    for (const item of list.slice(0, 15)) details.push(`  ${item.task} ${item.uid.slice(0, 8)}: ${item.detail}`);
    if (list.length > 15) details.push(`  … ${list.length - 15} more`);
  }
  return `${table}\n${details.join('\n')}\noptions: ${JSON.stringify(data.options)}`;
}

export function loadRunData(path: string): RunData {
  return JSON.parse(readFileSync(path, 'utf8')) as RunData;
}

export type { FaultKind };
