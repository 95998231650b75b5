// The test harness: real servers for every test, nothing mocked.
//
// `npm test` (scripts/run-tests.ts) starts one control plane, nats-server and
// redis-server per run and passes them to the test processes through the
// environment; testEnv() reads them back. Tests that must break a server
// (restart, kill, pause) start a private one with startControlPlane(),
// startNats() or startRedis().
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { projectRoot } from './control-plane.ts';

export { startControlPlane, stopDetachedControlPlane, projectRoot, localClusterBinary } from './control-plane.ts';
export type { ControlPlane, ControlPlaneOptions } from './control-plane.ts';
export { startNats } from './nats.ts';
export type { NatsServer } from './nats.ts';
export { startRedis } from './redis.ts';
export type { RedisServer } from './redis.ts';
export { ManagedProcess, pidAlive } from './process.ts';
export { freePort, waitFor, sleep, isListening } from './ports.ts';

export const kubectlBinary = join(projectRoot, 'bin', 'kubectl');
export const helmBinary = join(projectRoot, 'bin', 'helm');

export interface TestEnv {
  kubeconfigPath: string;
  kc: KubeConfig;
  natsUrl: string;
  redisUrl: string;
  /** The cluster came from the user's KUBECONFIG (e.g. kind), not the local control plane. */
  externalCluster: boolean;
  /** Directory of the local control plane (audit log, server logs); undefined for an external cluster. */
  clusterDir: string | undefined;
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run tests through \`npm test\` (scripts/run-tests.ts), which starts the servers they need`);
  }
  return value;
}

let cached: TestEnv | undefined;

export function testEnv(): TestEnv {
  if (cached) return cached;
  const kubeconfigPath = required('KUBECONFIG');
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  cached = {
    kubeconfigPath,
    kc,
    natsUrl: required('TQ_TEST_NATS_URL'),
    redisUrl: required('TQ_TEST_REDIS_URL'),
    externalCluster: process.env.TQ_TEST_EXTERNAL_CLUSTER === '1',
    clusterDir: process.env.TQ_TEST_CLUSTER_DIR || undefined,
  };
  return cached;
}

/** A name unique to this test: lower-case, DNS-safe, `prefix-xxxxxxxx`. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`.toLowerCase();
}

/** A stream name unique to this test (JetStream names: no dots, no wildcards). */
export function uniqueStream(prefix = 'TQ'): string {
  return `${prefix}_${randomBytes(4).toString('hex').toUpperCase()}`;
}

/** A Redis key prefix unique to this test. */
export function uniqueKeyPrefix(prefix = 'tqt'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}:`;
}

/** A fresh namespace for one test. Returns its name. */
export async function createTestNamespace(kc: KubeConfig, prefix = 'test'): Promise<string> {
  const name = uniqueName(prefix);
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name, labels: { 'taskqueue.dev/test': 'true' } } } });
  return name;
}

/** Deletes a test namespace without waiting for it to go away. */
export async function deleteTestNamespace(kc: KubeConfig, name: string): Promise<void> {
  await kc.makeApiClient(CoreV1Api).deleteNamespace({ name }).catch(() => undefined);
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function run(command: string, args: readonly string[], options: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<CommandResult> {
  return new Promise((resolveRun) => {
    const child = execFile(
      command,
      [...args],
      { env: options.env ?? process.env, cwd: options.cwd ?? projectRoot, timeout: options.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolveRun({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Runs the project's kubectl against the test cluster (or the given kubeconfig). */
export async function kubectl(args: readonly string[], options: { input?: string; kubeconfig?: string } = {}): Promise<CommandResult> {
  const kubeconfig = options.kubeconfig ?? testEnv().kubeconfigPath;
  return run(kubectlBinary, ['--kubeconfig', kubeconfig, ...args], { input: options.input });
}
