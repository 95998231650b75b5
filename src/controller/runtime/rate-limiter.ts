/**
 * Two kinds of limiter: a token bucket that paces our calls to the API
 * server, and per-item limiters that decide how long a failing key waits
 * before its next reconcile (client-go's workqueue rate limiters).
 */
import { type Clock, realClock, sleep } from './clock.ts';

export interface TokenBucketOptions {
  /** Sustained rate, tokens per second; Infinity disables limiting. */
  qps: number;
  /** Tokens available at once; the bucket starts full. */
  burst: number;
  clock?: Clock;
}

/**
 * Token bucket in the style of golang.org/x/time/rate: callers reserve a
 * token, the balance may go negative, and a reservation waits until the
 * balance it drew from has been refilled. Reservations are therefore served
 * in the order they were made.
 */
export class TokenBucket {
  readonly qps: number;
  readonly burst: number;
  private readonly clock: Clock;
  private tokens: number;
  private last: number;

  constructor(options: TokenBucketOptions) {
    if (!(options.qps > 0)) throw new RangeError(`qps must be > 0, got ${options.qps}`);
    if (!(options.burst >= 1)) throw new RangeError(`burst must be >= 1, got ${options.burst}`);
    this.qps = options.qps;
    this.burst = options.burst;
    this.clock = options.clock ?? realClock;
    this.tokens = options.burst;
    this.last = this.clock.now();
  }

  private get unlimited(): boolean {
    return this.qps === Number.POSITIVE_INFINITY;
  }

  private refill(): void {
    const now = this.clock.now();
    const elapsed = Math.max(0, now - this.last);
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.qps) / 1000);
  }

  /** Takes a token if one is available now. */
  tryAcquire(): boolean {
    if (this.unlimited) return true;
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /**
   * Takes a token now and returns how many milliseconds the caller must wait
   * before using it. Never blocks; the basis for both acquire() and the
   * bucket item limiter.
   */
  reserve(): number {
    if (this.unlimited) return 0;
    this.refill();
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.qps);
  }

  /** Waits for a token. If the signal aborts first, the token is handed back. */
  async acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw signal.reason;
    const waitMs = this.reserve();
    if (waitMs === 0) return;
    try {
      await sleep(this.clock, waitMs, signal);
    } catch (err) {
      this.refill();
      this.tokens = Math.min(this.burst, this.tokens + 1);
      throw err;
    }
  }

  /** Tokens available right now (may be negative while reservations wait). */
  available(): number {
    if (this.unlimited) return Number.POSITIVE_INFINITY;
    this.refill();
    return this.tokens;
  }
}

/** Decides how long an item waits before its next attempt. */
export interface ItemRateLimiter<K> {
  /** Records one more failure of `key` and returns the delay in ms before retrying it. */
  when(key: K): number;
  /** Clears the failure history of `key` (call on success). */
  forget(key: K): void;
  /** Failures recorded for `key` since it was last forgotten. */
  numRequeues(key: K): number;
}

/** Per-item exponential backoff: base·2^failures, capped at max. */
export class ItemExponentialFailureRateLimiter<K> implements ItemRateLimiter<K> {
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  private readonly failures = new Map<K, number>();

  constructor(baseDelayMs = 5, maxDelayMs = 1_000_000) {
    this.baseDelayMs = baseDelayMs;
    this.maxDelayMs = maxDelayMs;
  }

  when(key: K): number {
    const exp = this.failures.get(key) ?? 0;
    this.failures.set(key, exp + 1);
    // 2^1024 overflows to Infinity, which the cap absorbs.
    const delay = this.baseDelayMs * 2 ** exp;
    return Number.isFinite(delay) ? Math.min(delay, this.maxDelayMs) : this.maxDelayMs;
  }

  forget(key: K): void {
    this.failures.delete(key);
  }

  numRequeues(key: K): number {
    return this.failures.get(key) ?? 0;
  }
}

/**
 * An overall limit shared by all items, so a burst of failing keys cannot
 * hammer the API server even while each key's own backoff is still short.
 */
export class ItemBucketRateLimiter<K> implements ItemRateLimiter<K> {
  private readonly bucket: TokenBucket;

  constructor(options: TokenBucketOptions) {
    this.bucket = new TokenBucket(options);
  }

  when(_key: K): number {
    return this.bucket.reserve();
  }

  forget(_key: K): void {}

  numRequeues(_key: K): number {
    return 0;
  }
}

/** The longest delay any of the limiters asks for. */
export class MaxOfRateLimiter<K> implements ItemRateLimiter<K> {
  private readonly limiters: readonly ItemRateLimiter<K>[];

  constructor(...limiters: ItemRateLimiter<K>[]) {
    if (limiters.length === 0) throw new RangeError('MaxOfRateLimiter needs at least one limiter');
    this.limiters = limiters;
  }

  when(key: K): number {
    let delay = 0;
    for (const limiter of this.limiters) delay = Math.max(delay, limiter.when(key));
    return delay;
  }

  forget(key: K): void {
    for (const limiter of this.limiters) limiter.forget(key);
  }

  numRequeues(key: K): number {
    let n = 0;
    for (const limiter of this.limiters) n = Math.max(n, limiter.numRequeues(key));
    return n;
  }
}

/**
 * client-go's default controller limiter: per-item exponential backoff from
 * 5 ms to 1000 s, and no more than 10 retries per second overall (burst 100).
 */
export function defaultControllerRateLimiter<K>(clock: Clock = realClock): ItemRateLimiter<K> {
  return new MaxOfRateLimiter<K>(
    new ItemExponentialFailureRateLimiter<K>(5, 1_000_000),
    new ItemBucketRateLimiter<K>({ qps: 10, burst: 100, clock }),
  );
}
