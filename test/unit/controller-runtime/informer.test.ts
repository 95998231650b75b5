import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { KubernetesObject } from '@kubernetes/client-node';
import { FakeClock, flushAsync } from '../../../src/controller/runtime/clock.ts';
import { GoneError, TransientApiError } from '../../../src/controller/runtime/errors.ts';
import { Informer, type ListWatchClient } from '../../../src/controller/runtime/informer.ts';
import type {
  ResourceRef,
  WatchEventType,
  WatchHandle,
  WatchOptions,
} from '../../../src/controller/runtime/kube-client.ts';

interface Obj extends KubernetesObject {
  data?: Record<string, string>;
}

const REF: ResourceRef = { group: 'example.dev', version: 'v1', plural: 'widgets' };

class FakeWatch implements WatchHandle {
  readonly opts: WatchOptions;
  aborted = false;
  private readonly onEvent: (type: WatchEventType, obj: Obj) => void;
  private readonly onDone: (err: Error | null) => void;

  constructor(opts: WatchOptions, onEvent: (type: WatchEventType, obj: Obj) => void, onDone: (err: Error | null) => void) {
    this.opts = opts;
    this.onEvent = onEvent;
    this.onDone = onDone;
  }

  get open(): boolean {
    return !this.aborted;
  }

  emit(type: WatchEventType, obj: Obj): void {
    if (this.open) this.onEvent(type, structuredClone(obj));
  }

  /** The server closes the stream (null) or it breaks (an error). */
  end(err: Error | null = null): void {
    if (!this.open) return;
    this.aborted = true;
    this.onDone(err);
  }

  abort(): void {
    this.aborted = true;
  }
}

/** An in-memory API server for one resource, with resourceVersions and watches. */
class FakeApi implements ListWatchClient {
  readonly objects = new Map<string, Obj>();
  readonly watches: FakeWatch[] = [];
  readonly listErrors: Error[] = [];
  readonly watchFailures: Error[] = [];
  lists = 0;
  /** When set, lists wait for it: a slow apiserver. */
  listGate: Promise<void> | undefined;
  private rv = 100;

  async listAll<T extends KubernetesObject>(): Promise<{ items: T[]; resourceVersion: string }> {
    this.lists++;
    if (this.listGate) await this.listGate;
    const err = this.listErrors.shift();
    if (err) throw err;
    return { items: [...this.objects.values()].map((o) => structuredClone(o)) as T[], resourceVersion: String(this.rv) };
  }

  async watch<T extends KubernetesObject>(
    _ref: ResourceRef,
    opts: WatchOptions,
    onEvent: (type: WatchEventType, obj: T) => void,
    onDone: (err: Error | null) => void,
  ): Promise<WatchHandle> {
    const w = new FakeWatch(opts, onEvent as (type: WatchEventType, obj: Obj) => void, onDone);
    const failure = this.watchFailures.shift();
    if (failure) {
      // Like client-node: done is called before watch() resolves when the request fails.
      w.end(failure);
      return w;
    }
    this.watches.push(w);
    return w;
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  get current(): FakeWatch {
    const w = this.watches.at(-1);
    assert.ok(w, 'no watch open');
    return w;
  }

  put(name: string, data: Record<string, string>, notify = true): Obj {
    const existed = this.objects.has(name);
    const obj: Obj = { metadata: { namespace: 'ns', name, resourceVersion: String(++this.rv) }, data };
    this.objects.set(name, obj);
    if (notify) for (const w of this.watches) w.emit(existed ? 'MODIFIED' : 'ADDED', obj);
    return obj;
  }

  remove(name: string, notify = true): void {
    const obj = this.objects.get(name);
    if (!obj) return;
    this.objects.delete(name);
    const gone = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } };
    if (notify) for (const w of this.watches) w.emit('DELETED', gone);
  }

  bookmark(): string {
    const rv = String(++this.rv);
    for (const w of this.watches) w.emit('BOOKMARK', { metadata: { resourceVersion: rv } });
    return rv;
  }
}

interface Recorded {
  type: 'add' | 'update' | 'delete';
  name: string;
  value?: string;
}

let running: Informer<Obj>[] = [];

function setup(options: { resyncPeriodMs?: number; watchdogMs?: number } = {}) {
  const clock = new FakeClock();
  const api = new FakeApi();
  const events: Recorded[] = [];
  const informer = new Informer<Obj>({
    client: api,
    resource: REF,
    namespace: 'ns',
    clock,
    random: () => 0,
    resyncPeriodMs: options.resyncPeriodMs ?? 0,
    watchdogMs: options.watchdogMs ?? 60_000,
    watchTimeoutSeconds: 300,
    backoffInitialMs: 800,
    backoffMaxMs: 30_000,
  });
  informer
    .on('add', (o) => events.push({ type: 'add', name: o.metadata!.name!, value: o.data?.v }))
    .on('update', (o) => events.push({ type: 'update', name: o.metadata!.name!, value: o.data?.v }))
    .on('delete', (o) => events.push({ type: 'delete', name: o.metadata!.name! }));
  running.push(informer);
  return { clock, api, events, informer };
}

afterEach(async () => {
  await Promise.all(running.map((i) => i.stop()));
  running = [];
});

describe('Informer', () => {
  it('lists, reports adds, syncs, then watches from the list resourceVersion with bookmarks', async () => {
    const { api, events, informer } = setup();
    api.put('a', { v: '1' });
    api.put('b', { v: '1' });
    assert.equal(informer.hasSynced(), false);
    const synced = informer.waitForSync();
    informer.start();
    await synced;
    assert.equal(informer.hasSynced(), true);
    assert.deepEqual(events, [
      { type: 'add', name: 'a', value: '1' },
      { type: 'add', name: 'b', value: '1' },
    ]);
    await flushAsync();
    const w = api.current;
    assert.equal(w.opts.resourceVersion, '102');
    assert.equal(w.opts.allowWatchBookmarks, true);
    assert.equal(w.opts.timeoutSeconds, 300);
    assert.equal(w.opts.namespace, 'ns');
    assert.equal(informer.get('ns', 'a')?.data?.v, '1');
    assert.equal(informer.list().length, 2);
  });

  it('applies watch events to the cache and handlers; bookmarks only move the resourceVersion', async () => {
    const { api, events, informer } = setup();
    informer.start();
    await informer.waitForSync();
    await flushAsync();
    api.put('a', { v: '1' });
    api.put('a', { v: '2' });
    api.put('b', { v: '1' });
    api.remove('b');
    assert.deepEqual(events, [
      { type: 'add', name: 'a', value: '1' },
      { type: 'update', name: 'a', value: '2' },
      { type: 'add', name: 'b', value: '1' },
      { type: 'delete', name: 'b' },
    ]);
    assert.equal(informer.get('ns', 'a')?.data?.v, '2');
    assert.equal(informer.get('ns', 'b'), undefined);
    const rv = api.bookmark();
    assert.equal(informer.lastSyncResourceVersion(), rv);
    assert.equal(events.length, 4);
  });

  it('resumes a closed watch from the last resourceVersion instead of relisting', async () => {
    const { api, clock, informer } = setup();
    informer.start();
    await informer.waitForSync();
    await flushAsync();
    api.put('a', { v: '1' });
    const rv = api.objects.get('a')!.metadata!.resourceVersion;
    await clock.advanceAsync(20_000);
    api.current.end(null);
    await flushAsync();
    assert.equal(api.watches.length, 1, 'waits a backoff step before reconnecting');
    await clock.advanceAsync(800);
    assert.equal(api.watches.length, 2);
    assert.equal(api.current.opts.resourceVersion, rv);
    assert.equal(api.lists, 1, 'no relist');
  });

  it('resumes after a broken stream, and events made meanwhile are not lost', async () => {
    const { api, clock, events, informer } = setup();
    informer.start();
    await informer.waitForSync();
    await flushAsync();
    api.current.end(new TransientApiError('socket hang up'));
    api.put('made-while-away', { v: '1' }, false);
    await clock.advanceAsync(800);
    // The fake server replays from the requested version, as the real one does.
    api.current.emit('ADDED', api.objects.get('made-while-away')!);
    assert.deepEqual(events, [{ type: 'add', name: 'made-while-away', value: '1' }]);
    assert.equal(api.lists, 1);
  });

  it('relists when the watch reports 410 Gone as an ERROR event', async () => {
    const { api, clock, events, informer } = setup();
    api.put('a', { v: '1' });
    api.put('b', { v: '1' });
    informer.start();
    await informer.waitForSync();
    await flushAsync();
    api.remove('b', false);
    api.put('a', { v: '2' }, false);
    api.put('c', { v: '1' }, false);
    events.length = 0;
    api.current.emit('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' } as Obj);
    await clock.advanceAsync(0);
    assert.equal(api.lists, 2);
    assert.equal(informer.stats().goneRelists, 1);
    assert.deepEqual(
      events.sort((x, y) => x.name.localeCompare(y.name)),
      [
        { type: 'update', name: 'a', value: '2' },
        { type: 'delete', name: 'b' },
        { type: 'add', name: 'c', value: '1' },
      ],
    );
    assert.equal(api.current.opts.resourceVersion, api.resourceVersion, 'the new watch starts at the relist');
  });

  it('relists when the watch request fails with GoneError', async () => {
    const { api, clock, informer } = setup();
    informer.start();
    await informer.waitForSync();
    await flushAsync();
    api.current.end(new GoneError('too old', { code: 410 }));
    await clock.advanceAsync(0);
    assert.equal(api.lists, 2);
  });

  it('backs off exponentially while the server is unreachable, and resets once a watch is healthy', async () => {
    const { api, clock, informer } = setup();
    informer.start();
    await informer.waitForSync();
    await flushAsync();
    for (let i = 0; i < 8; i++) api.watchFailures.push(new TransientApiError('ECONNREFUSED'));
    api.current.end(new TransientApiError('connection reset'));
    const waits: number[] = [];
    for (let i = 0; i < 9; i++) {
      await flushAsync();
      const wait = clock.nextTimerIn()!;
      waits.push(wait);
      await clock.advanceAsync(wait);
    }
    // The first wait follows a watch that was established but short and
    // eventless; each refused connection doubles the next wait, up to 30 s.
    assert.deepEqual(waits, [800, 1600, 3200, 6400, 12_800, 25_600, 30_000, 30_000, 30_000]);
    await flushAsync();
    assert.ok(api.current.open, 'connected again');
    api.put('x', { v: '1' });
    await clock.advanceAsync(20_000);
    api.current.end(null);
    await flushAsync();
    assert.equal(clock.nextTimerIn(), 800, 'a healthy watch resets the backoff');
  });

  it('retries a failed list with backoff before syncing', async () => {
    const { api, clock, informer } = setup();
    api.listErrors.push(new TransientApiError('ECONNREFUSED'), new TransientApiError('ECONNREFUSED'));
    api.put('a', { v: '1' });
    informer.start();
    await flushAsync();
    assert.equal(informer.hasSynced(), false);
    await clock.advanceAsync(800);
    assert.equal(informer.hasSynced(), false);
    await clock.advanceAsync(1600);
    assert.equal(informer.hasSynced(), true);
    assert.equal(api.lists, 3);
    assert.equal(informer.list().length, 1);
  });

  it('relists every resync period: updates for all objects, adds and deletes for missed changes', async () => {
    const { api, clock, events, informer } = setup({ resyncPeriodMs: 600_000, watchdogMs: 10_000_000 });
    api.put('a', { v: '1' });
    api.put('b', { v: '1' });
    informer.start();
    await informer.waitForSync();
    await flushAsync();
    api.remove('b', false);
    api.put('c', { v: '1' }, false);
    events.length = 0;
    await clock.advanceAsync(599_999);
    assert.equal(api.lists, 1);
    await clock.advanceAsync(1);
    assert.equal(api.lists, 2);
    assert.equal(informer.stats().resyncs, 1);
    assert.deepEqual(
      events.sort((x, y) => x.name.localeCompare(y.name)),
      [
        { type: 'update', name: 'a', value: '1' },
        { type: 'delete', name: 'b' },
        { type: 'add', name: 'c', value: '1' },
      ],
    );
    assert.equal(api.watches.filter((w) => w.open).length, 1, 'the old watch was closed, one new watch is open');
    await clock.advanceAsync(600_000);
    assert.equal(api.lists, 3, 'and again one period later');
  });

  it('restarts a watch that has been quiet longer than the watchdog timeout', async () => {
    const { api, clock, informer } = setup({ watchdogMs: 60_000 });
    informer.start();
    await informer.waitForSync();
    await flushAsync();
    const first = api.current;
    await clock.advanceAsync(50_000);
    api.bookmark(); // traffic resets the watchdog
    await clock.advanceAsync(50_000);
    assert.equal(first.open, true);
    await clock.advanceAsync(10_000);
    assert.equal(first.open, false, 'the silent watch was aborted');
    assert.equal(informer.stats().watchdogRestarts, 1);
    await clock.advanceAsync(800);
    assert.equal(api.watches.length, 2);
    assert.equal(api.current.opts.resourceVersion, informer.lastSyncResourceVersion());
    assert.equal(api.current.opts.resourceVersion, api.resourceVersion, 'resumes from the bookmark');
    assert.equal(api.lists, 1, 'a watchdog restart resumes, it does not relist');
  });

  it('keeps going when a handler throws', async () => {
    const { api, informer } = setup();
    const seen: string[] = [];
    informer.on('add', () => {
      throw new Error('handler bug');
    });
    informer.on('add', (o) => seen.push(o.metadata!.name!));
    informer.start();
    await informer.waitForSync();
    await flushAsync();
    api.put('a', { v: '1' });
    api.put('b', { v: '1' });
    assert.deepEqual(seen, ['a', 'b']);
  });

  it('ignores an event that repeats the cached resourceVersion', async () => {
    const { api, events, informer } = setup();
    const a = api.put('a', { v: '1' });
    informer.start();
    await informer.waitForSync();
    await flushAsync();
    events.length = 0;
    api.current.emit('MODIFIED', a);
    assert.deepEqual(events, []);
  });

  it('stop() closes the watch, ends the loop and leaves no timers; waitForSync rejects if never synced', async () => {
    const { api, clock, informer } = setup({ resyncPeriodMs: 600_000 });
    informer.start();
    await informer.waitForSync();
    await flushAsync();
    const w = api.current;
    await informer.stop();
    assert.equal(w.open, false);
    assert.equal(clock.pendingTimers(), 0);

    const never = setup();
    never.api.listErrors.push(new TransientApiError('down'));
    never.informer.start();
    const waiting = never.informer.waitForSync();
    await flushAsync();
    await never.informer.stop();
    await assert.rejects(waiting, /stopped/);
    assert.equal(never.clock.pendingTimers(), 0);
  });

  it('stop() during a slow list neither watches nor leaves timers behind', async () => {
    const { api, clock, informer } = setup({ resyncPeriodMs: 600_000 });
    let release!: () => void;
    api.listGate = new Promise((resolve) => (release = resolve));
    informer.start();
    await flushAsync();
    const stopped = informer.stop();
    release();
    await stopped;
    await flushAsync();
    assert.equal(api.watches.length, 0);
    assert.equal(clock.pendingTimers(), 0);
    assert.equal(informer.hasSynced(), false);
  });

  it('waitForSync rejects when its signal aborts', async () => {
    const { api, informer } = setup();
    api.listErrors.push(new TransientApiError('down'));
    informer.start();
    const controller = new AbortController();
    const waiting = informer.waitForSync(controller.signal);
    controller.abort(new Error('gave up'));
    await assert.rejects(waiting, /gave up/);
  });
});
