// Takes the next message for one task kind across its four priority
// consumers, in the weighted order of src/protocol/priority.ts.
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import type { Logger } from 'pino';
import { PRIORITIES } from '../api/index.ts';
import type { Priority, TaskKind } from '../api/index.ts';
import { consumerName, kindSubjectFilter, priorityOrder } from '../protocol/index.ts';
import type { QueueNames } from '../protocol/index.ts';
import { pullOne } from './delivery.ts';
import type { TaskDelivery } from './delivery.ts';

/** Pulls from one consumer; the seam tests use to drive the puller without a server. */
export type PullFn = (consumer: string) => Promise<TaskDelivery | null>;

export interface PriorityPullerOptions {
  kind: TaskKind;
  pull: PullFn;
  logger: Logger;
  /** Longest wait between looks at the consumers while idle. */
  idlePollMs: number;
  /** Pause after a failed pull (server away, consumer missing). */
  errorBackoffMs?: number;
}

export interface PulledTask {
  delivery: TaskDelivery;
  priority: Priority;
}

export class PriorityPuller {
  private readonly options: PriorityPullerOptions;
  private readonly consumers: Record<Priority, string>;
  private pulls = 0;
  private wakeups = 0;
  private wake: (() => void) | undefined;
  private lastError = '';

  constructor(options: PriorityPullerOptions) {
    this.options = options;
    this.consumers = Object.fromEntries(PRIORITIES.map((p) => [p, consumerName(options.kind, p)])) as Record<Priority, string>;
  }

  /** How many messages this puller has taken: the position in the priority cycle. */
  get pullCount(): number {
    return this.pulls;
  }

  /** Something may have arrived: look again now instead of at the next poll. */
  notify(): void {
    this.wakeups++;
    this.wake?.();
  }

  /**
   * The next message to run, or null once `signal` fires. Each consumer is
   * asked without waiting, so only a message about to run is taken.
   */
  async next(signal: AbortSignal): Promise<PulledTask | null> {
    while (!signal.aborted) {
      const seen = this.wakeups;
      let failed = false;
      for (const priority of priorityOrder(this.pulls)) {
        if (signal.aborted) return null;
        let delivery: TaskDelivery | null;
        try {
          delivery = await this.options.pull(this.consumers[priority]);
        } catch (err) {
          failed = true;
          this.logPullError(err, this.consumers[priority]);
          break;
        }
        if (delivery) {
          this.lastError = '';
          this.pulls++;
          if (signal.aborted) {
            // Stopping between the pull and the run: hand it straight back.
            delivery.nak(0);
            return null;
          }
          return { delivery, priority };
        }
      }
      if (!failed && this.wakeups !== seen) continue;
      await this.sleep(failed ? (this.options.errorBackoffMs ?? 1000) : this.options.idlePollMs, signal, failed);
    }
    return null;
  }

  private logPullError(err: unknown, consumer: string): void {
    const message = err instanceof Error ? err.message : String(err);
    // A server outage fails every pull; say so once, not every second.
    if (message !== this.lastError) this.options.logger.warn({ err, consumer }, 'Pull failed; retrying');
    this.lastError = message;
  }

  private sleep(ms: number, signal: AbortSignal, ignoreWakeups: boolean): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      if (!ignoreWakeups) this.wake = done;
    });
  }
}

/**
 * A puller backed by the server: no-wait pulls, plus a plain subscription to
 * the kind's subjects so a publish wakes an idle worker at once (messages
 * coming back from a nak delay or an ack wait publish nothing; the idle poll
 * finds those).
 */
export function natsPuller(options: {
  nc: NatsConnection;
  queue: QueueNames;
  kind: TaskKind;
  logger: Logger;
  idlePollMs: number;
}): { puller: PriorityPuller; close(): void } {
  const puller = new PriorityPuller({
    kind: options.kind,
    logger: options.logger,
    idlePollMs: options.idlePollMs,
    pull: (consumer) => pullOne(options.nc, options.queue.stream, consumer),
  });
  const hint: Subscription = options.nc.subscribe(kindSubjectFilter(options.kind, options.queue), { callback: () => puller.notify() });
  return { puller, close: () => hint.unsubscribe() };
}
