// Stand-ins for the runtime's collaborators in unit tests: a delivery that
// records the verbs it is answered with, a report writer that records
// reports, and a Redis that answers the two reads a run makes.
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { Kind } from '../../src/api/index.ts';
import { queueNames } from '../../src/protocol/index.ts';
import type { ReportTarget, ReportWriter } from '../../src/protocol/index.ts';
import type { WorkerConfig } from '../../src/worker/config.ts';
import type { DeliveryInfo, TaskDelivery } from '../../src/worker/delivery.ts';
import { resolvePipelineSettings } from '../../src/worker/pipeline/settings.ts';

export class FakeDelivery implements TaskDelivery {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly info: DeliveryInfo;
  readonly verbs: string[] = [];

  constructor(body: unknown, options: { deliveryCount?: number; consumer?: string; subject?: string } = {}) {
    this.subject = options.subject ?? 'taskqueue.tasks.transcription.normal';
    this.data = new TextEncoder().encode(typeof body === 'string' ? body : JSON.stringify(body));
    this.info = {
      stream: 'TASKQUEUE',
      consumer: options.consumer ?? 'tq-transcription-normal',
      deliveryCount: options.deliveryCount ?? 1,
      streamSequence: 1,
      deliverySequence: 1,
      pending: 0,
    };
  }

  /** The verbs, without working() keep-alives. */
  get answers(): string[] {
    return this.verbs.filter((v) => v !== 'working');
  }

  ack(): void {
    this.verbs.push('ack');
  }

  nak(delayMs = 0): void {
    this.verbs.push(`nak ${delayMs}`);
  }

  term(): void {
    this.verbs.push('term');
  }

  working(): void {
    this.verbs.push('working');
  }
}

export interface RecordedReport {
  type: string;
  target: ReportTarget;
  detail: Record<string, unknown>;
}

export function fakeReports(): { writer: ReportWriter; reports: RecordedReport[] } {
  const reports: RecordedReport[] = [];
  const record =
    (type: string) =>
    async (target: ReportTarget, detail: unknown = {}): Promise<boolean> => {
      reports.push({ type, target: { ...target }, detail: typeof detail === 'object' ? { ...(detail as object) } : { value: detail } });
      return true;
    };
  const writer = {
    started: record('started'),
    progress: record('progress'),
    heartbeat: record('heartbeat'),
    retrying: record('retrying'),
    released: record('released'),
    succeeded: record('succeeded'),
    failed: record('failed'),
    cancelled: record('cancelled'),
  } as unknown as ReportWriter;
  return { writer, reports };
}

export interface FakeRedisState {
  cancel?: boolean;
  phase?: string;
  releases?: number;
  releasedSeq?: number;
}

export function fakeRedis(state: FakeRedisState = {}): Redis {
  const field = (value: string | number | undefined) => (value === undefined ? null : String(value));
  return {
    exists: async () => (state.cancel ? 1 : 0),
    hmget: async () => [field(state.phase), field(state.releases), field(state.releasedSeq)],
  } as unknown as Redis;
}

export function unitConfig(overrides: Partial<WorkerConfig> = {}): WorkerConfig {
  return {
    ...resolvePipelineSettings({}, {}),
    nats: { servers: ['nats://127.0.0.1:4222'] },
    redis: { url: 'redis://127.0.0.1:6379' },
    queue: queueNames(),
    keyPrefix: 'tq:',
    taskKind: Kind.TranscriptionTask,
    workerName: 'worker-0',
    concurrency: 1,
    shutdownGraceSeconds: 5,
    ackWaitSeconds: 60,
    heartbeatSeconds: 300,
    healthPort: 0,
    metricsPort: 0,
    logLevel: 'silent',
    pipeline: 'stub',
    stubChunks: 1,
    stubChunkMs: 0,
    idlePollMs: 1000,
    ...overrides,
  };
}

export const silentLogger = pino({ level: 'silent' });

export function messageBody(overrides: Record<string, unknown> = {}, spec: Record<string, unknown> = {}) {
  return {
    namespace: 'media',
    name: 'talk',
    uid: 'uid-1',
    kind: Kind.TranscriptionTask,
    attempt: 1,
    ...overrides,
    spec: { audio: { uri: 'https://a.example/x.wav' }, retryPolicy: { maxRetries: 2, backoffSeconds: 10 }, ...spec },
  };
}
