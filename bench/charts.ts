/**
 * Draws docs/benchmarks/*.svg from bench/results/latest.json, with no dependency: plain
 * hand-written SVG bars. One chart per benchmark (project and peer side by side for each
 * metric, each pair scaled to its larger value, since units differ) and one overview of
 * all ratios against the line where the project and its peer are equal.
 * Run alone: node --import tsx bench/charts.ts [results.json] [--table]
 * (`--table` prints the results as a Markdown table instead of drawing).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { extraCharts } from './charts-peers.js';
import type { BenchResult, ResultFile, Row } from './lib/result.js';
import { fmt } from './lib/stats.js';

const PROJECT = '#2f6fb0';
const PEER = '#b7b7b7';
const WIDTH = 760;
const LABEL_W = 280;
const BAR_W = WIDTH - LABEL_W - 120;
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function text(x: number, y: number, s: string, extra = ''): string {
  return `<text x="${x}" y="${y}" ${extra}>${esc(s)}</text>`;
}

function ratioLabel(r: Row): string {
  const verdict = r.met === true ? ' (goal met)' : r.met === false ? ' (goal missed)' : '';
  const goal = r.goal === '' ? '' : `, goal ${r.goal}`;
  return `project/peer = ${fmt(r.ratio)}${goal}${verdict}; ${r.better} is better`;
}

function svgDoc(height: number, body: string[], title: string): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" role="img" aria-label="${esc(title)}">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<g ${FONT} font-size="12" fill="#222">`,
    ...body,
    '</g>',
    '</svg>',
    '',
  ].join('\n');
}

/** Project and peer bars for each metric of one benchmark. */
export function benchChart(r: BenchResult): string {
  const body: string[] = [];
  body.push(text(12, 22, r.title, 'font-size="15" font-weight="600"'));
  body.push(`<rect x="12" y="32" width="12" height="12" fill="${PROJECT}"/>`, text(30, 42, `project: ${r.project}`));
  body.push(`<rect x="12" y="50" width="12" height="12" fill="${PEER}"/>`, text(30, 60, `peer: ${r.peer}`));
  let y = 84;
  const barX = 80;
  const barW = WIDTH - barX - 170;
  for (const w of r.rows) {
    const max = Math.max(w.project, w.peer, Number.MIN_VALUE);
    body.push(text(12, y + 13, `${w.metric} (${w.unit})`, 'font-weight="600"'));
    body.push(text(12, y + 29, ratioLabel(w), 'font-size="11" fill="#555"'));
    const bars: [number, string, string][] = [
      [w.project, PROJECT, 'project'],
      [w.peer, PEER, 'peer'],
    ];
    bars.forEach(([v, color, who], i) => {
      const by = y + 38 + i * 20;
      const len = Number.isFinite(v) ? Math.max(1, (v / max) * barW) : 0;
      body.push(text(12, by + 12, who, 'font-size="11" fill="#555"'));
      body.push(`<rect x="${barX}" y="${by}" width="${len.toFixed(1)}" height="16" fill="${color}"><title>${esc(`${who}: ${fmt(v)} ${w.unit}`)}</title></rect>`);
      body.push(text(barX + len + 6, by + 12, `${fmt(v)} ${w.unit}`));
    });
    y += 90;
  }
  const m = r.machine;
  if (m !== undefined) body.push(text(12, y + 8, `${m.cores} cores, ${m.model}, node ${m.node}; medians of interleaved repetitions in one run${r.quick ? ' (quick mode)' : ''}`, 'font-size="10" fill="#777"'));
  return svgDoc(y + 20, body, r.title);
}

/** Every ratio on one log scale, with the parity line at 1 (which side is better varies, so each bar says). */
export function overviewChart(results: BenchResult[]): string {
  const rows = results.flatMap((r) => r.rows.filter((w) => Number.isFinite(w.ratio) && w.ratio > 0).map((w) => ({ r, w })));
  const lo = Math.min(0.1, ...rows.map((x) => x.w.ratio));
  const hi = Math.max(10, ...rows.map((x) => x.w.ratio));
  const l0 = Math.log10(lo);
  const span = Math.log10(hi) - l0;
  const xOf = (v: number) => LABEL_W + ((Math.log10(v) - l0) / span) * BAR_W;
  const body: string[] = [];
  body.push(text(12, 22, 'Project / peer ratios (log scale; green: the project is better, red: worse, grey: a tie)', 'font-size="15" font-weight="600"'));
  let y = 44;
  const top = y;
  for (const { r, w } of rows) {
    const good = w.better === 'lower' ? w.ratio <= 1 : w.ratio >= 1;
    // Within 2% of parity is a tie, drawn neutral.
    const color = Math.abs(Math.log(w.ratio)) < Math.log(1.02) ? '#999999' : good ? '#3a9a5b' : '#c8553d';
    const x1 = xOf(1);
    const x2 = xOf(w.ratio);
    body.push(text(12, y + 12, `${r.name}: ${w.metric}`));
    body.push(`<rect x="${Math.min(x1, x2).toFixed(1)}" y="${y}" width="${Math.max(1, Math.abs(x2 - x1)).toFixed(1)}" height="16" fill="${color}"><title>${esc(ratioLabel(w))}</title></rect>`);
    body.push(text(Math.max(x1, x2) + 8, y + 12, `${fmt(w.ratio)}×${w.goal === '' ? '' : ` (goal ${w.goal})`}`));
    y += 24;
  }
  body.push(`<line x1="${xOf(1).toFixed(1)}" y1="${top - 6}" x2="${xOf(1).toFixed(1)}" y2="${y}" stroke="#222" stroke-dasharray="3,3"/>`);
  for (let p = Math.ceil(l0); p <= Math.floor(l0 + span); p++) {
    const x = xOf(10 ** p);
    body.push(`<line x1="${x.toFixed(1)}" y1="${y}" x2="${x.toFixed(1)}" y2="${y + 4}" stroke="#222"/>`, text(x - 8, y + 16, `${10 ** p}`, 'font-size="10"'));
  }
  return svgDoc(y + 28, body, 'Project / peer ratios');
}

/** The results as a Markdown table (for docs/benchmarks.md). */
export function markdownTable(results: BenchResult[]): string {
  const lines = ['| benchmark | metric | project | peer | project/peer | goal |', '| --- | --- | ---: | ---: | ---: | --- |'];
  for (const r of results) {
    for (const w of r.rows) {
      const goal = w.goal === '' ? '' : `${w.goal} (${w.met === true ? 'met' : w.met === false ? 'missed' : 'n/a'})`;
      lines.push(`| ${r.name} | ${w.metric} (${w.unit}) | ${fmt(w.project)} | ${fmt(w.peer)} | ${fmt(w.ratio)} | ${goal} |`);
    }
  }
  return lines.join('\n');
}

/** Writes the charts for `resultsPath` into docs/benchmarks/ and returns the file names. */
export function writeCharts(resultsPath: string): string[] {
  const file = JSON.parse(readFileSync(resultsPath, 'utf8')) as ResultFile;
  const dir = fileURLToPath(new URL('../docs/benchmarks/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  for (const r of file.results) {
    writeFileSync(join(dir, `${r.name}.svg`), benchChart(r));
    written.push(`docs/benchmarks/${r.name}.svg`);
  }
  for (const [name, svg] of extraCharts(file.results)) {
    writeFileSync(join(dir, name), svg);
    if (!written.includes(`docs/benchmarks/${name}`)) written.push(`docs/benchmarks/${name}`);
  }
  writeFileSync(join(dir, 'ratios.svg'), overviewChart(file.results));
  written.push('docs/benchmarks/ratios.svg');
  return written;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const path = args.find((a) => !a.startsWith('--')) ?? fileURLToPath(new URL('./results/latest.json', import.meta.url));
  if (args.includes('--table')) {
    const file = JSON.parse(readFileSync(path, 'utf8')) as ResultFile;
    process.stdout.write(`${markdownTable(file.results)}\n`);
  } else process.stdout.write(`${writeCharts(path).join('\n')}\n`);
}
