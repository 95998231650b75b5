/**
 * Runs a reconciler over a work queue, the way controller-runtime does: a
 * fixed number of workers, one key per worker at a time, and the outcome of
 * each pass decides whether and when the key comes back.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { type Clock, realClock } from './clock.ts';
import { isConflict, isTerminal, TerminalError } from './errors.ts';
import { type Logger, silentLogger } from './logger.ts';
import type { ItemRateLimiter } from './rate-limiter.ts';
import { WorkQueue } from './workqueue.ts';

export interface ReconcileResult {
  /** Reconcile this key again after this long, even if nothing changes. */
  requeueAfterMs?: number;
}

export interface Reconciler {
  /**
   * Brings the world in line with the object named by `key` ("namespace/name").
   * Level-based: read the current state, never trust what an event said.
   * `signal` aborts when the controller stops.
   */
  reconcile(key: string, signal: AbortSignal): Promise<ReconcileResult | void>;
}

export type ReconcileOutcome = 'success' | 'requeue' | 'conflict' | 'terminal' | 'error';

export interface ControllerMetrics {
  observeReconcile(controller: string, durationSeconds: number, outcome: ReconcileOutcome): void;
}

export interface ControllerOptions {
  /** Names the controller in logs and metrics, e.g. "transcriptiontask". */
  name: string;
  reconciler: Reconciler;
  /** Workers reconciling distinct keys in parallel. */
  concurrency?: number;
  clock?: Clock;
  logger?: Logger;
  metrics?: ControllerMetrics;
  /** Backoff for failed keys; client-go's default controller limiter if omitted. */
  rateLimiter?: ItemRateLimiter<string>;
}

export class Controller {
  readonly name: string;
  readonly queue: WorkQueue<string>;
  private readonly reconciler: Reconciler;
  private readonly concurrency: number;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly metrics: ControllerMetrics | undefined;
  private readonly abort = new AbortController();
  private workers: Promise<void>[] = [];
  private state: 'new' | 'running' | 'stopped' = 'new';

  constructor(options: ControllerOptions) {
    const concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
    }
    this.name = options.name;
    this.reconciler = options.reconciler;
    this.concurrency = concurrency;
    this.clock = options.clock ?? realClock;
    this.log = (options.logger ?? silentLogger).child({ controller: options.name });
    this.metrics = options.metrics;
    this.queue = new WorkQueue<string>({
      clock: this.clock,
      ...(options.rateLimiter ? { rateLimiter: options.rateLimiter } : {}),
    });
  }

  /** Queues a key; safe to call before start() and from event handlers. */
  enqueue(key: string): void {
    this.queue.add(key);
  }

  enqueueAfter(key: string, delayMs: number): void {
    this.queue.addAfter(key, delayMs);
  }

  /** Starts the workers. A controller runs once: after stop() make a new one. */
  start(): void {
    if (this.state !== 'new') throw new Error(`controller ${this.name} was already started`);
    this.state = 'running';
    this.log.info({ workers: this.concurrency }, 'Starting workers');
    for (let i = 0; i < this.concurrency; i++) this.workers.push(this.runWorker());
  }

  isRunning(): boolean {
    return this.state === 'running';
  }

  /**
   * Stops taking keys, aborts the signal handed to reconcilers still running
   * and waits for them to return. Keys still queued are dropped: the next
   * leader relists and reconciles everything anyway.
   */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    const wasRunning = this.state === 'running';
    this.state = 'stopped';
    this.abort.abort(new Error(`controller ${this.name} stopped`));
    await this.queue.shutDownWithDrain();
    await Promise.all(this.workers);
    if (wasRunning) this.log.info({}, 'Stopped workers');
  }

  private async runWorker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        await this.processKey(key);
      } finally {
        this.queue.done(key);
      }
    }
  }

  /** One reconcile pass for `key`, and the bookkeeping its outcome calls for. */
  private async processKey(key: string): Promise<void> {
    const started = this.clock.now();
    let outcome: ReconcileOutcome;
    try {
      const result = await this.reconciler.reconcile(key, this.abort.signal);
      this.queue.forget(key);
      const after = result?.requeueAfterMs;
      if (after !== undefined && after > 0) {
        this.queue.addAfter(key, after);
        outcome = 'requeue';
      } else {
        outcome = 'success';
      }
    } catch (err) {
      outcome = this.handleError(key, err);
    }
    this.metrics?.observeReconcile(this.name, (this.clock.now() - started) / 1000, outcome);
  }

  private handleError(key: string, err: unknown): ReconcileOutcome {
    if (isConflict(err)) {
      // Someone wrote the object between our read and our write: the cache
      // catches up and the next pass uses the new version.
      this.queue.addRateLimited(key);
      this.log.debug({ key, err: errorSummary(err) }, 'Conflict; requeueing');
      return 'conflict';
    }
    if (isTerminal(err)) {
      this.queue.forget(key);
      const reason = err instanceof TerminalError ? err.reason : undefined;
      this.log.error({ key, reason, err }, 'Reconcile failed permanently; not retrying');
      return 'terminal';
    }
    this.queue.addRateLimited(key);
    this.log.error({ key, attempt: this.queue.numRequeues(key), err }, 'Reconciler error');
    return 'error';
  }
}

function errorSummary(err: unknown): { name: string; message: string } {
  return err instanceof Error ? { name: err.name, message: err.message } : { name: 'Error', message: String(err) };
}

/** The work-queue key of an object: "namespace/name", or "name" when cluster-scoped. */
export function objectKey(obj: KubernetesObject): string {
  const name = obj.metadata?.name;
  if (!name) throw new Error('object has no metadata.name');
  const namespace = obj.metadata?.namespace;
  return namespace ? `${namespace}/${name}` : name;
}

/** Inverse of objectKey; `namespace` is undefined for a cluster-scoped key. */
export function splitKey(key: string): { namespace: string | undefined; name: string } {
  const parts = key.split('/');
  if (parts.length === 1 && parts[0]) return { namespace: undefined, name: parts[0] };
  if (parts.length === 2 && parts[0] && parts[1]) return { namespace: parts[0], name: parts[1] };
  throw new Error(`invalid object key "${key}": want "namespace/name" or "name"`);
}
