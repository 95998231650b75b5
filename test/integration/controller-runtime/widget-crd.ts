// A small custom resource owned by the runtime's tests, so they exercise
// KubeClient and Informer against a real apiserver without depending on the
// task CRDs' schema as it evolves. Installing it is idempotent.
import { ApiextensionsV1Api, CustomObjectsApi, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { isAlreadyExists, type ResourceRef } from '../../../src/controller/runtime/index.ts';
import { waitFor } from '../../harness/index.ts';

export const WIDGETS: ResourceRef = { group: 'runtime-test.taskqueue.dev', version: 'v1', plural: 'widgets' };

export interface Widget extends KubernetesObject {
  spec?: { size?: number; color?: string };
  status?: { phase?: string; observedSize?: number; notes?: Record<string, string> };
}

export function widget(namespace: string, name: string, spec: Widget['spec'] = { size: 1 }): Widget {
  return { apiVersion: `${WIDGETS.group}/${WIDGETS.version}`, kind: 'Widget', metadata: { namespace, name }, spec };
}

export async function installWidgetCrd(kc: KubeConfig): Promise<void> {
  const api = kc.makeApiClient(ApiextensionsV1Api);
  const name = `${WIDGETS.plural}.${WIDGETS.group}`;
  try {
    await api.createCustomResourceDefinition({
      body: {
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        metadata: { name },
        spec: {
          group: WIDGETS.group,
          scope: 'Namespaced',
          names: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
          versions: [
            {
              name: 'v1',
              served: true,
              storage: true,
              subresources: { status: {} },
              schema: {
                openAPIV3Schema: {
                  type: 'object',
                  properties: {
                    spec: {
                      type: 'object',
                      properties: {
                        size: { type: 'integer', minimum: 0, maximum: 10 },
                        color: { type: 'string' },
                      },
                    },
                    status: {
                      type: 'object',
                      properties: {
                        phase: { type: 'string', _enum: ['Pending', 'Ready'] },
                        observedSize: { type: 'integer' },
                        notes: { type: 'object', additionalProperties: { type: 'string' } },
                      },
                    },
                  },
                },
              },
            },
          ],
        },
      },
    });
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
  }
  await waitFor(`CRD ${name} to be Established`, async () => {
    const crd = await api.readCustomResourceDefinition({ name });
    return (crd.status?.conditions ?? []).some((c) => c.type === 'Established' && c.status === 'True');
  }, { timeoutMs: 60_000 });
  // Established can precede the resource being served by a moment.
  const custom = kc.makeApiClient(CustomObjectsApi);
  await waitFor(`${name} to be served`, async () => {
    await custom.listClusterCustomObject({ group: WIDGETS.group, version: WIDGETS.version, plural: WIDGETS.plural, limit: 1 });
    return true;
  });
}
