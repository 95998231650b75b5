// The controller's side of the JetStream queue: publish a task, find or
// remove its message, and read the backlog that scaling and metrics need.
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/nats-core';
import { PRIORITIES, type Priority, type TaskKind, type TaskSpec } from '../../api/index.ts';
import {
  consumerName,
  parseTaskSubject,
  consumerBindings,
  encodeCancelMessage,
  encodeTaskMessage,
  ensureConsumers,
  ensureStream,
  msgId,
  taskSubject,
  type QueueNames,
} from '../../protocol/index.ts';

export interface QueuedTask {
  namespace: string;
  name: string;
  uid: string;
  kind: TaskKind;
  spec: TaskSpec;
}

export interface PublishResult {
  seq: number;
  /** JetStream had this attempt already (same Nats-Msg-Id inside the duplicate window). */
  duplicate: boolean;
}

export interface Backlog {
  /** Waiting plus delivered-but-unacknowledged messages, per priority. */
  byPriority: Record<Priority, number>;
  total: number;
}

/** Where a queued message stands. */
export type MessageCheck =
  /** In the stream and ahead of its consumer: it will be delivered (or is out with a worker). */
  | 'queued'
  /** No longer in the stream (consumed, removed). */
  | 'gone'
  /** In the stream but behind its consumer's ack floor: JetStream will never deliver it. */
  | 'orphaned';

export interface TaskQueueOptions {
  names: QueueNames;
  replicas?: number;
  ackWaitMs?: number;
}

export class TaskQueue {
  readonly names: QueueNames;
  private readonly nc: NatsConnection;
  private readonly js: JetStreamClient;
  private readonly jsm: JetStreamManager;

  private constructor(nc: NatsConnection, jsm: JetStreamManager, names: QueueNames) {
    this.nc = nc;
    this.jsm = jsm;
    this.js = jetstream(nc);
    this.names = names;
  }

  /** Connects to JetStream and brings the stream and its consumers to the protocol's settings. */
  static async open(nc: NatsConnection, options: TaskQueueOptions): Promise<TaskQueue> {
    const jsm = await jetstreamManager(nc);
    await ensureStream(jsm, { names: options.names, ...(options.replicas !== undefined ? { replicas: options.replicas } : {}) });
    await ensureConsumers(jsm, { names: options.names, ...(options.ackWaitMs !== undefined ? { ackWaitMs: options.ackWaitMs } : {}) });
    return new TaskQueue(nc, jsm, options.names);
  }

  async publish(task: QueuedTask, attempt: number): Promise<PublishResult> {
    const h = headers();
    h.set('Nats-Msg-Id', msgId(task.uid, attempt));
    const body = encodeTaskMessage({ namespace: task.namespace, name: task.name, uid: task.uid, kind: task.kind, attempt, spec: task.spec } as never);
    const ack = await this.js.publish(taskSubject(task.kind, task.spec.priority, this.names), body, {
      headers: h,
      expect: { streamName: this.names.stream },
    });
    return { seq: ack.seq, duplicate: ack.duplicate };
  }

  /** True while the message is in the stream: waiting, or delivered and not yet acknowledged. */
  async messageExists(seq: number): Promise<boolean> {
    const msg = await this.jsm.streams.getMessage(this.names.stream, { seq });
    return msg !== null;
  }

  /**
   * Whether a queued message will still reach a worker. A message at or below
   * its consumer's ack floor that is still stored has been passed over (seen
   * with nats-server < 2.10.13 around restarts) and would wait forever.
   */
  async check(seq: number): Promise<MessageCheck> {
    const msg = await this.jsm.streams.getMessage(this.names.stream, { seq });
    if (msg === null) return 'gone';
    const binding = parseTaskSubject(msg.subject, this.names);
    if (!binding) return 'queued';
    const info = await this.jsm.consumers.info(this.names.stream, consumerName(binding.kind, binding.priority));
    if (info.ack_floor.stream_seq < seq) return 'queued';
    // Acked at that very moment? Then it is gone by now.
    return (await this.jsm.streams.getMessage(this.names.stream, { seq })) === null ? 'gone' : 'orphaned';
  }

  /** Removes a queued message; false if it was already gone. */
  async remove(seq: number): Promise<boolean> {
    try {
      return await this.jsm.streams.deleteMessage(this.names.stream, seq, false);
    } catch (err) {
      if (/no message found/i.test((err as Error).message)) return false;
      throw err;
    }
  }

  /** Tells the worker running this task, if any, to stop now. */
  async notifyCancel(uid: string): Promise<void> {
    this.nc.publish(this.names.cancelSubject, encodeCancelMessage(uid));
    await this.nc.flush();
  }

  async backlog(kind: TaskKind): Promise<Backlog> {
    const byPriority = Object.fromEntries(PRIORITIES.map((p) => [p, 0])) as Record<Priority, number>;
    const bindings = consumerBindings([kind], this.names);
    const infos = await Promise.all(bindings.map((b) => this.jsm.consumers.info(this.names.stream, b.name)));
    bindings.forEach((b, i) => {
      const info = infos[i];
      if (info) byPriority[b.priority] = info.num_pending + info.num_ack_pending;
    });
    return { byPriority, total: Object.values(byPriority).reduce((a, b) => a + b, 0) };
  }
}
