// The chaos run's load: which tasks to create (a seeded mix of kinds,
// priorities and behaviours), the audio they point at, and the client side
// that creates, cancels and deletes them while faults are injected, and
// records every status it sees.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { API_VERSION, GROUP, PLURALS, VERSION, isTerminalPhase, type TaskKind, type TaskStatus } from '../../src/api/index.ts';
import { Informer, KubeClient, isAlreadyExists, isNotFound, silentLogger, type ResourceRef } from '../../src/controller/runtime/index.ts';
import { sleep } from '../harness/index.ts';

const execFileAsync = promisify(execFile);

/**
 * What a task is meant to do; the engine reads it from the task's name.
 *   ok        succeeds (retried through whatever the faults do to it)
 *   flaky1/2  the engine fails its first 1 or 2 attempts, then it succeeds
 *   doomed    the engine fails every attempt: Failed, MaxRetriesExceeded
 *   reject    the engine says the input can never work: Failed, EngineRejected, one attempt
 *   slow      runs past timeoutSeconds: Failed, DeadlineExceeded
 *   cancel    spec.cancel is set while it waits or runs: Cancelled
 *   delete    the object is deleted while it waits or runs: gone, and its runs stop
 */
export type Flavour = 'ok' | 'flaky1' | 'flaky2' | 'doomed' | 'reject' | 'slow' | 'cancel' | 'delete';

const FLAVOUR_WEIGHTS: [Flavour, number][] = [
  ['ok', 66],
  ['flaky1', 6],
  ['flaky2', 4],
  ['doomed', 3],
  ['reject', 2],
  ['slow', 3],
  ['cancel', 8],
  ['delete', 8],
];
const PRIORITIES = ['Low', 'Normal', 'High', 'Critical'] as const;

export interface PlannedTask {
  index: number;
  name: string;
  kind: TaskKind;
  flavour: Flavour;
  priority: (typeof PRIORITIES)[number];
  /** Unique per task (up to 3,000 tasks): the result's duration says whose audio it was made from. */
  durationMs: number;
  maxRetries: number;
  timeoutSeconds: number;
  /** For cancel and delete: how long after creation the driver acts. */
  actAfterMs?: number;
}

/** A small, seeded PRNG (mulberry32): the same seed plans the same run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(random: () => number, weighted: [T, number][]): T {
  const total = weighted.reduce((sum, [, w]) => sum + w, 0);
  let r = random() * total;
  for (const [value, w] of weighted) {
    r -= w;
    if (r < 0) return value;
  }
  return weighted[weighted.length - 1]![0];
}

export function planTasks(count: number, seed: number): PlannedTask[] {
  const random = prng(seed);
  const tasks: PlannedTask[] = [];
  for (let index = 0; index < count; index++) {
    const flavour = pick(random, FLAVOUR_WEIGHTS);
    const kind: TaskKind = random() < 0.7 ? 'TranscriptionTask' : 'DiarizationTask';
    const priority = PRIORITIES[Math.floor(random() * PRIORITIES.length)] as PlannedTask['priority'];
    // 2963 is prime to 3000, so index -> duration is one-to-one below 3,000 tasks.
    const durationMs = 2000 + ((index * 2963) % 3000);
    const maxRetries = flavour === 'doomed' ? 1 : flavour === 'ok' || flavour === 'cancel' || flavour === 'delete' ? 8 : 4;
    tasks.push({
      index,
      name: `c${String(index).padStart(4, '0')}-${flavour}`,
      kind,
      flavour,
      priority,
      durationMs,
      maxRetries,
      timeoutSeconds: flavour === 'slow' ? 2 : 300,
      ...(flavour === 'cancel' || flavour === 'delete' ? { actAfterMs: 500 + Math.floor(random() * 7000) } : {}),
    });
  }
  return tasks;
}

export function audioPath(audioDir: string, durationMs: number): string {
  return join(audioDir, `tone-${durationMs}.wav`);
}

/** One WAV per distinct duration, 16 kHz mono (what the chunks are cut to anyway). */
export async function makeAudio(audioDir: string, tasks: readonly PlannedTask[]): Promise<void> {
  mkdirSync(audioDir, { recursive: true });
  const durations = [...new Set(tasks.map((t) => t.durationMs))];
  let next = 0;
  const worker = async () => {
    while (next < durations.length) {
      const ms = durations[next++] as number;
      const path = audioPath(audioDir, ms);
      if (existsSync(path)) continue;
      await execFileAsync('sox', ['-n', '-r', '16000', '-c', '1', '-b', '16', path, 'synth', (ms / 1000).toFixed(3), 'sine', '440']);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

export function taskRef(kind: TaskKind): ResourceRef {
  return { group: GROUP, version: VERSION, plural: PLURALS[kind] };
}

export interface TaskObject extends KubernetesObject {
  spec?: Record<string, unknown>;
  status?: TaskStatus;
}

/** What the driver and the observer know of one task. */
export interface TaskRecord {
  plan: PlannedTask;
  uid?: string;
  createdAt?: number;
  /** When the cancel patch or the delete call was accepted by the apiserver. */
  cancelledAt?: number;
  deleteRequestedAt?: number;
  /** When the observer saw the object go (watch DELETED). */
  goneAt?: number;
  /** Every distinct (phase, reason) the observer saw, in order. */
  transitions: { at: number; phase: string; reason?: string; attempts?: number }[];
  /** First time a terminal phase was seen. */
  terminalAt?: number;
  lastStatus?: TaskStatus;
}

export interface DriverOptions {
  kc: KubeConfig;
  namespace: string;
  audioDir: string;
  log: (line: string) => void;
}

/** Creates, cancels and deletes the planned tasks, retrying through apiserver outages. */
export class Driver {
  readonly records = new Map<string, TaskRecord>();
  readonly byUid = new Map<string, TaskRecord>();
  readonly client: KubeClient;
  private readonly options: DriverOptions;
  private readonly informers: Informer<TaskObject>[] = [];
  private readonly pending = new Set<Promise<void>>();
  createErrors = 0;
  private lastRetryLog = 0;
  private retriesSinceLog = 0;

  constructor(options: DriverOptions) {
    this.options = options;
    this.client = new KubeClient(options.kc, { qps: 200, burst: 400, requestTimeoutMs: 15_000 });
  }

  /** Starts watching both kinds; every status change of a planned task is recorded. */
  async observe(): Promise<void> {
    for (const kind of ['TranscriptionTask', 'DiarizationTask'] as const) {
      const informer = new Informer<TaskObject>({
        client: this.client,
        resource: taskRef(kind),
        namespace: this.options.namespace,
        resyncPeriodMs: 60_000,
        logger: silentLogger,
        backoffMaxMs: 2000,
      });
      informer.on('add', (obj) => this.seen(obj));
      informer.on('update', (obj) => this.seen(obj));
      informer.on('delete', (obj) => {
        const record = this.records.get(obj.metadata?.name ?? '');
        if (record && record.uid === obj.metadata?.uid) record.goneAt ??= Date.now();
      });
      informer.start();
      this.informers.push(informer);
    }
    await Promise.all(this.informers.map((i) => i.waitForSync()));
  }

  private seen(obj: TaskObject): void {
    const record = this.records.get(obj.metadata?.name ?? '');
    if (!record || !obj.metadata?.uid) return;
    record.uid ??= obj.metadata.uid;
    this.byUid.set(obj.metadata.uid, record);
    const status = obj.status;
    if (!status?.phase) return;
    record.lastStatus = status;
    const last = record.transitions.at(-1);
    if (!last || last.phase !== status.phase || last.reason !== status.reason) {
      record.transitions.push({ at: Date.now(), phase: status.phase, reason: status.reason, attempts: status.attempts });
    }
    if (isTerminalPhase(status.phase)) record.terminalAt ??= Date.now();
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.informers.map((i) => i.stop()));
    await Promise.allSettled([...this.pending]);
  }

  private body(plan: PlannedTask): TaskObject {
    return {
      apiVersion: API_VERSION,
      kind: plan.kind,
      metadata: { name: plan.name, namespace: this.options.namespace, labels: { 'chaos.taskqueue.dev/flavour': plan.flavour } },
      spec: {
        audio: { uri: `file://${audioPath(this.options.audioDir, plan.durationMs)}` },
        priority: plan.priority,
        timeoutSeconds: plan.timeoutSeconds,
        retryPolicy: { maxRetries: plan.maxRetries, backoffSeconds: 1 },
        ...(plan.kind === 'DiarizationTask' ? { minSpeakers: 1, maxSpeakers: 4 } : { language: 'en' }),
      },
    };
  }

  /** Retries until the apiserver answers; `what` names the call in the log. */
  private async retrying<T>(what: string, call: () => Promise<T>, deadlineMs = 300_000): Promise<T> {
    const deadline = Date.now() + deadlineMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        if (isAlreadyExists(err) || isNotFound(err)) throw err;
        if (Date.now() > deadline) throw new Error(`${what}: gave up: ${(err as Error).message}`);
        // One line per burst of failures (an apiserver restart fails every call).
        this.retriesSinceLog++;
        if (Date.now() - this.lastRetryLog > 5000) {
          this.options.log(`${what} failed (${(err as Error).message.slice(0, 120)}); retrying (${this.retriesSinceLog} failed calls since the last note)`);
          this.lastRetryLog = Date.now();
          this.retriesSinceLog = 0;
        }
        await sleep(Math.min(2000, 200 * 2 ** attempt));
      }
    }
  }

  /** Creates a task; accepted once the apiserver has it (a lost answer is found by name). */
  async create(plan: PlannedTask): Promise<void> {
    const record: TaskRecord = { plan, transitions: [] };
    this.records.set(plan.name, record);
    let created: TaskObject;
    try {
      created = await this.retrying(`create ${plan.name}`, () => this.client.create(taskRef(plan.kind), this.body(plan)));
    } catch (err) {
      if (!isAlreadyExists(err)) {
        this.createErrors++;
        this.options.log(`create ${plan.name} not accepted: ${(err as Error).message}`);
        return;
      }
      created = await this.retrying(`get ${plan.name}`, () => this.client.get<TaskObject>(taskRef(plan.kind), this.options.namespace, plan.name));
    }
    record.uid = created.metadata?.uid;
    record.createdAt = Date.now();
    if (record.uid) this.byUid.set(record.uid, record);
    if (plan.actAfterMs !== undefined) this.later(plan.actAfterMs, () => (plan.flavour === 'cancel' ? this.cancel(record) : this.remove(record)));
  }

  private later(ms: number, action: () => Promise<void>): void {
    const p = sleep(ms)
      .then(action)
      .catch((err: unknown) => this.options.log(`action failed: ${(err as Error).message}`))
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  private async cancel(record: TaskRecord): Promise<void> {
    const { plan } = record;
    try {
      await this.retrying(`cancel ${plan.name}`, () =>
        this.client.mergePatch(taskRef(plan.kind), this.options.namespace, plan.name, { spec: { cancel: true } }),
      );
      record.cancelledAt = Date.now();
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  private async remove(record: TaskRecord): Promise<void> {
    const { plan } = record;
    try {
      await this.retrying(`delete ${plan.name}`, () =>
        this.client.delete(taskRef(plan.kind), this.options.namespace, plan.name, record.uid ? { uid: record.uid } : {}),
      );
      record.deleteRequestedAt = Date.now();
    } catch (err) {
      if (!isNotFound(err)) throw err;
      record.deleteRequestedAt ??= Date.now();
    }
  }

  /** Waits for the cancel and delete calls still scheduled. */
  async settleActions(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  /** Tasks that are still expected to move: not terminal and not (being) deleted and gone. */
  unsettled(): TaskRecord[] {
    return [...this.records.values()].filter((r) => {
      if (!r.uid) return false;
      if (r.plan.flavour === 'delete' && r.deleteRequestedAt !== undefined) return r.goneAt === undefined;
      if (r.plan.flavour === 'delete') return true;
      return !isTerminalPhase(r.lastStatus?.phase);
    });
  }

  /** A fresh list of both kinds, straight from the apiserver (the final statuses). */
  async finalObjects(): Promise<Map<string, TaskObject>> {
    const out = new Map<string, TaskObject>();
    for (const kind of ['TranscriptionTask', 'DiarizationTask'] as const) {
      const { items } = await this.retrying(`list ${kind}`, () => this.client.listAll<TaskObject>(taskRef(kind), { namespace: this.options.namespace }));
      for (const item of items) if (item.metadata?.uid) out.set(item.metadata.uid, item);
    }
    return out;
  }
}
