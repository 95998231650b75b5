// The servers one benchmark run shares: a private kube-apiserver + etcd (with
// its audit log of every write), nats-server with JetStream and redis-server,
// all on 127.0.0.1, plus the project's CRDs and a bare CRD for the yardsticks.
// Each benchmark works in namespaces, streams and key prefixes of its own and
// stops its own processes; stop() here takes the servers down.
import { execFileSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { ApiextensionsV1Api, CoreV1Api, type KubeConfig, VersionApi } from '@kubernetes/client-node';
import {
  kubectlBinary,
  localClusterBinary,
  projectRoot,
  run,
  startControlPlane,
  startNats,
  startRedis,
  waitFor,
  type ControlPlane,
  type NatsServer,
  type RedisServer,
} from '../../test/harness/index.ts';

export const TASK_CRDS = ['transcriptiontasks.taskqueue.dev', 'diarizationtasks.taskqueue.dev', 'workerpools.taskqueue.dev'];

/** A custom resource with nothing behind it: the apiserver's own cost of a CR, the yardstick of every latency. */
export const BARE_GROUP = 'bench.taskqueue.dev';
export const BARE_VERSION = 'v1';
export const BARE_PLURAL = 'barewidgets';
export const BARE_KIND = 'BareWidget';
export const BARE_REF = { group: BARE_GROUP, version: BARE_VERSION, plural: BARE_PLURAL };

export interface Versions {
  kubeApiserver: string;
  natsServer: string;
  redisServer: string;
  node: string;
}

export interface Machine {
  cores: number;
  cpuModel: string;
  memoryBytes: number;
  /** `nproc` and `free -m` as printed on the machine. */
  nproc: string;
  free: string;
}

export interface BenchEnv {
  dir: string;
  kc: KubeConfig;
  kubeconfigPath: string;
  server: string;
  auditLogPath: string;
  natsUrl: string;
  natsMonitorUrl: string;
  redisUrl: string;
  controlPlane: ControlPlane;
  nats: NatsServer;
  redis: RedisServer;
  versions: Versions;
  machine: Machine;
  /** Server processes by name, for CPU accounting. */
  serverPids(): Record<string, number | undefined>;
  createNamespace(prefix: string): Promise<string>;
  stop(): Promise<void>;
}

function firstLine(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8' }).trim().split('\n')[0] ?? '';
  } catch (err) {
    return `unknown (${(err as Error).message.split('\n')[0]})`;
  }
}

export function describeMachine(): Machine {
  return {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    memoryBytes: totalmem(),
    nproc: firstLine('nproc', []),
    free: (() => {
      try {
        return execFileSync('free', ['-m'], { encoding: 'utf8' }).trim();
      } catch {
        return 'unknown';
      }
    })(),
  };
}

async function installCrds(kubeconfig: string, kc: KubeConfig): Promise<void> {
  const apply = await run(kubectlBinary, ['--kubeconfig', kubeconfig, 'apply', '--server-side', '--force-conflicts', '-f', join(projectRoot, 'crds')]);
  if (apply.code !== 0) throw new Error(`installing the CRDs failed:\n${apply.stderr}`);
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  await ext.createCustomResourceDefinition({
    body: {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: `${BARE_PLURAL}.${BARE_GROUP}` },
      spec: {
        group: BARE_GROUP,
        scope: 'Namespaced',
        names: { kind: BARE_KIND, plural: BARE_PLURAL, singular: 'barewidget', listKind: `${BARE_KIND}List` },
        versions: [
          {
            name: BARE_VERSION,
            served: true,
            storage: true,
            subresources: { status: {} },
            schema: {
              openAPIV3Schema: {
                type: 'object',
                properties: {
                  spec: { type: 'object', x_kubernetes_preserve_unknown_fields: true },
                  status: { type: 'object', x_kubernetes_preserve_unknown_fields: true },
                },
              },
            },
          },
        ],
      },
    },
  });
  const wait = await run(kubectlBinary, [
    '--kubeconfig', kubeconfig, 'wait', '--for=condition=Established', '--timeout=60s',
    ...[...TASK_CRDS, `${BARE_PLURAL}.${BARE_GROUP}`].map((n) => `crd/${n}`),
  ]);
  if (wait.code !== 0) throw new Error(`the CRDs did not become Established:\n${wait.stderr}`);
  // Established is not quite served: wait until a list of each answers.
  await waitFor('the custom resources to be served', async () => {
    const res = await run(kubectlBinary, ['--kubeconfig', kubeconfig, 'get', 'transcriptiontasks,workerpools,barewidgets', '-A']);
    return res.code === 0;
  }, { timeoutMs: 30_000, intervalMs: 250 });
}

export async function startBenchEnv(dir: string): Promise<BenchEnv> {
  let controlPlane: ControlPlane | undefined;
  let nats: NatsServer | undefined;
  let redis: RedisServer | undefined;
  try {
    [controlPlane, nats, redis] = await Promise.all([
      startControlPlane({ dir: join(dir, 'cluster') }),
      startNats({ dir: join(dir, 'nats') }),
      startRedis({ dir: join(dir, 'redis') }),
    ]);
    const kc = controlPlane.kc;
    await installCrds(controlPlane.kubeconfigPath, kc);
    const version = await kc.makeApiClient(VersionApi).getCode();
    const versions: Versions = {
      kubeApiserver: `${version.gitVersion} (${version.goVersion}, ${version.platform})`,
      natsServer: firstLine(process.env.TQ_NATS_SERVER_BIN ?? 'nats-server', ['--version']),
      redisServer: firstLine(process.env.TQ_REDIS_SERVER_BIN ?? 'redis-server', ['--version']),
      node: process.version,
    };
    const core = kc.makeApiClient(CoreV1Api);
    let counter = 0;
    const cp = controlPlane;
    const ns = nats;
    const rs = redis;
    return {
      dir,
      kc,
      kubeconfigPath: cp.kubeconfigPath,
      server: cp.server,
      auditLogPath: join(cp.dir, 'audit.log'),
      natsUrl: ns.url,
      natsMonitorUrl: ns.monitorUrl,
      redisUrl: rs.url,
      controlPlane: cp,
      nats: ns,
      redis: rs,
      versions,
      machine: describeMachine(),
      serverPids: () => ({
        // Without kube-controller-manager the control plane's pids are [kube-apiserver, etcd].
        'kube-apiserver': cp.pids[0],
        etcd: cp.pids[1],
        'nats-server': ns.process.pid,
        'redis-server': rs.process.pid,
      }),
      async createNamespace(prefix) {
        const name = `${prefix}-${++counter}-${Date.now().toString(36)}`;
        await core.createNamespace({ body: { metadata: { name, labels: { 'taskqueue.dev/bench': 'true' } } } });
        return name;
      },
      async stop() {
        await Promise.allSettled([cp.stop(), ns.destroy(), rs.destroy()]);
      },
    };
  } catch (err) {
    await Promise.allSettled([controlPlane?.stop(), nats?.destroy(), redis?.destroy()]);
    throw err;
  }
}

export { localClusterBinary };
