// A worker reduced to the wire protocol (docs/protocol.md), driven by the
// benchmark itself when it needs to control exactly when a task starts,
// reports and finishes: pull one message, write reports through the
// project's ReportWriter, settle the message.
import { jetstream, type JsMsg } from '@nats-io/jetstream';
import { Kind, Priority } from '../../src/api/index.ts';
import { consumerName, decodeTaskMessage, ReportWriter, type ReportTarget, type TaskMessage } from '../../src/protocol/index.ts';
import type { BenchQueue } from './queue.ts';

export interface TakenTask {
  msg: JsMsg;
  task: TaskMessage;
  target: ReportTarget;
}

export class ProtocolWorker {
  readonly name: string;
  readonly reports: ReportWriter;
  private readonly queue: BenchQueue;

  constructor(queue: BenchQueue, name: string) {
    this.name = name;
    this.queue = queue;
    this.reports = new ReportWriter({ redis: queue.redis, prefix: queue.keyPrefix });
  }

  /** Waits for the next Normal-priority TranscriptionTask message. */
  async take(timeoutMs = 15_000): Promise<TakenTask> {
    const consumer = await jetstream(this.queue.nc).consumers.get(this.queue.stream, consumerName(Kind.TranscriptionTask, Priority.Normal));
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const msg = await consumer.next({ expires: 1000 });
      if (!msg) continue;
      const task = decodeTaskMessage(msg.data);
      const attempt = task.attempt + msg.info.deliveryCount - 1;
      return { msg, task, target: { uid: task.uid, namespace: task.namespace, name: task.name, kind: task.kind, attempt, worker: this.name } };
    }
    throw new Error(`no message on ${this.queue.stream} within ${timeoutMs} ms`);
  }

  /** Reports success and acknowledges the message (report first, as the real worker does). */
  async succeed(taken: TakenTask): Promise<void> {
    await this.reports.succeeded(taken.target, {
      summary: { language: 'en', durationSeconds: 1, segments: 1 },
      result: { text: 'bench' },
      resultTTLSeconds: 3600,
    });
    await taken.msg.ackAck();
  }
}
