/**
 * The controller runtime: work queue, controller loop, rate limiters, the
 * single Kubernetes API client, informers and leader election.
 */
export { type Clock, type TimerHandle, realClock, FakeClock, sleep, flushAsync } from './clock.ts';
export {
  ApiError,
  NotFoundError,
  ConflictError,
  AlreadyExistsError,
  InvalidError,
  UnauthorizedError,
  ForbiddenError,
  GoneError,
  TransientApiError,
  TerminalError,
  type ApiStatus,
  type ApiStatusCause,
  toApiError,
  isNotFound,
  isConflict,
  isAlreadyExists,
  isGone,
  isForbidden,
  isTerminal,
  isTransient,
} from './errors.ts';
export {
  TokenBucket,
  type TokenBucketOptions,
  type ItemRateLimiter,
  ItemExponentialFailureRateLimiter,
  ItemBucketRateLimiter,
  MaxOfRateLimiter,
  defaultControllerRateLimiter,
} from './rate-limiter.ts';
export { WorkQueue, type WorkQueueOptions } from './workqueue.ts';
export {
  Controller,
  type ControllerOptions,
  type ControllerMetrics,
  type Reconciler,
  type ReconcileResult,
  type ReconcileOutcome,
  objectKey,
  splitKey,
} from './controller.ts';
export {
  KubeClient,
  type KubeClientOptions,
  ApiCallCounter,
  type ApiVerb,
  type ResourceRef,
  type CallOptions,
  type ListOptions,
  type ListPage,
  type DeleteOptions,
  type WatchOptions,
  type WatchEventType,
  type WatchHandle,
  type EventInput,
} from './kube-client.ts';
export {
  Informer,
  type InformerOptions,
  type InformerEventName,
  type InformerStats,
  type ListWatchClient,
} from './informer.ts';
export { LeaderElector, type LeaderElectorOptions, type LeaseClient } from './leader-election.ts';
export { type Logger, type LogFn, silentLogger } from './logger.ts';
