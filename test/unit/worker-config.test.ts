import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/common/index.ts';
import { loadWorkerConfig } from '../../src/worker/config.ts';

const minimal = {
  TQ_NATS_URL: 'nats://nats-1:4222, nats://nats-2:4222',
  TQ_REDIS_URL: 'redis://redis:6379',
  TQ_TASK_KIND: 'TranscriptionTask',
  TQ_ENGINE: 'fake',
};

function issues(env: NodeJS.ProcessEnv): Map<string, string> {
  try {
    loadWorkerConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return new Map(err.issues.map((i) => [i.variable, i.message]));
  }
  assert.fail('expected a ConfigError');
}

describe('worker config', () => {
  it('fills the documented defaults', () => {
    const config = loadWorkerConfig({ ...minimal, POD_NAME: 'worker-abc' });
    assert.deepEqual(config.nats.servers, ['nats://nats-1:4222', 'nats://nats-2:4222']);
    assert.equal(config.redis.url, 'redis://redis:6379');
    assert.equal(config.queue.stream, 'TASKQUEUE');
    assert.equal(config.queue.subjectPrefix, 'taskqueue');
    assert.equal(config.queue.cancelSubject, 'taskqueue.control.cancel');
    assert.equal(config.keyPrefix, 'tq:');
    assert.equal(config.taskKind, 'TranscriptionTask');
    assert.equal(config.workerName, 'worker-abc');
    assert.equal(config.concurrency, 1);
    assert.equal(config.shutdownGraceSeconds, 30);
    assert.equal(config.ackWaitSeconds, 60);
    assert.equal(config.heartbeatSeconds, 5);
    assert.equal(config.healthPort, 8081);
    assert.equal(config.metricsPort, 9090);
    assert.equal(config.logLevel, 'info');
    assert.equal(config.engine, 'fake');
    assert.equal(config.pipeline, 'standard');
  });

  it('prefers TQ_WORKER_NAME over POD_NAME and reads the rest', () => {
    const config = loadWorkerConfig({
      ...minimal,
      TQ_TASK_KIND: 'diarization',
      TQ_WORKER_NAME: 'named',
      POD_NAME: 'pod',
      TQ_CONCURRENCY: '4',
      TQ_NATS_USER: 'u',
      TQ_NATS_PASSWORD: 'p',
      TQ_REDIS_TLS: 'true',
      TQ_REDIS_PASSWORD: 'secret',
      TQ_ENGINE: 'exec',
      TQ_ENGINE_EXEC_COMMAND: '["python3","engine.py"]',
      TQ_STREAM_NAME: 'OTHER',
      TQ_SUBJECT_PREFIX: 'tq.blue',
      TQ_KEY_PREFIX: 'x:',
    });
    assert.equal(config.taskKind, 'DiarizationTask');
    assert.equal(config.workerName, 'named');
    assert.equal(config.concurrency, 4);
    assert.equal(config.nats.user, 'u');
    assert.equal(config.nats.password, 'p');
    assert.equal(config.redis.tls, true);
    assert.equal(config.redis.password, 'secret');
    assert.deepEqual(config.engineExecCommand, ['python3', 'engine.py']);
    assert.equal(config.queue.stream, 'OTHER');
    assert.equal(config.queue.cancelSubject, 'tq.blue.control.cancel');
    assert.equal(config.keyPrefix, 'x:');
  });

  it('reports every problem at once, naming the variable', () => {
    const found = issues({
      TQ_TASK_KIND: 'VideoTask',
      TQ_CONCURRENCY: 'two',
      TQ_REDIS_URL: 'http://redis',
      TQ_HEALTH_PORT: '70000',
      TQ_ENGINE: 'magic',
      TQ_REDIS_TLS: 'maybe',
      TQ_NATS_USER: 'only-user',
      TQ_ENGINE_EXEC_COMMAND: 'python3 engine.py',
    });
    for (const variable of [
      'TQ_NATS_URL',
      'TQ_TASK_KIND',
      'TQ_CONCURRENCY',
      'TQ_REDIS_URL',
      'TQ_HEALTH_PORT',
      'TQ_ENGINE',
      'TQ_REDIS_TLS',
      'TQ_ENGINE_EXEC_COMMAND',
    ]) {
      assert.ok(found.has(variable), `expected an issue for ${variable}; got ${[...found.keys()].join(', ')}`);
    }
    assert.equal(found.get('TQ_NATS_URL'), 'is required');
    assert.match(found.get('TQ_ENGINE') ?? '', /one of openai, exec, fake/);
    assert.match(found.get('TQ_TASK_KIND') ?? '', /TranscriptionTask, DiarizationTask/);
  });

  it('checks the pieces that only make sense together', () => {
    assert.match(issues({ ...minimal, TQ_NATS_USER: 'u' }).get('TQ_NATS_PASSWORD') ?? '', /together/);
    assert.match(issues({ ...minimal, TQ_NATS_TOKEN: 't', TQ_NATS_CREDS_FILE: '/c' }).get('TQ_NATS_TOKEN') ?? '', /one way/);
    assert.match(issues({ ...minimal, TQ_NATS_TLS_CERT_FILE: '/c' }).get('TQ_NATS_TLS_KEY_FILE') ?? '', /both/);
    assert.ok(issues({ ...minimal, TQ_ENGINE: 'openai' }).has('TQ_ENGINE_OPENAI_URL'));
    assert.ok(issues({ ...minimal, TQ_ENGINE: 'exec' }).has('TQ_ENGINE_EXEC_COMMAND'));
  });

  it('insists on an engine rather than defaulting to the fake one', () => {
    const { TQ_ENGINE: _engine, ...rest } = minimal;
    assert.equal(issues(rest).get('TQ_ENGINE'), 'is required');
  });

  it('treats blank variables as unset', () => {
    const config = loadWorkerConfig({ ...minimal, TQ_CONCURRENCY: '', TQ_STREAM_NAME: '  ' });
    assert.equal(config.concurrency, 1);
    assert.equal(config.queue.stream, 'TASKQUEUE');
  });
});
