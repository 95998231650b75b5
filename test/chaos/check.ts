// Checks a finished chaos run again from what it left behind:
//   node test/chaos/check.ts <dir>        (the directory run.ts printed)
import { join } from 'node:path';
import { checkRun, formatReport, loadRunData } from './checker.ts';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node test/chaos/check.ts <run directory>');
  process.exit(2);
}
const data = loadRunData(join(dir, 'run-data.json'));
const report = checkRun(data);
console.log(formatReport(report, data));
process.exit(report.ok ? 0 : 1);
