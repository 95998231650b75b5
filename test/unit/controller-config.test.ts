import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, parseEnv } from '../../src/common/index.ts';
import { ControllerEnvSchema, controllerConfigFromEnv } from '../../src/controller/config.ts';

const minimal = { TQ_NATS_URL: 'nats://127.0.0.1:4222', TQ_REDIS_URL: 'redis://127.0.0.1:6379', POD_NAMESPACE: 'task-queue', POD_NAME: 'ctl-0' };

test('defaults follow DESIGN.md: stream TASKQUEUE, subjects taskqueue.tasks, prefix tq:, leader election on', () => {
  const config = controllerConfigFromEnv(parseEnv(ControllerEnvSchema, minimal));
  assert.equal(config.queue.stream, 'TASKQUEUE');
  assert.equal(config.queue.subjectPrefix, 'taskqueue');
  assert.equal(config.queue.cancelSubject, 'taskqueue.control.cancel');
  assert.equal(config.keyPrefix, 'tq:');
  assert.equal(config.identity, 'ctl-0');
  assert.deepEqual(config.leaderElection, { enabled: true, namespace: 'task-queue', name: 'task-queue-controller', leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2 });
  assert.equal(config.progressIntervalMs, 1000);
  assert.equal(config.kubeQps, 20);
});

test('every configuration error is reported at once, each naming its variable', () => {
  try {
    parseEnv(ControllerEnvSchema, {
      TQ_NATS_URL: 'http://nats:4222',
      TQ_REDIS_URL: 'mysql://x',
      TQ_KUBE_QPS: 'fast',
      TQ_LEASE_DURATION_SECONDS: '5',
      TQ_RENEW_DEADLINE_SECONDS: '9',
      TQ_SUBJECT_PREFIX: 'bad prefix!',
      TQ_LEADER_ELECTION: 'maybe',
    });
    assert.fail('expected a ConfigError');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    const variables = err.issues.map((i) => i.variable).sort();
    for (const v of ['TQ_NATS_URL', 'TQ_REDIS_URL', 'TQ_KUBE_QPS', 'TQ_LEADER_ELECTION']) assert.ok(variables.includes(v), `${v} in ${variables.join(',')}`);
    assert.match(err.message, /TQ_KUBE_QPS: must be an integer/);
  }
});

test('cross-field rules: the renew deadline must be shorter than the lease, and a lease namespace is needed', () => {
  assert.throws(
    () => parseEnv(ControllerEnvSchema, { ...minimal, TQ_LEASE_DURATION_SECONDS: '5', TQ_RENEW_DEADLINE_SECONDS: '9' }),
    /TQ_RENEW_DEADLINE_SECONDS: must be shorter than TQ_LEASE_DURATION_SECONDS/,
  );
  const { POD_NAMESPACE: _ns, ...noNamespace } = minimal;
  assert.throws(() => parseEnv(ControllerEnvSchema, noNamespace), /TQ_LEADER_ELECTION_NAMESPACE: is required/);
  assert.doesNotThrow(() => parseEnv(ControllerEnvSchema, { ...noNamespace, TQ_LEADER_ELECTION: 'false' }));
});
