// `make bench SIZE=quick|full` → `node bench/run.ts --size <size>`.
//
// Builds src/ as the image runs it, starts one private control plane
// (kube-apiserver + etcd with an audit log), nats-server and redis-server on
// 127.0.0.1, runs the benchmarks, prints one table and writes it as JSON to
// bench/results/<timestamp>-<size>.json. Every number is reported next to a
// yardstick measured in the same run. See bench/README.md.
//
//   --size quick|full   quick: checks that each benchmark works (< 2 min; the
//                       controller-cost benchmark runs beside the others, so
//                       its numbers are not comparable); full: the numbers
//                       for bench/README.md, one benchmark at a time
//   --only a,b          run only these benchmarks: worker, dispatch, storm,
//                       scale, throughput, cost
//   --profile           run the controller processes with --cpu-prof (slower);
//                       the profiles stay in the work directory printed at
//                       the end: node bench/profile-summary.ts <file>
//   --keep              keep the work directory (server and process logs)
//   --controller-env K=V,K=V
//                       extra environment for every controller process
//                       (e.g. TQ_KUBE_QPS=5000), to try a setting; the
//                       table then no longer shows the defaults
//   --controller-node-args="ARGS"
//                       extra node flags for every controller process, e.g.
//                       --controller-node-args=--import=./bench/experiments/reuse-connections.mjs
//                       (space-separated; paths relative to the project)
//
// The exit code is non-zero when a benchmark breaks (an error, a timeout, or
// nothing measured), never because a number misses its goal.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { projectRoot } from '../test/harness/index.ts';
import { controllerCost } from './controller-cost.ts';
import { dispatch } from './dispatch.ts';
import { buildProduct } from './lib/build.ts';
import { startBenchEnv, type BenchEnv } from './lib/env.ts';
import { markdownTable, textTable, type Benchmark, type Row, type Size } from './lib/report.ts';
import { scaleReaction } from './scale.ts';
import { storm } from './storm.ts';
import { throughput } from './throughput.ts';
import { workerOverhead } from './worker-overhead.ts';

// Ordered so that the benchmarks that leave the most objects behind run last.
const BENCHMARKS: Benchmark[] = [workerOverhead, dispatch, storm, scaleReaction, throughput, controllerCost];
/** Runs beside the others in the quick mode. */
const LONGEST = controllerCost.name;

/** A benchmark that runs longer than this is broken (hung), whatever it was doing. */
const TIME_LIMIT_MS: Record<Size, number> = { quick: 150_000, full: 20 * 60_000 };

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: 'quick' },
    only: { type: 'string' },
    profile: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    'controller-env': { type: 'string' },
    'controller-node-args': { type: 'string' },
  },
});
if (values.size !== 'quick' && values.size !== 'full') {
  console.error(`--size must be quick or full, got ${values.size}`);
  process.exit(2);
}
const size: Size = values.size;
const only = values.only ? new Set(values.only.split(',').map((s) => s.trim())) : undefined;
const unknown = [...(only ?? [])].filter((name) => !BENCHMARKS.some((b) => b.name === name));
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; known: ${BENCHMARKS.map((b) => b.name).join(', ')}`);
  process.exit(2);
}
const chosen = BENCHMARKS.filter((b) => !only || only.has(b.name));
const controllerNodeArgs = (values['controller-node-args'] ?? '').split(' ').filter(Boolean);
const controllerEnv: Record<string, string> = {};
for (const pair of (values['controller-env'] ?? '').split(',').filter(Boolean)) {
  const eq = pair.indexOf('=');
  if (eq <= 0) {
    console.error(`--controller-env takes K=V pairs, got ${pair}`);
    process.exit(2);
  }
  controllerEnv[pair.slice(0, eq)] = pair.slice(eq + 1);
}

const runStarted = new Date();
const workDir = mkdtempSync(join(tmpdir(), 'tq-bench-'));
const log = (message: string) => console.log(`[${((Date.now() - runStarted.getTime()) / 1000).toFixed(1).padStart(6)} s] ${message}`);

let env: BenchEnv | undefined;
let exiting = false;
async function cleanUp(): Promise<void> {
  await env?.stop();
  env = undefined;
  if (!values.keep && !values.profile) rmSync(workDir, { recursive: true, force: true });
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (exiting) return;
    exiting = true;
    log(`${signal}: stopping the servers`);
    void cleanUp().finally(() => process.exit(130));
  });
}

/** How long a benchmark past its time limit gets to unwind (stop its processes) before the run moves on. */
const UNWIND_MS = 30_000;

/**
 * Runs a benchmark with a time limit. Past it, the benchmark's signal fires
 * and it gets UNWIND_MS to stop what it started; the run fails either way.
 */
async function withTimeLimit<T>(run: (signal: AbortSignal) => Promise<T>, ms: number, what: string): Promise<T> {
  const abort = new AbortController();
  const promise = run(abort.signal);
  let timer: NodeJS.Timeout | undefined;
  const overtime = new Promise<'overtime'>((resolve) => {
    timer = setTimeout(() => resolve('overtime'), ms);
  });
  try {
    const first = await Promise.race([promise, overtime]);
    if (first !== 'overtime') return first;
  } finally {
    clearTimeout(timer);
  }
  abort.abort(new Error(`${what} ran longer than ${ms / 1000} s`));
  await Promise.race([promise.catch(() => undefined), new Promise((r) => setTimeout(r, UNWIND_MS))]);
  throw abort.signal.reason;
}

interface Outcome {
  name: string;
  title: string;
  ok: boolean;
  seconds: number;
  /** 1-minute load average of the machine before and after: other tenants show up here. */
  loadAverage: { before: number; after: number };
  error?: string;
  rows: Row[];
  details: Record<string, unknown>;
}

const outcomes: Outcome[] = [];
let failed = false;
try {
  log(`size ${size}; benchmarks: ${chosen.map((b) => b.name).join(', ')}; work directory ${workDir}`);
  // The build runs while the servers start; whichever fails, the servers still get stopped.
  const starting = startBenchEnv(join(workDir, 'servers')).then((started) => (env = started));
  const [, productDir] = await Promise.all([starting, buildProduct(join(workDir, 'product'))]);
  if (!env) throw new Error('the servers did not start');
  log(`servers up: kube-apiserver ${env.versions.kubeApiserver} at ${env.server}, ${env.versions.natsServer} at ${env.natsUrl}, ${env.versions.redisServer} at ${env.redisUrl}`);
  const settings = { workDir, productDir, profile: values.profile, controllerEnv, controllerNodeArgs };
  const runOne = async (bench: Benchmark): Promise<Outcome> => {
    const started = performance.now();
    const loadBefore = loadavg()[0] ?? Number.NaN;
    const load = () => ({ before: loadBefore, after: loadavg()[0] ?? Number.NaN });
    log(`${bench.name}: ${bench.title} (load average ${loadBefore.toFixed(1)})`);
    try {
      const result = await withTimeLimit(
        (signal) => bench.run({ env: env as BenchEnv, size, settings, signal, log: (m) => log(`  ${bench.name}: ${m}`) }),
        TIME_LIMIT_MS[size],
        bench.name,
      );
      const seconds = (performance.now() - started) / 1000;
      log(`${bench.name}: done in ${seconds.toFixed(1)} s`);
      return { name: bench.name, title: bench.title, ok: true, seconds, loadAverage: load(), rows: result.rows, details: result.details };
    } catch (err) {
      failed = true;
      const seconds = (performance.now() - started) / 1000;
      const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
      log(`${bench.name}: BROKEN after ${seconds.toFixed(1)} s\n${message}`);
      return {
        name: bench.name,
        title: bench.title,
        ok: false,
        seconds,
        loadAverage: load(),
        error: message,
        rows: [{ measurement: bench.title, value: `BROKEN: ${err instanceof Error ? err.message : String(err)}`, yardstick: '', ratio: '', goal: '', met: null, numbers: {} }],
        details: {},
      };
    }
  };
  const results = new Map<string, Outcome>();
  if (size === 'full') {
    // One at a time: every number is taken on a machine doing nothing else of ours.
    for (const bench of chosen) results.set(bench.name, await runOne(bench));
  } else {
    // The quick mode only checks that each benchmark works, so the longest one
    // runs beside the others to stay within two minutes; the numbers it prints
    // are not comparable with a full run's.
    const longest = chosen.find((b) => b.name === LONGEST);
    const rest = chosen.filter((b) => b !== longest);
    await Promise.all([
      longest ? runOne(longest).then((o) => results.set(o.name, o)) : Promise.resolve(),
      (async () => {
        for (const bench of rest) results.set(bench.name, await runOne(bench));
      })(),
    ]);
  }
  for (const bench of chosen) {
    const outcome = results.get(bench.name);
    if (outcome) outcomes.push(outcome);
  }
} catch (err) {
  failed = true;
  log(`the run could not start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
} finally {
  const rows = outcomes.flatMap((o) => o.rows);
  const totalSeconds = (Date.now() - runStarted.getTime()) / 1000;
  if (rows.length > 0) {
    console.log(`\n${textTable(rows)}\n`);
  }
  const resultsDir = join(projectRoot, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const stamp = runStarted.toISOString().replace(/[:.]/g, '-');
  const file = join(resultsDir, `${stamp}-${size}.json`);
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        date: runStarted.toISOString(),
        size,
        controllerEnv,
        controllerNodeArgs,
        totalSeconds,
        ok: !failed,
        machine: env?.machine,
        versions: env?.versions,
        rows,
        markdown: markdownTable(rows),
        benchmarks: outcomes,
      },
      null,
      2,
    )}\n`,
  );
  log(`wrote ${relative(projectRoot, file)}; ${failed ? 'a benchmark broke' : 'every benchmark ran'} (${totalSeconds.toFixed(0)} s in all)`);
  if (values.profile) log(`controller CPU profiles: ${join(workDir, 'profiles')}`);
  if (values.keep) log(`logs kept in ${workDir}`);
  await cleanUp();
}
process.exit(failed ? 1 : 0);
