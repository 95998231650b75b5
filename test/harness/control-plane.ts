// A local Kubernetes control plane for tests and the demo: etcd, kube-apiserver
// and (optionally) kube-controller-manager from the project's own build of the
// upstream Go modules (hack/local-cluster), on free loopback ports, with RBAC,
// ServiceAccount token issuance and an admin kubeconfig.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { ManagedProcess, pidAlive } from './process.ts';
import { freePort, isListening, waitFor } from './ports.ts';

export const projectRoot = resolve(import.meta.dirname, '..', '..');
export const localClusterBinary = process.env.TQ_LOCAL_CLUSTER_BIN ?? join(projectRoot, 'bin', 'local-cluster');

export interface ControlPlaneOptions {
  /** Where certificates, data and logs go; a fresh temporary directory by default. */
  dir?: string;
  /** Also run kube-controller-manager (namespace deletion, garbage collection, Deployment status). */
  controllerManager?: boolean;
  /** Processes outlive the calling Node process (`make cluster-up`). */
  detached?: boolean;
}

export interface ControlPlaneState {
  dir: string;
  kubeconfigPath: string;
  server: string;
  etcdPort: number;
  apiserverPort: number;
  pids: number[];
}

export interface ControlPlane extends ControlPlaneState {
  kc: KubeConfig;
  stopApiserver(): Promise<void>;
  startApiserver(): Promise<void>;
  restartApiserver(): Promise<void>;
  stop(): Promise<void>;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA, the apiserver's serving certificate, an admin client certificate and the ServiceAccount signing key. */
function writeCertificates(certDir: string): void {
  mkdirSync(certDir, { recursive: true });
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '365', '-subj', '/CN=task-queue-local-ca'], certDir);
  const sign = (name: string, subject: string, extensions: string): void => {
    writeFileSync(join(certDir, `${name}.ext`), extensions);
    openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], certDir);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '365', '-out', `${name}.crt`, '-extfile', `${name}.ext`], certDir);
  };
  sign(
    'apiserver',
    '/CN=kube-apiserver',
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n',
  );
  sign('admin', '/O=system:masters/CN=admin', 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n');
  openssl(['genrsa', '-out', 'sa.key', '2048'], certDir);
  openssl(['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], certDir);
}

function kubeconfigYaml(server: string, certDir: string): string {
  const b64 = (file: string) => readFileSync(join(certDir, file)).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: task-queue-local',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${b64('ca.crt')}`,
    'users:',
    '- name: admin',
    '  user:',
    `    client-certificate-data: ${b64('admin.crt')}`,
    `    client-key-data: ${b64('admin.key')}`,
    'contexts:',
    '- name: task-queue-local',
    '  context:',
    '    cluster: task-queue-local',
    '    user: admin',
    'current-context: task-queue-local',
    '',
  ].join('\n');
}

async function httpsOk(url: string, certDir: string): Promise<boolean> {
  return new Promise((resolveOk) => {
    const req = request(
      url,
      {
        ca: readFileSync(join(certDir, 'ca.crt')),
        cert: readFileSync(join(certDir, 'admin.crt')),
        key: readFileSync(join(certDir, 'admin.key')),
        timeout: 2000,
      },
      (res) => {
        res.resume();
        resolveOk(res.statusCode === 200);
      },
    );
    req.on('error', () => resolveOk(false));
    req.on('timeout', () => {
      req.destroy();
      resolveOk(false);
    });
    req.end();
  });
}

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  if (!existsSync(localClusterBinary)) {
    throw new Error(`${localClusterBinary} is missing: run \`make local-cluster\` (builds kube-apiserver and etcd from hack/local-cluster)`);
  }
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'tq-cluster-'));
  mkdirSync(dir, { recursive: true });
  const certDir = join(dir, 'certs');
  writeCertificates(certDir);
  const etcdPort = await freePort();
  const etcdPeerPort = await freePort();
  const apiserverPort = await freePort();
  const server = `https://127.0.0.1:${apiserverPort}`;
  const kubeconfigPath = join(dir, 'kubeconfig');
  writeFileSync(kubeconfigPath, kubeconfigYaml(server, certDir), { mode: 0o600 });
  const detached = options.detached ?? false;

  const etcd = new ManagedProcess(
    'etcd',
    localClusterBinary,
    ['etcd', '--data-dir', join(dir, 'etcd'), '--client-url', `http://127.0.0.1:${etcdPort}`, '--peer-url', `http://127.0.0.1:${etcdPeerPort}`],
    { logFile: join(dir, 'etcd.log'), detached },
  );
  const apiserver = new ManagedProcess(
    'kube-apiserver',
    localClusterBinary,
    [
      'kube-apiserver',
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      `--secure-port=${apiserverPort}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--cert-dir=${certDir}`,
      `--tls-cert-file=${join(certDir, 'apiserver.crt')}`,
      `--tls-private-key-file=${join(certDir, 'apiserver.key')}`,
      `--client-ca-file=${join(certDir, 'ca.crt')}`,
      '--authorization-mode=RBAC',
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      '--disable-admission-plugins=ServiceAccount',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${join(certDir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(certDir, 'sa.key')}`,
      // A record of every write lets benchmarks and tests count apiserver writes
      // from the apiserver's own account rather than from our code.
      `--audit-policy-file=${writeAuditPolicy(dir)}`,
      `--audit-log-path=${join(dir, 'audit.log')}`,
      '--audit-log-format=json',
      '--audit-log-mode=batch',
      '--audit-log-batch-max-wait=1s',
    ],
    { logFile: join(dir, 'kube-apiserver.log'), detached },
  );
  const controllerManager = options.controllerManager
    ? new ManagedProcess(
        'kube-controller-manager',
        localClusterBinary,
        [
          'kube-controller-manager',
          `--kubeconfig=${kubeconfigPath}`,
          '--controllers=namespace-controller,garbage-collector-controller,deployment-controller,replicaset-controller',
          '--leader-elect=false',
          '--secure-port=0',
          '--concurrent-gc-syncs=5',
          '--namespace-sync-period=10s',
        ],
        { logFile: join(dir, 'kube-controller-manager.log'), detached },
      )
    : undefined;

  const readyz = `${server}/readyz`;
  const startApiserver = async (): Promise<void> => {
    apiserver.start();
    await waitFor('kube-apiserver /readyz', async () => {
      if (!apiserver.running) throw new Error(`kube-apiserver exited:\n${apiserver.logTail()}`);
      return httpsOk(readyz, certDir);
    }, { timeoutMs: 120_000, intervalMs: 200 });
  };

  etcd.start();
  await waitFor('etcd', async () => {
    if (!etcd.running) throw new Error(`etcd exited:\n${etcd.logTail()}`);
    return isListening(etcdPort);
  }, { timeoutMs: 60_000 });
  await startApiserver();
  controllerManager?.start();

  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);

  const processes = () => [controllerManager, apiserver, etcd].filter((p): p is ManagedProcess => p !== undefined);
  const state: ControlPlaneState = {
    dir,
    kubeconfigPath,
    server,
    etcdPort,
    apiserverPort,
    pids: processes().map((p) => p.pid).filter((pid): pid is number => pid !== undefined),
  };
  writeFileSync(join(dir, 'state.json'), JSON.stringify(state, null, 2));

  return {
    ...state,
    kc,
    stopApiserver: () => apiserver.stop(),
    startApiserver,
    async restartApiserver() {
      await apiserver.stop();
      await startApiserver();
    },
    async stop() {
      for (const p of processes()) await p.stop();
      if (!options.dir && !detached) rmSync(dir, { recursive: true, force: true });
    },
  };
}

function writeAuditPolicy(dir: string): string {
  const path = join(dir, 'audit-policy.yaml');
  writeFileSync(
    path,
    [
      'apiVersion: audit.k8s.io/v1',
      'kind: Policy',
      'omitStages: ["RequestReceived"]',
      'rules:',
      '- level: Metadata',
      '  verbs: ["create", "update", "patch", "delete", "deletecollection"]',
      '- level: None',
      '',
    ].join('\n'),
  );
  return path;
}

/** Stops a detached control plane started by `make cluster-up`, from its state file. */
export async function stopDetachedControlPlane(dir: string): Promise<boolean> {
  const stateFile = join(dir, 'state.json');
  if (!existsSync(stateFile)) return false;
  const state = JSON.parse(readFileSync(stateFile, 'utf8')) as ControlPlaneState;
  for (const pid of state.pids) {
    if (pidAlive(pid)) process.kill(pid, 'SIGTERM');
  }
  await waitFor('control plane processes to exit', () => state.pids.every((pid) => !pidAlive(pid)), { timeoutMs: 20_000 }).catch(() => {
    for (const pid of state.pids) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
  });
  rmSync(stateFile);
  return true;
}
