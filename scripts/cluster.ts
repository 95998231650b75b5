// `make cluster-up` / `make cluster-down`: a local control plane for people,
// in .local/cluster, that outlives this command.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot, startControlPlane, stopDetachedControlPlane, kubectlBinary, run } from '../test/harness/index.ts';

const dir = join(projectRoot, '.local', 'cluster');
const crdNames = ['transcriptiontasks.taskqueue.dev', 'diarizationtasks.taskqueue.dev', 'workerpools.taskqueue.dev'];
const command = process.argv[2];

async function up(): Promise<void> {
  if (existsSync(join(dir, 'state.json'))) {
    console.log(`A local cluster is already running (state in ${dir}); \`make cluster-down\` stops it.`);
    return;
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const cp = await startControlPlane({ dir, detached: true, controllerManager: true });
  const crds = await run(kubectlBinary, ['--kubeconfig', cp.kubeconfigPath, 'apply', '--server-side', '-f', join(projectRoot, 'crds')]);
  if (crds.code !== 0) throw new Error(`installing the CRDs failed:\n${crds.stderr}`);
  await run(kubectlBinary, ['--kubeconfig', cp.kubeconfigPath, 'wait', '--for=condition=Established', '--timeout=60s', ...crdNames.map((n) => `crd/${n}`)]);
  console.log(`Local control plane up at ${cp.server} (Kubernetes from hack/local-cluster), CRDs installed.

  export KUBECONFIG=${cp.kubeconfigPath}
  bin/kubectl apply -f config/samples/
  bin/kubectl get taskqueue -A

Logs: ${dir}/*.log. Stop it with \`make cluster-down\`.`);
}

async function down(): Promise<void> {
  const stopped = await stopDetachedControlPlane(dir);
  console.log(stopped ? 'Local control plane stopped.' : 'No local control plane was running.');
}

if (command === 'up') await up();
else if (command === 'down') await down();
else {
  console.error('usage: node scripts/cluster.ts up|down');
  process.exit(2);
}
