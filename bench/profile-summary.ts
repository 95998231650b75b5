// Summarises a V8 CPU profile (`node --cpu-prof`, as `bench/run.ts --profile`
// writes for every controller process): where the samples fell, by function
// and by package, self time only.
//
//   node bench/profile-summary.ts <file.cpuprofile> [--top 25]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** The package (node_modules/<pkg>), our own file, or node's internals a frame belongs to. */
export function owner(url: string): string {
  if (url === '') return '(native/V8)';
  if (url.startsWith('node:')) return 'node:internal';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url);
  }
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return `ours: ${url.slice(dist + 6).split('/').slice(0, 2).join('/')}`;
  return url;
}

export function summarise(profile: Profile, top: number): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const byFunction = new Map<string, number>();
  const byOwner = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = functionName || '(anonymous)';
    if (name === '(idle)' || name === '(program)' || name === '(garbage collector)') {
      byOwner.set(name, (byOwner.get(name) ?? 0) + us);
      byFunction.set(name, (byFunction.get(name) ?? 0) + us);
      continue;
    }
    const key = `${name} ${url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${lineNumber + 1}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    const who = owner(url);
    byOwner.set(who, (byOwner.get(who) ?? 0) + us);
  }
  const busy = total - (byOwner.get('(idle)') ?? 0);
  const line = (label: string, us: number) => `${(us / 1000).toFixed(0).padStart(8)} ms ${((us / busy) * 100).toFixed(1).padStart(5)}%  ${label}`;
  const sorted = (m: Map<string, number>) => [...m.entries()].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]);
  return [
    `profile ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s, busy ${(busy / 1e6).toFixed(2)} s (shares are of busy time)`,
    '',
    'by package:',
    ...sorted(byOwner).slice(0, top).map(([k, us]) => line(k, us)),
    '',
    'by function (self):',
    ...sorted(byFunction).slice(0, top).map(([k, us]) => line(k, us)),
  ].join('\n');
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } });
  if (positionals.length === 0) {
    console.error('usage: node bench/profile-summary.ts <file.cpuprofile> [--top N]');
    process.exit(2);
  }
  for (const file of positionals) {
    console.log(`== ${file}`);
    console.log(summarise(JSON.parse(readFileSync(file, 'utf8')) as Profile, Number(values.top)));
  }
}
