// `make demo`: the whole system on this machine, no Docker needed. A local
// control plane, nats-server, redis-server, the controller and three
// workers (fake engine: no GPU), then config/samples applied and watched
// until every task has finished. Ctrl-C stops everything.
//
//   node scripts/demo.ts [--exit-when-done]
import { createReadStream, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { basename, join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import {
  ManagedProcess,
  freePort,
  kubectlBinary,
  projectRoot,
  run,
  startControlPlane,
  startNats,
  startRedis,
  waitFor,
} from '../test/harness/index.ts';

const exitWhenDone = process.argv.includes('--exit-when-done');
const dir = join(projectRoot, '.local', 'demo');
const namespace = 'demo';
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s`;
const say = (text: string) => console.log(`[${elapsed()}] ${text}`);

const crdNames = ['transcriptiontasks.taskqueue.dev', 'diarizationtasks.taskqueue.dev', 'workerpools.taskqueue.dev'];
const stoppers: (() => Promise<void>)[] = [];
let stopping = false;

async function stopAll(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    say('Stopping workers, controller, redis-server, nats-server and the control plane...');
    for (const stop of stoppers.reverse()) await stop().catch(() => undefined);
    say('Stopped.');
  }
  process.exit(code);
}
process.on('SIGINT', () => void stopAll(0));
process.on('SIGTERM', () => void stopAll(0));

async function kubectl(kubeconfig: string, args: string[], input?: string): Promise<string> {
  const result = await run(kubectlBinary, ['--kubeconfig', kubeconfig, ...args], input === undefined ? {} : { input });
  if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed:\n${result.stderr}`);
  return result.stdout;
}

/** Speech for each sample task, made with espeak-ng (sox tone if it is missing), in the sample's format. */
async function makeAudio(audioDir: string, file: string, text: string): Promise<void> {
  const target = join(audioDir, file);
  if (existsSync(target)) return;
  const wav = join(audioDir, `${file}.source.wav`);
  const speech = await run('espeak-ng', ['-s', '150', '-w', wav, text]);
  if (speech.code !== 0) await run('sox', ['-n', '-r', '16000', '-c', '1', wav, 'synth', '20', 'sine', '300']);
  const converted = await run('ffmpeg', ['-nostdin', '-v', 'error', '-y', '-i', wav, target]);
  if (converted.code !== 0) throw new Error(`ffmpeg could not write ${file}: ${converted.stderr} (run \`make deps\`)`);
  rmSync(wav, { force: true });
}

const script = [
  'Welcome to the task queue demo. This recording stands in for the sample audio.',
  'Long recordings are cut into chunks, each chunk is sent to the engine,',
  'and every finished chunk is checkpointed, so a retry resumes where the last run stopped.',
  'Progress moves as chunks complete, and kubectl get taskqueue shows it.',
].join(' ');

async function main(): Promise<void> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const audioDir = join(dir, 'audio');
  const secretsDir = join(dir, 'secrets');
  mkdirSync(audioDir, { recursive: true });

  say('Starting the local control plane (etcd, kube-apiserver, kube-controller-manager), nats-server and redis-server...');
  const [cp, nats, redis] = await Promise.all([
    startControlPlane({ dir: join(dir, 'cluster'), controllerManager: true }),
    startNats({ dir: join(dir, 'nats') }),
    startRedis({ dir: join(dir, 'redis') }),
  ]);
  stoppers.push(() => cp.stop(), () => nats.destroy(), () => redis.destroy());
  const kc = cp.kubeconfigPath;
  await kubectl(kc, ['apply', '--server-side', '-f', join(projectRoot, 'crds')]);
  await kubectl(kc, ['wait', '--for=condition=Established', '--timeout=60s', ...crdNames.map((n) => `crd/${n}`)]);
  say(`Control plane at ${cp.server}, CRDs installed; nats ${nats.url}, redis ${redis.url}`);

  // Read the samples and point their audio at files this demo makes and serves.
  const kustomization = parseAllDocuments(readFileSync(join(projectRoot, 'config/samples/kustomization.yaml'), 'utf8'))[0]?.toJS() as { resources: string[] };
  const objects = kustomization.resources.flatMap((file) =>
    parseAllDocuments(readFileSync(join(projectRoot, 'config/samples', file), 'utf8')).map((d) => d.toJS() as Record<string, any>),
  );
  const audioPort = await freePort();
  for (const obj of objects) {
    const audio = obj.spec?.audio as { uri: string; secretRef?: { name: string } } | undefined;
    if (!audio) continue;
    const file = basename(new URL(audio.uri).pathname);
    await makeAudio(audioDir, file, script);
    audio.uri = audio.uri.startsWith('file://') ? `file://${join(audioDir, file)}` : `http://127.0.0.1:${audioPort}/${file}`;
    if (audio.secretRef) {
      mkdirSync(join(secretsDir, audio.secretRef.name), { recursive: true });
      writeFileSync(join(secretsDir, audio.secretRef.name, 'bearerToken'), 'demo-token\n');
    }
  }
  const server = createServer((req, res) => {
    const path = join(audioDir, basename(decodeURIComponent((req.url ?? '/').split('?')[0] ?? '')));
    if (!existsSync(path) || path.endsWith('.wav.source.wav')) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': statSync(path).size });
    createReadStream(path).pipe(res);
  });
  await new Promise<void>((r) => server.listen(audioPort, '127.0.0.1', r));
  stoppers.push(() => new Promise((r) => server.close(() => r())));
  say(`Made sample audio with espeak-ng in ${audioDir}, served on http://127.0.0.1:${audioPort}/`);

  const common = {
    ...process.env,
    TQ_NATS_URL: nats.url,
    TQ_REDIS_URL: redis.url,
    TQ_LOG_LEVEL: 'info',
  };
  const controller = new ManagedProcess('controller', process.execPath, [join(projectRoot, 'src/controller/main.ts')], {
    logFile: join(dir, 'controller.log'),
    env: {
      ...common,
      KUBECONFIG: kc,
      POD_NAME: 'task-queue-controller-0',
      TQ_LEADER_ELECTION_NAMESPACE: 'kube-system',
      TQ_METRICS_PORT: String(await freePort()),
      TQ_HEALTH_PORT: String(await freePort()),
    },
  });
  controller.start();
  stoppers.push(() => controller.stop());

  const workers: { name: string; kind: string }[] = [
    { name: 'transcription-worker-5d8f7c9b4-x2k9p', kind: 'TranscriptionTask' },
    { name: 'transcription-worker-5d8f7c9b4-q7m3z', kind: 'TranscriptionTask' },
    { name: 'diarization-worker-6c4b8d7f9-h5n2w', kind: 'DiarizationTask' },
  ];
  for (const w of workers) {
    const worker = new ManagedProcess(w.name, process.execPath, [join(projectRoot, 'src/worker/main.ts')], {
      logFile: join(dir, `${w.name}.log`),
      env: {
        ...common,
        TQ_TASK_KIND: w.kind,
        TQ_WORKER_NAME: w.name,
        TQ_ENGINE: 'fake',
        TQ_FAKE_CHUNK_MS: '1200',
        TQ_CHUNK_SECONDS: '4',
        TQ_AUDIO_DIR: join(dir, 'work', w.name),
        TQ_AUDIO_FILE_ROOTS: audioDir,
        TQ_SECRETS_DIR: secretsDir,
        TQ_HEALTH_PORT: '0',
        TQ_METRICS_PORT: '0',
      },
    });
    worker.start();
    stoppers.push(() => worker.stop());
  }
  say(`Started the controller and ${workers.length} workers (fake engine, no GPU); logs in ${dir}/*.log`);

  await kubectl(kc, ['create', 'namespace', namespace]);
  // The WorkerPools need Deployments to scale. Without a kubelet their pods
  // never run (the workers above are local processes), but replicas follow the backlog.
  for (const deployment of ['transcription-worker', 'diarization-worker']) {
    await kubectl(kc, ['create', 'deployment', deployment, '-n', namespace, '--image=ghcr.io/task-queue/task-queue:0.1.0', '--replicas=0']);
  }
  await kubectl(kc, ['apply', '-n', namespace, '-f', '-'], objects.map((o) => stringify(o)).join('---\n'));
  say(`Applied config/samples to namespace ${namespace}. Watching (like \`kubectl get taskqueue -n ${namespace} -w\`):\n`);

  const taskNames = objects.filter((o) => o.kind !== 'WorkerPool').map((o) => o.metadata.name as string);
  const seen = new Map<string, string>();
  let header = '';
  const terminal = /\b(Succeeded|Failed|Cancelled)\b/;
  await waitFor(
    'every sample task to finish',
    async () => {
      const out = await kubectl(kc, ['get', 'transcriptiontasks,diarizationtasks', '-n', namespace]).catch(() => '');
      const lines = out.split('\n').filter((l) => l.trim() !== '');
      for (const line of lines) {
        if (line.startsWith('NAME')) {
          if (!header) {
            header = line;
            console.log(`          ${header}`);
          }
          continue;
        }
        const name = line.split(/\s+/)[0] ?? '';
        const row = line.replace(/\s+\S+$/, ''); // the AGE column changes every second
        if (seen.get(name) !== row) {
          seen.set(name, row);
          console.log(`[${elapsed()}] ${line}`);
        }
      }
      const rowFor = (n: string) => [...seen].find(([k]) => k === n || k.endsWith(`/${n}`))?.[1] ?? '';
      return taskNames.every((n) => terminal.test(rowFor(n)));
    },
    { timeoutMs: 5 * 60_000, intervalMs: 500 },
  );

  console.log('');
  // The taskqueue category lists the WorkerPools too.
  console.log(await kubectl(kc, ['get', 'taskqueue', '-n', namespace, '-o', 'wide']));
  const failed = [...seen.values()].filter((v) => !/\bSucceeded\b/.test(v));
  if (failed.length > 0) {
    say(`Some tasks did not succeed:\n${failed.join('\n')}\nSee ${dir}/*.log`);
    if (exitWhenDone) await stopAll(1);
  } else {
    say('Every sample task Succeeded.');
  }
  if (exitWhenDone) await stopAll(0);

  console.log(`
Everything keeps running. In another terminal:

  export KUBECONFIG=${kc}
  bin/kubectl get taskqueue -A
  bin/kubectl describe tt -n ${namespace} podcast-episode-42
  bin/kubectl apply -n ${namespace} -f config/samples/transcriptiontask-minimal.yaml   # edit the name first

Logs: ${dir}/controller.log and ${dir}/*-worker-*.log
Press Ctrl-C here to stop everything.`);
  await new Promise(() => undefined);
}

main().catch(async (err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  await stopAll(1);
});
