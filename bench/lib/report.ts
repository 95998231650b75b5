// The shape every benchmark returns, the context it runs in, and the one
// table the run prints.
import type { BenchEnv } from './env.ts';
import type { BenchSettings } from './processes.ts';

export type Size = 'quick' | 'full';

export interface Row {
  measurement: string;
  /** What was measured, formatted for the table. */
  value: string;
  /** The yardstick measured in the same run (or stated, and then said so). */
  yardstick: string;
  ratio: string;
  goal: string;
  /** null where the issue sets no goal. */
  met: boolean | null;
  /** The numbers behind the cells, for the JSON file. */
  numbers: Record<string, number>;
}

export interface BenchResult {
  rows: Row[];
  /** Everything else worth keeping: raw samples' summaries, write splits, timings. */
  details: Record<string, unknown>;
}

export interface BenchContext {
  env: BenchEnv;
  size: Size;
  settings: BenchSettings;
  /** Fires when the benchmark ran past its time limit: loops check it and unwind, so their `finally` stops their processes. */
  signal: AbortSignal;
  log(message: string): void;
}

export interface Benchmark {
  /** Short name for --only and the JSON file. */
  name: string;
  title: string;
  run(ctx: BenchContext): Promise<BenchResult>;
}

/** Throws when a benchmark produced nothing to measure: the quick mode's only check. */
export function expectSome(what: string, count: number): void {
  if (!(count > 0) || !Number.isFinite(count)) throw new Error(`benchmark broken: no ${what} (got ${count})`);
}

export function metCell(met: boolean | null): string {
  if (met === null) return '—';
  return met ? 'yes' : 'NO';
}

const HEADERS = ['measurement', 'value', 'yardstick (same run)', 'ratio', 'goal', 'met?'];

function cells(row: Row): string[] {
  return [row.measurement, row.value, row.yardstick, row.ratio, row.goal, metCell(row.met)];
}

/** A plain-text table for the terminal. */
export function textTable(rows: readonly Row[]): string {
  const all = [HEADERS, ...rows.map(cells)];
  const widths = HEADERS.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ');
  return [line(HEADERS), widths.map((w) => '-'.repeat(w)).join('-|-'), ...rows.map((r) => line(cells(r)))].join('\n');
}

/** The same table in Markdown, for bench/README.md. */
export function markdownTable(rows: readonly Row[]): string {
  const escape = (s: string) => s.replace(/\|/g, '\\|');
  return [
    `| ${HEADERS.join(' | ')} |`,
    `|${HEADERS.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${cells(r).map(escape).join(' | ')} |`),
  ].join('\n');
}
