// The chaos run from the command line (`make chaos`):
//
//   node test/chaos/run.ts --tasks 1000
//   node test/chaos/run.ts --tasks 60 --cycles 1 --only worker-pause,nats-cut
//
// Options: --tasks N, --seed N, --cycles N (every fault kind once per cycle),
// --gap SECONDS (between faults), --rate TASKS_PER_SECOND, --stall SECONDS
// (stuck: nothing settled for that long once the faults stopped), --settle SECONDS (at most),
// --transcription-workers N, --diarization-workers N, --cut SECONDS,
// --only KIND,KIND, --dir DIR (logs, history, run-data.json, report.json;
// a temporary directory otherwise, kept either way).
// Exits 0 when every invariant held, 1 otherwise.
import { parseArgs } from 'node:util';
import { runChaos, DEFAULT_OPTIONS } from './chaos.ts';
import { formatReport } from './checker.ts';
import { FAULT_KINDS, type FaultKind } from './faults.ts';

const { values } = parseArgs({
  options: {
    tasks: { type: 'string' },
    seed: { type: 'string' },
    cycles: { type: 'string' },
    gap: { type: 'string' },
    rate: { type: 'string' },
    settle: { type: 'string' },
    stall: { type: 'string' },
    'transcription-workers': { type: 'string' },
    'diarization-workers': { type: 'string' },
    cut: { type: 'string' },
    only: { type: 'string' },
    dir: { type: 'string' },
  },
});

const num = (value: string | undefined, fallback: number): number => {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new Error(`not a number: ${value}`);
  return n;
};
const only = values.only?.split(',').map((k) => k.trim()) as FaultKind[] | undefined;
for (const kind of only ?? []) {
  if (!(FAULT_KINDS as readonly string[]).includes(kind)) throw new Error(`unknown fault kind ${kind}; one of ${FAULT_KINDS.join(', ')}`);
}

// Ctrl-C: exit through 'exit', where the harness kills every server and process it started.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

const started = Date.now();
const { dir, report } = await runChaos({
  tasks: num(values.tasks, DEFAULT_OPTIONS.tasks),
  seed: num(values.seed, DEFAULT_OPTIONS.seed),
  cycles: num(values.cycles, DEFAULT_OPTIONS.cycles),
  gapSeconds: num(values.gap, DEFAULT_OPTIONS.gapSeconds),
  settleSeconds: num(values.settle, DEFAULT_OPTIONS.settleSeconds),
  stallSeconds: num(values.stall, DEFAULT_OPTIONS.stallSeconds),
  transcriptionWorkers: num(values['transcription-workers'], DEFAULT_OPTIONS.transcriptionWorkers),
  diarizationWorkers: num(values['diarization-workers'], DEFAULT_OPTIONS.diarizationWorkers),
  cutSeconds: num(values.cut, DEFAULT_OPTIONS.cutSeconds),
  ...(values.rate !== undefined ? { createRate: num(values.rate, 1) } : {}),
  ...(only ? { only } : {}),
  ...(values.dir !== undefined ? { dir: values.dir } : {}),
});
console.log(formatReport(report, { options: { ...values } }));
console.log(`\nwall time ${Math.round((Date.now() - started) / 1000)} s; logs, history and report in ${dir}`);
process.exit(report.ok ? 0 : 1);
