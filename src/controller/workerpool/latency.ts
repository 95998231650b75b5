// Measures how long the autoscaler takes to answer a change of backlog, as
// the apiserver sees it: from just before the caller changes the backlog to
// the moment a watch shows the Deployment's spec.replicas meeting the
// caller's condition. It needs nothing from the controller process, so the
// same function times this controller, KEDA, or anything else.
import { performance } from 'node:perf_hooks';
import { type KubeConfig, type V1Deployment, Watch } from '@kubernetes/client-node';
import { toApiError } from '../runtime/index.ts';

export interface TimeToReplicasOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  deployment: string;
  /** The replica count (spec.replicas) being waited for, e.g. `(r) => r >= 4`. */
  until: (replicas: number, deployment: V1Deployment) => boolean;
  /** Changes the backlog: publishes tasks, acknowledges them, ... */
  trigger: () => Promise<void> | void;
  /** Give up after this long (default 60 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface TimeToReplicas {
  /** Milliseconds from the start of `trigger` to the watch event that met `until`. */
  ms: number;
  /** Milliseconds the trigger itself took (part of `ms`). */
  triggerMs: number;
  replicas: number;
}

/**
 * Watches the Deployment, waits for the watch to deliver its current state,
 * runs `trigger`, and resolves at the first later event whose spec.replicas
 * satisfies `until`. A state that already satisfies it before the trigger
 * does not count.
 */
export async function timeToReplicas(options: TimeToReplicasOptions): Promise<TimeToReplicas> {
  const { namespace, deployment, until } = options;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const path = `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/deployments`;
  const watch = new Watch(options.kubeConfig);

  let started: number | undefined;
  let triggerMs = 0;
  let markSynced: () => void = () => {};
  const synced = new Promise<void>((resolve) => (markSynced = resolve));

  let abort: (() => void) | undefined;
  const result = new Promise<TimeToReplicas>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Deployment ${namespace}/${deployment} did not reach the wanted replicas within ${timeoutMs} ms`)), timeoutMs);
    const onAbort = () => reject(options.signal?.reason ?? new Error('aborted'));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const settle = () => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
    };
    watch
      .watch(
        path,
        { fieldSelector: `metadata.name=${deployment}` },
        (type, obj: V1Deployment) => {
          if (type === 'BOOKMARK' || type === 'DELETED') return;
          if (started === undefined) {
            markSynced();
            return;
          }
          const replicas = obj.spec?.replicas ?? 0;
          if (until(replicas, obj)) {
            const at = performance.now();
            settle();
            resolve({ ms: at - started, triggerMs, replicas });
          }
        },
        (err) => {
          if (err) {
            settle();
            reject(toApiError(err));
          }
        },
      )
      .then((controller) => {
        abort = () => controller.abort();
      })
      .catch((err: unknown) => {
        settle();
        reject(toApiError(err));
      });
  });
  // The Deployment must exist: its ADDED event is the watch's first word.
  await Promise.race([synced, result]);
  try {
    started = performance.now();
    await options.trigger();
    triggerMs = performance.now() - started;
    return await result;
  } finally {
    abort?.();
  }
}
