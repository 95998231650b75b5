/**
 * A work queue with client-go's guarantees:
 *
 * - a key added several times before a worker takes it is handed out once;
 * - a key being processed is never handed to a second worker;
 * - a key added while being processed is marked dirty and handed out again
 *   after done(), so no change is lost.
 *
 * Keys are processed in the order they became ready. Delayed and
 * rate-limited adds go through a timer and then through add(), so they obey
 * the same rules.
 */
import { type Clock, type TimerHandle, realClock } from './clock.ts';
import { defaultControllerRateLimiter, type ItemRateLimiter } from './rate-limiter.ts';

export interface WorkQueueOptions<K> {
  clock?: Clock;
  /** Backoff for addRateLimited; client-go's default controller limiter if omitted. */
  rateLimiter?: ItemRateLimiter<K>;
}

interface DelayedAdd {
  readyAt: number;
  handle: TimerHandle;
}

export class WorkQueue<K extends string> {
  private readonly clock: Clock;
  private readonly rateLimiter: ItemRateLimiter<K>;

  /** Keys ready to be handed out, oldest first; `head` skips taken entries. */
  private queue: K[] = [];
  private head = 0;
  /** Keys that need processing: queued ones, and in-flight ones added again. */
  private readonly dirty = new Set<K>();
  private readonly processing = new Set<K>();
  private readonly delayed = new Map<K, DelayedAdd>();
  private readonly waiters: ((key: K | undefined) => void)[] = [];
  private readonly drainWaiters: (() => void)[] = [];
  private shuttingDown = false;

  constructor(options: WorkQueueOptions<K> = {}) {
    this.clock = options.clock ?? realClock;
    this.rateLimiter = options.rateLimiter ?? defaultControllerRateLimiter<K>(this.clock);
  }

  /** Marks `key` as needing processing. Ignored after shutdown. */
  add(key: K): void {
    if (this.shuttingDown) return;
    if (this.dirty.has(key)) return;
    this.dirty.add(key);
    // In flight: done() will re-queue it.
    if (this.processing.has(key)) return;
    this.enqueue(key);
  }

  /**
   * Waits for a key and marks it as processing; the caller must call
   * done(key) when finished. Resolves to undefined once the queue is shut
   * down; keys still queued then are dropped.
   */
  get(): Promise<K | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.take();
    if (key !== undefined) return Promise.resolve(key);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Ends processing of `key`; if it was added meanwhile, it is queued again. */
  done(key: K): void {
    if (!this.processing.delete(key)) return;
    if (this.dirty.has(key)) {
      if (this.shuttingDown) {
        this.dirty.delete(key);
      } else {
        this.enqueue(key);
      }
    }
    if (this.processing.size === 0) {
      for (const resolve of this.drainWaiters.splice(0)) resolve();
    }
  }

  /**
   * Adds `key` after `delayMs`. If the key already waits for a delayed add,
   * the earlier of the two times wins.
   */
  addAfter(key: K, delayMs: number): void {
    if (this.shuttingDown) return;
    if (!(delayMs > 0)) {
      this.add(key);
      return;
    }
    const readyAt = this.clock.now() + delayMs;
    const pending = this.delayed.get(key);
    if (pending !== undefined) {
      if (pending.readyAt <= readyAt) return;
      this.clock.clearTimeout(pending.handle);
    }
    const handle = this.clock.setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    this.delayed.set(key, { readyAt, handle });
  }

  /** Adds `key` after the rate limiter's backoff for it (one more failure). */
  addRateLimited(key: K): void {
    if (this.shuttingDown) return;
    this.addAfter(key, this.rateLimiter.when(key));
  }

  /** Resets the backoff of `key`. Does not remove it from the queue. */
  forget(key: K): void {
    this.rateLimiter.forget(key);
  }

  numRequeues(key: K): number {
    return this.rateLimiter.numRequeues(key);
  }

  /** Keys ready to be handed out (not in flight, not delayed). */
  len(): number {
    return this.queue.length - this.head;
  }

  /** Keys handed out and not yet done. */
  inFlight(): number {
    return this.processing.size;
  }

  /** Keys waiting for a delayed or rate-limited add. */
  delayedLen(): number {
    return this.delayed.size;
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /**
   * Stops handing out keys: waiting and future get() calls resolve to
   * undefined, adds are ignored and delayed adds are cancelled. Keys in
   * flight may still be marked done().
   */
  shutDown(): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    for (const { handle } of this.delayed.values()) this.clock.clearTimeout(handle);
    this.delayed.clear();
    for (const key of this.queue.slice(this.head)) this.dirty.delete(key);
    this.queue = [];
    this.head = 0;
    for (const resolve of this.waiters.splice(0)) resolve(undefined);
    if (this.processing.size === 0) {
      for (const resolve of this.drainWaiters.splice(0)) resolve();
    }
  }

  /** Shuts down, then resolves once every key in flight has been marked done. */
  shutDownWithDrain(): Promise<void> {
    this.shutDown();
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private enqueue(key: K): void {
    const waiter = this.waiters.shift();
    if (waiter !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
      return;
    }
    this.queue.push(key);
  }

  private take(): K | undefined {
    if (this.head >= this.queue.length) return undefined;
    const key = this.queue[this.head++]!;
    // Compact now and then so a long-lived queue does not keep every key it ever held.
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.dirty.delete(key);
    this.processing.add(key);
    return key;
  }
}
