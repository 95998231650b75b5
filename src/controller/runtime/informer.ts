/**
 * A list-then-watch cache of one resource, built to survive what
 * client-node's own informer does not: it resumes a broken watch from the
 * last resourceVersion it saw, relists when that version has expired (410),
 * backs off while the API server is away, restarts a watch that has gone
 * silent, and relists in full every resync period so a missed event cannot
 * leave the cache wrong for long.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { abortReason, type Clock, realClock, sleep, type TimerHandle } from './clock.ts';
import { objectKey } from './controller.ts';
import { ApiError, GoneError, type ApiStatus } from './errors.ts';
import type { ResourceRef, WatchEventType, WatchHandle, WatchOptions } from './kube-client.ts';
import { type Logger, silentLogger } from './logger.ts';

/** What the informer needs from KubeClient; tests pass a fake. */
export interface ListWatchClient {
  listAll<T extends KubernetesObject>(
    ref: ResourceRef,
    opts: { namespace?: string; labelSelector?: string; fieldSelector?: string; limit?: number; signal?: AbortSignal },
  ): Promise<{ items: T[]; resourceVersion: string }>;
  watch<T extends KubernetesObject>(
    ref: ResourceRef,
    opts: WatchOptions,
    onEvent: (type: WatchEventType, obj: T) => void,
    onDone: (err: Error | null) => void,
  ): Promise<WatchHandle>;
}

export interface InformerOptions {
  client: ListWatchClient;
  resource: ResourceRef;
  /** Omit to watch all namespaces (or a cluster-scoped resource). */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Full relist this often; 0 disables. Default 10 min. */
  resyncPeriodMs?: number;
  /**
   * Restart a watch that has delivered nothing, not even a bookmark, for
   * this long. Default 5 min: a quiet watch on kube-apiserver 1.34 gets its
   * first bookmark about 2 min in and one a minute after that, so a healthy
   * watch never trips it, while a dead connection is noticed.
   */
  watchdogMs?: number;
  /** Server-side watch timeout; default a random 5 to 10 min per watch, as client-go does. */
  watchTimeoutSeconds?: number;
  /** Backoff between failed attempts: initial, doubling, capped. Default 800 ms to 30 s. */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Page size of lists. Default 500. */
  pageSize?: number;
  clock?: Clock;
  logger?: Logger;
  /** Source of jitter in [0, 1); injectable for deterministic tests. */
  random?: () => number;
}

export type InformerEventName = 'add' | 'update' | 'delete';

type AddHandler<T> = (obj: T) => void;
type UpdateHandler<T> = (obj: T, old: T) => void;
type DeleteHandler<T> = (obj: T) => void;

/** How one watch ended, and so what the loop does next. */
type WatchEnd =
  | { kind: 'closed'; established: boolean; events: number; startedAt: number }
  | { kind: 'error'; established: boolean; events: number; startedAt: number; err: Error }
  | { kind: 'gone' }
  | { kind: 'watchdog' }
  | { kind: 'resync' }
  | { kind: 'stopped' };

/** Counters for tests and debugging. */
export interface InformerStats {
  lists: number;
  watches: number;
  watchdogRestarts: number;
  goneRelists: number;
  resyncs: number;
}

/** A watch that ran this long before ending counts as healthy: the next restart starts the backoff afresh. */
const HEALTHY_WATCH_MS = 10_000;

export class Informer<T extends KubernetesObject> {
  private readonly client: ListWatchClient;
  private readonly resource: ResourceRef;
  private readonly namespace: string | undefined;
  private readonly labelSelector: string | undefined;
  private readonly fieldSelector: string | undefined;
  private readonly resyncPeriodMs: number;
  private readonly watchdogMs: number;
  private readonly watchTimeoutSeconds: number | undefined;
  private readonly backoffInitialMs: number;
  private readonly backoffMaxMs: number;
  private readonly pageSize: number;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly random: () => number;

  private readonly cache = new Map<string, T>();
  private readonly addHandlers: AddHandler<T>[] = [];
  private readonly updateHandlers: UpdateHandler<T>[] = [];
  private readonly deleteHandlers: DeleteHandler<T>[] = [];
  private readonly syncWaiters: { resolve: () => void; reject: (err: unknown) => void }[] = [];

  private resourceVersion = '';
  private synced = false;
  private state: 'new' | 'running' | 'stopped' = 'new';
  private readonly stopController = new AbortController();
  private loop: Promise<void> | undefined;
  private failures = 0;
  private resyncTimer: TimerHandle | undefined;
  /** Ends the current watch from outside (stop, resync); set while a watch runs. */
  private endWatch: ((end: WatchEnd) => void) | undefined;
  private readonly counters: InformerStats = { lists: 0, watches: 0, watchdogRestarts: 0, goneRelists: 0, resyncs: 0 };

  constructor(options: InformerOptions) {
    this.client = options.client;
    this.resource = options.resource;
    this.namespace = options.namespace;
    this.labelSelector = options.labelSelector;
    this.fieldSelector = options.fieldSelector;
    this.resyncPeriodMs = options.resyncPeriodMs ?? 10 * 60_000;
    this.watchdogMs = options.watchdogMs ?? 300_000;
    this.watchTimeoutSeconds = options.watchTimeoutSeconds;
    this.backoffInitialMs = options.backoffInitialMs ?? 800;
    this.backoffMaxMs = options.backoffMaxMs ?? 30_000;
    this.pageSize = options.pageSize ?? 500;
    this.clock = options.clock ?? realClock;
    this.random = options.random ?? Math.random;
    this.log = (options.logger ?? silentLogger).child({
      informer: `${options.resource.plural}.${options.resource.group}`,
      ...(options.namespace ? { namespace: options.namespace } : {}),
    });
  }

  on(event: 'add', handler: AddHandler<T>): this;
  on(event: 'update', handler: UpdateHandler<T>): this;
  on(event: 'delete', handler: DeleteHandler<T>): this;
  on(event: InformerEventName, handler: AddHandler<T> | UpdateHandler<T> | DeleteHandler<T>): this {
    if (event === 'add') this.addHandlers.push(handler as AddHandler<T>);
    else if (event === 'update') this.updateHandlers.push(handler as UpdateHandler<T>);
    else this.deleteHandlers.push(handler as DeleteHandler<T>);
    return this;
  }

  start(): void {
    if (this.state !== 'new') throw new Error('informer was already started');
    this.state = 'running';
    this.loop = this.run();
  }

  /** Stops watching and waits for the loop to wind down. The cache stays readable. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    const wasRunning = this.state === 'running';
    this.state = 'stopped';
    this.stopController.abort(new Error('informer stopped'));
    this.clearResync();
    this.endWatch?.({ kind: 'stopped' });
    for (const waiter of this.syncWaiters.splice(0)) waiter.reject(new Error('informer stopped before it synced'));
    if (wasRunning) await this.loop;
  }

  /** True once the first list has filled the cache. */
  hasSynced(): boolean {
    return this.synced;
  }

  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.synced) return Promise.resolve();
    if (this.state === 'stopped') return Promise.reject(new Error('informer stopped before it synced'));
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (err: unknown) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      const onAbort = (): void => {
        const i = this.syncWaiters.indexOf(waiter);
        if (i >= 0) this.syncWaiters.splice(i, 1);
        reject(abortReason(signal!));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.syncWaiters.push(waiter);
    });
  }

  /** Every cached object. Treat them as read-only: they are the cache. */
  list(): T[] {
    return [...this.cache.values()];
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.cache.get(namespace ? `${namespace}/${name}` : name);
  }

  getByKey(key: string): T | undefined {
    return this.cache.get(key);
  }

  /** The resourceVersion the next watch resumes from. */
  lastSyncResourceVersion(): string {
    return this.resourceVersion;
  }

  stats(): InformerStats {
    return { ...this.counters };
  }

  // ---- the loop -------------------------------------------------------------

  private async run(): Promise<void> {
    let needList = true;
    while (this.state === 'running') {
      try {
        if (needList) {
          await this.relist();
          if (this.state !== 'running') return;
          needList = false;
          this.scheduleResync();
        }
        const end = await this.watchOnce();
        switch (end.kind) {
          case 'stopped':
            return;
          case 'resync':
            this.counters.resyncs++;
            needList = true;
            continue;
          case 'gone':
            this.counters.goneRelists++;
            this.log.info({ resourceVersion: this.resourceVersion }, 'Watch expired; relisting');
            needList = true;
            continue;
          case 'watchdog':
            this.counters.watchdogRestarts++;
            this.log.warn({ quietMs: this.watchdogMs }, 'Watch went quiet; restarting it');
            await this.backoff();
            continue;
          case 'closed':
          case 'error': {
            const healthy = end.established && (end.events > 0 || this.clock.now() - end.startedAt >= HEALTHY_WATCH_MS);
            if (healthy) this.failures = 0;
            if (end.kind === 'error') {
              this.log.warn({ err: end.err, resourceVersion: this.resourceVersion }, 'Watch failed; resuming');
            } else {
              this.log.debug({ resourceVersion: this.resourceVersion }, 'Watch closed; resuming');
            }
            await this.backoff();
            continue;
          }
        }
      } catch (err) {
        if (this.state !== 'running') return;
        this.log.warn({ err }, 'List failed; retrying');
        try {
          await this.backoff();
        } catch {
          return;
        }
      }
    }
  }

  /** Waits out the next backoff step; rejects when the informer stops. */
  private async backoff(): Promise<void> {
    const base = Math.min(this.backoffMaxMs, this.backoffInitialMs * 2 ** Math.min(this.failures, 30));
    this.failures++;
    const delay = base * (1 + 0.5 * this.random());
    await sleep(this.clock, delay, this.stopController.signal);
  }

  /** Lists everything and makes the cache match, emitting the differences. */
  private async relist(): Promise<void> {
    this.counters.lists++;
    const { items, resourceVersion } = await this.client.listAll<T>(this.resource, {
      namespace: this.namespace,
      labelSelector: this.labelSelector,
      fieldSelector: this.fieldSelector,
      limit: this.pageSize,
      signal: this.stopController.signal,
    });
    if (this.state !== 'running') return;
    const seen = new Set<string>();
    for (const obj of items) {
      const key = objectKey(obj);
      seen.add(key);
      const old = this.cache.get(key);
      this.cache.set(key, obj);
      // Every object present is reported again, unchanged or not: resync is
      // how a level-based controller catches anything it missed.
      if (old === undefined) this.emitAdd(obj);
      else this.emitUpdate(obj, old);
    }
    for (const [key, old] of this.cache) {
      if (!seen.has(key)) {
        this.cache.delete(key);
        this.emitDelete(old);
      }
    }
    this.resourceVersion = resourceVersion;
    this.failures = 0;
    if (!this.synced) {
      this.synced = true;
      this.log.debug({ objects: items.length, resourceVersion }, 'Informer synced');
      for (const waiter of this.syncWaiters.splice(0)) waiter.resolve();
    }
  }

  private scheduleResync(): void {
    this.clearResync();
    if (this.resyncPeriodMs <= 0) return;
    this.resyncTimer = this.clock.setTimeout(() => {
      this.resyncTimer = undefined;
      this.endWatch?.({ kind: 'resync' });
    }, this.resyncPeriodMs);
  }

  private clearResync(): void {
    if (this.resyncTimer !== undefined) {
      this.clock.clearTimeout(this.resyncTimer);
      this.resyncTimer = undefined;
    }
  }

  /** Runs one watch from the current resourceVersion until it ends, for whatever reason. */
  private watchOnce(): Promise<WatchEnd> {
    this.counters.watches++;
    const startedAt = this.clock.now();
    let established = false;
    let events = 0;
    let handle: WatchHandle | undefined;
    let watchdog: TimerHandle | undefined;
    let ended = false;

    return new Promise<WatchEnd>((resolve) => {
      const finish = (end: WatchEnd): void => {
        if (ended) return;
        ended = true;
        this.endWatch = undefined;
        if (watchdog !== undefined) this.clock.clearTimeout(watchdog);
        handle?.abort();
        resolve(end);
      };
      const armWatchdog = (): void => {
        if (watchdog !== undefined) this.clock.clearTimeout(watchdog);
        watchdog = this.clock.setTimeout(() => finish({ kind: 'watchdog' }), this.watchdogMs);
      };
      this.endWatch = finish;
      if (this.state !== 'running') {
        finish({ kind: 'stopped' });
        return;
      }
      // A resync that fell due while no watch was running happens now.
      if (this.resyncPeriodMs > 0 && this.resyncTimer === undefined) {
        finish({ kind: 'resync' });
        return;
      }
      armWatchdog();

      const onEvent = (type: WatchEventType, obj: T): void => {
        if (ended) return;
        events++;
        armWatchdog();
        if (type === 'ERROR') {
          const status = obj as unknown as ApiStatus;
          if (status.code === 410) finish({ kind: 'gone' });
          else
            finish({
              kind: 'error',
              established,
              events,
              startedAt,
              err: new ApiError(status.message ?? 'watch error', { code: status.code, reason: status.reason, status }),
            });
          return;
        }
        this.applyEvent(type, obj);
      };
      const onDone = (err: Error | null): void => {
        if (err instanceof GoneError) finish({ kind: 'gone' });
        else if (err) finish({ kind: 'error', established, events, startedAt, err });
        else finish({ kind: 'closed', established, events, startedAt });
      };

      this.client
        .watch<T>(
          this.resource,
          {
            namespace: this.namespace,
            labelSelector: this.labelSelector,
            fieldSelector: this.fieldSelector,
            resourceVersion: this.resourceVersion || undefined,
            allowWatchBookmarks: true,
            timeoutSeconds: this.watchTimeoutSeconds ?? Math.floor(300 * (1 + this.random())),
            // Our watchdog (on the injectable clock) decides; the client's own timer is a backstop.
            inactivityTimeoutMs: this.watchdogMs + 15_000,
            signal: this.stopController.signal,
          },
          onEvent,
          onDone,
        )
        .then(
          (h) => {
            handle = h;
            if (ended) h.abort();
            else established = true;
          },
          (err: unknown) => {
            if (this.state !== 'running') finish({ kind: 'stopped' });
            else finish({ kind: 'error', established, events, startedAt, err: err instanceof Error ? err : new Error(String(err)) });
          },
        );
    });
  }

  private applyEvent(type: WatchEventType, obj: T): void {
    const rv = obj.metadata?.resourceVersion;
    if (type === 'BOOKMARK') {
      if (rv) this.resourceVersion = rv;
      return;
    }
    let key: string;
    try {
      key = objectKey(obj);
    } catch {
      this.log.warn({ type }, 'Watch event without a name; ignored');
      return;
    }
    const old = this.cache.get(key);
    if (type === 'DELETED') {
      this.cache.delete(key);
      this.emitDelete(obj);
    } else if (old === undefined) {
      this.cache.set(key, obj);
      this.emitAdd(obj);
    } else if (old.metadata?.resourceVersion !== rv || rv === undefined) {
      this.cache.set(key, obj);
      this.emitUpdate(obj, old);
    }
    if (rv) this.resourceVersion = rv;
  }

  private emitAdd(obj: T): void {
    for (const handler of this.addHandlers) this.safely(() => handler(obj), 'add');
  }

  private emitUpdate(obj: T, old: T): void {
    for (const handler of this.updateHandlers) this.safely(() => handler(obj, old), 'update');
  }

  private emitDelete(obj: T): void {
    for (const handler of this.deleteHandlers) this.safely(() => handler(obj), 'delete');
  }

  private safely(fn: () => void, event: InformerEventName): void {
    try {
      fn();
    } catch (err) {
      // A broken handler must not stop the cache from following the server.
      this.log.error({ err, event }, 'Informer event handler threw');
    }
  }
}
