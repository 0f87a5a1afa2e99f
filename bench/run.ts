/**
 * `npm run bench`: runs the benchmarks, prints one table, and writes JSON results.
 *   npm run bench                      all benchmarks, full size; results in bench/results/
 *   npm run bench -- --quick           a smoke check (under 2 minutes); results in bench/results/quick/
 *   npm run bench -- --only token,fanout   (token, fanout, write-ack, fanout-peers, signaling, sessions, auth)
 * Every figure is a median of interleaved repetitions and is shown next to its peer,
 * measured in the same run; the ratio is the point, not the absolute number.
 */
import { mkdirSync, readFileSync, existsSync, writeFileSync, renameSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { machineInfo } from './lib/machine.js';
import type { BenchOptions, BenchResult, ResultFile } from './lib/result.js';
import { fmt } from './lib/stats.js';
import { writeCharts } from './charts.js';

type Bench = (opts: BenchOptions) => Promise<BenchResult>;

const BENCHES: Record<string, () => Promise<Bench>> = {
  token: async () => (await import('./token.js')).run,
  fanout: async () => (await import('./fanout.js')).run,
  'write-ack': async () => (await import('./write-ack.js')).run,
  'fanout-peers': async () => (await import('./fanout-peers.js')).run,
  signaling: async () => (await import('./signaling.js')).run,
  sessions: async () => (await import('./sessions.js')).run,
  auth: async () => (await import('./auth.js')).run,
};

interface Args {
  quick: boolean;
  only: string[];
  charts: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, only: Object.keys(BENCHES), charts: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--quick') args.quick = true;
    else if (a === '--no-charts') args.charts = false;
    else if (a === '--only' || a.startsWith('--only=')) {
      const v = a.startsWith('--only=') ? a.slice(7) : argv[++i];
      if (v === undefined) throw new Error('--only needs a comma-separated list');
      args.only = v.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
      for (const n of args.only) if (!(n in BENCHES)) throw new Error(`unknown benchmark '${n}' (known: ${Object.keys(BENCHES).join(', ')})`);
    } else if (a === '--help' || a === '-h') {
      process.stdout.write(`usage: npm run bench [-- --quick] [--only ${Object.keys(BENCHES).join(',')}] [--no-charts]\n`);
      process.exit(0);
    } else throw new Error(`unknown argument '${a}'`);
  }
  return args;
}

function writeJson(path: string, value: unknown): void {
  writeFileSync(`${path}.tmp`, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
}

function table(results: BenchResult[]): string {
  const head = ['benchmark', 'metric', 'project', 'peer', 'ratio', 'goal'];
  const lines: string[][] = [head];
  for (const r of results) {
    for (const w of r.rows) {
      const goal = w.goal === '' ? '' : `${w.goal} ${w.met === true ? 'met' : w.met === false ? 'MISSED' : ''}`.trim();
      lines.push([r.name, `${w.metric} (${w.unit})`, fmt(w.project), fmt(w.peer), fmt(w.ratio), goal]);
    }
  }
  const widths = head.map((_, c) => Math.max(...lines.map((l) => (l[c] ?? '').length)));
  const out = lines.map((l) => l.map((cell, c) => (c >= 2 && c <= 4 ? cell.padStart(widths[c] ?? 0) : cell.padEnd(widths[c] ?? 0))).join('  '));
  out.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return out.join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const machine = machineInfo();
  const dir = fileURLToPath(new URL(args.quick ? './results/quick/' : './results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const log = (line: string) => process.stderr.write(`${line}\n`);
  log(`machine: ${machine.cores} cores, ${machine.model}, ${machine.memoryGiB} GiB, node ${machine.node}, load ${machine.loadAvg1}`);

  const results: BenchResult[] = [];
  let failed = false;
  for (const name of args.only) {
    const load = BENCHES[name];
    if (load === undefined) continue;
    log(`== ${name}${args.quick ? ' (quick)' : ''}`);
    try {
      const result = await (await load())({ quick: args.quick, log });
      result.machine = machine;
      results.push(result);
      writeJson(join(dir, `${name}.json`), { machine, results: [result] } satisfies ResultFile);
      log(`== ${name} done in ${result.seconds.toFixed(1)} s`);
    } catch (err) {
      failed = true;
      log(`== ${name} FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }

  // latest.json holds the newest result of every benchmark, so `--only` runs refresh it in part.
  const latestPath = join(dir, 'latest.json');
  const previous: BenchResult[] = existsSync(latestPath) ? (JSON.parse(readFileSync(latestPath, 'utf8')) as ResultFile).results : [];
  const merged = [...previous.filter((p) => !results.some((r) => r.name === p.name)), ...results];
  merged.sort((a, b) => Object.keys(BENCHES).indexOf(a.name) - Object.keys(BENCHES).indexOf(b.name));
  writeJson(latestPath, { machine, results: merged } satisfies ResultFile);

  process.stdout.write(`\n${table(results)}\n\n`);
  for (const r of results) for (const n of r.notes) process.stdout.write(`${r.name}: ${n}\n`);
  if (args.charts && !args.quick) {
    const written = writeCharts(latestPath);
    log(`charts: ${written.join(', ')}`);
  }
  if (failed) process.exitCode = 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
