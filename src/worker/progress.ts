// Coalesces a pipeline's progress calls into a few reports a second. The
// clock and timers are injected so the throttling can be tested without
// waiting.

export interface ProgressClock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export const realClock: ProgressClock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface ProgressThrottleOptions {
  /** Writes one report; called in order, never twice at once. */
  write(percent: number): Promise<unknown>;
  /** At most one write per this interval; a change in between is sent when it ends. */
  minIntervalMs: number;
  clock?: ProgressClock;
  onError?(err: unknown): void;
}

export class ProgressThrottle {
  private readonly options: ProgressThrottleOptions;
  private readonly clock: ProgressClock;
  private lastSent = -1;
  private lastSentAt = Number.NEGATIVE_INFINITY;
  private pending: number | undefined;
  private timer: unknown;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(options: ProgressThrottleOptions) {
    this.options = options;
    this.clock = options.clock ?? realClock;
  }

  /** The value the last write carried (-1 before the first). */
  get lastReported(): number {
    return this.lastSent;
  }

  report(percent: number): void {
    if (this.closed || !Number.isFinite(percent)) return;
    const value = Math.min(100, Math.max(0, Math.floor(percent)));
    if (value === (this.pending ?? this.lastSent)) return;
    this.pending = value;
    if (this.timer !== undefined) return;
    const wait = this.lastSentAt + this.options.minIntervalMs - this.clock.now();
    if (wait <= 0) {
      this.send();
    } else {
      this.timer = this.clock.setTimer(() => {
        this.timer = undefined;
        this.send();
      }, wait);
    }
  }

  /**
   * Stops taking reports and resolves once every write has finished. With
   * `flushPending`, a value still waiting out the interval is written first.
   */
  async close(flushPending = false): Promise<void> {
    if (this.timer !== undefined) {
      this.clock.clearTimer(this.timer);
      this.timer = undefined;
      if (flushPending) this.send();
    }
    this.closed = true;
    await this.chain;
  }

  private send(): void {
    const value = this.pending;
    this.pending = undefined;
    if (value === undefined || value === this.lastSent) return;
    this.lastSent = value;
    this.lastSentAt = this.clock.now();
    this.chain = this.chain.then(
      () =>
        this.options.write(value).then(
          () => undefined,
          (err: unknown) => this.options.onError?.(err),
        ),
    );
  }
}
