// `npm test`: starts the real servers the tests need (a local control plane,
// nats-server with JetStream, redis-server, all on free loopback ports),
// installs the CRDs, runs the test files with Node's test runner, and tears
// everything down, whatever happens.
//
//   npm test                       every suite (unit, integration, e2e)
//   npm test -- unit               one suite (unit needs no servers)
//   npm test -- test/integration/crds.test.ts   given files
//
// With KUBECONFIG set, its cluster (kind, for example) is used instead of the
// local control plane; nats-server and redis-server still run locally.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import {
  kubectlBinary,
  projectRoot,
  run,
  startControlPlane,
  startNats,
  startRedis,
  type ControlPlane,
  type NatsServer,
  type RedisServer,
} from '../test/harness/index.ts';

const suites = ['unit', 'integration', 'e2e'] as const;
type Suite = (typeof suites)[number];

function testFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...testFiles(path));
    else if (entry.endsWith('.test.ts')) out.push(path);
  }
  return out.sort();
}

const args = process.argv.slice(2);
const chosenSuites = args.filter((a): a is Suite => (suites as readonly string[]).includes(a));
const chosenFiles = args.filter((a) => a.endsWith('.ts'));
const passThrough = args.filter((a) => a.startsWith('--'));
const files =
  chosenFiles.length > 0
    ? chosenFiles
    : (chosenSuites.length > 0 ? chosenSuites : suites).flatMap((suite) => testFiles(join(projectRoot, 'test', suite)));
const needsServers = files.some((f) => !relative(projectRoot, f).startsWith(join('test', 'unit')));

const crdNames = ['transcriptiontasks.taskqueue.dev', 'diarizationtasks.taskqueue.dev', 'workerpools.taskqueue.dev'];

let controlPlane: ControlPlane | undefined;
let nats: NatsServer | undefined;
let redis: RedisServer | undefined;
let workDir: string | undefined;

async function setUp(): Promise<NodeJS.ProcessEnv> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  workDir = mkdtempSync(join(tmpdir(), 'tq-test-run-'));
  const external = Boolean(process.env.KUBECONFIG);
  if (!external) {
    execFileSync(join(projectRoot, 'scripts', 'build-local-cluster.sh'), { stdio: 'inherit' });
  }
  const started = Date.now();
  [controlPlane, nats, redis] = await Promise.all([
    external ? Promise.resolve(undefined) : startControlPlane({ dir: join(workDir, 'cluster'), controllerManager: true }),
    startNats({ dir: join(workDir, 'nats') }),
    startRedis({ dir: join(workDir, 'redis') }),
  ]);
  const kubeconfig = controlPlane?.kubeconfigPath ?? (process.env.KUBECONFIG as string);
  const apply = await run(kubectlBinary, ['--kubeconfig', kubeconfig, 'apply', '--server-side', '--force-conflicts', '-f', join(projectRoot, 'crds')]);
  if (apply.code !== 0) throw new Error(`installing the CRDs failed:\n${apply.stderr}`);
  const wait = await run(kubectlBinary, ['--kubeconfig', kubeconfig, 'wait', '--for=condition=Established', '--timeout=60s', ...crdNames.map((n) => `crd/${n}`)]);
  if (wait.code !== 0) throw new Error(`the CRDs did not become Established:\n${wait.stderr}`);
  console.log(
    `test servers ready in ${Date.now() - started} ms: ${controlPlane ? `local control plane ${controlPlane.server}` : `cluster from KUBECONFIG`}, nats ${nats.url}, redis ${redis.url}`,
  );
  env.KUBECONFIG = kubeconfig;
  env.TQ_TEST_NATS_URL = nats.url;
  env.TQ_TEST_REDIS_URL = redis.url;
  env.TQ_TEST_EXTERNAL_CLUSTER = external ? '1' : '0';
  env.TQ_TEST_CLUSTER_DIR = controlPlane?.dir ?? '';
  return env;
}

async function tearDown(): Promise<void> {
  await Promise.allSettled([controlPlane?.stop(), nats?.destroy(), redis?.destroy()]);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}

async function runNodeTests(env: NodeJS.ProcessEnv): Promise<number> {
  const nodeArgs = [
    '--test',
    '--test-reporter=spec',
    // A test that leaks a handle must not hold the whole run until its timeout.
    '--test-force-exit',
    `--test-concurrency=${process.env.TQ_TEST_CONCURRENCY ?? '3'}`,
    `--test-timeout=${process.env.TQ_TEST_TIMEOUT_MS ?? '300000'}`,
    ...passThrough,
    ...files,
  ];
  return new Promise((resolveCode) => {
    const child = spawn(process.execPath, nodeArgs, { stdio: 'inherit', env, cwd: projectRoot });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.on('exit', (code, signal) => resolveCode(code ?? (signal ? 1 : 0)));
  });
}

if (files.length === 0) {
  console.error(`no test files matched: ${args.join(' ') || '(all suites)'}`);
  process.exit(1);
}

let code = 1;
try {
  const env = needsServers ? await setUp() : { ...process.env };
  code = await runNodeTests(env);
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  code = 1;
} finally {
  await tearDown();
}
process.exit(code);
