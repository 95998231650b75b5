// The controller and worker are benchmarked as the image runs them
// (`node dist/controller/main.js`, see the Dockerfile): compiled by tsc with
// tsconfig.build.json, not type-stripped at load time, which would add the
// stripper's own memory and start-up time to every number. The build goes to
// the run's work directory, next to a link to the project's node_modules.
import { execFile } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../test/harness/index.ts';

const run = promisify(execFile);

/** Compiles src/ into `<dir>/dist`; returns `dir`. */
export async function buildProduct(dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  symlinkSync(join(projectRoot, 'node_modules'), join(dir, 'node_modules'));
  writeFileSync(join(dir, 'package.json'), '{ "type": "module", "private": true }\n');
  try {
    await run(join(projectRoot, 'node_modules', '.bin', 'tsc'), ['-p', join(projectRoot, 'tsconfig.build.json'), '--outDir', join(dir, 'dist')], {
      cwd: projectRoot,
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (err) {
    const { stdout, stderr } = err as { stdout?: string; stderr?: string };
    throw new Error(`building src/ for the benchmarks failed:\n${stdout ?? ''}${stderr ?? ''}`);
  }
  return dir;
}
