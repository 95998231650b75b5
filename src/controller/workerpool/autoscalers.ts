// Finds other autoscalers that scale the same Deployment as a WorkerPool.
// Two writers of one /scale fight: each undoes the other's replicas every
// few seconds. The pool steps back and says so instead. A KEDA ScaledObject
// works through an HPA it creates, so looking for HPAs finds KEDA too.
import type { KubernetesObject } from '@kubernetes/client-node';
import { type Clock, type KubeClient, type ResourceRef, realClock } from '../runtime/index.ts';

export const HPA_RESOURCE: ResourceRef = { group: 'autoscaling', version: 'v2', plural: 'horizontalpodautoscalers' };

/** Label KEDA puts on the HPA it creates for a ScaledObject. */
const KEDA_SCALED_OBJECT_LABEL = 'scaledobject.keda.sh/name';

export interface OtherAutoscaler {
  kind: 'HorizontalPodAutoscaler';
  name: string;
  /** The KEDA ScaledObject behind the HPA, if KEDA made it. */
  scaledObject: string | undefined;
}

export interface AutoscalerLookup {
  /** Autoscalers in `namespace` whose scaleTargetRef is the Deployment `deployment`. */
  autoscalersOf(namespace: string, deployment: string, signal?: AbortSignal): Promise<OtherAutoscaler[]>;
}

interface HpaObject extends KubernetesObject {
  spec?: { scaleTargetRef?: { apiVersion?: string; kind?: string; name?: string } };
}

/** Says in words who else scales the Deployment, for a condition message. */
export function describeAutoscalers(found: readonly OtherAutoscaler[], deployment: string): string {
  const names = found.map((a) =>
    a.scaledObject ? `HorizontalPodAutoscaler ${a.name} (KEDA ScaledObject ${a.scaledObject})` : `HorizontalPodAutoscaler ${a.name}`,
  );
  return `${names.join(', ')} also ${found.length === 1 ? 'scales' : 'scale'} Deployment ${deployment}; the pool leaves its replicas alone until only one autoscaler targets it`;
}

export function targetsDeployment(hpa: HpaObject, deployment: string): boolean {
  const ref = hpa.spec?.scaleTargetRef;
  if (!ref || ref.kind !== 'Deployment' || ref.name !== deployment) return false;
  // "apps/v1" today; "extensions/..." in HPAs written for very old clusters.
  const group = ref.apiVersion?.includes('/') ? ref.apiVersion.split('/')[0] : '';
  return group === 'apps' || group === 'extensions' || group === '';
}

export interface HpaLookupOptions {
  /**
   * How long one namespace's list of HPAs is reused. Pools re-evaluate on
   * every backlog change; listing HPAs each time would cost the apiserver
   * one list per task published. A new HPA is noticed within this long.
   */
  ttlMs?: number;
  clock?: Clock;
}

/**
 * An AutoscalerLookup that lists autoscaling/v2 HPAs through the KubeClient
 * (rate-limited, counted, typed errors), with a short per-namespace cache.
 * Several pools of one namespace looking at the same moment share one list.
 */
export function hpaLookup(client: KubeClient, options: HpaLookupOptions = {}): AutoscalerLookup {
  const ttlMs = options.ttlMs ?? 10_000;
  const clock = options.clock ?? realClock;
  const cache = new Map<string, { at: number; items: HpaObject[] }>();
  const inFlight = new Map<string, Promise<HpaObject[]>>();

  const listNamespace = (namespace: string, signal?: AbortSignal): Promise<HpaObject[]> => {
    const cached = cache.get(namespace);
    if (cached && clock.now() - cached.at < ttlMs) return Promise.resolve(cached.items);
    const pending = inFlight.get(namespace);
    if (pending) return pending;
    const request = client
      .listAll<HpaObject>(HPA_RESOURCE, { namespace, ...(signal ? { signal } : {}) })
      .then(({ items }) => {
        cache.set(namespace, { at: clock.now(), items });
        return items;
      })
      .catch((err: unknown) => {
        // A list that fails now says nothing new about the HPAs: the last
        // answer, however old, is a better guess than none.
        const stale = cache.get(namespace);
        if (stale) return stale.items;
        throw err;
      })
      .finally(() => inFlight.delete(namespace));
    inFlight.set(namespace, request);
    return request;
  };

  return {
    async autoscalersOf(namespace, deployment, signal) {
      const items = await listNamespace(namespace, signal);
      return items
        .filter((hpa) => targetsDeployment(hpa, deployment))
        .map((hpa) => ({
          kind: 'HorizontalPodAutoscaler' as const,
          name: hpa.metadata?.name ?? '',
          scaledObject: hpa.metadata?.labels?.[KEDA_SCALED_OBJECT_LABEL],
        }))
        .sort((a, b) => a.name.localeCompare(b.name));
    },
  };
}
