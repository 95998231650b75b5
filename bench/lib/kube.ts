// The benchmarks' own Kubernetes client: plain keep-alive HTTPS calls with no
// client-side rate limit (the load generator must not be the bottleneck), and
// watches that stamp each event with the time it arrived.
import { performance } from 'node:perf_hooks';
import { CustomObjectsApi, type KubeConfig, type KubernetesObject, Watch } from '@kubernetes/client-node';
import { API_VERSION, GROUP, Kind, PLURALS, VERSION, type TaskStatus } from '../../src/api/index.ts';
import { RawClient, collectionPath } from './raw-client.ts';

/** Milliseconds since the epoch with sub-millisecond resolution. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export interface ResourceRef {
  group: string;
  version: string;
  plural: string;
}

export const TASK_REF: ResourceRef = { group: GROUP, version: VERSION, plural: PLURALS[Kind.TranscriptionTask] };
export const POOL_REF: ResourceRef = { group: GROUP, version: VERSION, plural: PLURALS[Kind.WorkerPool] };

export interface TaskObject extends KubernetesObject {
  spec?: Record<string, unknown>;
  status?: TaskStatus;
}

/** A short task: the stub pipelines never fetch the audio. */
export function taskManifest(namespace: string, name: string, extra: { finalizers?: string[]; spec?: Record<string, unknown> } = {}): TaskObject {
  return {
    apiVersion: API_VERSION,
    kind: Kind.TranscriptionTask,
    metadata: { name, namespace, ...(extra.finalizers ? { finalizers: extra.finalizers } : {}), labels: { 'taskqueue.dev/bench': 'true' } },
    spec: { audio: { uri: `https://audio.bench.invalid/${name}.wav` }, language: 'en', ...extra.spec },
  };
}

/**
 * The benchmarks' reads and writes, over one keep-alive connection pool (see
 * raw-client.ts): the load generator and the yardsticks must cost the
 * apiserver what a well-behaved client costs it, and no more.
 */
export class BenchClient {
  readonly kc: KubeConfig;
  readonly raw: RawClient;

  constructor(kc: KubeConfig) {
    this.kc = kc;
    this.raw = new RawClient(kc);
  }

  async create<T extends KubernetesObject>(ref: ResourceRef, obj: T): Promise<T> {
    return this.raw.call<T>('POST', collectionPath(ref, obj.metadata?.namespace as string), obj);
  }

  async get<T extends KubernetesObject>(ref: ResourceRef, namespace: string, name: string): Promise<T> {
    return this.raw.call<T>('GET', `${collectionPath(ref, namespace)}/${encodeURIComponent(name)}`);
  }

  async patchStatus<T extends KubernetesObject>(ref: ResourceRef, namespace: string, name: string, status: Record<string, unknown>): Promise<T> {
    return this.raw.call<T>('PATCH', `${collectionPath(ref, namespace)}/${encodeURIComponent(name)}/status`, { status }, 'application/merge-patch+json');
  }

  /** Every object of a namespace, page by page, as one snapshot; also the size of the JSON that came over the wire. */
  async listAll<T extends KubernetesObject>(ref: ResourceRef, namespace: string, pageSize = 500): Promise<{ items: T[]; resourceVersion: string; jsonBytes: number }> {
    const items: T[] = [];
    let jsonBytes = 0;
    let cont: string | undefined;
    let resourceVersion = '';
    do {
      const query = new URLSearchParams({ limit: String(pageSize), ...(cont ? { continue: cont } : {}) });
      const page = await this.raw.call<{ items?: T[]; metadata?: { continue?: string; resourceVersion?: string } }>('GET', `${collectionPath(ref, namespace)}?${query}`);
      for (const item of page.items ?? []) {
        items.push(item);
        jsonBytes += Buffer.byteLength(JSON.stringify(item));
      }
      cont = page.metadata?.continue || undefined;
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
    } while (cont);
    return { items, resourceVersion, jsonBytes };
  }

  close(): void {
    this.raw.close();
  }
}

/** Runs `fn` over `items` with at most `concurrency` calls in flight. */
export async function inParallel<T>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<void>, signal?: AbortSignal): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      signal?.throwIfAborted();
      const index = next++;
      await fn(items[index] as T, index);
    }
  });
  await Promise.all(lanes);
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface TimedWatch {
  stop(): void;
  /** Set once the watch ended on its own (an error or the server closing it). */
  readonly ended: Error | null | undefined;
}

/**
 * Watches a namespace's objects of one resource from `resourceVersion` (or
 * from now: existing objects are listed first and skipped). `onEvent` gets the
 * arrival time of each event. Resolves once the server has answered.
 */
export async function timedWatch<T extends KubernetesObject>(
  kc: KubeConfig,
  ref: ResourceRef,
  namespace: string,
  onEvent: (type: WatchEventType, obj: T, atMs: number) => void,
  options: { resourceVersion?: string } = {},
): Promise<TimedWatch> {
  let resourceVersion = options.resourceVersion;
  if (resourceVersion === undefined) {
    const list = (await kc.makeApiClient(CustomObjectsApi).listNamespacedCustomObject({ ...ref, namespace, limit: 1 })) as {
      metadata?: { resourceVersion?: string };
    };
    resourceVersion = list.metadata?.resourceVersion ?? '';
  }
  const watch = new Watch(kc);
  // client-node aborts a silent watch after 30 s by default; our watches may idle longer.
  if ('requestTimeoutMs' in watch) (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = 3_600_000;
  const state: { ended: Error | null | undefined } = { ended: undefined };
  const controller = await watch.watch(
    `/apis/${ref.group}/${ref.version}/namespaces/${encodeURIComponent(namespace)}/${ref.plural}`,
    { resourceVersion, allowWatchBookmarks: false },
    (type, obj) => onEvent(type as WatchEventType, obj as T, nowMs()),
    (err) => {
      state.ended = (err as Error | null) ?? null;
    },
  );
  return {
    stop: () => controller.abort(),
    get ended() {
      return state.ended;
    },
  };
}

/** A promise per key, settled by whoever learns the answer first; with a timeout. */
export class Waiters<V> {
  private readonly waiting = new Map<string, { resolve: (v: V) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private readonly early = new Map<string, V>();

  wait(key: string, timeoutMs: number, what: string): Promise<V> {
    const ready = this.early.get(key);
    if (ready !== undefined) {
      this.early.delete(key);
      return Promise.resolve(ready);
    }
    return new Promise<V>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(key);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.waiting.set(key, { resolve, reject, timer });
    });
  }

  settle(key: string, value: V): void {
    const waiter = this.waiting.get(key);
    if (!waiter) {
      if (!this.early.has(key)) this.early.set(key, value);
      return;
    }
    clearTimeout(waiter.timer);
    this.waiting.delete(key);
    waiter.resolve(value);
  }

  /** Forgets answers nobody asked for (keys no one will wait on). */
  clearEarly(): void {
    this.early.clear();
  }
}
