// The shared helpers in src/common as the worker (and controller) use them:
// environment parsing, connection options, the probe/metrics server.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Counter, Registry } from 'prom-client';
import { z } from 'zod';
import {
  ConfigError,
  envVar,
  loadEnvOrExit,
  natsConnectionOptions,
  parseEnv,
  redisOptions,
  startOpsServer,
} from '../../src/common/index.ts';

describe('parseEnv', () => {
  const schema = z.object({
    PORT: envVar.port().default(8080),
    FLAG: envVar.bool().optional(),
    LIST: envVar.list(),
    LEVEL: envVar.enum(['low', 'high']).default('low'),
    CMD: envVar.json(z.array(z.string()), '["a","b"]').optional(),
    URL: envVar.url(['redis', 'rediss']).optional(),
    COUNT: envVar.int({ min: 1, max: 10 }).optional(),
  });

  it('converts strings into typed values', () => {
    const env = parseEnv(schema, { LIST: 'a, b,,c', FLAG: 'Yes', CMD: '["x"]', URL: 'rediss://r:6380', COUNT: ' 3 ' });
    assert.deepEqual(env, { PORT: 8080, FLAG: true, LIST: ['a', 'b', 'c'], LEVEL: 'low', CMD: ['x'], URL: 'rediss://r:6380', COUNT: 3 });
  });

  it('lists every bad variable with what it expected', () => {
    try {
      parseEnv(schema, { PORT: 'http', FLAG: 'maybe', LEVEL: 'mid', CMD: 'a b', URL: 'http://x', COUNT: '11' });
      assert.fail('expected a ConfigError');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      const byVar = new Map(err.issues.map((i) => [i.variable, i.message]));
      assert.deepEqual([...byVar.keys()].sort(), ['CMD', 'COUNT', 'FLAG', 'LEVEL', 'LIST', 'PORT', 'URL']);
      assert.equal(byVar.get('LIST'), 'is required');
      assert.match(byVar.get('LEVEL')!, /one of low, high/);
      assert.match(byVar.get('CMD')!, /JSON/);
      assert.match(byVar.get('URL')!, /redis or rediss/);
      assert.match(err.message, /^invalid configuration:\n {2}/);
    }
  });

  it('exits non-zero at an entry point, printing every issue', () => {
    let printed = '';
    let code: number | undefined;
    assert.throws(
      () =>
        loadEnvOrExit(schema, {
          component: 'worker',
          env: { PORT: 'x' },
          stderr: (text) => {
            printed += text;
          },
          exit: (c) => {
            code = c;
            throw new Error('exited');
          },
        }),
      /exited/,
    );
    assert.equal(code, 1);
    assert.match(printed, /^worker: invalid configuration:/);
    assert.match(printed, /PORT: /);
    assert.match(printed, /LIST: is required/);
  });
});

describe('connection options', () => {
  it('NATS: several servers, reconnecting forever, user and password', () => {
    const options = natsConnectionOptions({ servers: ['nats://a:4222', 'nats://b:4222'], user: 'u', password: 'p', name: 'w' });
    assert.deepEqual(options.servers, ['nats://a:4222', 'nats://b:4222']);
    assert.equal(options.maxReconnectAttempts, -1);
    assert.equal(options.waitOnFirstConnect, true);
    assert.equal(options.user, 'u');
    assert.equal(options.pass, 'p');
    assert.equal(options.tls, undefined);
  });

  it('NATS: token, creds file and TLS files', () => {
    assert.equal(natsConnectionOptions({ servers: ['n:4222'], token: 't' }).token, 't');
    const dir = mkdtempSync(join(tmpdir(), 'tq-creds-'));
    const creds = join(dir, 'user.creds');
    writeFileSync(creds, '-----BEGIN NATS USER JWT-----\nx\n------END NATS USER JWT------\n');
    assert.equal(typeof natsConnectionOptions({ servers: ['n:4222'], credsFile: creds }).authenticator, 'function');
    const tls = natsConnectionOptions({ servers: ['n:4222'], tls: { caFile: '/ca', certFile: '/c', keyFile: '/k' } }).tls;
    assert.deepEqual(tls, { caFile: '/ca', certFile: '/c', keyFile: '/k' });
    assert.deepEqual(natsConnectionOptions({ servers: ['tls://n:4222'] }).tls, {});
  });

  it('Redis: commands wait out an outage; TLS from rediss:// or the flag', () => {
    const plain = redisOptions({ url: 'redis://r:6379', username: 'u', password: 'p' });
    assert.equal(plain.maxRetriesPerRequest, null);
    assert.equal(plain.enableOfflineQueue, true);
    assert.equal(plain.username, 'u');
    assert.equal(plain.password, 'p');
    assert.equal(plain.tls, undefined);
    assert.ok((plain.retryStrategy as (n: number) => number)(100) <= 5000);
    assert.deepEqual(redisOptions({ url: 'rediss://r:6380' }).tls, { servername: 'r' });
    assert.deepEqual(redisOptions({ url: 'redis://r:6379', tls: true }).tls, { servername: 'r' });
  });
});

describe('ops server', () => {
  it('serves probes and metrics, and nothing else', async () => {
    const registry = new Registry();
    new Counter({ name: 'taskqueue_test_total', help: 'test', registers: [registry] }).inc();
    let ready = false;
    const server = await startOpsServer({ port: 0, host: '127.0.0.1', health: { ready: () => ready }, metrics: registry });
    const url = (path: string) => `http://127.0.0.1:${server.port}${path}`;
    try {
      assert.equal((await fetch(url('/healthz'))).status, 200);
      assert.equal((await fetch(url('/readyz'))).status, 503);
      ready = true;
      assert.equal((await fetch(url('/readyz'))).status, 200);
      const metrics = await fetch(url('/metrics'));
      assert.equal(metrics.status, 200);
      assert.match(await metrics.text(), /taskqueue_test_total 1/);
      assert.equal((await fetch(url('/other'))).status, 404);
      assert.equal((await fetch(url('/healthz'), { method: 'POST' })).status, 405);
    } finally {
      await server.close();
    }
  });
});
