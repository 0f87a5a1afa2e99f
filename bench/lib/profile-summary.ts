/**
 * Summarizes V8 CPU profiles (written with DG_BENCH_PROF=DIR) by self time per function and
 * per file, to say precisely where a serving process spends its CPU.
 * Usage: node --import tsx bench/lib/profile-summary.ts FILE.cpuprofile [top]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export function summarize(path: string, top = 30): string {
  const p = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Native frames (no URL: SQLite calls, socket writes, base64) are charged to the nearest
  // JavaScript caller, so the table says which of our functions caused the cost.
  const owner = (id: number): ProfileNode | undefined => {
    let n = byId.get(id);
    while (n !== undefined && n.callFrame.url === '' && parent.has(n.id)) n = byId.get(parent.get(n.id) as number);
    return n?.callFrame.url === '' ? byId.get(id) : n;
  };
  const fnTime = new Map<string, number>();
  const fileTime = new Map<string, number>();
  for (const [id, t] of self) {
    const n = owner(id);
    if (n === undefined) continue;
    const file = n.callFrame.url.replace(/^file:\/\//, '').replace(/.*\/node_modules\//, 'node_modules/').replace(/.*\/work\/main\//, '') || '(native)';
    const fn = `${n.callFrame.functionName || '(anonymous)'} ${file}:${n.callFrame.lineNumber + 1}`;
    fnTime.set(fn, (fnTime.get(fn) ?? 0) + t);
    fileTime.set(file, (fileTime.get(file) ?? 0) + t);
  }
  const pct = (t: number) => `${((t / total) * 100).toFixed(1).padStart(5)}%`;
  const lines = [`total sampled ${(total / 1000).toFixed(0)} ms`, '', 'self time by function (native time charged to its JavaScript caller):'];
  for (const [k, t] of [...fnTime].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`${pct(t)}  ${k}`);
  lines.push('', 'self time by file:');
  for (const [k, t] of [...fileTime].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`${pct(t)}  ${k}`);
  return lines.join('\n');
}

if (process.argv[2] !== undefined) process.stdout.write(`${summarize(process.argv[2], Number(process.argv[3] ?? 30))}\n`);
