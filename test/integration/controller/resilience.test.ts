// The controller under the failures an operator meets: restarts, a second
// replica, a lost leader, an apiserver that goes away, NATS going down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { Phase } from '../../../src/api/index.ts';
import { freePort, projectRoot, sleep, startControlPlane, startNats, testEnv, waitFor } from '../../harness/index.ts';
import { ProtocolWorker, controllerTestEnv } from './support.ts';

const audio = { uri: 'https://example.com/a.wav' };

test('restarting the controller mid-way queues nothing twice and loses no report', async (t) => {
  const env = await controllerTestEnv();
  t.after(() => env.cleanup());
  const first = await env.startManager({ identity: 'controller-a' });
  const worker = new ProtocolWorker(env);
  const count = 20;
  for (let i = 0; i < count; i++) await env.createTask('TranscriptionTask', `batch-${i}`, { audio });
  await waitFor('some tasks Queued', async () => (await env.streamMessages()) >= 5);
  await first.stop();

  // While no controller runs, a worker finishes one task: that report must not be lost.
  const { msg, task, attempt } = await worker.take('TranscriptionTask');
  const target = worker.target(task, attempt);
  await worker.reports.started(target);
  await worker.reports.succeeded(target, { summary: { segments: 2 }, result: {}, resultTTLSeconds: 60 });
  msg.ack();

  await env.startManager({ identity: 'controller-b' });
  for (let i = 0; i < count; i++) {
    if (`batch-${i}` === task.name) continue;
    await env.waitForTask('TranscriptionTask', `batch-${i}`, 'Queued', (s) => s.phase === Phase.Queued);
  }
  await env.waitForTask('TranscriptionTask', task.name, 'Succeeded (reported while no controller ran)', (s) => s.phase === Phase.Succeeded);
  await sleep(500);
  assert.equal(await env.streamMessages(), count - 1, 'each task queued exactly once (one was consumed)');
});

async function spawnController(env: Awaited<ReturnType<typeof controllerTestEnv>>, identity: string, leaseNamespace: string, logDir: string): Promise<ChildProcess> {
  const log = openSync(join(logDir, `${identity}.log`), 'a');
  const child = spawn(process.execPath, [join(projectRoot, 'src/controller/main.ts')], {
    env: {
      ...process.env,
      KUBECONFIG: testEnv().kubeconfigPath,
      TQ_NATS_URL: env.natsUrl,
      TQ_REDIS_URL: env.redisUrl,
      TQ_STREAM_NAME: env.names.stream,
      TQ_SUBJECT_PREFIX: env.names.subjectPrefix,
      TQ_KEY_PREFIX: env.keyPrefix,
      TQ_WATCH_NAMESPACE: env.namespace,
      TQ_LEADER_ELECTION_NAMESPACE: leaseNamespace,
      TQ_LEASE_DURATION_SECONDS: '4',
      TQ_RENEW_DEADLINE_SECONDS: '3',
      TQ_RETRY_PERIOD_SECONDS: '1',
      POD_NAME: identity,
      TQ_METRICS_PORT: String(await freePort()),
      TQ_HEALTH_PORT: String(await freePort()),
      TQ_LOG_LEVEL: 'debug',
    },
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  return child;
}

test('two controller replicas: only the leader acts; killing it hands over within the Lease duration', async (t) => {
  const env = await controllerTestEnv();
  const children: ChildProcess[] = [];
  const logDir = mkdtempSync(join(tmpdir(), 'tq-replicas-'));
  t.after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await env.cleanup();
    rmSync(logDir, { recursive: true, force: true });
  });
  // On failure, the replicas' own logs say why.
  const logs = () => readdirSync(logDir).map((f) => `--- ${f}\n${readFileSync(join(logDir, f), 'utf8').split('\n').slice(-30).join('\n')}`).join('\n');
  const waitOrExplain = async (what: string, check: () => Promise<boolean>, timeoutMs: number) => {
    try {
      await waitFor(what, check, { timeoutMs, intervalMs: 100 });
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${logs()}`);
    }
  };
  const coordination = env.kc.makeApiClient(CoordinationV1Api);
  const holder = async () => (await coordination.readNamespacedLease({ name: 'task-queue-controller', namespace: env.namespace }).catch(() => undefined))?.spec?.holderIdentity;

  children.push(await spawnController(env, 'replica-a', env.namespace, logDir));
  await waitOrExplain('replica-a to lead', async () => (await holder()) === 'replica-a', 60_000);
  children.push(await spawnController(env, 'replica-b', env.namespace, logDir));
  await env.createTask('TranscriptionTask', 'first', { audio });
  await env.waitForTask('TranscriptionTask', 'first', 'Queued', (s) => s.phase === Phase.Queued);
  await sleep(2000);
  assert.equal(await holder(), 'replica-a', 'the second replica does not take over a live leader');
  assert.equal(await env.streamMessages(), 1);

  const before = await coordination.readNamespacedLease({ name: 'task-queue-controller', namespace: env.namespace });
  const lastRenew = new Date(before.spec?.renewTime as unknown as string).getTime();
  const killedAt = Date.now();
  children[0]?.kill('SIGKILL');
  await waitOrExplain('replica-b to lead', async () => (await holder()) === 'replica-b', 30_000);
  const after = await coordination.readNamespacedLease({ name: 'task-queue-controller', namespace: env.namespace });
  const acquired = new Date(after.spec?.acquireTime as unknown as string).getTime();
  // Safety: the follower waited out the whole lease after the last renewal it saw.
  assert.ok(acquired - lastRenew >= 4000 - 100, `taken over ${acquired - lastRenew} ms after the last renewal, before the 4 s lease ran out`);
  // Liveness: a follower measures expiry from when it last saw the lease
  // renewed and looks every retry period (1 s, jittered), so the handover is
  // the lease duration plus about two retry periods; the rest is slack for a
  // loaded machine.
  const handover = acquired - killedAt;
  assert.ok(handover < 4000 + 2 * 1200 + 3000, `handover took ${handover} ms`);
  await env.createTask('TranscriptionTask', 'second', { audio });
  await env.waitForTask('TranscriptionTask', 'second', 'Queued by the new leader', (s) => s.phase === Phase.Queued);
  assert.equal(await env.streamMessages(), 2, 'nothing was queued twice across the handover');

  children[1]?.kill('SIGTERM');
  const [code] = await once(children[1] as ChildProcess, 'exit');
  assert.equal(code, 0, 'a SIGTERM shuts the controller down cleanly');
});

test('an apiserver restart (the watch is cut) does not stop the controller from seeing new tasks', { skip: testEnv().externalCluster && 'needs the local control plane' }, async (t) => {
  const cp = await startControlPlane();
  let env: Awaited<ReturnType<typeof controllerTestEnv>> | undefined;
  // One hook, in order: the controller goes before the apiserver it talks to.
  t.after(async () => {
    await env?.cleanup();
    await cp.stop();
  });
  const { run, kubectlBinary } = await import('../../harness/index.ts');
  const crds = await run(kubectlBinary, ['--kubeconfig', cp.kubeconfigPath, 'apply', '--server-side', '-f', join(projectRoot, 'crds')]);
  assert.equal(crds.code, 0, crds.stderr);
  await run(kubectlBinary, ['--kubeconfig', cp.kubeconfigPath, 'wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s']);
  env = await controllerTestEnv({ kc: cp.kc });
  await env.startManager({}, cp.kc);
  await env.createTask('TranscriptionTask', 'before', { audio });
  await env.waitForTask('TranscriptionTask', 'before', 'Queued', (s) => s.phase === Phase.Queued);

  await cp.restartApiserver();
  await env.createTask('TranscriptionTask', 'after', { audio });
  await env.waitForTask('TranscriptionTask', 'after', 'Queued after the restart', (s) => s.phase === Phase.Queued, 60_000);
});

test('with NATS down a task stays Pending with a reason, and is queued when NATS returns', async (t) => {
  const nats = await startNats();
  const env = await controllerTestEnv({ natsUrl: nats.url }).catch(async (err: unknown) => {
    await nats.destroy();
    throw err;
  });
  t.after(async () => {
    await env.cleanup();
    await nats.destroy();
  });
  await env.startManager();
  await nats.stop();
  await env.createTask('TranscriptionTask', 'patient', { audio });
  const pending = await env.waitForTask('TranscriptionTask', 'patient', 'Pending (queue unavailable)', (s) => s.phase === Phase.Pending && s.reason === 'QueueUnavailable', 30_000);
  assert.match(pending.message ?? '', /NATS|queue|JetStream/i);
  await nats.start();
  await env.waitForTask('TranscriptionTask', 'patient', 'Queued once NATS is back', (s) => s.phase === Phase.Queued, 60_000);
  assert.equal(await env.streamMessages(), 1);
});
