// KubeClient against a real kube-apiserver: merge patches with the right
// content type (on the object and on /status), paging, preconditions, the
// /scale subresource, Events, Leases, and the mapping of real failures to
// typed errors.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AppsV1Api, CoreV1Api, KubeConfig, V1MicroTime, type CoreV1Event } from '@kubernetes/client-node';
import {
  AlreadyExistsError,
  ConflictError,
  ForbiddenError,
  InvalidError,
  KubeClient,
  NotFoundError,
  TransientApiError,
} from '../../../src/controller/runtime/index.ts';
import { createTestNamespace, deleteTestNamespace, freePort, testEnv } from '../../harness/index.ts';
import { installWidgetCrd, type Widget, widget, WIDGETS } from './widget-crd.ts';

describe('KubeClient against a real apiserver', () => {
  const { kc } = testEnv();
  let ns: string;
  let client: KubeClient;

  before(async () => {
    await installWidgetCrd(kc);
    ns = await createTestNamespace(kc, 'rt-client');
    client = new KubeClient(kc, { qps: 50, burst: 100, fieldManager: 'runtime-test' });
  });

  after(async () => {
    await deleteTestNamespace(kc, ns);
  });

  it('creates, reads, merge-patches and deletes a custom resource', async () => {
    const created = await client.create(WIDGETS, widget(ns, 'crud', { size: 2, color: 'red' }));
    assert.equal(created.metadata?.namespace, ns);
    assert.ok(created.metadata?.uid);

    const read = await client.get<Widget>(WIDGETS, ns, 'crud');
    assert.deepEqual(read.spec, { size: 2, color: 'red' });

    // Merge-patch semantics: untouched keys stay, null removes a key. A JSON
    // Patch content type would reject this body outright.
    const patched = await client.mergePatch<Widget>(WIDGETS, ns, 'crud', { spec: { size: 3, color: null } });
    assert.deepEqual(patched.spec, { size: 3 });
    assert.deepEqual(patched.metadata?.managedFields?.some((f) => f.manager === 'runtime-test'), true);

    await client.delete(WIDGETS, ns, 'crud', { uid: created.metadata?.uid });
    await assert.rejects(client.get(WIDGETS, ns, 'crud'), NotFoundError);
  });

  it('merge-patches /status without touching spec, and ignores status in a patch of the object', async () => {
    await client.create(WIDGETS, widget(ns, 'status', { size: 4 }));
    const before = client.calls.count('patch', 'widgets/status');

    const first = await client.mergePatchStatus<Widget>(WIDGETS, ns, 'status', {
      status: { phase: 'Pending', notes: { a: '1', b: '2' } },
    });
    assert.deepEqual(first.status, { phase: 'Pending', notes: { a: '1', b: '2' } });
    const second = await client.mergePatchStatus<Widget>(WIDGETS, ns, 'status', {
      spec: { size: 9 },
      status: { phase: 'Ready', observedSize: 4, notes: { a: null } },
    });
    assert.deepEqual(second.status, { phase: 'Ready', observedSize: 4, notes: { b: '2' } });
    assert.equal(second.spec?.size, 4, 'a /status patch cannot change spec');
    assert.equal(client.calls.count('patch', 'widgets/status') - before, 2);

    const viaMain = await client.mergePatch<Widget>(WIDGETS, ns, 'status', { status: { phase: 'Pending' } });
    assert.equal(viaMain.status?.phase, 'Ready', 'status is only written through /status');
  });

  it('maps a stale resourceVersion in a patch to ConflictError', async () => {
    const created = await client.create(WIDGETS, widget(ns, 'stale'));
    const staleVersion = created.metadata?.resourceVersion;
    await client.mergePatch(WIDGETS, ns, 'stale', { spec: { size: 5 } });
    const err = await client
      .mergePatchStatus(WIDGETS, ns, 'stale', { metadata: { resourceVersion: staleVersion }, status: { phase: 'Ready' } })
      .catch((e: unknown) => e);
    assert.ok(err instanceof ConflictError, `got ${String(err)}`);
    assert.equal(err.code, 409);
    assert.ok(!(err instanceof AlreadyExistsError));
  });

  it('maps an invalid object to InvalidError with the field named', async () => {
    const err = await client.create(WIDGETS, widget(ns, 'invalid', { size: 99 })).catch((e: unknown) => e);
    assert.ok(err instanceof InvalidError, `got ${String(err)}`);
    assert.equal(err.code, 422);
    assert.ok(err.causes.some((c) => c.field === 'spec.size'), JSON.stringify(err.causes));
    const statusErr = await client.create(WIDGETS, widget(ns, 'valid')).then(() =>
      client.mergePatchStatus(WIDGETS, ns, 'valid', { status: { phase: 'Exploded' } }).catch((e: unknown) => e),
    );
    assert.ok(statusErr instanceof InvalidError, `got ${String(statusErr)}`);
  });

  it('maps missing objects to NotFoundError and duplicates to AlreadyExistsError', async () => {
    await assert.rejects(client.get(WIDGETS, ns, 'nope'), (err: unknown) => err instanceof NotFoundError && err.code === 404);
    await assert.rejects(client.mergePatchStatus(WIDGETS, ns, 'nope', { status: {} }), NotFoundError);
    await assert.rejects(client.delete(WIDGETS, ns, 'nope'), NotFoundError);
    await client.create(WIDGETS, widget(ns, 'twice'));
    await assert.rejects(client.create(WIDGETS, widget(ns, 'twice')), AlreadyExistsError);
  });

  it('refuses a delete whose uid precondition does not match', async () => {
    await client.create(WIDGETS, widget(ns, 'precondition'));
    await assert.rejects(
      client.delete(WIDGETS, ns, 'precondition', { uid: '00000000-0000-0000-0000-000000000000' }),
      ConflictError,
    );
    assert.ok(await client.get(WIDGETS, ns, 'precondition'));
  });

  it('lists with a label selector and follows continue tokens', async () => {
    for (let i = 0; i < 5; i++) {
      const w = widget(ns, `paged-${i}`);
      w.metadata!.labels = { batch: 'paged' };
      await client.create(WIDGETS, w);
    }
    await client.create(WIDGETS, widget(ns, 'unlabelled'));
    const firstPage = await client.list<Widget>(WIDGETS, { namespace: ns, labelSelector: 'batch=paged', limit: 2 });
    assert.equal(firstPage.items.length, 2);
    assert.ok(firstPage.continue, 'a continue token for the next page');
    assert.ok(firstPage.resourceVersion);
    const listsBefore = client.calls.count('list');
    const all = await client.listAll<Widget>(WIDGETS, { namespace: ns, labelSelector: 'batch=paged', limit: 2 });
    assert.deepEqual(all.items.map((w) => w.metadata?.name).sort(), ['paged-0', 'paged-1', 'paged-2', 'paged-3', 'paged-4']);
    assert.equal(client.calls.count('list') - listsBefore, 3, 'three pages of two');
    const everywhere = await client.listAll<Widget>(WIDGETS, { labelSelector: 'batch=paged' });
    assert.ok(everywhere.items.length >= 5, 'a list across namespaces');
  });

  it('reads and sets Deployment replicas through /scale', async () => {
    const apps = kc.makeApiClient(AppsV1Api);
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: {
        metadata: { name: 'workers' },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'workers' } },
          template: {
            metadata: { labels: { app: 'workers' } },
            spec: { containers: [{ name: 'w', image: 'registry.invalid/worker:1' }] },
          },
        },
      },
    });
    const scale = await client.getScale(ns, 'workers');
    assert.equal(scale.spec?.replicas, 1);
    const scaled = await client.patchScale(ns, 'workers', 3);
    assert.equal(scaled.spec?.replicas, 3);
    const deployment = await client.getDeployment(ns, 'workers');
    assert.equal(deployment.spec?.replicas, 3);
    assert.equal(client.calls.count('patch', 'deployments/scale'), 1);
    await assert.rejects(client.getScale(ns, 'missing'), NotFoundError);
  });

  it('records a core/v1 Event about an object', async () => {
    const subject = await client.create(WIDGETS, widget(ns, 'eventful'));
    const created = await client.createEvent({ regarding: subject, type: 'Normal', reason: 'Published', message: 'Published Widget' });
    const second = await client.createEvent({ regarding: subject, type: 'Warning', reason: 'Failed', message: 'x'.repeat(5000) });
    assert.notEqual(created.metadata?.name, second.metadata?.name);
    const events = await kc.makeApiClient(CoreV1Api).listNamespacedEvent({
      namespace: ns,
      fieldSelector: `involvedObject.uid=${subject.metadata?.uid}`,
    });
    const byReason = new Map(events.items.map((e: CoreV1Event) => [e.reason, e]));
    const published = byReason.get('Published');
    assert.equal(published?.involvedObject.kind, 'Widget');
    assert.equal(published?.involvedObject.name, 'eventful');
    assert.equal(published?.source?.component, 'task-queue-controller');
    assert.equal(published?.type, 'Normal');
    assert.ok((byReason.get('Failed')?.message?.length ?? 0) <= 1024, 'long messages are truncated');
  });

  it('gets, creates and replaces a Lease with optimistic concurrency', async () => {
    await assert.rejects(client.getLease(ns, 'lock'), NotFoundError);
    const created = await client.createLease(ns, {
      metadata: { name: 'lock', namespace: ns },
      spec: { holderIdentity: 'a', leaseDurationSeconds: 15, renewTime: new V1MicroTime(Date.now()), leaseTransitions: 0 },
    });
    const read = await client.getLease(ns, 'lock');
    assert.equal(read.spec?.holderIdentity, 'a');
    const replaced = await client.replaceLease(ns, 'lock', {
      ...read,
      spec: { ...read.spec, holderIdentity: 'b', renewTime: new V1MicroTime(Date.now()) },
    });
    assert.equal(replaced.spec?.holderIdentity, 'b');
    // Replacing from the first version again must lose the race.
    await assert.rejects(
      client.replaceLease(ns, 'lock', { ...created, spec: { ...created.spec, holderIdentity: 'c' } }),
      ConflictError,
    );
    assert.equal(client.calls.count('update', 'leases'), 2);
  });

  it('maps RBAC refusals to ForbiddenError', async () => {
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'nobody' } } });
    const token = await core.createNamespacedServiceAccountToken({
      namespace: ns,
      name: 'nobody',
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const cluster = kc.getCurrentCluster()!;
    const restricted = new KubeConfig();
    restricted.loadFromOptions({
      clusters: [{ name: 'c', server: cluster.server, caData: cluster.caData, skipTLSVerify: false }],
      users: [{ name: 'nobody', token: token.status?.token }],
      contexts: [{ name: 'ctx', cluster: 'c', user: 'nobody' }],
      currentContext: 'ctx',
    });
    const unprivileged = new KubeClient(restricted);
    await assert.rejects(unprivileged.get(WIDGETS, ns, 'anything'), (err: unknown) => err instanceof ForbiddenError && err.code === 403);
  });

  it('maps an unreachable apiserver to TransientApiError', async () => {
    const port = await freePort();
    const cluster = kc.getCurrentCluster()!;
    const user = kc.getCurrentUser()!;
    const nowhere = new KubeConfig();
    nowhere.loadFromOptions({
      clusters: [{ name: 'c', server: `https://127.0.0.1:${port}`, caData: cluster.caData, skipTLSVerify: false }],
      users: [user],
      contexts: [{ name: 'ctx', cluster: 'c', user: user.name }],
      currentContext: 'ctx',
    });
    const err = await new KubeClient(nowhere).get(WIDGETS, ns, 'x').catch((e: unknown) => e);
    assert.ok(err instanceof TransientApiError, `got ${String(err)}`);
    assert.equal(err.code, undefined);
  });

  it('paces calls with its token bucket', async () => {
    const slow = new KubeClient(kc, { qps: 10, burst: 1 });
    const started = Date.now();
    await Promise.all(Array.from({ length: 6 }, () => slow.list(WIDGETS, { namespace: ns, limit: 1 })));
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 450, `6 calls at 10 qps, burst 1, took ${elapsed} ms`);
    assert.equal(slow.calls.count('list'), 6);
  });

  it('refuses core-group resources with a clear message', async () => {
    await assert.rejects(client.get({ group: '', version: 'v1', plural: 'configmaps' }, ns, 'x'), /core group/);
  });
});
