// The harness is what every other test stands on: it must start real servers,
// start them again right after, and leave nothing running.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api, VersionApi } from '@kubernetes/client-node';
import { pidAlive, startControlPlane, startNats, startRedis, testEnv, waitFor } from '../harness/index.ts';

test('the control plane, nats-server and redis-server start twice in a row and leave no process behind', { skip: testEnv().externalCluster && 'uses the local control plane' }, async () => {
  for (let round = 1; round <= 2; round++) {
    const [cp, nats, redis] = await Promise.all([startControlPlane(), startNats(), startRedis()]);
    const pids = [...cp.pids, nats.process.pid, redis.process.pid].filter((p): p is number => p !== undefined);
    assert.equal(pids.length, 4, 'etcd, kube-apiserver, nats-server and redis-server each have a pid');
    try {
      const version = await cp.kc.makeApiClient(VersionApi).getCode();
      assert.match(version.gitVersion, /^v1\.\d+\.\d+/, `round ${round}: the apiserver reports a real version`);
      const namespaces = await cp.kc.makeApiClient(CoreV1Api).listNamespace();
      assert.ok(namespaces.items.some((ns) => ns.metadata?.name === 'default'), `round ${round}: the default namespace exists`);
      for (const pid of pids) assert.ok(pidAlive(pid), `round ${round}: pid ${pid} runs`);
    } finally {
      await Promise.all([cp.stop(), nats.destroy(), redis.destroy()]);
    }
    await waitFor('every harness process to exit', () => pids.every((pid) => !pidAlive(pid)), { timeoutMs: 15_000 });
  }
});

test('a restarted apiserver keeps its data in etcd', { skip: testEnv().externalCluster && 'uses the local control plane' }, async () => {
  const cp = await startControlPlane();
  try {
    const core = cp.kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'kept-across-restart' } } });
    await cp.restartApiserver();
    const ns = await core.readNamespace({ name: 'kept-across-restart' });
    assert.equal(ns.metadata?.name, 'kept-across-restart');
  } finally {
    await cp.stop();
  }
});
