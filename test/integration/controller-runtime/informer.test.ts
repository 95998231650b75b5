// Informer against a real kube-apiserver: it follows adds, updates and
// deletes, and keeps following them when the apiserver goes away and comes
// back (the watch is cut; events made afterwards must still arrive).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Informer, KubeClient } from '../../../src/controller/runtime/index.ts';
import {
  type ControlPlane,
  createTestNamespace,
  deleteTestNamespace,
  startControlPlane,
  testEnv,
  waitFor,
} from '../../harness/index.ts';
import { installWidgetCrd, type Widget, widget, WIDGETS } from './widget-crd.ts';

interface Seen {
  type: 'add' | 'update' | 'delete';
  name: string;
  size: number | undefined;
}

function record(informer: Informer<Widget>): Seen[] {
  const seen: Seen[] = [];
  informer
    .on('add', (w) => seen.push({ type: 'add', name: w.metadata!.name!, size: w.spec?.size }))
    .on('update', (w) => seen.push({ type: 'update', name: w.metadata!.name!, size: w.spec?.size }))
    .on('delete', (w) => seen.push({ type: 'delete', name: w.metadata!.name!, size: w.spec?.size }));
  return seen;
}

function has(seen: Seen[], type: Seen['type'], name: string, size?: number): boolean {
  return seen.some((s) => s.type === type && s.name === name && (size === undefined || s.size === size));
}

/** The informer's cache holds exactly what the server holds, at the same versions. */
async function cacheMatchesServer(informer: Informer<Widget>, client: KubeClient, namespace: string): Promise<boolean> {
  const server = await client.listAll<Widget>(WIDGETS, { namespace });
  const cached = new Map(informer.list().map((w) => [w.metadata!.name!, w.metadata!.resourceVersion]));
  return (
    server.items.length === cached.size &&
    server.items.every((w) => cached.get(w.metadata!.name!) === w.metadata!.resourceVersion)
  );
}

describe('Informer on the shared cluster', () => {
  const { kc } = testEnv();
  let ns: string;
  let client: KubeClient;
  let informer: Informer<Widget> | undefined;

  before(async () => {
    await installWidgetCrd(kc);
    ns = await createTestNamespace(kc, 'rt-informer');
    client = new KubeClient(kc);
  });

  after(async () => {
    await informer?.stop();
    await deleteTestNamespace(kc, ns);
  });

  it('lists what exists, then sees adds, updates and deletes as they happen', async () => {
    await client.create(WIDGETS, widget(ns, 'existing-a', { size: 1 }));
    await client.create(WIDGETS, widget(ns, 'existing-b', { size: 1 }));
    informer = new Informer<Widget>({ client, resource: WIDGETS, namespace: ns });
    const seen = record(informer);
    informer.start();
    await informer.waitForSync(AbortSignal.timeout(30_000));
    assert.ok(has(seen, 'add', 'existing-a') && has(seen, 'add', 'existing-b'));
    assert.equal(informer.list().length, 2);

    await client.create(WIDGETS, widget(ns, 'new', { size: 2 }));
    await client.mergePatch(WIDGETS, ns, 'existing-a', { spec: { size: 7 } });
    await client.delete(WIDGETS, ns, 'existing-b');
    await waitFor('the watch events', () => has(seen, 'add', 'new', 2) && has(seen, 'update', 'existing-a', 7) && has(seen, 'delete', 'existing-b'));
    assert.equal(informer.get(ns, 'existing-a')?.spec?.size, 7);
    assert.equal(informer.get(ns, 'existing-b'), undefined);
    assert.ok(await cacheMatchesServer(informer, client, ns));
    assert.equal(informer.stats().lists, 1, 'one list, then the watch did the rest');
  });

  it('resumes from its resourceVersion when the server ends a watch, without relisting', async () => {
    const resuming = new Informer<Widget>({
      client,
      resource: WIDGETS,
      namespace: ns,
      watchTimeoutSeconds: 1,
      backoffInitialMs: 100,
    });
    const seen = record(resuming);
    try {
      resuming.start();
      await resuming.waitForSync(AbortSignal.timeout(30_000));
      await waitFor('the server to end a few watches', () => resuming.stats().watches >= 3, { timeoutMs: 20_000 });
      await client.create(WIDGETS, widget(ns, 'after-timeouts', { size: 4 }));
      await waitFor('the new object', () => has(seen, 'add', 'after-timeouts', 4));
      assert.equal(resuming.stats().lists, 1);
      assert.ok(await cacheMatchesServer(resuming, client, ns));
    } finally {
      await resuming.stop();
    }
  });
});

describe('Informer across apiserver restarts', { skip: testEnv().externalCluster && 'needs a private local control plane' }, () => {
  let cp: ControlPlane;
  let client: KubeClient;
  const ns = 'default';

  before(async () => {
    cp = await startControlPlane();
    await installWidgetCrd(cp.kc);
    client = new KubeClient(cp.kc, { requestTimeoutMs: 5000 });
  });

  after(async () => {
    await cp?.stop();
  });

  it('resumes after the apiserver restarts and after it is down for a while', async () => {
    const informer = new Informer<Widget>({
      client,
      resource: WIDGETS,
      namespace: ns,
      backoffInitialMs: 200,
      backoffMaxMs: 2000,
    });
    const seen = record(informer);
    try {
      await client.create(WIDGETS, widget(ns, 'before', { size: 1 }));
      informer.start();
      await informer.waitForSync(AbortSignal.timeout(30_000));
      assert.ok(has(seen, 'add', 'before'));

      await cp.restartApiserver();
      await client.create(WIDGETS, widget(ns, 'after-restart', { size: 2 }));
      await client.mergePatch(WIDGETS, ns, 'before', { spec: { size: 5 } });
      await waitFor(
        'events made after the restart',
        () => has(seen, 'add', 'after-restart', 2) && has(seen, 'update', 'before', 5),
        { timeoutMs: 60_000 },
      );

      // Down long enough for several failed reconnects, then back.
      await cp.stopApiserver();
      await new Promise((resolve) => setTimeout(resolve, 3000));
      await cp.startApiserver();
      await client.delete(WIDGETS, ns, 'after-restart');
      await client.create(WIDGETS, widget(ns, 'after-outage', { size: 3 }));
      await waitFor(
        'events made after the outage',
        () => has(seen, 'delete', 'after-restart') && has(seen, 'add', 'after-outage', 3),
        { timeoutMs: 60_000 },
      );
      await waitFor('the cache to match the server', () => cacheMatchesServer(informer, client, ns), { timeoutMs: 30_000 });
      const stats = informer.stats();
      assert.ok(stats.watches >= 3, `watched ${stats.watches} times`);
    } finally {
      await informer.stop();
    }
  });
});
