/**
 * KubeClient: the one door to the Kubernetes API. Every call is paced by a
 * client-side token bucket, bounded by a request timeout, counted per verb,
 * and fails with the typed errors of errors.ts.
 */
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  type CoreV1Event,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  Observable,
  PatchStrategy,
  type RequestContext,
  type ResponseContext,
  setHeaderOptions,
  type V1Deployment,
  type V1Lease,
  type V1Scale,
  Watch,
} from '@kubernetes/client-node';
import type { ConfigurationOptions, ObservableMiddleware } from '@kubernetes/client-node';
import { type Clock, realClock } from './clock.ts';
import { toApiError } from './errors.ts';
import { TokenBucket } from './rate-limiter.ts';

/** Names a resource served by an API group, e.g. taskqueue.dev/v1alpha1 transcriptiontasks. */
export interface ResourceRef {
  group: string;
  version: string;
  plural: string;
}

export type ApiVerb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete';

/** Counts API calls (attempts, failed ones included) by verb and resource. */
export class ApiCallCounter {
  private readonly counts = new Map<string, number>();

  record(verb: ApiVerb, resource: string): void {
    const key = `${verb} ${resource}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  /**
   * Calls of `verb`, optionally only on `resource` (plural, with
   * "/status" or "/scale" for subresources: `count('patch', 'transcriptiontasks/status')`).
   */
  count(verb: ApiVerb, resource?: string): number {
    if (resource !== undefined) return this.counts.get(`${verb} ${resource}`) ?? 0;
    let total = 0;
    for (const [key, n] of this.counts) if (key.startsWith(`${verb} `)) total += n;
    return total;
  }

  /** All counts, keyed "verb resource". */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }

  reset(): void {
    this.counts.clear();
  }
}

export interface KubeClientOptions {
  /** Sustained API calls per second (controller-runtime's default: 20). */
  qps?: number;
  /** Calls allowed at once above the sustained rate (default 30). */
  burst?: number;
  /** Abort a request that has not answered after this long (default 30 s). Watches are exempt. */
  requestTimeoutMs?: number;
  /** Recorded in managedFields for our writes. */
  fieldManager?: string;
  /** source.component of the Events we create. */
  eventComponent?: string;
  clock?: Clock;
}

export interface CallOptions {
  /** Cancels the wait for a token and the request itself. */
  signal?: AbortSignal;
}

export interface ListOptions extends CallOptions {
  /** Omit for all namespaces (or a cluster-scoped resource). */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Page size; the server may return fewer and a continue token. */
  limit?: number;
  continue?: string;
  resourceVersion?: string;
  resourceVersionMatch?: 'Exact' | 'NotOlderThan';
}

export interface ListPage<T> {
  items: T[];
  /** The collection's resourceVersion: where a watch should start. */
  resourceVersion: string;
  /** Set when more pages follow. */
  continue: string | undefined;
}

export interface DeleteOptions extends CallOptions {
  /** Delete only if the object still has this uid (not a recreated namesake). */
  uid?: string;
  /** Delete only if the object has not changed since this version. */
  resourceVersion?: string;
  propagationPolicy?: 'Foreground' | 'Background' | 'Orphan';
  gracePeriodSeconds?: number;
}

export interface WatchOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  resourceVersion?: string;
  allowWatchBookmarks?: boolean;
  /** The server ends the watch after this long. */
  timeoutSeconds?: number;
  /**
   * client-node's Watch aborts a stream that has been silent for 30 s by
   * default, shorter than the apiserver's bookmark interval; set how long to
   * tolerate silence instead (the caller's own watchdog should be shorter).
   */
  inactivityTimeoutMs?: number;
  signal?: AbortSignal;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchHandle {
  abort(): void;
}

export interface EventInput {
  /** The object the event is about. */
  regarding: KubernetesObject;
  type: 'Normal' | 'Warning';
  /** CamelCase, e.g. "Published". */
  reason: string;
  message: string;
  /** Defaults to the client's eventComponent. */
  component?: string;
}

const MAX_EVENT_MESSAGE = 1024;

export class KubeClient {
  readonly kubeConfig: KubeConfig;
  readonly calls = new ApiCallCounter();
  private readonly bucket: TokenBucket;
  private readonly requestTimeoutMs: number;
  private readonly fieldManager: string | undefined;
  private readonly eventComponent: string;
  private readonly clock: Clock;
  private readonly custom: CustomObjectsApi;
  private readonly apps: AppsV1Api;
  private readonly core: CoreV1Api;
  private readonly coordination: CoordinationV1Api;
  private eventSeq = 0;

  constructor(kubeConfig: KubeConfig, options: KubeClientOptions = {}) {
    this.kubeConfig = kubeConfig;
    this.clock = options.clock ?? realClock;
    this.bucket = new TokenBucket({ qps: options.qps ?? 20, burst: options.burst ?? 30, clock: this.clock });
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.fieldManager = options.fieldManager;
    this.eventComponent = options.eventComponent ?? 'task-queue-controller';
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.apps = kubeConfig.makeApiClient(AppsV1Api);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.coordination = kubeConfig.makeApiClient(CoordinationV1Api);
  }

  // ---- custom resources ---------------------------------------------------

  async get<T extends KubernetesObject = KubernetesObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    opts: CallOptions = {},
  ): Promise<T> {
    const { group, version, plural } = groupRef(ref);
    return this.call('get', plural, opts, (o) =>
      namespace === undefined
        ? this.custom.getClusterCustomObject({ group, version, plural, name }, o)
        : this.custom.getNamespacedCustomObject({ group, version, namespace, plural, name }, o),
    );
  }

  /** One page of a list. */
  async list<T extends KubernetesObject = KubernetesObject>(
    ref: ResourceRef,
    opts: ListOptions = {},
  ): Promise<ListPage<T>> {
    const { group, version, plural } = groupRef(ref);
    const query = {
      labelSelector: opts.labelSelector,
      fieldSelector: opts.fieldSelector,
      limit: opts.limit,
      _continue: opts.continue,
      resourceVersion: opts.resourceVersion,
      resourceVersionMatch: opts.resourceVersionMatch,
    };
    const { namespace } = opts;
    const body = await this.call<{ items?: T[]; metadata?: { resourceVersion?: string; continue?: string } }>(
      'list',
      plural,
      opts,
      (o) =>
        namespace === undefined
          ? this.custom.listClusterCustomObject({ group, version, plural, ...query }, o)
          : this.custom.listNamespacedCustomObject({ group, version, namespace, plural, ...query }, o),
    );
    return {
      items: body.items ?? [],
      resourceVersion: body.metadata?.resourceVersion ?? '',
      continue: body.metadata?.continue || undefined,
    };
  }

  /** Every page of a list, read as one consistent snapshot. */
  async listAll<T extends KubernetesObject = KubernetesObject>(
    ref: ResourceRef,
    opts: Omit<ListOptions, 'continue'> = {},
  ): Promise<{ items: T[]; resourceVersion: string }> {
    const items: T[] = [];
    let page = await this.list<T>(ref, opts);
    items.push(...page.items);
    while (page.continue !== undefined) {
      // A continue token pins the snapshot; resourceVersion must not be sent with it.
      const { resourceVersion: _rv, resourceVersionMatch: _rvm, ...rest } = opts;
      page = await this.list<T>(ref, { ...rest, continue: page.continue });
      items.push(...page.items);
    }
    return { items, resourceVersion: page.resourceVersion };
  }

  /** Creates `obj` in obj.metadata.namespace (or cluster-wide if it has none). */
  async create<T extends KubernetesObject>(ref: ResourceRef, obj: T, opts: CallOptions = {}): Promise<T> {
    const { group, version, plural } = groupRef(ref);
    const namespace = obj.metadata?.namespace;
    const fieldManager = this.fieldManager;
    return this.call('create', plural, opts, (o) =>
      namespace === undefined
        ? this.custom.createClusterCustomObject({ group, version, plural, body: obj, fieldManager }, o)
        : this.custom.createNamespacedCustomObject({ group, version, namespace, plural, body: obj, fieldManager }, o),
    );
  }

  /**
   * JSON merge patch (RFC 7386) of the object. Put metadata.resourceVersion
   * in the patch to make it conditional: a stale version fails with ConflictError.
   */
  async mergePatch<T extends KubernetesObject = KubernetesObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    patch: object,
    opts: CallOptions = {},
  ): Promise<T> {
    const { group, version, plural } = groupRef(ref);
    const fieldManager = this.fieldManager;
    return this.call(
      'patch',
      plural,
      opts,
      (o) =>
        namespace === undefined
          ? this.custom.patchClusterCustomObject({ group, version, plural, name, body: patch, fieldManager }, o)
          : this.custom.patchNamespacedCustomObject({ group, version, namespace, plural, name, body: patch, fieldManager }, o),
      PatchStrategy.MergePatch,
    );
  }

  /** JSON merge patch of the /status subresource; spec changes in `patch` are ignored by the server. */
  async mergePatchStatus<T extends KubernetesObject = KubernetesObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    patch: object,
    opts: CallOptions = {},
  ): Promise<T> {
    const { group, version, plural } = groupRef(ref);
    const fieldManager = this.fieldManager;
    return this.call(
      'patch',
      `${plural}/status`,
      opts,
      (o) =>
        namespace === undefined
          ? this.custom.patchClusterCustomObjectStatus({ group, version, plural, name, body: patch, fieldManager }, o)
          : this.custom.patchNamespacedCustomObjectStatus(
              { group, version, namespace, plural, name, body: patch, fieldManager },
              o,
            ),
      PatchStrategy.MergePatch,
    );
  }

  async delete(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    opts: DeleteOptions = {},
  ): Promise<void> {
    const { group, version, plural } = groupRef(ref);
    const preconditions =
      opts.uid !== undefined || opts.resourceVersion !== undefined
        ? { uid: opts.uid, resourceVersion: opts.resourceVersion }
        : undefined;
    const body = {
      preconditions,
      propagationPolicy: opts.propagationPolicy,
      gracePeriodSeconds: opts.gracePeriodSeconds,
    };
    await this.call('delete', plural, opts, (o) =>
      namespace === undefined
        ? this.custom.deleteClusterCustomObject({ group, version, plural, name, body }, o)
        : this.custom.deleteNamespacedCustomObject({ group, version, namespace, plural, name, body }, o),
    );
  }

  // ---- Deployments ----------------------------------------------------------

  getDeployment(namespace: string, name: string, opts: CallOptions = {}): Promise<V1Deployment> {
    return this.call('get', 'deployments', opts, (o) => this.apps.readNamespacedDeployment({ namespace, name }, o));
  }

  getScale(namespace: string, name: string, opts: CallOptions = {}): Promise<V1Scale> {
    return this.call('get', 'deployments/scale', opts, (o) =>
      this.apps.readNamespacedDeploymentScale({ namespace, name }, o),
    );
  }

  /** Sets a Deployment's replicas through its /scale subresource. */
  patchScale(namespace: string, name: string, replicas: number, opts: CallOptions = {}): Promise<V1Scale> {
    const fieldManager = this.fieldManager;
    return this.call(
      'patch',
      'deployments/scale',
      opts,
      (o) =>
        this.apps.patchNamespacedDeploymentScale({ namespace, name, body: { spec: { replicas } }, fieldManager }, o),
      PatchStrategy.MergePatch,
    );
  }

  // ---- Events -------------------------------------------------------------

  /**
   * Records a core/v1 Event about `regarding` (shown by kubectl describe).
   * core/v1 rather than events.k8s.io/v1 because every kubectl and UI reads it.
   */
  createEvent(input: EventInput, opts: CallOptions = {}): Promise<CoreV1Event> {
    const meta = input.regarding.metadata ?? {};
    if (!meta.name) throw new Error('event subject has no metadata.name');
    // Cluster-scoped subjects get their events in "default", as client-go does.
    const namespace = meta.namespace ?? 'default';
    const now = new Date(this.clock.now());
    const message =
      input.message.length > MAX_EVENT_MESSAGE ? `${input.message.slice(0, MAX_EVENT_MESSAGE - 3)}...` : input.message;
    const component = input.component ?? this.eventComponent;
    const event: CoreV1Event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: this.eventName(meta.name), namespace },
      involvedObject: {
        apiVersion: input.regarding.apiVersion,
        kind: input.regarding.kind,
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resourceVersion: meta.resourceVersion,
      },
      reason: input.reason,
      message,
      type: input.type,
      source: { component },
      reportingComponent: component,
      reportingInstance: component,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    return this.call('create', 'events', opts, (o) => this.core.createNamespacedEvent({ namespace, body: event }, o));
  }

  /** "<name>.<hex>" like client-go, with a sequence so two events in one millisecond differ. */
  private eventName(subject: string): string {
    const stamp = BigInt(this.clock.now()) * 1_000_000n + BigInt(this.eventSeq++ % 1_000_000);
    return `${subject}.${stamp.toString(16)}`;
  }

  // ---- Leases -------------------------------------------------------------

  getLease(namespace: string, name: string, opts: CallOptions = {}): Promise<V1Lease> {
    return this.call('get', 'leases', opts, (o) => this.coordination.readNamespacedLease({ namespace, name }, o));
  }

  createLease(namespace: string, lease: V1Lease, opts: CallOptions = {}): Promise<V1Lease> {
    const fieldManager = this.fieldManager;
    return this.call('create', 'leases', opts, (o) =>
      this.coordination.createNamespacedLease({ namespace, body: lease, fieldManager }, o),
    );
  }

  /** Replaces the lease; lease.metadata.resourceVersion makes it conditional (ConflictError if stale). */
  replaceLease(namespace: string, name: string, lease: V1Lease, opts: CallOptions = {}): Promise<V1Lease> {
    const fieldManager = this.fieldManager;
    return this.call('update', 'leases', opts, (o) =>
      this.coordination.replaceNamespacedLease({ namespace, name, body: lease, fieldManager }, o),
    );
  }

  // ---- Watch --------------------------------------------------------------

  /**
   * Opens a watch on a custom resource. `onEvent` gets each event; `onDone`
   * is called once when the stream ends, with null for a clean close or a
   * typed error. Returns after the server has answered the request.
   */
  async watch<T extends KubernetesObject = KubernetesObject>(
    ref: ResourceRef,
    opts: WatchOptions,
    onEvent: (type: WatchEventType, obj: T) => void,
    onDone: (err: Error | null) => void,
  ): Promise<WatchHandle> {
    const { group, version, plural } = groupRef(ref);
    const path =
      opts.namespace === undefined
        ? `/apis/${group}/${version}/${plural}`
        : `/apis/${group}/${version}/namespaces/${encodeURIComponent(opts.namespace)}/${plural}`;
    await this.bucket.acquire(opts.signal);
    this.calls.record('watch', plural);
    const watch = new Watch(this.kubeConfig);
    if (opts.inactivityTimeoutMs !== undefined && 'requestTimeoutMs' in watch) {
      // Not a public option of Watch; without it a quiet watch dies every 30 s.
      (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = opts.inactivityTimeoutMs;
    }
    let finished = false;
    const controller = await watch.watch(
      path,
      {
        labelSelector: opts.labelSelector,
        fieldSelector: opts.fieldSelector,
        resourceVersion: opts.resourceVersion,
        allowWatchBookmarks: opts.allowWatchBookmarks,
        timeoutSeconds: opts.timeoutSeconds,
      },
      (type, obj) => {
        if (!finished) onEvent(type as WatchEventType, obj as T);
      },
      (err) => {
        if (finished) return;
        finished = true;
        onDone(err ? toApiError(err) : null);
      },
    );
    return {
      abort: () => {
        finished = true;
        controller.abort();
      },
    };
  }

  // ---- plumbing -----------------------------------------------------------

  /**
   * Waits for a token, counts the call, runs it with a timeout and maps its
   * failure. An abort by the caller's own signal is rethrown as is.
   */
  private async call<T>(
    verb: ApiVerb,
    resource: string,
    opts: CallOptions,
    fn: (options: ConfigurationOptions<ObservableMiddleware>) => Promise<T>,
    contentType?: string,
  ): Promise<T> {
    const { signal } = opts;
    await this.bucket.acquire(signal);
    this.calls.record(verb, resource);
    const timeout = AbortSignal.timeout(this.requestTimeoutMs);
    const requestSignal = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let options: ConfigurationOptions<ObservableMiddleware> = {
      middleware: [signalMiddleware(requestSignal)],
      middlewareMergeStrategy: 'append',
    };
    if (contentType !== undefined) options = setHeaderOptions('Content-Type', contentType, options);
    try {
      return await fn(options);
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw toApiError(err);
    }
  }
}

function signalMiddleware(signal: AbortSignal): ObservableMiddleware {
  return {
    pre: (ctx: RequestContext) => {
      ctx.setSignal(signal);
      return new Observable(Promise.resolve(ctx));
    },
    post: (rsp: ResponseContext) => new Observable(Promise.resolve(rsp)),
  };
}

function groupRef(ref: ResourceRef): ResourceRef {
  if (!ref.group) {
    throw new Error(
      `KubeClient serves resources of API groups; "${ref.plural}" is in the core group (/api/${ref.version})`,
    );
  }
  return ref;
}
