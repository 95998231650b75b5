/**
 * Leader election on a coordination.k8s.io/v1 Lease, following client-go's
 * leaderelection package: a candidate takes the lease when it is free or
 * has not been renewed for leaseDuration, the leader renews it every
 * retryPeriod, and a leader that cannot renew within renewDeadline steps
 * down before anyone else may take over.
 *
 * Expiry is judged by when *this* process last saw the lease change, never
 * by the timestamps written in it, so clock skew between replicas does not
 * matter.
 */
import { type V1Lease, V1MicroTime } from '@kubernetes/client-node';
import { type Clock, realClock, sleep } from './clock.ts';
import { isConflict, isNotFound } from './errors.ts';
import type { CallOptions } from './kube-client.ts';
import { type Logger, silentLogger } from './logger.ts';

/** What the elector needs from KubeClient; tests pass a fake. */
export interface LeaseClient {
  getLease(namespace: string, name: string, opts?: CallOptions): Promise<V1Lease>;
  createLease(namespace: string, lease: V1Lease, opts?: CallOptions): Promise<V1Lease>;
  replaceLease(namespace: string, name: string, lease: V1Lease, opts?: CallOptions): Promise<V1Lease>;
}

export interface LeaderElectorOptions {
  client: LeaseClient;
  namespace: string;
  name: string;
  /** Unique per replica, e.g. the pod name. */
  identity: string;
  /** How long a lease stays valid without renewal. Default 15. */
  leaseDurationSeconds?: number;
  /** A leader that has not renewed for this long steps down. Default 10. */
  renewDeadlineSeconds?: number;
  /** Time between attempts to acquire or renew. Default 2. */
  retryPeriodSeconds?: number;
  /** Hand the lease over on stop() so a successor takes over at once. Default true. */
  releaseOnStop?: boolean;
  /**
   * Called on becoming leader. `signal` aborts when leadership ends; if the
   * callback returns a promise, the elector waits for it before releasing
   * the lease, so work can wind down while this replica still holds it.
   * A rejected promise gives leadership up.
   */
  onStartedLeading: (signal: AbortSignal) => void | Promise<void>;
  /** Called after leadership ended (lost, or stopped). */
  onStoppedLeading?: () => void;
  /** Called whenever the observed holder changes, this replica included. */
  onNewLeader?: (identity: string) => void;
  clock?: Clock;
  logger?: Logger;
  /** Jitter source in [0, 1). */
  random?: () => number;
}

/** client-go's JitterUntil factor for the acquire loop. */
const JITTER_FACTOR = 1.2;

interface LeaseRecord {
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTime: string;
  renewTime: string;
  leaseTransitions: number;
}

export class LeaderElector {
  private readonly client: LeaseClient;
  private readonly namespace: string;
  private readonly name: string;
  readonly identity: string;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly releaseOnStop: boolean;
  private readonly onStartedLeading: (signal: AbortSignal) => void | Promise<void>;
  private readonly onStoppedLeading: (() => void) | undefined;
  private readonly onNewLeader: ((identity: string) => void) | undefined;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly random: () => number;

  private readonly stopController = new AbortController();
  private loop: Promise<void> | undefined;
  private state: 'new' | 'running' | 'stopped' = 'new';
  private leading = false;
  /** Last lease object read or written: its resourceVersion guards our next write. */
  private lease: V1Lease | undefined;
  private observedRecord = '';
  private observedTime = 0;
  private reportedLeader: string | undefined;

  constructor(options: LeaderElectorOptions) {
    const leaseDurationSeconds = options.leaseDurationSeconds ?? 15;
    const renewDeadlineSeconds = options.renewDeadlineSeconds ?? 10;
    const retryPeriodSeconds = options.retryPeriodSeconds ?? 2;
    if (!(leaseDurationSeconds > renewDeadlineSeconds)) {
      throw new RangeError('leaseDurationSeconds must be greater than renewDeadlineSeconds');
    }
    if (!(renewDeadlineSeconds > JITTER_FACTOR * retryPeriodSeconds)) {
      throw new RangeError('renewDeadlineSeconds must be greater than 1.2 × retryPeriodSeconds');
    }
    if (!options.identity) throw new RangeError('identity must not be empty');
    this.client = options.client;
    this.namespace = options.namespace;
    this.name = options.name;
    this.identity = options.identity;
    this.leaseDurationMs = leaseDurationSeconds * 1000;
    this.renewDeadlineMs = renewDeadlineSeconds * 1000;
    this.retryPeriodMs = retryPeriodSeconds * 1000;
    this.releaseOnStop = options.releaseOnStop ?? true;
    this.onStartedLeading = options.onStartedLeading;
    this.onStoppedLeading = options.onStoppedLeading;
    this.onNewLeader = options.onNewLeader;
    this.clock = options.clock ?? realClock;
    this.random = options.random ?? Math.random;
    this.log = (options.logger ?? silentLogger).child({
      lease: `${options.namespace}/${options.name}`,
      identity: options.identity,
    });
  }

  /** Starts campaigning. After losing leadership the elector campaigns again. */
  start(): void {
    if (this.state !== 'new') throw new Error('leader elector was already started');
    this.state = 'running';
    this.loop = this.run();
  }

  /**
   * Stops campaigning. A leader aborts its onStartedLeading signal, waits
   * for the callback to finish, releases the lease (unless releaseOnStop is
   * false) and calls onStoppedLeading.
   */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    const wasRunning = this.state === 'running';
    this.state = 'stopped';
    this.stopController.abort(new Error('leader elector stopped'));
    if (wasRunning) await this.loop;
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** The holder this replica last observed, if any. */
  getLeader(): string | undefined {
    return this.reportedLeader;
  }

  private get stopSignal(): AbortSignal {
    return this.stopController.signal;
  }

  private async run(): Promise<void> {
    while (this.state === 'running') {
      if (!(await this.acquire())) return;
      const { callbackFailed } = await this.lead();
      if (callbackFailed && this.state === 'running') {
        // Sit out one lease duration so that another replica gets the lease
        // instead of this one failing the same way again at once.
        try {
          await sleep(this.clock, this.leaseDurationMs, this.stopSignal);
        } catch {
          return;
        }
      }
    }
  }

  /** Retries until this replica holds the lease; false if stopped first. */
  private async acquire(): Promise<boolean> {
    this.log.debug({}, 'Attempting to acquire leader lease');
    while (this.state === 'running') {
      if (await this.tryAcquireOrRenew(this.renewDeadlineMs, this.stopSignal)) {
        this.log.info({}, 'Acquired leader lease');
        return true;
      }
      try {
        await sleep(this.clock, this.retryPeriodMs * (1 + this.random() * JITTER_FACTOR), this.stopSignal);
      } catch {
        return false;
      }
    }
    return false;
  }

  /** One term as leader: start the work, renew until lost or stopped, then wind down. */
  private async lead(): Promise<{ callbackFailed: boolean }> {
    if (this.stopSignal.aborted) {
      // stop() came while the acquiring write was in flight: hand the lease straight back.
      if (this.releaseOnStop) await this.release();
      return { callbackFailed: false };
    }
    this.leading = true;
    const term = new AbortController();
    const onStop = (): void => term.abort(new Error('leader elector stopped'));
    this.stopSignal.addEventListener('abort', onStop, { once: true });
    let callbackFailed = false;
    const work = (async () => {
      try {
        await this.onStartedLeading(term.signal);
      } catch (err) {
        if (term.signal.aborted) return;
        callbackFailed = true;
        this.log.error({ err }, 'Leader callback failed; giving up leadership');
        term.abort(new Error('leader callback failed'));
      }
    })();

    const lost = await this.renewLoop(term.signal);
    this.stopSignal.removeEventListener('abort', onStop);
    if (lost) this.log.warn({}, 'Failed to renew leader lease in time; leadership lost');
    this.leading = false;
    term.abort(new Error(lost ? 'leadership lost' : 'leadership ended'));
    await work;
    // Only a leader that still holds the lease can hand it over.
    if (!lost && ((this.state === 'stopped' && this.releaseOnStop) || callbackFailed)) await this.release();
    try {
      this.onStoppedLeading?.();
    } catch (err) {
      this.log.error({ err }, 'onStoppedLeading threw');
    }
    return { callbackFailed };
  }

  /**
   * Renews every retryPeriod. Returns true if leadership was lost, false if
   * the term was ended from outside. Leadership is lost when renewDeadline
   * passes since the last successful renewal (client-go counts from the
   * start of a renew round, a retryPeriod later; stepping down earlier
   * leaves a wider margin before the lease expires for the others).
   */
  private async renewLoop(term: AbortSignal): Promise<boolean> {
    let lastRenew = this.clock.now();
    for (;;) {
      try {
        await sleep(this.clock, this.retryPeriodMs, term);
      } catch {
        return false;
      }
      const deadline = lastRenew + this.renewDeadlineMs;
      const remaining = deadline - this.clock.now();
      if (remaining <= 0) return true;
      // Not cut short by the end of the term: a renewal the server applied
      // but we never heard of would leave a stale resourceVersion for release().
      const renewed = await this.tryAcquireOrRenew(remaining);
      if (term.aborted) return false;
      if (renewed) {
        lastRenew = this.clock.now();
      } else if (this.clock.now() >= deadline || this.heldByOther()) {
        return true;
      }
    }
  }

  /** True when the last observed record names another holder whose lease is still valid. */
  private heldByOther(): boolean {
    const spec = this.lease?.spec;
    const holder = spec?.holderIdentity ?? '';
    return holder !== '' && holder !== this.identity && this.leaseValid(spec?.leaseDurationSeconds);
  }

  private leaseValid(leaseDurationSeconds: number | undefined): boolean {
    const duration = (leaseDurationSeconds ?? this.leaseDurationMs / 1000) * 1000;
    return this.observedTime + duration > this.clock.now();
  }

  /**
   * One round of client-go's tryAcquireOrRenew: read the lease, and write it
   * with this replica as holder if it is ours, free or expired. Any failure
   * (including losing a write race) returns false.
   */
  private async tryAcquireOrRenew(timeoutMs: number, extra?: AbortSignal): Promise<boolean> {
    const { signal, dispose } = this.callSignal(timeoutMs, extra);
    try {
      const now = this.clock.now();
      let current: V1Lease;
      try {
        current = await this.client.getLease(this.namespace, this.name, { signal });
      } catch (err) {
        if (!isNotFound(err)) {
          this.log.debug({ err }, 'Error retrieving leader lease');
          return false;
        }
        const created = await this.client.createLease(
          this.namespace,
          this.leaseFor({ acquireTime: now, transitions: 0, renewTime: now }),
          { signal },
        );
        this.observe(created, this.clock.now());
        return true;
      }

      this.observe(current, now);
      const record = recordOf(current);
      const ours = record.holderIdentity === this.identity;
      if (record.holderIdentity !== '' && !ours && this.leaseValid(record.leaseDurationSeconds)) {
        return false;
      }
      const desired = this.leaseFor({
        acquireTime: ours ? record.acquireTime : now,
        transitions: ours ? record.leaseTransitions : record.leaseTransitions + 1,
        renewTime: now,
        resourceVersion: current.metadata?.resourceVersion,
      });
      const updated = await this.client.replaceLease(this.namespace, this.name, desired, { signal });
      this.observe(updated, this.clock.now());
      return true;
    } catch (err) {
      if (isConflict(err)) this.log.debug({}, 'Lost a race for the leader lease');
      else this.log.debug({ err }, 'Error updating leader lease');
      return false;
    } finally {
      dispose();
    }
  }

  /** Gives the lease up so that another candidate can take it without waiting for expiry. */
  private async release(): Promise<void> {
    const { signal, dispose } = this.callSignal(this.renewDeadlineMs);
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        const lease = attempt === 0 ? this.lease : await this.client.getLease(this.namespace, this.name, { signal });
        if (!lease || recordOf(lease).holderIdentity !== this.identity) return;
        const now = this.clock.now();
        const released: V1Lease = {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.name, namespace: this.namespace, resourceVersion: lease.metadata?.resourceVersion },
          spec: {
            holderIdentity: '',
            leaseDurationSeconds: 1,
            acquireTime: new V1MicroTime(now),
            renewTime: new V1MicroTime(now),
            leaseTransitions: lease.spec?.leaseTransitions ?? 0,
          },
        };
        try {
          const updated = await this.client.replaceLease(this.namespace, this.name, released, { signal });
          this.observe(updated, this.clock.now());
          this.log.info({}, 'Released leader lease');
          return;
        } catch (err) {
          // Our own last write may have landed unseen; re-read and try once more.
          if (!isConflict(err)) throw err;
        }
      }
    } catch (err) {
      this.log.warn({ err }, 'Failed to release leader lease; it expires on its own');
    } finally {
      dispose();
    }
  }

  private leaseFor(fields: {
    acquireTime: number | string;
    renewTime: number;
    transitions: number;
    resourceVersion?: string | undefined;
  }): V1Lease {
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        name: this.name,
        namespace: this.namespace,
        ...(fields.resourceVersion ? { resourceVersion: fields.resourceVersion } : {}),
      },
      spec: {
        holderIdentity: this.identity,
        leaseDurationSeconds: this.leaseDurationMs / 1000,
        // MicroTime must be sent with six fractional digits; a string read back from the server already is.
        acquireTime: (typeof fields.acquireTime === 'string'
          ? fields.acquireTime
          : new V1MicroTime(fields.acquireTime)) as V1MicroTime,
        renewTime: new V1MicroTime(fields.renewTime),
        leaseTransitions: fields.transitions,
      },
    };
  }

  /** Remembers the lease and, if its record changed, when we saw it change. */
  private observe(lease: V1Lease, at: number): void {
    this.lease = lease;
    const record = recordOf(lease);
    const serialized = JSON.stringify(record);
    if (serialized !== this.observedRecord) {
      this.observedRecord = serialized;
      this.observedTime = at;
    }
    if (record.holderIdentity !== '' && record.holderIdentity !== this.reportedLeader) {
      this.reportedLeader = record.holderIdentity;
      this.log.info({ leader: record.holderIdentity }, 'New leader elected');
      try {
        this.onNewLeader?.(record.holderIdentity);
      } catch (err) {
        this.log.error({ err }, 'onNewLeader threw');
      }
    }
  }

  /** A signal for one API call: aborts after timeoutMs on our clock, on stop, or with `extra`. */
  private callSignal(timeoutMs: number, extra?: AbortSignal): { signal: AbortSignal; dispose: () => void } {
    const controller = new AbortController();
    const timer = this.clock.setTimeout(
      () => controller.abort(new DOMException('lease call timed out', 'TimeoutError')),
      timeoutMs,
    );
    const sources = [controller.signal, ...(extra ? [extra] : [])];
    // Stopping must not cut a release short, so the stop signal is not among the sources.
    const signal = AbortSignal.any(sources);
    return {
      signal,
      dispose: () => this.clock.clearTimeout(timer),
    };
  }
}

function recordOf(lease: V1Lease): LeaseRecord {
  const spec = lease.spec ?? {};
  return {
    holderIdentity: spec.holderIdentity ?? '',
    leaseDurationSeconds: spec.leaseDurationSeconds ?? 0,
    acquireTime: timeString(spec.acquireTime),
    renewTime: timeString(spec.renewTime),
    leaseTransitions: spec.leaseTransitions ?? 0,
  };
}

/** client-node types MicroTime as a Date but hands back the server's string. */
function timeString(value: unknown): string {
  if (value instanceof Date) return value.toISOString();
  return typeof value === 'string' ? value : '';
}

