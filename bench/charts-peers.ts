/**
 * Charts for the peer comparisons that a two-bar chart cannot show well (bench/charts.ts
 * draws the rest): fan-out against three peers at three sizes (one bar per server, grouped
 * by follower count) and grant-chain verification time by chain depth (two lines). Plain
 * hand-written SVG, like bench/charts.ts.
 */
import type { BenchResult, Row } from './lib/result.js';
import { fmt } from './lib/stats.js';

const WIDTH = 760;
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';
const COLORS: Record<string, string> = { project: '#2f6fb0', 'bare ws relay': '#b7b7b7', 'Socket.IO': '#e0a040', Hocuspocus: '#7a5ab0' };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function text(x: number, y: number, s: string, extra = ''): string {
  return `<text x="${x}" y="${y}" ${extra}>${esc(s)}</text>`;
}

function doc(height: number, body: string[], title: string): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" role="img" aria-label="${esc(title)}">`,
    '<rect width="100%" height="100%" fill="#ffffff"/>',
    `<g ${FONT} font-size="12" fill="#222">`,
    ...body,
    '</g>',
    '</svg>',
    '',
  ].join('\n');
}

function footer(r: BenchResult, y: number): string {
  const m = r.machine;
  return m === undefined ? '' : text(12, y, `${m.cores} cores, ${m.model}, node ${m.node}; medians of interleaved repetitions in one run${r.quick ? ' (quick mode)' : ''}`, 'font-size="10" fill="#777"');
}

const FANOUT_ROW = /^(.*), (\d+) followers?, vs (.*)$/;

/** One panel per metric; in each, a group of bars (project and every peer) per follower count. */
export function fanoutPeersChart(r: BenchResult): string {
  // metric → followers → server → value (the project's median is the same in every row of a size).
  const data = new Map<string, { unit: string; better: Row['better']; bySize: Map<number, Map<string, number>> }>();
  for (const w of r.rows) {
    const m = FANOUT_ROW.exec(w.metric);
    if (m === null) continue;
    const [, metric = '', n = '0', peer = ''] = m;
    const d = data.get(metric) ?? { unit: w.unit, better: w.better, bySize: new Map() };
    data.set(metric, d);
    const size = d.bySize.get(Number(n)) ?? new Map<string, number>();
    d.bySize.set(Number(n), size);
    size.set('project', w.project);
    size.set(peer, w.peer);
  }
  const body: string[] = [text(12, 22, r.title, 'font-size="15" font-weight="600"')];
  let lx = 12;
  for (const [name, color] of Object.entries(COLORS)) {
    body.push(`<rect x="${lx}" y="32" width="12" height="12" fill="${color}"/>`, text(lx + 18, 42, name));
    lx += 40 + name.length * 7;
  }
  let y = 66;
  const barX = 130;
  const barW = WIDTH - barX - 130;
  for (const [metric, d] of data) {
    body.push(text(12, y + 12, `${metric} (${d.unit}; ${d.better} is better)`, 'font-weight="600"'));
    y += 22;
    for (const [n, servers] of d.bySize) {
      const max = Math.max(...servers.values(), Number.MIN_VALUE);
      body.push(text(12, y + 12, `${n} follower${n === 1 ? '' : 's'}`, 'fill="#555"'));
      for (const [name, color] of Object.entries(COLORS)) {
        const v = servers.get(name);
        if (v === undefined) continue;
        const len = Number.isFinite(v) ? Math.max(1, (v / max) * barW) : 0;
        body.push(`<rect x="${barX}" y="${y}" width="${len.toFixed(1)}" height="14" fill="${color}"><title>${esc(`${name}, ${n} followers: ${fmt(v)} ${d.unit}`)}</title></rect>`);
        body.push(text(barX + len + 6, y + 11, `${fmt(v)}`, 'font-size="11"'));
        y += 16;
      }
      y += 8;
    }
    y += 8;
  }
  body.push(footer(r, y + 8));
  return doc(y + 20, body, r.title);
}

const DEPTH_ROW = /^grant-chain verification, depth (\d+)$/;

/** Verification time against chain depth, project and peer, on a linear scale from 0. */
export function chainDepthChart(r: BenchResult): string | null {
  const pts = r.rows.flatMap((w) => {
    const m = DEPTH_ROW.exec(w.metric);
    return m === null ? [] : [{ depth: Number(m[1]), project: w.project, peer: w.peer, unit: w.unit }];
  });
  if (pts.length < 2) return null;
  const H = 340;
  const x0 = 70;
  const x1 = WIDTH - 150;
  const y0 = H - 50;
  const y1 = 60;
  const maxD = Math.max(...pts.map((p) => p.depth));
  const maxV = Math.max(...pts.map((p) => Math.max(p.project, p.peer)));
  const xOf = (d: number) => x0 + ((d - 1) / Math.max(1, maxD - 1)) * (x1 - x0);
  const yOf = (v: number) => y0 - (v / maxV) * (y0 - y1);
  const title = 'Grant-chain verification time by chain depth';
  const body: string[] = [text(12, 22, title, 'font-size="15" font-weight="600"')];
  body.push(text(12, 40, `project: ${r.project}`, 'font-size="11" fill="#555"'), text(12, 54, `peer: ${r.peer}`, 'font-size="11" fill="#555"'));
  body.push(`<line x1="${x0}" y1="${y0}" x2="${x1}" y2="${y0}" stroke="#222"/>`, `<line x1="${x0}" y1="${y0}" x2="${x0}" y2="${y1}" stroke="#222"/>`);
  for (const p of pts) body.push(text(xOf(p.depth) - 3, y0 + 16, String(p.depth), 'font-size="11"'));
  body.push(text((x0 + x1) / 2 - 30, y0 + 34, 'chain depth'));
  for (let k = 0; k <= 4; k++) {
    const v = (maxV * k) / 4;
    body.push(`<line x1="${x0 - 4}" y1="${yOf(v).toFixed(1)}" x2="${x0}" y2="${yOf(v).toFixed(1)}" stroke="#222"/>`, text(12, yOf(v) + 4, `${fmt(v)} ${pts[0]?.unit ?? ''}`, 'font-size="10"'));
  }
  const series: [string, string, (p: (typeof pts)[number]) => number][] = [
    ['project', COLORS.project ?? '#2f6fb0', (p) => p.project],
    ['peer', '#c8553d', (p) => p.peer],
  ];
  for (const [name, color, val] of series) {
    body.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map((p) => `${xOf(p.depth).toFixed(1)},${yOf(val(p)).toFixed(1)}`).join(' ')}"/>`);
    for (const p of pts) body.push(`<circle cx="${xOf(p.depth).toFixed(1)}" cy="${yOf(val(p)).toFixed(1)}" r="3" fill="${color}"><title>${esc(`${name}, depth ${p.depth}: ${fmt(val(p))} ${p.unit}`)}</title></circle>`);
    const last = pts.at(-1);
    if (last !== undefined) body.push(text(x1 + 8, yOf(val(last)) + 4, `${name} ${fmt(val(last))} ${last.unit}`, `fill="${color}"`));
  }
  body.push(footer(r, H - 4));
  return doc(H, body, title);
}

/** Charts beyond bench/charts.ts's, by file name; a name that is also a benchmark's replaces its default chart. */
export function extraCharts(results: BenchResult[]): [string, string][] {
  const out: [string, string][] = [];
  for (const r of results) {
    if (r.name === 'fanout-peers') out.push(['fanout-peers.svg', fanoutPeersChart(r)]);
    if (r.name === 'auth') {
      const c = chainDepthChart(r);
      if (c !== null) out.push(['auth-chain-depth.svg', c]);
    }
  }
  return out;
}
