// One chaos run, start to finish: plan the tasks, start the rig, create the
// tasks at a steady rate while faults are injected on a schedule, wait for
// every task to settle once the faults stop, collect what each side
// recorded, and check it (checker.ts). run.ts is the command line; the
// short CI version (test/integration/chaos-short.test.ts) calls runChaos().
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { redisKeys } from '../../src/protocol/index.ts';
import { sleep } from '../harness/index.ts';
import { checkRun, type CheckReport, type RunData } from './checker.ts';
import { FAULT_KINDS, faultSchedule, injectFault, type FaultKind, type FaultRecord } from './faults.ts';
import { HistoryTail } from './history.ts';
import { CHAOS_NAMESPACE, Rig, type RigSettings } from './rig.ts';
import { Driver, makeAudio, planTasks, prng } from './workload.ts';

export interface ChaosOptions {
  tasks: number;
  seed: number;
  /** Each cycle injects every fault kind once, in a shuffled order; cycles go on until every task is created, at least this many. */
  cycles: number;
  /** Pause between two faults, seconds. */
  gapSeconds: number;
  /** Tasks created per second; by default spread over the minimum fault cycles, at most MAX_DEFAULT_RATE. */
  createRate?: number;
  /**
   * Once the faults and the creations are over, a task that has not reached
   * its end counts as stuck when no task at all has settled for this long
   * (the backlog is drained, what is left does not move)...
   */
  stallSeconds: number;
  /** ...or when this long has passed, whatever still moves. */
  settleSeconds: number;
  transcriptionWorkers: number;
  diarizationWorkers: number;
  cutSeconds: number;
  /** A paused worker stays stopped this long past the ack wait, seconds. */
  pauseExtraSeconds: number;
  /** Where logs, history and the report go; a new temporary directory by default. */
  dir?: string;
  /** Only these fault kinds (all by default). */
  only?: FaultKind[];
  log?: (line: string) => void;
}

export const DEFAULT_OPTIONS: ChaosOptions = {
  tasks: 1000,
  seed: 1,
  cycles: 3,
  gapSeconds: 6,
  stallSeconds: 150,
  settleSeconds: 1200,
  transcriptionWorkers: 4,
  diarizationWorkers: 3,
  cutSeconds: 8,
  pauseExtraSeconds: 5,
};

/** What two busy cores sustain with the default workers, tasks per second. */
const MAX_DEFAULT_RATE = 1.5;

export interface ChaosResult {
  dir: string;
  report: CheckReport;
}

/** Rough length of one fault, seconds, to spread the task creations over the fault phase. */
const FAULT_SECONDS: Record<FaultKind, number> = {
  'worker-sigkill': 5,
  'worker-sigterm': 6,
  'leader-sigkill': 5,
  'nats-restart': 3,
  'redis-restart-aof': 3,
  'redis-restart-no-aof': 4,
  'apiserver-restart': 10,
  'worker-pause': 15,
  'nats-cut': 8,
  'redis-cut': 8,
};

export async function runChaos(partial: Partial<ChaosOptions> = {}): Promise<ChaosResult> {
  const options: ChaosOptions = { ...DEFAULT_OPTIONS, ...partial };
  const log = options.log ?? ((line: string) => console.log(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}`));
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'tq-chaos-'));
  mkdirSync(dir, { recursive: true });
  const audioDir = join(dir, 'audio');
  const random = prng(options.seed * 7919);

  const plan = planTasks(options.tasks, options.seed);
  await makeAudio(audioDir, plan);
  const kinds = options.only ?? [...FAULT_KINDS];
  const cycle = () => faultSchedule(1, random).filter((k) => kinds.includes(k));
  const cycleSeconds = kinds.reduce((sum, k) => sum + FAULT_SECONDS[k] + options.gapSeconds, 0);
  const createRate = options.createRate ?? Math.min(MAX_DEFAULT_RATE, Math.max(0.2, options.tasks / Math.max(10, options.cycles * cycleSeconds)));
  log(`${options.tasks} tasks (seed ${options.seed}) at ${createRate.toFixed(2)}/s; fault cycles of ${kinds.length} kinds (about ${cycleSeconds}s each), at least ${options.cycles}, until every task is created; dir ${dir}`);

  const settings: RigSettings = {
    dir,
    ackWaitSeconds: 10,
    heartbeatTimeoutSeconds: 10,
    workerHeartbeatSeconds: 2,
    shutdownGraceSeconds: 3,
    transcriptionWorkers: options.transcriptionWorkers,
    diarizationWorkers: options.diarizationWorkers,
    chunkSeconds: 1,
    engine: { chunkSeconds: 0.4, longSeconds: 1.5, slowSeconds: 3 },
    audioDir,
  };
  const rig = new Rig(settings);
  let liveDriver: Driver | undefined;
  let stopRig = true;
  try {
    await rig.start(log);
    liveDriver = new Driver({ kc: rig.cp.kc, namespace: CHAOS_NAMESPACE, audioDir, log });
    const tail = new HistoryTail(rig.historyFile);
    await liveDriver.observe();
    const runStart = Date.now();

    // Tasks arrive at a steady rate for as long as they last.
    const driver = liveDriver;
    const creating = (async () => {
      const interval = 1000 / createRate;
      for (const task of plan) {
        const due = runStart + task.index * interval;
        if (due > Date.now()) await sleep(due - Date.now());
        void driver.create(task);
      }
    })();

    const faults: FaultRecord[] = [];
    let created = false;
    void creating.then(() => {
      created = true;
    });
    await sleep(5000);
    for (let c = 0; c < options.cycles || !created; c++) {
      for (const kind of cycle()) {
        const counts = `${driver.records.size} created, ${driver.unsettled().length} unsettled`;
        const record = await injectFault(kind, { rig, tail, random, cutSeconds: options.cutSeconds, pauseExtraSeconds: options.pauseExtraSeconds, log });
        faults.push(record);
        log(`fault ${faults.length} (cycle ${c + 1}) ${kind} on ${record.target}${record.uid ? ` (running ${record.uid.slice(0, 8)})` : ''} took ${record.end - record.start} ms; ${counts}`);
        await sleep(options.gapSeconds * 1000);
      }
    }
    const faultsEndedAt = Date.now();
    await creating;
    await driver.settleActions();
    const creationsEndedAt = Date.now();
    log(`faults over; all ${driver.records.size} tasks created; waiting for them to settle (stuck after ${options.stallSeconds}s without progress, or ${options.settleSeconds}s)`);

    const settleFrom = Math.max(faultsEndedAt, creationsEndedAt);
    const deadline = settleFrom + options.settleSeconds * 1000;
    let lastReport = 0;
    let lastLeft = Number.POSITIVE_INFINITY;
    let lastProgress = Date.now();
    while (Date.now() < deadline) {
      const left = driver.unsettled();
      if (left.length === 0) break;
      if (left.length < lastLeft) {
        lastLeft = left.length;
        lastProgress = Date.now();
      } else if (Date.now() - lastProgress > options.stallSeconds * 1000) {
        log(`no task settled for ${options.stallSeconds}s; ${left.length} left`);
        break;
      }
      if (Date.now() - lastReport > 15_000) {
        lastReport = Date.now();
        const phases = new Map<string, number>();
        for (const r of left) phases.set(r.lastStatus?.phase ?? 'none', (phases.get(r.lastStatus?.phase ?? 'none') ?? 0) + 1);
        log(`${left.length} tasks not settled: ${[...phases].map(([p, n]) => `${p} ${n}`).join(', ')}`);
      }
      await sleep(500);
    }
    const settledAt = Date.now();
    // A little longer, to see anything move that should not (a terminal phase changing, a run starting).
    await sleep(5000);

    const finalObjects = await driver.finalObjects();
    const redis = new Redis({ host: '127.0.0.1', port: rig.redis.port, maxRetriesPerRequest: 3 });
    const results: RunData['results'] = {};
    const states: RunData['states'] = {};
    try {
      for (const record of driver.records.values()) {
        if (!record.uid) continue;
        const keys = redisKeys('tq:', record.uid);
        const [result, state] = await Promise.all([redis.get(keys.result), redis.hgetall(keys.state)]);
        if (result !== null) results[record.uid] = result;
        if (Object.keys(state).length > 0) states[record.uid] = state;
      }
    } finally {
      redis.disconnect();
    }
    const streamMessages = await fetch(`${rig.nats.monitorUrl}/jsz?streams=true`)
      .then((r) => r.json() as Promise<{ account_details?: { stream_detail?: { name: string; state: { messages: number } }[] }[] }>)
      .then((j) => j.account_details?.flatMap((a) => a.stream_detail ?? []).find((s) => s.name === 'TASKQUEUE')?.state.messages)
      .catch(() => undefined);

    await driver.stop();
    await rig.stop();
    stopRig = false;

    const data: RunData = {
      options: { ...options, log: undefined } as unknown as RunData['options'],
      dir,
      runStart,
      faultsEndedAt,
      creationsEndedAt,
      settleDeadline: deadline,
      settledAt,
      records: [...driver.records.values()],
      faults,
      workerLives: rig.workers.flatMap((w) => w.lives),
      selfExits: rig.selfExits,
      controllerLogs: rig.controllers.map((c) => c.logFile),
      historyFile: rig.historyFile,
      finalObjects: Object.fromEntries([...finalObjects].map(([uid, obj]) => [uid, { name: obj.metadata?.name ?? '', kind: obj.kind ?? '', status: obj.status, spec: obj.spec }])),
      results,
      states,
      streamMessages,
      createErrors: driver.createErrors,
      createRate,
    };
    writeFileSync(join(dir, 'run-data.json'), JSON.stringify(data));
    const report = checkRun(data);
    writeFileSync(join(dir, 'report.json'), JSON.stringify(report, null, 2));
    return { dir, report };
  } finally {
    if (stopRig) {
      await liveDriver?.stop();
      await rig.stop();
    }
  }
}
